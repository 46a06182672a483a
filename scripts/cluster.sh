#!/usr/bin/env bash
# A local cluster on demand, beside the machine's own services (which it never touches): three
# RabbitMQ nodes clustered on their own ports, and a second streaming replica of the primary.
#
#   scripts/cluster.sh start    start (idempotently) what is down, join the nodes, enable the plugins,
#                               create the vhost; build or start the second replica
#   scripts/cluster.sh stop     stop the three nodes (their data stays) and drop the second replica
#                               (and its slot: a stopped standby must not hold the primary's WAL)
#   scripts/cluster.sh status   one line per node and per replica; exit 1 unless all run
#
# Node N (1..3) is ogfN@localhost: AMQP 5700+N, management 15700+N, Prometheus 15800+N, Erlang
# distribution 25700+N; data and logs under CLUSTER_DIR/ogfN. The nodes run as the rabbitmq user,
# so they share the machine broker's Erlang cookie (/var/lib/rabbitmq/.erlang.cookie). Every
# rabbitmqctl call names its node (-n): the default node is the machine's broker.
# Environment: CLUSTER_DIR (/var/tmp/opengovfood-cluster), CLUSTER_VHOSTS (opengovfood_test),
# REPLICA2_PORT (5434), CLUSTER_TIMEOUT (90 s).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CLUSTER_DIR=${CLUSTER_DIR:-/var/tmp/opengovfood-cluster}
CLUSTER_VHOSTS=${CLUSTER_VHOSTS:-opengovfood_test}
REPLICA2_PORT=${REPLICA2_PORT:-5434}
TIMEOUT=${CLUSTER_TIMEOUT:-90}
NODES=(1 2 3)
RABBIT_BIN=/usr/lib/rabbitmq/bin
PLUGINS="[rabbitmq_consistent_hash_exchange,rabbitmq_management,rabbitmq_prometheus]."
# shellcheck disable=SC2012  # version directory names are plain numbers
PG_VERSION=${PG_VERSION:-$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1 || true)}
PG_VERSION=${PG_VERSION:-15}
REPLICA2=(env REPLICA_CLUSTER=replica2 REPLICA_PORT="$REPLICA2_PORT" REPLICA_SLOT=opengovfood_replica2)

log() { echo "cluster.sh: $*"; }
die() { echo "cluster.sh: ERROR: $*" >&2; exit 1; }

node() { echo "ogf$1@localhost"; }
amqp_port() { echo $((5700 + $1)); }
management_port() { echo $((15700 + $1)); }

# Run a RabbitMQ tool as the rabbitmq user, with node N's environment.
as_node() {
  local n=$1 tool=$2 dir=$CLUSTER_DIR/ogf$1; shift 2
  (cd / && runuser -u rabbitmq -- env HOME=/var/lib/rabbitmq \
    RABBITMQ_NODENAME="$(node "$n")" RABBITMQ_DIST_PORT=$((25700 + n)) \
    RABBITMQ_MNESIA_BASE="$dir/mnesia" RABBITMQ_LOG_BASE="$dir/log" RABBITMQ_PID_FILE="$dir/pid" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins" RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf" \
    RABBITMQ_ADVANCED_CONFIG_FILE="$dir/advanced.config" \
    "$RABBIT_BIN/$tool" "$@")
}
ctl() { local n=$1; shift; as_node "$n" rabbitmqctl -q -n "$(node "$n")" "$@"; }

running() { ctl "$1" await_startup --timeout 1 >/dev/null 2>&1; }
died() { [[ -s $CLUSTER_DIR/ogf$1/pid ]] && ! vm_pid "$1" >/dev/null; }  # start_node removes an old pid file

declare -A RESTARTED=()
# Every node booted. Seen in 2 of 9 starts: a node's VM dies while booting beside its restarting
# peers (incompatible_feature_flags, erl_crash.dump), and they wait for it: started again, once, it
# joins them.
all_running() {
  local n all=0
  for n in "${NODES[@]}"; do
    running "$n" && continue
    all=1
    if died "$n" && [[ -z ${RESTARTED[$n]:-} ]]; then
      RESTARTED[$n]=1
      log "$(node "$n"): died while booting (see $CLUSTER_DIR/ogf$n/log); starting it again"
      start_node "$n"
    fi
  done
  return $all
}

# The pid of node N's Erlang VM while it lives (its app may be stopped), from its pid file; the
# process must carry the node's name, so a reused pid is never taken for it.
vm_pid() {
  local pid
  pid=$(cat "$CLUSTER_DIR/ogf$1/pid" 2>/dev/null) || return 1
  [[ -n $pid ]] && { tr '\0' '\n' <"/proc/$pid/environ"; } 2>/dev/null | grep -qx "RABBITMQ_NODENAME=$(node "$1")" \
    && echo "$pid"
}

wait_until() {  # wait_until <seconds> <command...>: poll until the command succeeds
  local deadline=$(($(date +%s) + $1)); shift
  until "$@"; do
    (($(date +%s) < deadline)) || return 1
    sleep 0.5
  done
}

write_node_files() {
  local n=$1 dir=$CLUSTER_DIR/ogf$1
  mkdir -p "$dir/mnesia" "$dir/log"
  cat >"$dir/rabbitmq.conf" <<EOF
# Written by scripts/cluster.sh: node $(node "$n") of the local test cluster.
listeners.tcp.local = 127.0.0.1:$(amqp_port "$n")
management.tcp.ip = 127.0.0.1
management.tcp.port = $(management_port "$n")
prometheus.tcp.ip = 127.0.0.1
prometheus.tcp.port = $((15800 + n))
cluster_partition_handling = pause_minority
EOF
  echo "[]." >"$dir/advanced.config"
  echo "$PLUGINS" >"$dir/enabled_plugins"
  chown -R rabbitmq:rabbitmq "$dir"
}

start_node() {
  local n=$1
  if vm_pid "$n" >/dev/null; then
    log "$(node "$n"): up"
    ctl "$n" start_app >/dev/null 2>&1 || true  # a node stopped with stop_app (a test) runs again
    return
  fi
  write_node_files "$n"
  rm -f "$CLUSTER_DIR/ogf$n/pid"  # a VM that died left it
  log "$(node "$n"): starting (AMQP $(amqp_port "$n"))"
  as_node "$n" rabbitmq-server -detached
}

joined() {  # joined <n>: node n's cluster has node 1 running in it
  ctl "$1" eval "lists:member('$(node 1)', rabbit_nodes:all_running())." 2>/dev/null | grep -q true
}

join_node() {
  local n=$1
  if joined "$n"; then return; fi
  log "$(node "$n"): joining $(node 1)"
  { ctl "$n" stop_app && ctl "$n" reset && ctl "$n" join_cluster "$(node 1)" && ctl "$n" start_app; } &>"$CLUSTER_DIR/ogf$n/join.log" \
    || die "$(node "$n") could not join; see $CLUSTER_DIR/ogf$n/join.log"
}

ensure_vhosts() {
  local vhost
  for vhost in ${CLUSTER_VHOSTS//,/ }; do
    ctl 1 add_vhost "$vhost" 2>/dev/null || true
    ctl 1 set_permissions -p "$vhost" guest ".*" ".*" ".*"
  done
  log "vhosts $CLUSTER_VHOSTS: guest has full permissions"
}

start() {
  [[ -r /var/lib/rabbitmq/.erlang.cookie ]] || die "no Erlang cookie in /var/lib/rabbitmq (make services first)"
  for n in "${NODES[@]}"; do start_node "$n"; done  # together: restarted peers wait for each other
  wait_until "$TIMEOUT" all_running || die "not every node started; see the logs under $CLUSTER_DIR/ogf*/log"
  for n in "${NODES[@]:1}"; do join_node "$n"; done
  ensure_vhosts
  "${REPLICA2[@]}" "$HERE/replica.sh" | sed 's/^/  /'
  log "3 RabbitMQ nodes on AMQP ports $(amqp_port 1)-$(amqp_port 3), replicas on ports 5433 and $REPLICA2_PORT"
}

stop() {
  local n pid
  for n in "${NODES[@]}"; do
    pid=$(vm_pid "$n") || continue
    log "$(node "$n"): stopping"
    # Waits until the VM is gone; a VM that does not answer is terminated.
    ctl "$n" stop "$CLUSTER_DIR/ogf$n/pid" >/dev/null 2>&1 || { kill "$pid" && log "$(node "$n"): VM $pid terminated"; }
  done
  if [[ -n $(pg_lsclusters -h | awk -v v="$PG_VERSION" '$1==v && $2=="replica2"') ]]; then
    log "second replica: dropping"
    pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" replica2 stop -m fast 2>/dev/null || true
    pg_dropcluster "$PG_VERSION" replica2
  fi
  (cd / && runuser -u postgres -- psql -XAtq -c "select pg_drop_replication_slot(slot_name) from
    pg_replication_slots where slot_name = 'opengovfood_replica2' and not active") >/dev/null
}

status() {
  local n ok=0
  for n in "${NODES[@]}"; do
    if running "$n"; then
      echo "$(node "$n"): running, AMQP $(amqp_port "$n"), cluster: $(ctl "$n" eval 'rabbit_nodes:all_running().')"
    else
      echo "$(node "$n"): down"; ok=1
    fi
  done
  "${REPLICA2[@]}" "$HERE/replica.sh" status | sed 's/^/replica2 /' || ok=1
  return $ok
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
