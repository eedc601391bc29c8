#!/usr/bin/env bash
# Celery workers for every queue, plus beat (exactly one beat per deployment: set BEAT=0 on the
# others). Expects a migrated database. Queues can be split across machines with QUEUES.
set -euo pipefail
VENV=${VENV:-.venv}
QUEUES=${QUEUES:-default,clicks,postbacks,quality,commissions,stats}
CONCURRENCY=${WORKER_CONCURRENCY:-$(nproc)}
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM
"$VENV/bin/celery" -A config worker -Q "$QUEUES" --concurrency "$CONCURRENCY" \
  --loglevel "${LOG_LEVEL:-INFO}" -n "opencpa-worker-$$@%h" &
pids+=($!)
if [ "${BEAT:-1}" = "1" ]; then
  "$VENV/bin/celery" -A config beat --loglevel "${LOG_LEVEL:-INFO}" \
    --schedule "${BEAT_SCHEDULE_FILE:-/tmp/opencpa-celerybeat-schedule}" &
  pids+=($!)
fi
wait -n "${pids[@]}"
