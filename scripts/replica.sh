#!/usr/bin/env bash
# Create (or verify) a local streaming replica of the PostgreSQL primary.
#
#   scripts/replica.sh          ensure the replica exists, streams and has caught up
#   scripts/replica.sh status   print its state; exit 0 if healthy, 1 otherwise
#
# Environment: PG_VERSION (newest in /etc/postgresql, else 15), PRIMARY_CLUSTER (main),
# PRIMARY_PORT (5432), REPLICA_CLUSTER (replica), REPLICA_PORT (5433),
# WAIT_TIMEOUT (60 s, overall catch-up deadline), START_TIMEOUT (20 s, grace for a
# restarted replica to stream before it is rebuilt), REPLICA_SLOT (opengovfood_replica: the
# physical replication slot that keeps the WAL a stopped replica needs to catch up),
# MAX_SLOT_WAL_KEEP (4GB: past this the primary drops the WAL anyway and the replica is rebuilt).
#
# No trust in pg_hba.conf: it administers both clusters as the postgres user over the Unix socket
# (peer), and the replica streams as the role opengovfood_replication with a password (kept in root's
# ~/.pgpass by scripts/pgpass.sh, and in the replica's primary_conninfo). Debian's pg_hba.conf lets it
# in (`host replication all 127.0.0.1/32 scram-sha-256`); where no rule does, one for that role alone
# is added, with scram-sha-256.
set -euo pipefail

detect_version() {
  local v
  # shellcheck disable=SC2012  # version directory names are plain numbers
  v=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1 || true)
  echo "${v:-15}"
}

PG_VERSION=${PG_VERSION:-$(detect_version)}
PRIMARY_CLUSTER=${PRIMARY_CLUSTER:-main}
PRIMARY_PORT=${PRIMARY_PORT:-5432}
REPLICA_CLUSTER=${REPLICA_CLUSTER:-replica}
REPLICA_PORT=${REPLICA_PORT:-5433}
WAIT_TIMEOUT=${WAIT_TIMEOUT:-60}
START_TIMEOUT=${START_TIMEOUT:-20}
REPLICA_SLOT=${REPLICA_SLOT:-opengovfood_replica}
MAX_SLOT_WAL_KEEP=${MAX_SLOT_WAL_KEEP:-4GB}
HOST=127.0.0.1
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPLICATION_ROLE=opengovfood_replication
PG_BIN=/usr/lib/postgresql/$PG_VERSION/bin
PRIMARY_HBA=/etc/postgresql/$PG_VERSION/$PRIMARY_CLUSTER/pg_hba.conf
REPLICA_ETC=/etc/postgresql/$PG_VERSION/$REPLICA_CLUSTER
REPLICA_LOG=/var/log/postgresql/postgresql-$PG_VERSION-$REPLICA_CLUSTER.log
REPLICA_LOG_OFFSET=0
HBA_LINE="host replication $REPLICATION_ROLE $HOST/32 scram-sha-256"
export PGCONNECT_TIMEOUT=3

log() { echo "replica.sh: $*"; }
die() { echo "replica.sh: ERROR: $*" >&2; exit 1; }

# Run one SQL statement on a port as postgres, over the Unix socket; print the single result value.
q() { (cd / && runuser -u postgres -- psql -p "$1" -d postgres -XAtq -v ON_ERROR_STOP=1 -c "$2"); }
# Same, but never fails: empty output when the server cannot answer.
q_soft() { q "$@" 2>/dev/null || true; }

ready() { pg_isready -q -h "$HOST" -p "$1" >/dev/null 2>&1; }

# Poll "$@" until it succeeds or $deadline (epoch seconds) passes.
wait_until() {
  local deadline=$1; shift
  until "$@"; do
    (($(date +%s) < deadline)) || return 1
    sleep 0.2
  done
}

# fd 9 holds our lock; servers started here must not inherit it.
ctl() { pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" "$@" 9>&-; }

cluster_field() {  # cluster_field <cluster> <awk field no>  (from pg_lsclusters)
  pg_lsclusters -h 2>/dev/null | awk -v v="$PG_VERSION" -v c="$1" -v f="$2" '$1==v && $2==c {print $f}'
}

check_guards() {
  [[ $REPLICA_CLUSTER != "$PRIMARY_CLUSTER" ]] || die "REPLICA_CLUSTER must differ from PRIMARY_CLUSTER"
  [[ $REPLICA_PORT != "$PRIMARY_PORT" ]] || die "REPLICA_PORT must differ from PRIMARY_PORT"
  [[ -d /etc/postgresql/$PG_VERSION/$PRIMARY_CLUSTER ]] || die "no cluster $PG_VERSION/$PRIMARY_CLUSTER"
}

ensure_primary() {
  ready "$PRIMARY_PORT" && return 0
  log "primary $PG_VERSION/$PRIMARY_CLUSTER is down, starting it"
  ctl "$PRIMARY_CLUSTER" start || die "could not start primary $PG_VERSION/$PRIMARY_CLUSTER"
  wait_until $(($(date +%s) + WAIT_TIMEOUT)) ready "$PRIMARY_PORT" \
    || die "primary on port $PRIMARY_PORT did not accept connections within ${WAIT_TIMEOUT}s"
}

# awk prelude: norm() joins the fields of the current line with single spaces.
# shellcheck disable=SC2016  # awk code, not shell
AWK_NORM='function norm(  l, i) { l = $1; for (i = 2; i <= NF; i++) l = l " " $i; return l }'

# The replication role, with the password pg_basebackup and the replica's walreceiver give.
ensure_replication_role() {
  REPLICATION_PASSWORD=$("$HERE/pgpass.sh" "$REPLICATION_ROLE")
  [[ $(q "$PRIMARY_PORT" "select 1 from pg_roles where rolname = '$REPLICATION_ROLE'") == 1 ]] \
    || q "$PRIMARY_PORT" "create role $REPLICATION_ROLE login replication" >/dev/null
  (cd / && runuser -u postgres -- psql -p "$PRIMARY_PORT" -d postgres -XAtq -v ON_ERROR_STOP=1) \
    <<<"alter role $REPLICATION_ROLE password '$REPLICATION_PASSWORD'"
}

replication_login() {
  PGPASSWORD=$REPLICATION_PASSWORD psql -XAtqw -c IDENTIFY_SYSTEM \
    "host=$HOST port=$PRIMARY_PORT user=$REPLICATION_ROLE dbname=replication replication=true" >/dev/null 2>&1
}

# Where pg_hba.conf lets no password-checked replication connection of that role in from 127.0.0.1,
# add one rule for it alone, before the first host* replication rule.
ensure_primary_hba() {
  replication_login && return 0
  log "adding '$HBA_LINE' to $PRIMARY_HBA"
  local tmp
  tmp=$(mktemp)
  awk -v want="$HBA_LINE" "$AWK_NORM"'
    norm() == want { next }
    !done && $0 !~ /^[[:space:]]*#/ && $1 ~ /^host/ && $2 == "replication" { print want; done = 1 }
    { print }
    END { if (!done) print want }' "$PRIMARY_HBA" >"$tmp"
  cat "$tmp" >"$PRIMARY_HBA"  # keep owner and mode of the original
  rm -f "$tmp"
  [[ $(q "$PRIMARY_PORT" "select pg_reload_conf()") == t ]] || die "pg_reload_conf() failed on the primary"
  replication_login || die "$REPLICATION_ROLE cannot stream from port $PRIMARY_PORT; see $PRIMARY_HBA"
}

# The slot bounds what a stopped replica may hold back, so a forgotten one cannot fill the disk.
ensure_primary_slot() {
  if [[ $(q "$PRIMARY_PORT" "show max_slot_wal_keep_size") != "$MAX_SLOT_WAL_KEEP" ]]; then
    log "setting max_slot_wal_keep_size = $MAX_SLOT_WAL_KEEP on the primary"
    q "$PRIMARY_PORT" "alter system set max_slot_wal_keep_size = '$MAX_SLOT_WAL_KEEP'" >/dev/null
    q "$PRIMARY_PORT" "select pg_reload_conf()" >/dev/null
  fi
  q "$PRIMARY_PORT" "select pg_create_physical_replication_slot('$REPLICA_SLOT', true)
    where not exists (select from pg_replication_slots where slot_name = '$REPLICA_SLOT')" >/dev/null
}

# A rebuilt replica starts from a fresh slot: the old one may hold WAL nobody needs any more.
reset_primary_slot() {
  q "$PRIMARY_PORT" "select pg_drop_replication_slot(slot_name) from pg_replication_slots
    where slot_name = '$REPLICA_SLOT' and not active" >/dev/null
  ensure_primary_slot
}

# Prints: healthy | missing | down | wrong-port | not-in-recovery | foreign | not-streaming | unreachable
replica_state() {
  local port status
  port=$(cluster_field "$REPLICA_CLUSTER" 3)
  [[ -n $port ]] || { echo missing; return; }
  [[ $port == "$REPLICA_PORT" ]] || { echo wrong-port; return; }
  status=$(cluster_field "$REPLICA_CLUSTER" 4)
  [[ $status == online* ]] || { echo down; return; }
  local rec
  rec=$(q_soft "$REPLICA_PORT" "select pg_is_in_recovery()")
  case $rec in
    t) ;;
    f) echo not-in-recovery; return ;;
    *) echo unreachable; return ;;
  esac
  local sys_p sys_r
  sys_p=$(q_soft "$PRIMARY_PORT" "select system_identifier from pg_control_system()")
  sys_r=$(q_soft "$REPLICA_PORT" "select system_identifier from pg_control_system()")
  [[ -n $sys_p && $sys_p == "$sys_r" ]] || { echo foreign; return; }
  [[ $(q_soft "$REPLICA_PORT" "select status from pg_stat_wal_receiver") == streaming ]] \
    || { echo not-streaming; return; }
  echo healthy
}

is_healthy() { [[ $(replica_state) == healthy ]]; }

# True once waiting longer cannot help: healthy, or a state only a rebuild fixes.
settled() {
  case $(replica_state) in
    healthy | not-in-recovery | foreign | wrong-port | missing | down) return 0 ;;
  esac
  wal_gone
}

# True when the replica logged, since this run started it, that the primary no longer has its WAL.
wal_gone() {
  [[ -f $REPLICA_LOG ]] && grep -q "has already been removed" < <(tail -c "+$((REPLICA_LOG_OFFSET + 1))" "$REPLICA_LOG")
}

write_replica_conf() {
  local f=$REPLICA_ETC/conf.d/50-opengovfood-replica.conf
  mkdir -p "$REPLICA_ETC/conf.d"
  cat >"$f" <<EOF
# Written by scripts/replica.sh
hot_standby = on
hot_standby_feedback = on
max_standby_streaming_delay = 30s
primary_slot_name = '$REPLICA_SLOT'
EOF
  chown postgres:postgres "$f"
}

# These settings are reloadable; repair drift without a restart.
ensure_replica_settings() {
  local got
  got=$(q_soft "$REPLICA_PORT" "select current_setting('hot_standby_feedback') || ','
    || current_setting('max_standby_streaming_delay') || ',' || current_setting('primary_slot_name')")
  [[ $got == "on,30s,$REPLICA_SLOT" ]] && return 0
  log "replica settings were '$got', rewriting and reloading"
  write_replica_conf
  q "$REPLICA_PORT" "select pg_reload_conf()" >/dev/null
}

rebuild() {
  log "building replica $PG_VERSION/$REPLICA_CLUSTER on port $REPLICA_PORT from a fresh base backup"
  if [[ -n $(cluster_field "$REPLICA_CLUSTER" 3) ]]; then
    if [[ $(cluster_field "$REPLICA_CLUSTER" 4) == online* ]]; then
      ctl "$REPLICA_CLUSTER" stop -m fast || ctl "$REPLICA_CLUSTER" stop -m immediate
    fi
    pg_dropcluster "$PG_VERSION" "$REPLICA_CLUSTER"
  fi
  pg_createcluster "$PG_VERSION" "$REPLICA_CLUSTER" -p "$REPLICA_PORT" >/dev/null
  if [[ $(cluster_field "$REPLICA_CLUSTER" 4) == online* ]]; then ctl "$REPLICA_CLUSTER" stop; fi
  local datadir
  datadir=$(cluster_field "$REPLICA_CLUSTER" 6)
  [[ -n $datadir && -d $datadir && $datadir != "$(cluster_field "$PRIMARY_CLUSTER" 6)" ]] \
    || die "unexpected replica data directory '$datadir'"
  find "$datadir" -mindepth 1 -delete
  reset_primary_slot
  ensure_replication_role
  ensure_primary_hba
  (cd / && PGPASSWORD=$REPLICATION_PASSWORD runuser -u postgres -- "$PG_BIN/pg_basebackup" -h "$HOST" \
    -p "$PRIMARY_PORT" -U "$REPLICATION_ROLE" -D "$datadir" -R -X stream -S "$REPLICA_SLOT" -c fast) \
    || die "pg_basebackup from port $PRIMARY_PORT failed"
  # -R wrote primary_conninfo; this one, later in the file, wins and surely carries the password.
  echo "primary_conninfo = 'host=$HOST port=$PRIMARY_PORT user=$REPLICATION_ROLE password=$REPLICATION_PASSWORD'" \
    >>"$datadir/postgresql.auto.conf"
  install -o postgres -g postgres -m 640 "$PRIMARY_HBA" "$REPLICA_ETC/pg_hba.conf"
  write_replica_conf
  ctl "$REPLICA_CLUSTER" start || die "replica did not start; see $REPLICA_LOG"
}

# Write a WAL marker on the primary and wait until the replica has replayed it.
wait_caught_up() {
  local deadline=$1 lsn
  lsn=$(q "$PRIMARY_PORT" "select pg_logical_emit_message(true, 'opengovfood.replica', 'marker')")
  replayed() { [[ $(q_soft "$REPLICA_PORT" "select pg_last_wal_replay_lsn() >= '$lsn'::pg_lsn") == t ]]; }
  wait_until "$deadline" replayed || die "replica did not replay primary LSN $lsn in time"
  log "healthy: streaming on port $REPLICA_PORT, replayed primary marker at $lsn"
}

status() {
  local rec recv lag p r
  rec=$(q_soft "$REPLICA_PORT" "select pg_is_in_recovery()")
  recv=$(q_soft "$REPLICA_PORT" "select status from pg_stat_wal_receiver")
  p=$(q_soft "$PRIMARY_PORT" "select pg_current_wal_lsn()")
  r=$(q_soft "$REPLICA_PORT" "select pg_last_wal_replay_lsn()")
  lag=
  if [[ -n $p && -n $r ]]; then lag=$(q_soft "$PRIMARY_PORT" "select pg_wal_lsn_diff('$p', '$r')"); fi
  echo "cluster:          $PG_VERSION/$REPLICA_CLUSTER port $REPLICA_PORT ($(cluster_field "$REPLICA_CLUSTER" 4 || true))"
  echo "in_recovery:      ${rec:-unknown}"
  echo "wal_receiver:     ${recv:-none}"
  echo "primary_lsn:      ${p:-unknown}"
  echo "replay_lsn:       ${r:-unknown}"
  echo "replay_lag_bytes: ${lag:-unknown}"
  [[ $rec == t && $recv == streaming ]]
}

main() {
  check_guards
  exec 9>"/run/lock/opengovfood-replica-$PG_VERSION-$REPLICA_CLUSTER.lock"
  flock -w 180 9 || die "another replica.sh run holds the lock"
  ensure_primary
  ensure_primary_slot

  local state
  state=$(replica_state)
  if [[ $state == healthy ]]; then
    ensure_replica_settings
    wait_caught_up $(($(date +%s) + WAIT_TIMEOUT))
    return 0
  fi
  log "replica state: $state"

  local need_rebuild=0
  REPLICA_LOG_OFFSET=$(stat -c %s "$REPLICA_LOG" 2>/dev/null || echo 0)
  case $state in
    missing | wrong-port | not-in-recovery | foreign) need_rebuild=1 ;;
    down)
      log "starting stopped replica"
      ctl "$REPLICA_CLUSTER" start || need_rebuild=1 ;;
  esac
  if ((need_rebuild == 0)); then
    # A replica that was stopped or stalled gets a grace period; WAL it needs may be gone.
    wait_until $(($(date +%s) + START_TIMEOUT)) settled || true
    state=$(replica_state)
    if [[ $state != healthy ]]; then
      log "replica not healthy after start (state: $state), rebuilding"
      need_rebuild=1
    fi
  fi
  local deadline=$(($(date +%s) + WAIT_TIMEOUT))
  if ((need_rebuild)); then
    rebuild
    wait_until "$deadline" is_healthy \
      || die "replica not streaming ${WAIT_TIMEOUT}s after rebuild (state: $(replica_state)); see $REPLICA_LOG"
  fi
  ensure_replica_settings
  wait_caught_up "$deadline"
}

case ${1:-ensure} in
  ensure) main ;;
  status) status ;;
  *) echo "usage: $0 [status]" >&2; exit 2 ;;
esac
