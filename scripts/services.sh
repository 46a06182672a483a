#!/usr/bin/env bash
# Make sure the local services the project needs are up: PostgreSQL primary + streaming
# replica, RabbitMQ with its plugins and test vhost, and the project databases.
# Idempotent; quick when everything already runs. Needs no systemd (a container, a chroot, WSL), and
# no trust in pg_hba.conf: it administers PostgreSQL as the postgres user over the Unix socket (peer,
# as Debian ships it), and the roles the project connects as over TCP get passwords that it keeps in
# root's ~/.pgpass (scripts/pgpass.sh), where libpq and asyncpg find them.
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
# psql as the postgres superuser over the Unix socket: pg_admin <port> <database> [psql args...]
pg_admin() {
  local port=$1 db=$2; shift 2
  (cd / && runuser -u postgres -- psql -p "$port" -d "$db" -XAtq -v ON_ERROR_STOP=1 "$@")
}

pg_ctl_main() {  # pg_ctl_main start|restart: then wait until the primary accepts connections
  pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" main "$1" -m fast
  wait_until "$TIMEOUT" pg_isready -q -h 127.0.0.1 -p "$PG_PORT" || die "postgres did not come up"
}

ensure_postgres() {
  if [[ ! -d /etc/postgresql/$PG_VERSION/main ]]; then
    log "postgres primary: creating cluster $PG_VERSION/main on port $PG_PORT"
    pg_createcluster "$PG_VERSION" main -p "$PG_PORT" >/dev/null
  fi
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
  loaded=$(pg_admin "$PG_PORT" postgres -c "show shared_preload_libraries")
  IFS=, read -ra libs <<<"${loaded// /}"
  for lib in "${libs[@]}"; do
    [[ $lib == pg_stat_statements ]] && { log "pg_stat_statements: preloaded"; return; }
    [[ -n $lib ]] && quoted+=("'$lib'")
  done
  quoted+=("'pg_stat_statements'")
  log "pg_stat_statements: preloading it, restarting the primary"
  pg_admin "$PG_PORT" postgres -c "alter system set shared_preload_libraries = $(IFS=,; echo "${quoted[*]}")"
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
  [[ $(pg_admin "$1" postgres -c "select 1 from pg_database where datname = '$2'" 2>/dev/null) == 1 ]]
}

ensure_databases() {
  local db
  for db in "${DATABASES[@]}"; do
    if db_exists "$PG_PORT" "$db"; then
      log "database $db: present"
    else
      pg_admin "$PG_PORT" postgres -c "create database \"$db\""
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
    pg_admin "$PG_PORT" "$db" <"$HERE/db-roles.sql"
  done
  log "database roles opengovfood_owner, opengovfood_worker, opengovfood_gateway: granted"
}

# Over TCP with what ~/.pgpass holds for the role (or whatever pg_hba.conf lets in without it).
tcp_login() { psql -h 127.0.0.1 -p "$PG_PORT" -U "$1" -d postgres -XAtqw -c "select 1" >/dev/null 2>&1; }

# The project's roles log in over TCP with a password of their own, and so does postgres (the tests
# and the operator's tools connect as it). Nothing changes where they already can, e.g. where
# pg_hba.conf trusts 127.0.0.1; postgres gets a password only while it has none.
ensure_passwords() {
  local role password
  for role in opengovfood_owner opengovfood_worker opengovfood_gateway postgres; do
    tcp_login "$role" && continue
    if [[ $role == postgres && $(pg_admin "$PG_PORT" postgres -c \
      "select rolpassword is not null from pg_authid where rolname = 'postgres'") == t ]]; then
      die "postgres has a password that ${PGPASSFILE:-~/.pgpass} does not hold: add a line" \
        "'127.0.0.1:*:*:postgres:PASSWORD' (and one for localhost) to it, mode 0600"
    fi
    password=$("$HERE/pgpass.sh" "$role")
    pg_admin "$PG_PORT" postgres <<<"alter role \"$role\" password '$password'"
    tcp_login "$role" || die "role $role cannot log in over TCP on port $PG_PORT even with its password"
    log "database role $role: logs in over TCP with the password in ${PGPASSFILE:-~/.pgpass}"
  done
}

ensure_postgres
ensure_stat_statements
ensure_rabbitmq
ensure_plugins
ensure_vhost
"$HERE/replica.sh"
ensure_databases
ensure_db_roles
ensure_passwords
log "all services ready"
