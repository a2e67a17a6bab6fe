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
# and, as a peer, message-db (the Eventide project's PostgreSQL event store,
# npm @eventide/message-db at the version bench/sql/message-db pins), each
# variant in a database of its own made by message-db's own install.sh, one
# message_store.write_message call per transaction with the same payload and
# metadata, each client again appending to a stream of its own:
#
#   message-db                 stream bot-<round>-<client>: all in the
#                              category "bot", as the events all have the
#                              aggregate type Bot; no expected version
#   message-db+expected        the same, with the expected version (each
#                              client's stream's last position, -1 at first)
#   message-db+own-category    stream bot<client>-<round>: a category per
#                              client, so no two clients take the same
#                              advisory lock (write_message locks the stream's
#                              category until the commit)
#
# Rounds alternate the shapes, so a machine whose load changes treats them
# alike; the table gives every round's transactions/s, the median and the
# ratios to plain and chain.
#
#   bench/sql/append.sh [--clients N] [--seconds S] [--rounds R]
#
# BENCH_DATABASE_URL names the server (default postgres://postgres@127.0.0.1:5432);
# its user must be able to create databases and roles. message-db is installed
# with npm into $MUCKARD_STATE_DIR/message-db (default ~/.cache/muckard/message-db),
# again only when bench/sql/message-db changes.
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
# message-db's install.sh runs psql with PG* variables and a bare database
# name, so the URL is taken apart for it.
if [[ ! $server =~ ^postgres(ql)?://([^:@/]+)(:([^@/]*))?@([^:/]+)(:([0-9]+))?$ ]]; then
  echo "$0: BENCH_DATABASE_URL must be postgres://user[:password]@host[:port] (message-db's install.sh takes PG* variables)" >&2
  exit 2
fi
pg_environment=(PGUSER="${BASH_REMATCH[2]}" PGHOST="${BASH_REMATCH[5]}" PGPORT="${BASH_REMATCH[7]:-5432}")
[[ -n ${BASH_REMATCH[4]} ]] && pg_environment+=(PGPASSWORD="${BASH_REMATCH[4]}")
work=$(mktemp -d)
prefix="muckard_sqlbench_$$"
shapes=(plain chain-v1 chain chain+notify message-db message-db+expected message-db+own-category)
database() { echo "${prefix}_${1//[-+]/_}"; }
sql() { psql -X -q -At -v ON_ERROR_STOP=1 "$server/postgres" -c "$1"; }

# install.sh creates the cluster-wide role message_store (its privileges are
# granted in the bench databases). The run drops it at the end only if the
# role did not exist before the run and nothing else refers to it then: no
# privilege or object in another database (pg_shdepend covers all of them)
# and no session logged in as it.
message_store_role_existed=$(sql "SELECT count(*) FROM pg_roles WHERE rolname = 'message_store'")
drop_message_store_role() {
  [[ $message_store_role_existed == 0 ]] || return 0
  local exists references sessions
  exists=$(sql "SELECT count(*) FROM pg_roles WHERE rolname = 'message_store'") || return 0
  [[ $exists == 1 ]] || return 0
  references=$(sql "SELECT count(*) FROM pg_shdepend WHERE refclassid = 'pg_authid'::regclass AND refobjid = 'message_store'::regrole")
  sessions=$(sql "SELECT count(*) FROM pg_stat_activity WHERE usename = 'message_store'")
  if [[ $references == 0 && $sessions == 0 ]] && sql "DROP ROLE message_store" 2>/dev/null; then
    echo "dropped the role message_store (absent before this run's message-db install)" >&2
  else
    echo "left the role message_store (absent before this run, but used elsewhere now: $references dependencies, $sessions sessions)" >&2
  fi
}
cleanup() {
  for shape in "${shapes[@]}"; do
    psql -q "$server/postgres" -c "DROP DATABASE IF EXISTS $(database "$shape") WITH (FORCE)" >/dev/null 2>&1 || true
  done
  drop_message_store_role || true
  rm -rf "$work"
}
trap cleanup EXIT

# message-db from npm, pinned with its integrity by bench/sql/message-db's
# package-lock.json, cached between runs.
message_db_dir=${MUCKARD_STATE_DIR:-$HOME/.cache/muckard}/message-db
ensure_message_db() {
  local source=bench/sql/message-db stamp digest
  stamp="$message_db_dir/.sources.sha256"
  digest=$(cat "$source/package.json" "$source/package-lock.json" | sha256sum)
  if [[ -f $stamp && -f $message_db_dir/node_modules/@eventide/message-db/database/install.sh && $digest == "$(cat "$stamp")" ]]; then
    return 0
  fi
  command -v npm >/dev/null || { echo "$0: npm (Node.js) is required to install message-db (Debian: apt-get install npm)" >&2; return 1; }
  echo "installing message-db with npm in $message_db_dir" >&2
  mkdir -p "$message_db_dir"
  cp "$source/package.json" "$source/package-lock.json" "$message_db_dir/"
  (cd "$message_db_dir" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error >/dev/null)
  echo "$digest" >"$stamp"
}
ensure_message_db
message_db="$message_db_dir/node_modules/@eventide/message-db"
message_db_version=$(node -p "require(process.argv[1]).version" "$message_db/package.json")
install_message_db() {
  local db=$1 log="$work/$1.install.log"
  # CREATE_DATABASE=off: the database is the run's, made above like the others.
  if ! env "${pg_environment[@]}" DATABASE_NAME="$db" CREATE_DATABASE=off \
    bash "$message_db/database/install.sh" >"$log" 2>&1; then
    cat "$log" >&2
    echo "$0: message-db's install.sh failed in $db" >&2
    return 1
  fi
  # write_message calls acquire_lock, stream_version and the messages table
  # without the schema, and install.sh sets no search path.
  psql -q "$server/$db" -c "ALTER DATABASE $db SET search_path = message_store, public" >/dev/null
}

migration() { ls migrations/*_"$1".sql; }
for shape in "${shapes[@]}"; do
  db=$(database "$shape")
  psql -q "$server/postgres" -c "CREATE DATABASE $db" >/dev/null
  apply() { psql -q -v ON_ERROR_STOP=1 "$server/$db" -f "$1" >/dev/null; }
  case "$shape" in
    message-db*) install_message_db "$db"; continue ;;
  esac
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
write_message="message_store.write_message(gen_random_uuid()::varchar"
for shape in "${shapes[@]}"; do
  case "$shape" in
    message-db)
      echo "SELECT $write_message, 'bot-' || :round || '-' || :client_id, 'bot.trade_triggered', '$payload', '$metadata', NULL);" ;;
    message-db+expected)
      # write_message returns the position it wrote: the next expected version.
      echo "SELECT $write_message, 'bot-' || :round || '-' || :client_id, 'bot.trade_triggered', '$payload', '$metadata', :version) AS version \\gset" ;;
    message-db+own-category)
      echo "SELECT $write_message, 'bot' || :client_id || '-' || :round, 'bot.trade_triggered', '$payload', '$metadata', NULL);" ;;
    *)
      if [[ $shape == plain ]]; then
        columns="payload, metadata, prev_hash, hash" values="'$payload', '$metadata', '$hash', '$hash'"
      else
        columns="payload, metadata" values="'$payload', '$metadata'"
      fi
      cat <<SQL
\set sequence :sequence + 1
INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, $columns)
VALUES ('Bot', :round || '-' || :client_id, :sequence, 'bot.trade_triggered', '1.0', $values);
SQL
      ;;
  esac >"$work/$shape.sql"
done

echo "pgbench: $clients clients, ${seconds} s per run, $rounds rounds; message-db $message_db_version; $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
declare -A results
for round in $(seq 1 "$rounds"); do
  for shape in "${shapes[@]}"; do
    log="$work/$shape.$round.log"
    # A client that fails (a wrong expected version, say) aborts the run:
    # reported as failed with pgbench's first error, not a partial rate.
    if pgbench -n -M prepared -c "$clients" -j "$(nproc)" -T "$seconds" \
      -D sequence=0 -D version=-1 -D round="r$round" -f "$work/$shape.sql" "$server/$(database "$shape")" >"$log" 2>&1; then
      tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$log")
    else
      tps=
      grep -m1 -i 'error' "$log" >&2 || tail -n1 "$log" >&2
    fi
    [[ -n $tps ]] && tps=$(printf '%.0f' "$tps")
    results[$shape]+="${tps:-failed} "
    echo "round $round $shape: ${tps:-failed} tx/s" >&2
  done
done
median() { tr ' ' '\n' | grep -E '^[0-9.]+$' | sort -g | awk '{a[NR]=$1} END {if (NR) print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
ratio() { if [[ -n $1 && -n $2 ]]; then awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; else echo "–"; fi; }
plain=$(median <<<"${results[plain]}")
chain=$(median <<<"${results[chain]}")
echo
echo "| table | rounds, tx/s | median tx/s | ÷ plain | ÷ chain |"
echo "|---|---|---:|---:|---:|"
for shape in "${shapes[@]}"; do
  m=$(median <<<"${results[$shape]}")
  printf '| %s | %s | %s | %s | %s |\n' "$shape" "$(sed 's/ $//; s/ /, /g' <<<"${results[$shape]}")" \
    "$(if [[ -n $m ]]; then printf '%.0f' "$m"; else echo failed; fi)" "$(ratio "$m" "$plain")" "$(ratio "$m" "$chain")"
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
