"""`opengovfood bus provision`: a vhost, and one RabbitMQ user per role with only the permissions it needs.

Idempotent, through the management API (RABBIT_MANAGEMENT_URL, an administrator):

- the gateway user: publishes commands only (topic permission: the command routing keys), and
  declares and reads its own reply queue `opengovfood.replies.<hex>`;
- the worker user: declares the topology and binds it (the event log to the events exchange too),
  consumes the partition queues, publishes replies (default exchange), dead letters and events;
- one user per service in SERVICE_GRANTS (its name is the RabbitMQ user): publishes on the commands
  exchange only the routing keys it is granted, declares and reads its reply queues `<name>.replies.*`;
  a grant with `may_replay` (an operator) also reads the dead-letter queue and republishes any command;
- event readers (`--reader NAME`): read the event log, and the events exchange through their own
  queues `NAME.*`; they publish nothing.

It also sets the event log's retention policy (EVENT_LOG_MAX_AGE, EVENT_LOG_MAX_BYTES) in the vhost:
run it again after changing them; the log keeps what it holds within the new limits.

Permissions are always set exactly. A user that exists keeps its password unless `--rotate`; a new
(or rotated) user's password comes from `BUS_PASSWORD_<NAME>` (name upper-cased, non-alphanumerics
as `_`), else it is generated and printed once.
"""

import asyncio
import base64
import json
import os
import re
import secrets
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import quote, unquote, urlparse

import typer

from cli.repartition import DrainTimeout, repartition
from cli.replication import grow
from shared.contracts.commands import CommandName
from shared.contracts.events import EVENTS_EXCHANGE_NAME
from shared.event_log import EVENT_LOG_NAME, EVENT_LOG_POLICY, retention_policy
from shared.settings import ServiceGrant, Settings, get_settings
from shared.topology import (
    COMMANDS_EXCHANGE_NAME,
    DEAD_LETTER_QUEUE_NAME,
    GATEWAY_REPLY_QUEUE,
    MAX_PARTITIONS,
    service_reply_prefix,
)

NOTHING = "^$"
_TOPOLOGY = r"opengovfood\.(commands|commands\.partitions|commands\.p[0-9]+|dead-letter|events|events\.log)"
_DOWNSTREAM = r"opengovfood\.(commands\.partitions|commands\.p[0-9]+|dead-letter|events|events\.log)"  # not commands
_CONSUMED_OR_BOUND_FROM = r"opengovfood\.(commands|commands\.partitions|commands\.p[0-9]+|dead-letter|events)"


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
    replies = f"^{GATEWAY_REPLY_QUEUE.pattern}$"
    keys = _keys([command.value for command in CommandName])
    return BusUser(
        name,
        configure=replies,  # not the exchange: it looks it up passively (gateway/app.py)
        write=f"^{re.escape(COMMANDS_EXCHANGE_NAME)}$",
        read=replies,
        topics={COMMANDS_EXCHANGE_NAME: (keys, NOTHING)},
    )


def worker_user(name: str) -> BusUser:
    """Declares and binds the topology, consumes partitions, publishes replies, dead letters and events.

    A binding needs write on its destination and read on its source: hence write on the event log
    (bound to the events exchange) and read on the events exchange, which it consumes nothing from."""
    return BusUser(
        name,
        configure=f"^{_TOPOLOGY}$",
        write=rf"^(amq\.default|{_DOWNSTREAM})$",  # replies go through the default exchange
        read=f"^{_CONSUMED_OR_BOUND_FROM}$",
    )


def service_user(name: str, grant: ServiceGrant) -> BusUser:
    """Publishes on the commands exchange only the routing keys it is granted; declares and reads
    its own reply queues `<name>.replies.*`, the only queues the worker answers it on."""
    replayed = list(CommandName) if grant.may_replay else []  # an operator republishes any dead letter
    granted = [command.value for command in CommandName if command.value in grant.commands or command in replayed]
    replies = f"^{re.escape(service_reply_prefix(name))}.+$"
    dead_letters = f"|{re.escape(DEAD_LETTER_QUEUE_NAME)}" if grant.may_replay else ""
    return BusUser(
        name,
        configure=replies,
        write=f"^{re.escape(COMMANDS_EXCHANGE_NAME)}$",
        read=f"^({replies[1:-1]}{dead_letters})$",
        topics={COMMANDS_EXCHANGE_NAME: (_keys(granted), NOTHING)},
    )


def reader_user(name: str) -> BusUser:
    """Reads the event log, and events through its own queues `<name>.*`; publishes nothing. It can
    neither configure the log (delete, re-declare) nor bind it anywhere (no write on it)."""
    own = f"^{re.escape(name)}\\..+$"
    return BusUser(
        name,
        configure=own,
        write=own,  # binding its queue to the events exchange needs write on the queue
        read=rf"^({re.escape(EVENTS_EXCHANGE_NAME)}|{re.escape(EVENT_LOG_NAME)}|{re.escape(name)}\..+)$",
        topics={EVENTS_EXCHANGE_NAME: (NOTHING, ".*")},
    )


class Management:
    """The RabbitMQ management HTTP API, as an administrator."""

    def __init__(self, url: str) -> None:
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https"):
            raise ValueError(f"not an http(s) management URL: {parsed.scheme}://{parsed.hostname}")
        self.base = f"{parsed.scheme}://{parsed.hostname}:{parsed.port or 15672}/api"
        self.admin = unquote(parsed.username or "guest")
        credentials = f"{self.admin}:{unquote(parsed.password or 'guest')}"
        self.authorization = "Basic " + base64.b64encode(credentials.encode()).decode()

    def _call(self, method: str, path: str, body: dict[str, object] | None = None) -> Any:
        request = urllib.request.Request(
            f"{self.base}/{path}",
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"Authorization": self.authorization, "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (http(s) only, checked above)
            answer = response.read()
        return json.loads(answer) if answer else None

    def get(self, path: str) -> Any:
        return self._call("GET", path)

    def put(self, path: str, body: dict[str, object]) -> None:
        self._call("PUT", path, body)

    def user_exists(self, name: str) -> bool:
        try:
            self._call("GET", f"users/{quote(name, safe='')}")
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return False
            raise
        return True

    def ensure_vhost(self, vhost: str) -> None:
        self.put(f"vhosts/{quote(vhost, safe='')}", {})

    def ensure_user(self, vhost: str, user: BusUser, password: str) -> None:
        """Create the user or set its password, and set exactly its permissions in the vhost."""
        self.put(f"users/{quote(user.name, safe='')}", {"password": password, "tags": ""})
        self.set_permissions(vhost, user)

    def set_permissions(self, vhost: str, user: BusUser) -> None:
        name, where = quote(user.name, safe=""), quote(vhost, safe="")
        self.put(f"permissions/{where}/{name}", {"configure": user.configure, "write": user.write, "read": user.read})
        for exchange, (write, read) in user.topics.items():
            self.put(f"topic-permissions/{where}/{name}", {"exchange": exchange, "write": write, "read": read})


def apply_retention(management: Management, vhost: str, settings: Settings) -> str:
    """Set the event log's retention policy in the vhost (in place: the log keeps what fits); what it is."""
    policy = retention_policy(settings.event_log_max_age, settings.event_log_max_bytes)
    management.put(f"policies/{quote(vhost, safe='')}/{quote(EVENT_LOG_POLICY, safe='')}", policy)
    return f"max-age {settings.event_log_max_age}, max-length-bytes {settings.event_log_max_bytes}"


def password_variable(name: str) -> str:
    return "BUS_PASSWORD_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper()


def provision(management: Management, vhost: str, users: list[BusUser], rotate: bool = False) -> dict[str, str]:
    """Create the vhost and the users, set their permissions; return how each password was handled."""
    if management.admin in {user.name for user in users}:
        raise ValueError(f"{management.admin} is the administrator provisioning: it cannot be a role user too")
    management.ensure_vhost(vhost)
    handled = {}
    for user in users:
        if not rotate and management.user_exists(user.name):
            management.set_permissions(vhost, user)
            handled[user.name] = "password kept"
            continue
        variable = password_variable(user.name)
        given = os.environ.get(variable)
        password = given or secrets.token_urlsafe(24)
        management.ensure_user(vhost, user, password)
        handled[user.name] = f"password from {variable}" if given else f"generated password {password} (shown once)"
    return handled


bus_app = typer.Typer(help="The RabbitMQ vhost and its least-privilege users.", no_args_is_help=True)


@bus_app.command("provision")
def provision_command(
    vhost: Annotated[str, typer.Option(envvar="BUS_VHOST")] = "opengovfood",
    gateway: Annotated[str, typer.Option("--gateway-user", envvar="GATEWAY_BUS_USER")] = "opengovfood-gateway",
    worker: Annotated[str, typer.Option("--worker-user", envvar="WORKER_BUS_USER")] = "opengovfood-worker",
    readers: Annotated[list[str] | None, typer.Option("--reader", help="an event reader's user (repeatable)")] = None,
    rotate: Annotated[bool, typer.Option(help="set new passwords for users that exist too")] = False,
) -> None:
    """Create (idempotently) the vhost and one user per role; existing users keep their password."""
    url = os.environ.get("RABBIT_MANAGEMENT_URL", "http://guest:guest@127.0.0.1:15672")  # never on argv
    settings = get_settings()
    users = [gateway_user(gateway), worker_user(worker)]
    users += [service_user(name, grant) for name, grant in settings.service_grants.items()]
    users += [reader_user(name) for name in readers or []]
    try:
        management = Management(url)
        handled = provision(management, vhost, users, rotate)
        retention = apply_retention(management, vhost, settings)
    except (urllib.error.URLError, ValueError) as error:
        typer.echo(f"provisioning failed: {error}", err=True)
        raise typer.Exit(1) from None
    for name, how in handled.items():
        typer.echo(f"{name}: provisioned in vhost {vhost}, {how}")
    typer.echo(f"{EVENT_LOG_NAME}: retention {retention}")


@bus_app.command("grow")
def grow_command(
    vhost: Annotated[str, typer.Option(envvar="BUS_VHOST")] = "opengovfood",
    members: Annotated[int, typer.Option(min=1, help="members each queue should have (at most the nodes)")] = 3,
) -> None:
    """Give every partition queue and the dead-letter queue members on MEMBERS nodes of the cluster."""
    url = os.environ.get("RABBIT_MANAGEMENT_URL", "http://guest:guest@127.0.0.1:15672")  # never on argv
    try:
        short = grow(Management(url), vhost, members, progress=typer.echo)
    except (urllib.error.URLError, ValueError, subprocess.CalledProcessError) as error:
        typer.echo(f"grow failed: {error}", err=True)
        raise typer.Exit(1) from None
    if short:
        typer.echo(f"fewer members than asked: {short}", err=True)
        raise typer.Exit(1)


@bus_app.command("repartition")
def repartition_command(
    count: Annotated[int, typer.Argument(min=1, max=MAX_PARTITIONS, help="the new number of partition queues")],
    timeout: Annotated[float, typer.Option(help="seconds to wait for the partitions to drain")] = 300.0,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")] = False,
) -> None:
    """Change the number of partitions: stop intake, let the workers drain every partition, delete or
    declare partitions, resume. Then restart the workers with COMMAND_PARTITIONS=COUNT."""
    if not yes:
        typer.confirm("Commands are refused (503 at the gateway) until the partitions drain. Go on?", abort=True)
    settings = get_settings()
    management = os.environ.get("RABBIT_MANAGEMENT_URL", "")  # never on argv
    try:
        asyncio.run(repartition(settings.broker_urls, count, management=management, timeout_s=timeout,
                                progress=typer.echo))  # fmt: skip
    except DrainTimeout as error:
        typer.echo(f"nothing changed: {error}", err=True)
        raise typer.Exit(1) from None
