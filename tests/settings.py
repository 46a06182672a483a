"""The environment every test process (and every service a test starts) runs with."""

import json
import os
import socket


def _free_port() -> int:
    """A port nobody listens on now: each test run's worker serves its metrics there."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


PRIMARY_PORT = int(os.environ.get("TEST_PRIMARY_PORT", "5432"))
REPLICA_PORT = int(os.environ.get("TEST_REPLICA_PORT", "5433"))
# Parallel runs (several developers on one machine) pick their own database and vhost.
DATABASE = os.environ.get("TEST_DATABASE", "opengovfood_test")
VHOST = os.environ.get("TEST_VHOST", "opengovfood_test")

PRIMARY_URL = f"postgresql+asyncpg://postgres@127.0.0.1:{PRIMARY_PORT}/{DATABASE}"
REPLICA_URL = f"postgresql+asyncpg://postgres@127.0.0.1:{REPLICA_PORT}/{DATABASE}"
# make test-cluster (TEST_CLUSTER=1): the local three-node cluster of scripts/cluster.sh, not the machine's broker.
CLUSTER = os.environ.get("TEST_CLUSTER", "") == "1"
RABBIT_PORTS = [5701, 5702, 5703] if CLUSTER else [5672]
MANAGEMENT_PORTS = [15701, 15702, 15703] if CLUSTER else [15672]
RABBIT_URL = f"amqp://guest:guest@127.0.0.1:{RABBIT_PORTS[0]}/{VHOST}"
RABBIT_URLS = [f"amqp://guest:guest@127.0.0.1:{port}/{VHOST}" for port in RABBIT_PORTS]
MANAGEMENT_URL = f"http://127.0.0.1:{MANAGEMENT_PORTS[0]}"
ADMIN_DSN = f"postgresql://postgres@127.0.0.1:{PRIMARY_PORT}/postgres"
PRIMARY_DSN = f"postgresql://postgres@127.0.0.1:{PRIMARY_PORT}/{DATABASE}"
REPLICA_DSN = f"postgresql://postgres@127.0.0.1:{REPLICA_PORT}/{DATABASE}"

# The least-privilege database roles of scripts/db-roles.sql: the test stack runs with them.
WORKER_DATABASE_URL = f"postgresql+asyncpg://opengovfood_worker@127.0.0.1:{PRIMARY_PORT}/{DATABASE}"
GATEWAY_DATABASE_URL = f"postgresql+asyncpg://opengovfood_gateway@127.0.0.1:{PRIMARY_PORT}/{DATABASE}"
GATEWAY_READ_DATABASE_URL = f"postgresql+asyncpg://opengovfood_gateway@127.0.0.1:{REPLICA_PORT}/{DATABASE}"
# On the cluster (scripts/cluster.sh) a second standby: the gateway reads from both.
REPLICA2_PORT = 5434
REPLICA2_URL = f"postgresql+asyncpg://postgres@127.0.0.1:{REPLICA2_PORT}/{DATABASE}"
if CLUSTER:
    GATEWAY_READ_DATABASE_URL += "," + GATEWAY_READ_DATABASE_URL.replace(f":{REPLICA_PORT}/", f":{REPLICA2_PORT}/")
GATEWAY_PRIMARY_DSN = f"postgresql://opengovfood_gateway@127.0.0.1:{PRIMARY_PORT}/{DATABASE}"

# External services on the bus (RabbitMQ users are global: named after the vhost, so runs don't meet).
SERVICE_WRITER = f"{VHOST}.svc-writer"  # item.create/update and user.update for any owner; may deactivate
SERVICE_LIMITED = f"{VHOST}.svc-limited"  # item.create for one owner id that never exists
UNGRANTED_OWNER = 2_000_000_000
SERVICE_OPERATOR = f"{VHOST}.svc-operator"  # replays dead letters (opengovfood deadletters replay), nothing else
SERVICE_EXAMPLE = f"{VHOST}.svc-example"  # examples/publisher.py: item.create and item.import for one owner
EXAMPLE_OWNER = 1_900_000_001  # created by tests/ops/test_example.py with this id
SERVICE_GRANTS = {
    SERVICE_WRITER: {"commands": ["item.create", "item.update", "user.update"], "owners": "*", "may_deactivate": True},
    SERVICE_LIMITED: {"commands": ["item.create"], "owners": [UNGRANTED_OWNER]},
    SERVICE_OPERATOR: {"may_replay": True},
    SERVICE_EXAMPLE: {"commands": ["item.create", "item.import"], "owners": [EXAMPLE_OWNER]},
}

ENV = {
    "ENVIRONMENT": "test",
    "SECRET_KEY": "test-secret-key-that-is-long-enough-for-hs256-0123456789",
    "DATABASE_URL": PRIMARY_URL,
    "READ_DATABASE_URL": REPLICA_URL,
    "RABBIT_URL": RABBIT_URL,
    "RABBIT_FAILOVER_HOSTS": ",".join(f"127.0.0.1:{port}" for port in RABBIT_PORTS[1:]),
    "COMMAND_PARTITIONS": "4",
    "CONSISTENCY_WAIT": "0.5",
    "WORKER_HEARTBEAT_FILE": f"/tmp/{DATABASE}-worker.alive",
    "SERVICE_GRANTS": json.dumps(SERVICE_GRANTS),
    # Loose rate limits for the shared stack (many sign-ups from 127.0.0.1); tests/security starts
    # a gateway of its own with tight ones.
    "LOGIN_RATE_PER_CLIENT": "100000/minute",
    "LOGIN_RATE_PER_ACCOUNT": "10000/minute",
    "SIGNUP_RATE_PER_CLIENT": "100000/minute",
    "WRITE_RATE_PER_CALLER": "10000/second",
    "WORKER_METRICS_PORT": os.environ.get("TEST_WORKER_METRICS_PORT") or str(_free_port()),
}

if CLUSTER:  # a standby further behind leaves reads without a token to the other, and degrades /health/status
    ENV["MAX_REPLICA_LAG_S"] = "1.0"


def apply() -> None:
    """Set the test environment before anything imports the settings."""
    os.environ.update(ENV)
