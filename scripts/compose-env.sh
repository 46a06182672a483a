#!/usr/bin/env bash
# Write the secrets docker-compose.yml asks for into ./.env (random hex, which needs no escaping in
# URLs), keeping every one already there. Compose reads .env by itself: then `docker compose up`.
set -euo pipefail
cd "$(dirname "$0")/.."
ENV_FILE=${ENV_FILE:-.env}
SECRETS=(SECRET_KEY RABBITMQ_PASSWORD BUS_GATEWAY_PASSWORD BUS_WORKER_PASSWORD POSTGRES_PASSWORD
  REPLICATION_PASSWORD DB_OWNER_PASSWORD DB_WORKER_PASSWORD DB_GATEWAY_PASSWORD)

touch "$ENV_FILE"
chmod 600 "$ENV_FILE"
for name in "${SECRETS[@]}"; do
  if grep -q "^$name=" "$ENV_FILE"; then
    continue
  fi
  echo "$name=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')" >>"$ENV_FILE"
  echo "compose-env.sh: $name generated in $ENV_FILE"
done
