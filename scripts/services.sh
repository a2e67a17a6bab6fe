# Sourced by the run and test scripts: makes sure the local services the
# project needs are up, starting them the way this machine's image does.
# Every wait has a deadline; nothing sleeps to synchronise.

wait_for() {
  # wait_for SECONDS DESCRIPTION COMMAND...
  local deadline=$((SECONDS + $1)) what=$2
  shift 2
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      echo "services: $what did not come up within the deadline" >&2
      return 1
    fi
    sleep 0.5
  done
}

ensure_postgres() {
  local host=${PGHOST_CHECK:-127.0.0.1} port=${PGPORT_CHECK:-5432}
  if pg_isready -q -h "$host" -p "$port"; then
    return 0
  fi
  echo "services: PostgreSQL is not answering on $host:$port; starting it" >&2
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start || true
  fi
  wait_for 60 "PostgreSQL" pg_isready -q -h "$host" -p "$port"
}

ensure_tools() {
  command -v cargo >/dev/null || { echo "services: cargo is required (rustup)" >&2; return 1; }
  command -v python3 >/dev/null || { echo "services: python3 is required by the hash-chain test" >&2; return 1; }
  command -v psql >/dev/null || { echo "services: psql is required by the hash-chain test" >&2; return 1; }
  command -v redis-server >/dev/null || { echo "services: redis-server is required by the shared rate limit test (Debian: apt-get install redis-server)" >&2; return 1; }
}

# The Kafka-compatible broker for development and CI: tansu, from
# crates.io. A broker already answering on KAFKA_PORT_CHECK is reused;
# otherwise tansu is installed if missing (about 20 minutes on 2 cores the
# first time, then cached in ~/.cargo/bin) and started in the background
# with the in-memory storage engine (fast; forgets everything on restart;
# see ARCHITECTURE.md). Its log goes to $MUCKARD_STATE_DIR/tansu.log.
TANSU_VERSION=0.6.0
TANSU_FEATURES=dynostore,libsql

port_open() {
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

tansu_binary() {
  if [ -n "${TANSU_BIN:-}" ]; then
    echo "$TANSU_BIN"
  elif command -v tansu >/dev/null; then
    command -v tansu
  else
    echo "$HOME/.cargo/bin/tansu"
  fi
}

ensure_tansu_installed() {
  local bin
  bin=$(tansu_binary)
  if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q "$TANSU_VERSION"; then
    return 0
  fi
  echo "services: installing tansu $TANSU_VERSION (features $TANSU_FEATURES); the first time takes about 20 minutes" >&2
  cargo install tansu --version "$TANSU_VERSION" --locked --features "$TANSU_FEATURES"
}

ensure_kafka() {
  local host=127.0.0.1 port=${KAFKA_PORT_CHECK:-9092}
  if port_open "$host" "$port"; then
    return 0
  fi
  ensure_tansu_installed
  local state=${MUCKARD_STATE_DIR:-$HOME/.cache/muckard}
  mkdir -p "$state"
  echo "services: no Kafka broker on $host:$port; starting tansu (log: $state/tansu.log)" >&2
  setsid nohup "$(tansu_binary)" broker \
    --listener-url "tcp://$host:$port" \
    --advertised-listener-url "tcp://$host:$port" \
    --storage-engine "memory://tansu/" \
    >"$state/tansu.log" 2>&1 </dev/null &
  wait_for 60 "tansu on $host:$port" port_open "$host" "$port"
}

# For scripts/run: when no broker answers on the local address, installs
# tansu if need be and starts it in the background, in a session of its
# own (stopping the service does not interrupt the build), telling the
# terminal what it does and when the broker is up. Returns at once.
start_kafka_in_background() {
  local port=${KAFKA_PORT_CHECK:-9092} state
  port_open 127.0.0.1 "$port" && return 0
  state=${MUCKARD_STATE_DIR:-$HOME/.cache/muckard}
  mkdir -p "$state"
  if [ -x "$(tansu_binary)" ]; then
    echo "services: starting the local Kafka broker (tansu) in the background" >&2
  else
    echo "services: no Kafka broker on 127.0.0.1:$port: serving now, while the local one (tansu) is built in the background (about 20 minutes on 2 cores, once; log: $state/tansu-install.log). Events wait in the log meanwhile; the mirror catches up when the broker is up." >&2
  fi
  setsid bash -c '
    source "$1"
    if ensure_kafka >"$2" 2>&1; then
      echo "services: the local Kafka broker is up on 127.0.0.1:$3; the mirror catches up now" >&2
    else
      echo "services: the local Kafka broker did not start; see $2 (the service runs on, its events waiting in the log)" >&2
    fi' broker "${BASH_SOURCE[0]}" "$state/tansu-install.log" "$port" &
}

rabbitmq_answers() {
  local host=${RABBITMQ_HOST_CHECK:-127.0.0.1} port=${RABBITMQ_PORT_CHECK:-5672}
  (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null
}

ensure_rabbitmq() {
  if rabbitmq_answers; then
    return 0
  fi
  echo "services: RabbitMQ is not answering; starting it" >&2
  if command -v rabbitmqctl >/dev/null && rabbitmqctl -q status >/dev/null 2>&1; then
    # The node runs but its application was stopped.
    rabbitmqctl -q start_app || true
  elif [ -x /etc/init.d/rabbitmq-server ]; then
    /etc/init.d/rabbitmq-server start || true
  elif command -v rabbitmq-server >/dev/null; then
    rabbitmq-server -detached || true
  fi
  wait_for 120 "RabbitMQ" rabbitmq_answers
}

# nginx, for the gateway test (tests/gateway), which runs its own nginx on
# a free port with deploy/nginx/nginx.conf. Installed from Debian's
# packages when missing; the system nginx is never started (apt's
# policy-rc.d in containers, and RUNLEVEL=1 elsewhere, keep it stopped).
nginx_binary() {
  if [ -n "${NGINX_BIN:-}" ]; then
    echo "$NGINX_BIN"
  elif command -v nginx >/dev/null; then
    command -v nginx
  else
    echo /usr/sbin/nginx
  fi
}

# apt_install PACKAGE WHY OVERRIDE: installs a Debian package whose
# services must not start (apt's policy-rc.d in containers, and RUNLEVEL=1
# elsewhere, keep them stopped), or says what to do without apt-get.
apt_install() {
  local package=$1 why=$2 override=$3
  if ! command -v apt-get >/dev/null; then
    echo "services: $package is required by $why; install it (or set $override)" >&2
    return 1
  fi
  echo "services: installing $package from the distribution's packages" >&2
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    sudo=sudo
  fi
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -qq --no-install-recommends "$package" >/dev/null
}

ensure_nginx() {
  [ -x "$(nginx_binary)" ] || apt_install nginx "the gateway test" NGINX_BIN
}

# Chromium, the real browser the console's tests drive (Debian's package,
# headless, through playwright-core from the Node tools below; never a
# browser downloaded by Playwright).
chromium_binary() {
  if [ -n "${CHROMIUM_BIN:-}" ]; then
    echo "$CHROMIUM_BIN"
  else
    echo /usr/bin/chromium
  fi
}

ensure_chromium() {
  [ -x "$(chromium_binary)" ] || apt_install chromium "the web console's browser tests" CHROMIUM_BIN
}

# promtool, Prometheus's own checker of rule files and runner of their
# unit tests (deploy/prometheus/rules.yml and rules.test.yml, checked by
# scripts/validate-deploy and tests/ops/operators_kit.rs). It comes with
# Debian's prometheus package, installed when missing like nginx; the
# Prometheus server it brings is never started (RUNLEVEL=1, apt's
# policy-rc.d in containers).
promtool_binary() {
  if [ -n "${PROMTOOL_BIN:-}" ]; then
    echo "$PROMTOOL_BIN"
  elif command -v promtool >/dev/null; then
    command -v promtool
  else
    echo /usr/bin/promtool
  fi
}

ensure_promtool() {
  [ -x "$(promtool_binary)" ] || apt_install prometheus "the alert rules' checks (promtool)" PROMTOOL_BIN
}

# Python tools of the scripts and tests (the deployment files' and the
# OpenAPI document's validators among them), in a virtual environment of their own, cached between runs:
# $MUCKARD_STATE_DIR/venv (default ~/.cache/muckard/venv). Reinstalled
# only when scripts/python-requirements.txt changes.
python_tools_dir() {
  echo "${MUCKARD_STATE_DIR:-$HOME/.cache/muckard}/venv"
}

ensure_python_tools() {
  local venv requirements stamp
  venv=$(python_tools_dir)
  requirements="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/python-requirements.txt"
  stamp="$venv/.requirements.sha256"
  if [ -f "$stamp" ] && [ "$(sha256sum <"$requirements")" = "$(cat "$stamp")" ]; then
    return 0
  fi
  echo "services: installing the Python tools in $venv" >&2
  python3 -m venv "$venv" || {
    echo "services: python3 -m venv failed (Debian: apt-get install python3-venv)" >&2
    return 1
  }
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
  sha256sum <"$requirements" >"$stamp"
}

# Node tools of the tests (the official AsyncAPI parser, for
# tests/kafka/asyncapi.rs), installed from scripts/node's package-lock.json
# with the machine's npm into $MUCKARD_STATE_DIR/node-tools (default
# ~/.cache/muckard/node-tools) beside the scripts that use them.
# Reinstalled only when scripts/node changes.
node_tools_dir() {
  echo "${MUCKARD_STATE_DIR:-$HOME/.cache/muckard}/node-tools"
}

ensure_node_tools() {
  local dir source stamp digest
  dir=$(node_tools_dir)
  source="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/node"
  stamp="$dir/.sources.sha256"
  digest=$(cat "$source"/package.json "$source"/package-lock.json "$source"/*.mjs | sha256sum)
  if [ -f "$stamp" ] && [ -d "$dir/node_modules" ] && [ "$digest" = "$(cat "$stamp")" ]; then
    return 0
  fi
  command -v npm >/dev/null || {
    echo "services: npm (Node.js) is required by the AsyncAPI and the console tests (Debian: apt-get install nodejs npm)" >&2
    return 1
  }
  echo "services: installing the Node tools in $dir" >&2
  mkdir -p "$dir"
  cp "$source"/package.json "$source"/package-lock.json "$source"/*.mjs "$dir/"
  (cd "$dir" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error >/dev/null)
  echo "$digest" >"$stamp"
}

# wrk, the HTTP load generator of `scripts/bench api` (Debian's package).
ensure_wrk() {
  command -v wrk >/dev/null && return 0
  echo "services: installing wrk (apt-get)" >&2
  if command -v apt-get >/dev/null; then
    apt-get install -y wrk >/dev/null || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
  fi
  command -v wrk >/dev/null || { echo "services: wrk is required (apt-get install wrk)" >&2; return 1; }
}

# perf, for `scripts/bench api --perf-clients N` (optional: a warning only).
ensure_perf() {
  command -v perf >/dev/null && return 0
  echo "services: installing perf (apt-get install linux-perf)" >&2
  if command -v apt-get >/dev/null; then
    apt-get install -y linux-perf >/dev/null 2>&1 || true
  fi
  command -v perf >/dev/null || echo "services: perf is not available; no profile" >&2
}
