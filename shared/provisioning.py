"""RabbitMQ least privilege: a vhost, and one user per role with only the permissions it needs.

`python -m shared.provisioning --vhost opengovfood` (idempotent) creates, through the management API:

- the gateway user: publishes commands only (topic permission: the command routing keys), and
  declares and reads its own reply queue `opengovfood.replies.<hex>`;
- the worker user: declares the topology, consumes the partition queues, publishes replies (default
  exchange), dead letters and events;
- one user per service in SERVICE_GRANTS (its name is the RabbitMQ user): publishes on the commands
  exchange only the routing keys it is granted, declares and reads nothing;
- event readers (`--reader NAME`): read the events exchange through their own queues `NAME.*`.

Passwords come from the environment (`BUS_PASSWORD_<NAME>`, name upper-cased, non-alphanumerics as
`_`); a user without one gets a random password, printed once.
"""

import argparse
import base64
import json
import os
import re
import secrets
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import quote, unquote, urlparse

from shared.contracts.commands import CommandName
from shared.contracts.events import EVENTS_EXCHANGE_NAME
from shared.settings import ServiceGrant, get_settings
from shared.topology import COMMANDS_EXCHANGE_NAME

NOTHING = "^$"
_TOPOLOGY = r"opengovfood\.(commands|commands\.partitions|commands\.p[0-9]+|dead-letter|events)"
_DOWNSTREAM = r"opengovfood\.(commands\.partitions|commands\.p[0-9]+|dead-letter|events)"  # never the commands
_CONSUMED = r"opengovfood\.(commands|commands\.partitions|commands\.p[0-9]+|dead-letter)"


@dataclass(frozen=True)
class BusUser:
    """One RabbitMQ user's permissions in the vhost: regexes, and topic permissions per exchange."""

    name: str
    configure: str = NOTHING
    write: str = NOTHING
    read: str = NOTHING
    topics: dict[str, tuple[str, str]] = field(default_factory=dict)  # exchange -> (write, read)


def _keys(names: Iterable[str]) -> str:
    ordered = sorted(names)
    return "^(" + "|".join(re.escape(name) for name in ordered) + ")$" if ordered else NOTHING


def gateway_user(name: str) -> BusUser:
    """Publishes commands (any command routing key), uses its own reply queue; nothing else."""
    replies = r"^opengovfood\.replies\.[0-9a-f]+$"
    keys = _keys([command.value for command in CommandName])
    return BusUser(
        name,
        configure=replies,  # not the exchange: it looks it up passively (gateway/app.py)
        write=f"^{re.escape(COMMANDS_EXCHANGE_NAME)}$",
        read=replies,
        topics={COMMANDS_EXCHANGE_NAME: (keys, NOTHING)},
    )


def worker_user(name: str) -> BusUser:
    """Declares the topology, consumes partitions, publishes replies, dead letters and events."""
    return BusUser(
        name,
        configure=f"^{_TOPOLOGY}$",
        write=rf"^(amq\.default|{_DOWNSTREAM})$",  # replies go through the default exchange
        read=f"^{_CONSUMED}$",
    )


def service_user(name: str, grant: ServiceGrant) -> BusUser:
    """Publishes on the commands exchange only the routing keys it is granted."""
    granted = [command.value for command in CommandName if command.value in grant.commands]
    return BusUser(
        name,
        write=f"^{re.escape(COMMANDS_EXCHANGE_NAME)}$",
        topics={COMMANDS_EXCHANGE_NAME: (_keys(granted), NOTHING)},
    )


def reader_user(name: str) -> BusUser:
    """Reads events through its own queues `<name>.*`; publishes nothing."""
    own = f"^{re.escape(name)}\\..+$"
    return BusUser(
        name,
        configure=own,
        write=own,  # binding its queue to the events exchange needs write on the queue
        read=rf"^({re.escape(EVENTS_EXCHANGE_NAME)}|{re.escape(name)}\..+)$",
        topics={EVENTS_EXCHANGE_NAME: (NOTHING, ".*")},
    )


class Management:
    """The RabbitMQ management HTTP API, as an administrator."""

    def __init__(self, url: str) -> None:
        parsed = urlparse(url)
        self.base = f"{parsed.scheme}://{parsed.hostname}:{parsed.port or 15672}/api"
        credentials = f"{unquote(parsed.username or 'guest')}:{unquote(parsed.password or 'guest')}"
        self.authorization = "Basic " + base64.b64encode(credentials.encode()).decode()

    def put(self, path: str, body: dict[str, object]) -> None:
        request = urllib.request.Request(
            f"{self.base}/{path}",
            data=json.dumps(body).encode(),
            method="PUT",
            headers={"Authorization": self.authorization, "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10):  # noqa: S310 (a configured admin URL)
            pass

    def ensure_vhost(self, vhost: str) -> None:
        self.put(f"vhosts/{quote(vhost, safe='')}", {})

    def ensure_user(self, vhost: str, user: BusUser, password: str) -> None:
        """Create or update the user and set exactly its permissions in the vhost."""
        name, where = quote(user.name, safe=""), quote(vhost, safe="")
        self.put(f"users/{name}", {"password": password, "tags": ""})
        self.put(f"permissions/{where}/{name}", {"configure": user.configure, "write": user.write, "read": user.read})
        for exchange, (write, read) in user.topics.items():
            self.put(f"topic-permissions/{where}/{name}", {"exchange": exchange, "write": write, "read": read})


def password_for(name: str) -> tuple[str, bool]:
    """The password from BUS_PASSWORD_<NAME>, or a new random one (True: it was generated)."""
    variable = "BUS_PASSWORD_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper()
    given = os.environ.get(variable)
    return (given, False) if given else (secrets.token_urlsafe(24), True)


def provision(management: Management, vhost: str, users: list[BusUser]) -> dict[str, str]:
    """Create the vhost and the users; return the passwords that were generated."""
    management.ensure_vhost(vhost)
    generated = {}
    for user in users:
        password, new = password_for(user.name)
        management.ensure_user(vhost, user, password)
        if new:
            generated[user.name] = password
    return generated


def main() -> None:
    parser = argparse.ArgumentParser(description="Create the RabbitMQ vhost and least-privilege users.")
    parser.add_argument(
        "--management-url", default=os.environ.get("RABBIT_MANAGEMENT_URL", "http://guest:guest@127.0.0.1:15672")
    )
    parser.add_argument("--vhost", default="opengovfood")
    parser.add_argument("--gateway-user", default="opengovfood-gateway")
    parser.add_argument("--worker-user", default="opengovfood-worker")
    parser.add_argument("--reader", action="append", default=[], help="an event reader's user name (repeatable)")
    args = parser.parse_args()
    users = [gateway_user(args.gateway_user), worker_user(args.worker_user)]
    users += [service_user(name, grant) for name, grant in get_settings().service_grants.items()]
    users += [reader_user(name) for name in args.reader]
    try:
        generated = provision(Management(args.management_url), args.vhost, users)
    except urllib.error.URLError as error:
        raise SystemExit(f"provisioning failed: {error}") from None
    for user in users:
        print(f"{user.name}: provisioned in vhost {args.vhost}")
    for name, password in generated.items():
        print(f"{name}: generated password {password} (store it; it is not shown again)")


if __name__ == "__main__":
    main()
