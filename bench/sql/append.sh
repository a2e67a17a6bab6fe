#!/usr/bin/env bash
# What one event append costs inside PostgreSQL, without the service: pgbench
# runs single-event INSERT + COMMIT transactions (an event row of the size the
# api benchmark uses, each client appending to its own stream, so the chain
# trigger looks up the previous hash as in production) against four shapes of
# the events table, each in a database of its own made from the project's
# migrations:
#
#   plain         the events table with its chain trigger disabled (the hash
#                 columns written as 64-digit constants)
#   chain-v1      the hash-chain trigger as first migrated (the hash input
#                 built by events_hash_input for every row)
#   chain         the trigger as migrated now (inline, one concat())
#   chain+notify  that, plus the per-statement NOTIFY trigger the log had until
#                 migration 20261124000002
#
# Rounds alternate the shapes, so a machine whose load changes treats them
# alike; the table gives every round's transactions/s and the median.
#
#   bench/sql/append.sh [--clients N] [--seconds S] [--rounds R]
#
# BENCH_DATABASE_URL names the server (default postgres://postgres@127.0.0.1:5432).
set -euo pipefail
cd "$(dirname "$0")/../.."
clients=32 seconds=8 rounds=3
while (($#)); do
  case "$1" in
    --clients) clients=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    *) echo "usage: $0 [--clients N] [--seconds S] [--rounds R]" >&2; exit 2 ;;
  esac
done
server=${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432}
server=${server%/}
work=$(mktemp -d)
prefix="muckard_sqlbench_$$"
shapes=(plain chain-v1 chain chain+notify)
database() { echo "${prefix}_${1//[-+]/_}"; }
cleanup() {
  for shape in "${shapes[@]}"; do
    psql -q "$server/postgres" -c "DROP DATABASE IF EXISTS $(database "$shape") WITH (FORCE)" >/dev/null 2>&1 || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

migration() { ls migrations/*_"$1".sql; }
for shape in "${shapes[@]}"; do
  db=$(database "$shape")
  psql -q "$server/postgres" -c "CREATE DATABASE $db" >/dev/null
  apply() { psql -q -v ON_ERROR_STOP=1 "$server/$db" -f "$1" >/dev/null; }
  apply "$(migration events)"
  case "$shape" in
    plain) psql -q "$server/$db" -c "ALTER TABLE events DISABLE TRIGGER events_chain" >/dev/null ;;
    chain) apply "$(migration inline_chain_hash)" ;;
    chain+notify)
      apply "$(migration inline_chain_hash)"
      # As migration 20261123000004 created it (20261124000002 drops it).
      psql -q -v ON_ERROR_STOP=1 "$server/$db" >/dev/null <<'SQL'
CREATE FUNCTION events_notify() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN PERFORM pg_notify('muckard_events', ''); RETURN NULL; END $$;
CREATE TRIGGER events_notify AFTER INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_notify();
SQL
      ;;
  esac
done

# A bot.trade_triggered row of the api benchmark's size (payload and
# metadata as the REST command side writes them).
payload='{"at": "2026-11-24T07:49:31.123456Z", "type": "bot.trade_triggered", "trigger_id": "2b0c5b8e-6a53-4c55-9d0e-3f5a8a1c7e21", "requested_by": "7d9f1c2a-8e4b-4f6a-9b3c-1d2e3f4a5b6c"}'
metadata='{"role": "user", "source": "rest", "user_id": "7d9f1c2a-8e4b-4f6a-9b3c-1d2e3f4a5b6c", "command_id": "0e8a7c6b-5d4f-4e3a-8b2c-1f0e9d8c7b6a", "request_id": "5f4e3d2c-1b0a-4f9e-8d7c-6b5a4f3e2d1c", "causation_id": "0e8a7c6b-5d4f-4e3a-8b2c-1f0e9d8c7b6a", "command_type": "bot.trigger_trade", "correlation_id": "5f4e3d2c-1b0a-4f9e-8d7c-6b5a4f3e2d1c", "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}'
hash=$(printf '0%.0s' {1..64})
for shape in "${shapes[@]}"; do
  if [[ $shape == plain ]]; then
    columns="payload, metadata, prev_hash, hash" values="'$payload', '$metadata', '$hash', '$hash'"
  else
    columns="payload, metadata" values="'$payload', '$metadata'"
  fi
  cat >"$work/$shape.sql" <<SQL
\set sequence :sequence + 1
INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, $columns)
VALUES ('Bot', :round || '-' || :client_id, :sequence, 'bot.trade_triggered', '1.0', $values);
SQL
done

echo "pgbench: $clients clients, ${seconds} s per run, $rounds rounds; $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
declare -A results
for round in $(seq 1 "$rounds"); do
  for shape in "${shapes[@]}"; do
    tps=$(pgbench -n -M prepared -c "$clients" -j "$(nproc)" -T "$seconds" \
      -D sequence=0 -D round="r$round" -f "$work/$shape.sql" "$server/$(database "$shape")" 2>&1 |
      sed -n 's/^tps = \([0-9.]*\).*/\1/p')
    [[ -n $tps ]] && tps=$(printf '%.0f' "$tps")
    results[$shape]+="${tps:-failed} "
    echo "round $round $shape: ${tps:-failed} tx/s" >&2
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
plain=$(median <<<"${results[plain]}")
echo
echo "| table | rounds, tx/s | median tx/s | ÷ plain |"
echo "|---|---|---:|---:|"
for shape in "${shapes[@]}"; do
  m=$(median <<<"${results[$shape]}")
  printf '| %s | %s | %.0f | %.2f |\n' "$shape" "$(echo ${results[$shape]} | sed 's/ /, /g')" "$m" "$(awk -v a="$m" -v b="$plain" 'BEGIN {print a / b}')"
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
