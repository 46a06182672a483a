"""docker-compose.yml read as compose reads it, and its services' environment pointed at the local services."""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import yaml

from cli.bus import password_variable
from tests import settings as test_settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
# `$$` is a literal `$`; `${NAME}`, `${NAME:-default}` (also when empty), `${NAME:?error}`.
_VARIABLE = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:[-?])(?P<arg>[^}]*))?\}")


def required_variables() -> set[str]:
    """Every variable compose refuses to start without."""
    return {m["name"] for m in _VARIABLE.finditer(COMPOSE_FILE.read_text()) if m["op"] == ":?"}


def interpolate(value: Any, variables: Mapping[str, str]) -> Any:
    """Compose's interpolation of every string in a parsed file."""
    if isinstance(value, dict):
        return {key: interpolate(item, variables) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, variables) for item in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match[str]) -> str:
        if match[0] == "$$":
            return "$"
        if variables.get(match["name"]):
            return variables[match["name"]]
        if match["op"] == ":?":
            raise KeyError(f"{match['name']}: {match['arg']}")
        return match["arg"] or ""

    return _VARIABLE.sub(one, value)


def services(variables: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    config: dict[str, Any] = interpolate(yaml.safe_load(COMPOSE_FILE.read_text()), variables)
    return dict(config["services"])


def command(service: Mapping[str, Any], key: str = "command") -> list[str]:
    value = service[key]["test"] if key == "healthcheck" else service[key]
    argv = value.split() if isinstance(value, str) else list(value)
    return argv[1:] if argv[0] in ("CMD", "CMD-SHELL") else argv


@dataclass(frozen=True)
class Local:
    """Where compose's names land on this machine: the local services, a test's database, vhost and users."""

    database: str
    vhost: str
    user_prefix: str

    def user(self, name: str) -> str:
        return f"{self.user_prefix}.{name}"

    def url(self, url: str) -> str:
        parts = urlsplit(url)
        host = {
            ("postgres", 5432): f"127.0.0.1:{test_settings.PRIMARY_PORT}",
            ("postgres-replica", 5432): f"127.0.0.1:{test_settings.REPLICA_PORT}",
            ("rabbitmq", 5672): "127.0.0.1:5672",
            ("rabbitmq", 15672): "127.0.0.1:15672",
        }[(parts.hostname, parts.port)]
        if parts.scheme == "http":  # the management API: this machine's administrator
            return urlunsplit((parts.scheme, f"guest:guest@{host}", parts.path, "", ""))
        user = parts.username or ""
        if parts.scheme == "amqp":
            user, path = self.user(user), f"/{quote(self.vhost, safe='')}"
            credentials = f"{quote(user, safe='')}:{parts.password}"
        else:  # this machine's database roles have this machine's passwords, which ~/.pgpass gives
            path, credentials = f"/{self.database}", quote(user, safe="")
        return urlunsplit((parts.scheme, f"{credentials}@{host}", path, "", ""))

    def environment(self, environment: Mapping[str, str]) -> dict[str, str]:
        """URLs, vhost and bus user names (and the password variables named after them) made local."""
        users = [environment[key] for key in USER_KEYS if key in environment]
        renamed = {password_variable(name): password_variable(self.user(name)) for name in users}
        local = {}
        for key, value in environment.items():
            if "://" in value:
                value = self.url(value)
            elif key in USER_KEYS:
                value = self.user(value)
            elif key == "BUS_VHOST":
                value = self.vhost
            local[renamed.get(key, key)] = value
        return local


USER_KEYS = ("GATEWAY_BUS_USER", "WORKER_BUS_USER")
