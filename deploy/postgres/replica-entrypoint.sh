#!/usr/bin/env bash
# Entrypoint of the postgres-replica service: clone the primary once, then run as a hot standby.
# A physical replication slot on the primary keeps the WAL this replica has not received yet, so it
# catches up after any stop; past the primary's max_slot_wal_keep_size the slot is lost and the
# replica is cloned afresh.
set -euo pipefail
: "${PGDATA:?}" "${PGPASSWORD:?set PGPASSWORD (the replicator password)}"
PRIMARY_HOST=${PRIMARY_HOST:-postgres}
REPLICA_SLOT=${REPLICA_SLOT:-opengovfood_replica}

mkdir -p "$PGDATA"
chown postgres:postgres "$PGDATA"
chmod 700 "$PGDATA"

slot_status() {
  gosu postgres psql -h "$PRIMARY_HOST" -U replicator -d postgres -XAtc \
    "select wal_status from pg_replication_slots where slot_name = '$REPLICA_SLOT'"
}

if [ -s "$PGDATA/PG_VERSION" ] && [ "$(slot_status)" = lost ]; then
  echo "replica: the primary dropped WAL this replica still needed; cloning afresh" >&2
  gosu postgres psql -h "$PRIMARY_HOST" -U replicator -d postgres -XAtc \
    "select pg_drop_replication_slot('$REPLICA_SLOT')"
  find "$PGDATA" -mindepth 1 -delete
fi

gosu postgres pg_receivewal -h "$PRIMARY_HOST" -U replicator --slot="$REPLICA_SLOT" --create-slot --if-not-exists

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  # Empty, or left half-written by an interrupted clone: start from scratch.
  find "$PGDATA" -mindepth 1 -delete
  deadline=$(($(date +%s) + 120))
  until gosu postgres pg_basebackup -h "$PRIMARY_HOST" -U replicator -D "$PGDATA" -R -X stream -S "$REPLICA_SLOT" -c fast; do
    [ "$(date +%s)" -lt "$deadline" ] || { echo "replica: pg_basebackup kept failing" >&2; exit 1; }
    echo "replica: pg_basebackup failed, retrying" >&2
    find "$PGDATA" -mindepth 1 -delete
    sleep 2
  done
fi

exec gosu postgres postgres -D "$PGDATA" \
  -c hot_standby=on -c hot_standby_feedback=on -c max_standby_streaming_delay=30s \
  -c primary_slot_name="$REPLICA_SLOT"
