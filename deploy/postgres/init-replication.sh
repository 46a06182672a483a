#!/usr/bin/env bash
# Runs once, at initdb time, on the primary (mounted into /docker-entrypoint-initdb.d).
# Creates the streaming-replication role and lets it connect for replication.
set -euo pipefail
: "${REPLICATION_PASSWORD:?set REPLICATION_PASSWORD}"

# \getenv: the password goes from the environment to psql, never through its argv.
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<'SQL'
\getenv pw REPLICATION_PASSWORD
CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD :'pw';
SQL

echo "host replication replicator all scram-sha-256" >>"$PGDATA/pg_hba.conf"
