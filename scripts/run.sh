#!/usr/bin/env bash
# Web, Celery worker and beat in the foreground; Ctrl-C stops all three.
set -euo pipefail
PORT=${PORT:-8000}
HOST=${HOST:-127.0.0.1}
VENV=${VENV:-.venv}

pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

"$VENV/bin/celery" -A config worker --loglevel=INFO --concurrency=2 \
  -Q default,clicks,postbacks,quality,commissions,stats -n "opencpa-worker@%h" &
pids+=($!)
"$VENV/bin/celery" -A config beat --loglevel=INFO --schedule=/tmp/opencpa-celerybeat-schedule &
pids+=($!)
"$VENV/bin/python" manage.py runserver "$HOST:$PORT" &
pids+=($!)
wait -n "${pids[@]}"
