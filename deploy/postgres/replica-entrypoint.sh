#!/usr/bin/env bash
# Entrypoint of the postgres-replica service: clone the primary once, then run as a hot standby.
set -euo pipefail
: "${PGDATA:?}" "${PGPASSWORD:?set PGPASSWORD (the replicator password)}"
PRIMARY_HOST=${PRIMARY_HOST:-postgres}

mkdir -p "$PGDATA"
chown postgres:postgres "$PGDATA"
chmod 700 "$PGDATA"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  # Empty, or left half-written by an interrupted clone: start from scratch.
  find "$PGDATA" -mindepth 1 -delete
  deadline=$(($(date +%s) + 120))
  until gosu postgres pg_basebackup -h "$PRIMARY_HOST" -U replicator -D "$PGDATA" -R -X stream -c fast; do
    [ "$(date +%s)" -lt "$deadline" ] || { echo "replica: pg_basebackup kept failing" >&2; exit 1; }
    echo "replica: pg_basebackup failed, retrying" >&2
    find "$PGDATA" -mindepth 1 -delete
    sleep 2
  done
fi

exec gosu postgres postgres -D "$PGDATA" \
  -c hot_standby=on -c hot_standby_feedback=on -c max_standby_streaming_delay=30s
