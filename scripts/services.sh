#!/usr/bin/env bash
# Make sure the local services the project needs are up: PostgreSQL primary + streaming
# replica, RabbitMQ with its plugins and test vhost, and the project databases.
# Idempotent; quick when everything already runs.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck disable=SC2012  # version directory names are plain numbers
PG_VERSION=${PG_VERSION:-$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1 || true)}
PG_VERSION=${PG_VERSION:-15}
PG_PORT=${PG_PORT:-5432}
REPLICA_PORT=${REPLICA_PORT:-5433}
RABBIT_PORT=5672
MGMT_URL=http://127.0.0.1:15672/api
RABBIT_VHOST=opengovfood_test
RABBIT_PLUGINS=(rabbitmq_consistent_hash_exchange rabbitmq_management rabbitmq_prometheus)
DATABASES=(opengovfood opengovfood_test)
TIMEOUT=${SERVICES_TIMEOUT:-60}
export PGCONNECT_TIMEOUT=3

log() { echo "services.sh: $*"; }
die() { echo "services.sh: ERROR: $*" >&2; exit 1; }

wait_until() {  # wait_until <seconds> <command...>: poll until the command succeeds
  local deadline=$(($(date +%s) + $1)); shift
  until "$@"; do
    (($(date +%s) < deadline)) || return 1
    sleep 0.5
  done
}

tcp_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
api() { curl -sf -m 5 -u guest:guest "$MGMT_URL/$1"; }

pg_ctl_main() {  # pg_ctl_main start|restart: then wait until the primary accepts connections
  pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" main "$1" -m fast
  wait_until "$TIMEOUT" pg_isready -q -h 127.0.0.1 -p "$PG_PORT" || die "postgres did not come up"
}

ensure_postgres() {
  if pg_isready -q -h 127.0.0.1 -p "$PG_PORT"; then
    log "postgres primary: up"
    return
  fi
  log "postgres primary: starting"
  pg_ctl_main start
  log "postgres primary: started"
}

# pg_stat_statements only counts when its library is loaded at server start. Keeps any library
# already preloaded, and restarts the primary only while pg_stat_statements is not loaded.
ensure_stat_statements() {
  local loaded libs=() lib quoted=()
  loaded=$(psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -XAtqc "show shared_preload_libraries")
  IFS=, read -ra libs <<<"${loaded// /}"
  for lib in "${libs[@]}"; do
    [[ $lib == pg_stat_statements ]] && { log "pg_stat_statements: preloaded"; return; }
    [[ -n $lib ]] && quoted+=("'$lib'")
  done
  quoted+=("'pg_stat_statements'")
  log "pg_stat_statements: preloading it, restarting the primary"
  psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -XAtq -v ON_ERROR_STOP=1 \
    -c "alter system set shared_preload_libraries = $(IFS=,; echo "${quoted[*]}")"
  pg_ctl_main restart
}

rabbit_ok() { rabbitmq-diagnostics -q check_port_connectivity >/dev/null 2>&1; }

ensure_rabbitmq() {
  if tcp_open "$RABBIT_PORT"; then
    log "rabbitmq: up"
    return
  fi
  log "rabbitmq: starting"
  rabbitmq-server -detached
  wait_until "$TIMEOUT" rabbit_ok || die "rabbitmq did not accept connections within ${TIMEOUT}s"
  log "rabbitmq: started"
}

# Management API answers, the consistent-hash exchange type is registered and Prometheus listens.
plugins_active() {
  local overview
  overview=$(api overview 2>/dev/null) || return 1
  [[ $overview == *'"x-consistent-hash"'* && $overview == *'"http/prometheus"'* ]]
}

ensure_plugins() {
  if plugins_active; then
    log "rabbitmq plugins: enabled"
    return
  fi
  log "rabbitmq plugins: enabling ${RABBIT_PLUGINS[*]}"
  rabbitmq-plugins -q enable "${RABBIT_PLUGINS[@]}" >/dev/null
  wait_until "$TIMEOUT" plugins_active || die "rabbitmq plugins not active within ${TIMEOUT}s"
}

ensure_vhost() {
  local perms
  perms=$(api "permissions/$RABBIT_VHOST/guest" 2>/dev/null || true)
  if [[ $perms == *'"configure":".*","write":".*","read":".*"'* ]]; then
    log "rabbitmq vhost $RABBIT_VHOST: present"
    return
  fi
  if ! api "vhosts/$RABBIT_VHOST" >/dev/null 2>&1; then
    rabbitmqctl -q add_vhost "$RABBIT_VHOST"
  fi
  rabbitmqctl -q set_permissions -p "$RABBIT_VHOST" guest ".*" ".*" ".*"
  log "rabbitmq vhost $RABBIT_VHOST: created, guest has full permissions"
}

db_exists() {  # db_exists <port> <name>
  [[ $(psql -h 127.0.0.1 -p "$1" -U postgres -d postgres -XAtqc \
    "select 1 from pg_database where datname = '$2'" 2>/dev/null) == 1 ]]
}

ensure_databases() {
  local db
  for db in "${DATABASES[@]}"; do
    if db_exists "$PG_PORT" "$db"; then
      log "database $db: present"
    else
      psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -XAtq -v ON_ERROR_STOP=1 \
        -c "create database \"$db\""
      log "database $db: created"
    fi
    wait_until 30 db_exists "$REPLICA_PORT" "$db" || die "database $db not visible on the replica"
  done
}

# Least-privilege roles (scripts/db-roles.sql): idempotent, and the default privileges cover the
# tables that later migrations create.
ensure_db_roles() {
  local db
  for db in "${DATABASES[@]}"; do
    psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d "$db" -XAtq -v ON_ERROR_STOP=1 -f "$HERE/db-roles.sql"
  done
  log "database roles opengovfood_owner, opengovfood_worker, opengovfood_gateway: granted"
}

ensure_postgres
ensure_stat_statements
ensure_rabbitmq
ensure_plugins
ensure_vhost
"$HERE/replica.sh"
ensure_databases
ensure_db_roles
log "all services ready"
