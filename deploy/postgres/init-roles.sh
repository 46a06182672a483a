#!/usr/bin/env bash
# Runs once, at initdb time, on the primary: the least-privilege roles of scripts/db-roles.sql
# (owner for migrations, worker, gateway), with the passwords compose gives them. Roles replicate.
set -euo pipefail
: "${DB_OWNER_PASSWORD:?}" "${DB_WORKER_PASSWORD:?}" "${DB_GATEWAY_PASSWORD:?}"

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" -f /opengovfood/db-roles.sql
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<'SQL'
\getenv owner DB_OWNER_PASSWORD
\getenv worker DB_WORKER_PASSWORD
\getenv gateway DB_GATEWAY_PASSWORD
ALTER ROLE opengovfood_owner PASSWORD :'owner';
ALTER ROLE opengovfood_worker PASSWORD :'worker';
ALTER ROLE opengovfood_gateway PASSWORD :'gateway';
SQL
