#!/usr/bin/env bash
# Runs once, at initdb time, on the primary (mounted into /docker-entrypoint-initdb.d).
# Creates the streaming-replication role and lets it connect for replication.
set -euo pipefail
: "${REPLICATION_PASSWORD:?set REPLICATION_PASSWORD}"

psql -v ON_ERROR_STOP=1 -v pw="$REPLICATION_PASSWORD" \
  --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<'SQL'
CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD :'pw';
SQL

echo "host replication replicator all scram-sha-256" >>"$PGDATA/pg_hba.conf"
