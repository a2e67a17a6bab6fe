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
  fi
  wait_for 120 "RabbitMQ" rabbitmq_answers
}
