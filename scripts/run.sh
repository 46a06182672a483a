#!/usr/bin/env bash
# Run the system in the foreground: migrations, then the gateway and the worker with their logs.
# Ctrl-C (or SIGTERM) stops both cleanly: the worker finishes the batch in hand first.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
HOST=${GATEWAY_HOST:-127.0.0.1}
PORT=${GATEWAY_PORT:-8000}
WORKERS=${GATEWAY_WORKERS:-1}  # gateway processes; each has its own reply queue
if ((WORKERS > 1)); then  # each gateway process keeps its metrics in files; /metrics adds them up
  export PROMETHEUS_MULTIPROC_DIR=${TMPDIR:-/tmp}/opengovfood-gateway-$PORT.metrics
  rm -rf "$PROMETHEUS_MULTIPROC_DIR" && mkdir -p "$PROMETHEUS_MULTIPROC_DIR"  # no counts of an earlier run
fi

"$VENV/bin/alembic" upgrade head

"$VENV/bin/python" -m worker &
worker=$!
"$VENV/bin/uvicorn" gateway.app:create_app --factory --host "$HOST" --port "$PORT" --workers "$WORKERS" &
gateway=$!

stop() {
  trap - INT TERM
  kill -TERM "$gateway" "$worker" 2>/dev/null || true
  wait "$gateway" "$worker" 2>/dev/null || true
}
trap stop INT TERM
echo "gateway on http://$HOST:$PORT (docs at /docs); worker pid $worker. Ctrl-C stops both."
# If either dies, stop the other and exit with its status.
set +e
wait -n "$gateway" "$worker"
status=$?
stop
exit "$status"
