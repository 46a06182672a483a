"""The price of replication: HTTP writes on the local three-node cluster (scripts/cluster.sh, `make
cluster` first), measured in the same run as on the single node. Its own vhost on the cluster, the same
database: a worker and a gateway of their own, which fail over between the nodes (RABBIT_FAILOVER_HOSTS)."""

from urllib.parse import quote

import httpx

from shared.topology import partition_queue_name
from tests import settings as test_settings
from tests.support.processes import Gateway, Worker

NODE_PORTS = (5701, 5702, 5703)
MANAGEMENT = "http://127.0.0.1:15701/api"
ENV = {
    "RABBIT_URL": f"amqp://guest:guest@127.0.0.1:{NODE_PORTS[0]}/{test_settings.VHOST}",
    "RABBIT_FAILOVER_HOSTS": ",".join(f"127.0.0.1:{port}" for port in NODE_PORTS[1:]),
}


def fresh_vhost() -> None:
    """The bench's vhost on the cluster, emptied: the worker declares the topology afresh."""
    vhost, auth = quote(test_settings.VHOST, safe=""), ("guest", "guest")
    httpx.delete(f"{MANAGEMENT}/vhosts/{vhost}", auth=auth, timeout=30)
    httpx.put(f"{MANAGEMENT}/vhosts/{vhost}", auth=auth, timeout=30).raise_for_status()
    everything = {"configure": ".*", "write": ".*", "read": ".*"}
    httpx.put(f"{MANAGEMENT}/permissions/{vhost}/guest", json=everything, auth=auth, timeout=30).raise_for_status()


class ClusterWorker(Worker):
    """The worker, on the cluster: ready once every partition queue there has a consumer."""

    def __init__(self) -> None:
        super().__init__(ENV, name="worker-cluster")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def ready(self) -> bool:
        vhost = quote(test_settings.VHOST, safe="")
        for partition in range(int(test_settings.ENV["COMMAND_PARTITIONS"])):
            url = f"{MANAGEMENT}/queues/{vhost}/{quote(partition_queue_name(partition), safe='')}"
            response = httpx.get(url, auth=("guest", "guest"), timeout=5)
            if response.status_code != 200 or not response.json().get("consumers"):
                return False
        return True


def cluster_gateway(env: dict[str, str]) -> Gateway:
    return Gateway({**env, **ENV}, name="gateway-cluster")
