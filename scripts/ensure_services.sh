#!/usr/bin/env bash
# Make sure PostgreSQL and Redis answer at DATABASE_URL / REDIS_URL. When one is down on this
# machine, start the local server if it is installed; otherwise say exactly what to start.
set -euo pipefail

DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/opencpa}
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/0}

hostport() {  # URL -> "host port"
  python3 - "$1" "$2" <<'PY'
import sys
from urllib.parse import urlsplit
u = urlsplit(sys.argv[1])
print(u.hostname or "127.0.0.1", u.port or int(sys.argv[2]))
PY
}

is_up() {  # host port
  python3 - "$1" "$2" <<'PY'
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1).close()
except OSError:
    sys.exit(1)
PY
}

is_local() { case "$1" in 127.*|localhost|::1) return 0;; *) return 1;; esac; }

wait_up() {  # host port name
  for _ in $(seq 1 30); do is_up "$1" "$2" && return 0; sleep 0.5; done
  echo "error: $3 did not come up on $1:$2" >&2; return 1
}

read -r pg_host pg_port < <(hostport "$DATABASE_URL" 5432)
if ! is_up "$pg_host" "$pg_port"; then
  if is_local "$pg_host" && command -v pg_ctlcluster >/dev/null && ls /etc/postgresql >/dev/null 2>&1; then
    echo "PostgreSQL is down; starting the local cluster…"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n1)" main start \
      || pg_ctlcluster "$(ls /etc/postgresql | sort -V | tail -n1)" main start
    wait_up "$pg_host" "$pg_port" PostgreSQL
  else
    echo "error: PostgreSQL is not reachable at $pg_host:$pg_port." >&2
    echo "Start it (Debian: 'sudo pg_ctlcluster 15 main start'; Docker: 'docker compose up -d postgres')" >&2
    echo "or point DATABASE_URL at a running server." >&2
    exit 1
  fi
fi

read -r redis_host redis_port < <(hostport "$REDIS_URL" 6379)
if ! is_up "$redis_host" "$redis_port"; then
  if is_local "$redis_host" && command -v redis-server >/dev/null; then
    echo "Redis is down; starting a local redis-server…"
    mkdir -p /tmp/opencpa-redis
    redis-server --daemonize yes --bind 127.0.0.1 --port "$redis_port" --save "" \
      --appendonly no --dir /tmp/opencpa-redis --logfile /tmp/opencpa-redis/redis.log
    wait_up "$redis_host" "$redis_port" Redis
  else
    echo "error: Redis is not reachable at $redis_host:$redis_port." >&2
    echo "Start it ('redis-server --daemonize yes'; Docker: 'docker compose up -d redis')" >&2
    echo "or point REDIS_URL at a running server." >&2
    exit 1
  fi
fi
