"""The environment every test process (and every service a test starts) runs with."""

import os

PRIMARY_PORT = int(os.environ.get("TEST_PRIMARY_PORT", "5432"))
REPLICA_PORT = int(os.environ.get("TEST_REPLICA_PORT", "5433"))
# Parallel runs (several developers on one machine) pick their own database and vhost.
DATABASE = os.environ.get("TEST_DATABASE", "opengovfood_test")
VHOST = os.environ.get("TEST_VHOST", "opengovfood_test")

PRIMARY_URL = f"postgresql+asyncpg://postgres@127.0.0.1:{PRIMARY_PORT}/{DATABASE}"
REPLICA_URL = f"postgresql+asyncpg://postgres@127.0.0.1:{REPLICA_PORT}/{DATABASE}"
RABBIT_URL = f"amqp://guest:guest@127.0.0.1:5672/{VHOST}"
ADMIN_DSN = f"postgresql://postgres@127.0.0.1:{PRIMARY_PORT}/postgres"
PRIMARY_DSN = f"postgresql://postgres@127.0.0.1:{PRIMARY_PORT}/{DATABASE}"
REPLICA_DSN = f"postgresql://postgres@127.0.0.1:{REPLICA_PORT}/{DATABASE}"

ENV = {
    "ENVIRONMENT": "test",
    "SECRET_KEY": "test-secret-key-that-is-long-enough-for-hs256-0123456789",
    "DATABASE_URL": PRIMARY_URL,
    "READ_DATABASE_URL": REPLICA_URL,
    "RABBIT_URL": RABBIT_URL,
    "COMMAND_PARTITIONS": "4",
    "CONSISTENCY_WAIT": "0.5",
    "WORKER_HEARTBEAT_FILE": f"/tmp/{DATABASE}-worker.alive",
}


def apply() -> None:
    """Set the test environment before anything imports the settings."""
    os.environ.update(ENV)
