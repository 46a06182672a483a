"""Services of another checkout (its code, its own settings) beside this one's, for an A/B of one part.

`python -m bench.run --gateway-from PATH` measures PATH's gateway in front of this checkout's worker
and broker, so that a change of the worker or the broker, which moves the gateway's CPU per request
under load (more rows per confirm, fewer per loop turn), is not counted as the gateway's;
bench/gateway_instructions.py counts instructions per request of two checkouts' gateways.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.processes import Gateway, Worker, ensure_database_roles

_CHECKOUT_ENV = """
import json
from tests import settings
print(json.dumps({"gateway": {**settings.ENV, "DATABASE_URL": settings.GATEWAY_DATABASE_URL,
                              "READ_DATABASE_URL": settings.GATEWAY_READ_DATABASE_URL},
                  "worker": {**settings.ENV, "DATABASE_URL": settings.WORKER_DATABASE_URL}}))
"""


def checkout_env(checkout: Path, service: str) -> dict[str, str]:
    """The environment of `service` as `checkout`'s own tests set it (its settings may differ from ours)."""
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    found = subprocess.run(
        [sys.executable, "-c", _CHECKOUT_ENV], cwd=checkout, env=env, capture_output=True, check=True
    )
    return dict(json.loads(found.stdout)[service]) | {"PYTHONPATH": str(checkout)}


class CheckoutGateway(Gateway):
    """The gateway of `checkout`, with this repo's virtualenv; `env` on top of its own settings."""

    def __init__(self, checkout: Path, env: dict[str, str] | None = None, name: str = "gateway-checkout") -> None:
        own = checkout_env(checkout, "gateway") | (env or {})
        super().__init__(own, name=name)
        self.env = {**os.environ, **own}  # only the checkout's settings, none of ours
        self.checkout = checkout

    def spawn(self) -> None:
        ensure_database_roles()
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(self.command(), cwd=self.checkout, env=self.env, stdout=log, stderr=log)


class CheckoutWorker(Worker):
    """The worker of `checkout`: the topology it declares is the one its gateway expects."""

    def __init__(self, checkout: Path) -> None:
        own = checkout_env(checkout, "worker")
        super().__init__(own, name="worker-checkout")
        self.env = {**os.environ, **own}
        self.checkout = checkout

    def spawn(self) -> None:
        ensure_database_roles()
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(self.command(), cwd=self.checkout, env=self.env, stdout=log, stderr=log)
