"""Every channel binding of docs/asyncapi.yaml is what the running broker declared: exchanges and
their types and arguments, queues and their flags and arguments, and the bindings between them."""

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import yaml

from tests import settings as test_settings
from tests.support.processes import MANAGEMENT_URL, Gateway, Worker, wait_until

pytestmark = pytest.mark.rabbit
ROOT = Path(__file__).resolve().parents[2]
DOC: dict[str, Any] = yaml.safe_load((ROOT / "docs" / "asyncapi.yaml").read_text(encoding="utf-8"))
OURS = "opengovfood."  # what the system declares is named so; a consumer's own queues are not
Binding = tuple[str, str, str, str]  # source, destination type, destination, routing key


class Described:
    """What the document says the broker holds, walked from every channel binding."""

    def __init__(self) -> None:
        self.exchanges: dict[str, dict[str, Any]] = {}
        self.queues: dict[str, dict[str, Any]] = {}  # by name, or by a pattern such as `….p{partition}`
        self.bindings: set[Binding] = set()
        self.vhosts: set[str] = set()
        for channel in DOC["channels"].values():
            amqp = channel["bindings"]["amqp"]
            if amqp["is"] == "routingKey":
                self.exchange(amqp["exchange"])
            else:
                self.queue(amqp["queue"])

    def exchange(self, declared: dict[str, Any]) -> None:
        self.vhosts.add(declared["vhost"])
        plain = {key: value for key, value in declared.items() if key != "x-routes"}
        assert self.exchanges.setdefault(declared["name"], plain) == plain, "one exchange, described one way"
        for route in declared.get("x-routes", []):
            target = route.get("exchange") or route["queue"]
            kind = "exchange" if "exchange" in route else "queue"
            (self.exchange if kind == "exchange" else self.queue)(target)
            for name in self.names(target):
                self.bindings.add((declared["name"], kind, name, route["bindingKey"]))

    def queue(self, declared: dict[str, Any]) -> None:
        self.vhosts.add(declared["vhost"])
        assert self.queues.setdefault(declared["name"], declared) == declared, "one queue, described one way"
        for source in declared.get("x-bound-from", []):
            self.exchange(source["exchange"])
            self.bindings.add((source["exchange"]["name"], "queue", declared["name"], source["bindingKey"]))

    @staticmethod
    def names(declared: dict[str, Any]) -> list[str]:
        """A declaration's names on the broker: `{partition}` stands for 0 … x-count - 1."""
        if "x-count" in declared:
            count = int(test_settings.ENV["COMMAND_PARTITIONS"])
            assert count == declared["x-count"], "the test stack runs with the documented partitions"
            return [declared["name"].replace("{partition}", str(p)) for p in range(count)]
        return [declared["name"]]


def management(path: str) -> Any:
    response = httpx.get(f"{MANAGEMENT_URL}/api/{path}", auth=("guest", "guest"), timeout=10)
    response.raise_for_status()
    return response.json()


def arguments(declared: dict[str, Any]) -> dict[str, Any]:
    """A queue's documented arguments on the broker under test (3.x, or 4.x where they differ)."""
    major = int(management("overview")["rabbitmq_version"].split(".")[0])
    on_4 = declared.get("x-arguments-on-rabbitmq-4")
    return dict(on_4 if major >= 4 and on_4 is not None else declared["x-arguments"])


def pattern(name: str) -> re.Pattern[str]:
    """A documented name with `{parameters}` as a regular expression."""
    return re.compile(
        "".join(".+" if part.startswith("{") else re.escape(part) for part in re.split(r"(\{\w+\})", name))
    )


def policy_applied(queue: str, definition: dict[str, Any]) -> Callable[[], bool]:
    """The queue's effective policy is this (the management API shows it with its statistics, every 5 s)."""
    url = f"queues/{quote(test_settings.VHOST, safe='')}/{quote(queue, safe='')}"
    return lambda: bool(management(url).get("effective_policy_definition") == definition)


def test_the_document_matches_what_the_broker_declared(stack: tuple[Worker, Gateway]) -> None:
    vhost = quote(test_settings.VHOST, safe="")
    described = Described()
    assert described.vhosts == {DOC["servers"]["broker"]["pathname"].lstrip("/")}

    exchanges = {e["name"]: e for e in management(f"exchanges/{vhost}") if e["name"].startswith(OURS)}
    assert set(exchanges) == set(described.exchanges)
    for name, declared in described.exchanges.items():
        real = exchanges[name]
        assert (real["type"], real["durable"], real["auto_delete"]) == (
            declared["type"], declared["durable"], declared["autoDelete"]
        ), name  # fmt: skip
        assert real["arguments"] == declared["x-arguments"], name

    queues = {q["name"]: q for q in management(f"queues/{vhost}") if q["name"].startswith(OURS)}
    matched: set[str] = set()
    for name, declared in described.queues.items():
        if "durable" not in declared:  # a service's reply queue: its flags are the service's choice
            continue
        found = {q for q in queues if pattern(name).fullmatch(q)}
        expected = set(Described.names(declared)) if "{process}" not in name else found
        assert found, name  # the stack's gateway has its reply queue
        assert found == expected, name
        for queue in found:
            real = queues[queue]
            assert (real["durable"], real["exclusive"], real["auto_delete"]) == (
                declared["durable"], declared["exclusive"], declared["autoDelete"]
            ), queue  # fmt: skip
            assert real["arguments"] == arguments(declared), queue
            if "x-policy" in declared:  # the event log's retention, as `bus provision` sets it
                wait_until(policy_applied(queue, declared["x-policy"]["definition"]), 15, f"{queue}'s policy")
        matched |= found
    assert set(queues) == matched  # no queue of ours the document does not show

    real_bindings = {
        (b["source"], b["destination_type"], b["destination"], b["routing_key"])
        for name in described.exchanges
        for b in management(f"exchanges/{vhost}/{quote(name, safe='')}/bindings/source")
        if b["destination"].startswith(OURS)
    }
    assert real_bindings == described.bindings
    assert len(described.bindings) == 1 + int(test_settings.ENV["COMMAND_PARTITIONS"]) + 1 + 1  # + the event log
