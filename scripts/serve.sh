#!/usr/bin/env bash
# Production web server: granian (Rust HTTP core) running Django's WSGI app in WEB_WORKERS
# processes on PORT. Expects a migrated database. Stateless: run as many as you need behind a
# load balancer (see README). WSGI_APP names another application (the postback benchmark wraps
# this one to time each request inside it).
set -euo pipefail
VENV=${VENV:-.venv}
PORT=${PORT:-8000}
HOST=${HOST:-0.0.0.0}
WEB_WORKERS=${WEB_WORKERS:-$(nproc)}
if [ -z "${SECRET_KEY:-}" ] && [ "${DEBUG:-0}" != "1" ]; then
  echo "error: set SECRET_KEY (and ALLOWED_HOSTS) for the production server" >&2
  exit 1
fi
"$VENV/bin/python" manage.py collectstatic --noinput -v 0
exec "$VENV/bin/granian" --interface wsgi --host "$HOST" --port "$PORT" \
  --workers "$WEB_WORKERS" --blocking-threads "${WEB_THREADS:-2}" --backlog 2048 --no-ws \
  --static-path-route /static --static-path-mount staticfiles \
  "${WSGI_APP:-config.wsgi:application}"
