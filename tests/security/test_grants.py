"""Service grants and start-up refusals, without the services: settings and worker/authorization.py,
and the real worker process refusing to start before it connects to anything."""

import subprocess
import sys
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from shared.contracts.commands import CommandName, CreateItem, UpdateUser
from shared.contracts.headers import Actor
from shared.settings import Settings, get_settings
from tests import settings as test_settings
from tests.support.processes import ROOT, Service
from worker.authorization import may_act_for, may_create_users, may_deactivate
from worker.envelope import Envelope

SECRET = "a-real-secret-that-is-long-enough-0123456789abcdef"


def _envelope(name: CommandName, actor: Actor) -> Envelope[Any]:
    """An envelope as decode makes it: a service actor carries its grant from SERVICE_GRANTS."""
    body = (
        UpdateUser(user_id=7, is_active=False) if name == CommandName.USER_UPDATE else CreateItem(owner_id=7, title="t")
    )
    grant = get_settings().service_grants.get(actor.service or "") if actor.kind == "service" else None
    return Envelope(uuid.uuid4(), name, body, actor, None, None, datetime.now(UTC), grant=grant)


def _service(name: str) -> Actor:
    return Actor("service", service=name)


def test_production_refuses_the_guest_bus_user_and_a_placeholder_secret() -> None:
    with pytest.raises(ValidationError, match="guest"):
        Settings(environment="production", secret_key=SECRET, rabbit_url="amqp://guest:guest@rabbit:5672/")
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        Settings(environment="production", secret_key="changethis", rabbit_url="amqp://gw:pw@rabbit:5672/")
    assert Settings(environment="production", secret_key=SECRET, rabbit_url="amqp://gw:pw@rabbit:5672/")
    assert Settings(environment="development", rabbit_url="amqp://guest:guest@localhost:5672/")


def test_the_worker_refuses_to_start_with_a_prefetch_below_its_batch_size() -> None:
    env = Service({"WORKER_BATCH_SIZE": "50", "WORKER_PREFETCH": "49", "WORKER_METRICS_PORT": "0"}).env
    refused = subprocess.run(
        [sys.executable, "-m", "worker"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30
    )
    assert refused.returncode != 0, refused.stdout + refused.stderr
    assert "WORKER_PREFETCH must be at least WORKER_BATCH_SIZE" in refused.stderr
    assert Settings(worker_batch_size=50, worker_prefetch=50)  # equal is enough


def test_service_grants_are_read_from_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVICE_GRANTS", '{"billing": {"commands": ["item.create"], "owners": [1, 2]}}')
    grant = Settings().service_grants["billing"]
    assert grant.commands == {"item.create"}
    assert grant.owners == {1, 2}
    assert grant.may_deactivate is False
    monkeypatch.setenv("SERVICE_GRANTS", '{"billing": {"commands": [], "owners": "some"}}')
    with pytest.raises(ValidationError):
        Settings()


def test_a_service_acts_within_its_grant_only() -> None:
    get_settings.cache_clear()  # the test environment's SERVICE_GRANTS
    writer, limited = _service(test_settings.SERVICE_WRITER), _service(test_settings.SERVICE_LIMITED)
    assert may_act_for(_envelope(CommandName.ITEM_CREATE, writer), 7)
    assert not may_act_for(_envelope(CommandName.ITEM_DELETE, writer), 7)  # command not granted
    assert not may_act_for(_envelope(CommandName.ITEM_CREATE, limited), 7)  # owner not granted
    assert may_act_for(_envelope(CommandName.ITEM_CREATE, limited), test_settings.UNGRANTED_OWNER)
    assert not may_act_for(_envelope(CommandName.ITEM_CREATE, _service("unknown")), 7)
    assert not may_create_users(_envelope(CommandName.USER_CREATE, writer))
    assert may_create_users(_envelope(CommandName.USER_CREATE, Actor.anonymous()))


def test_only_a_service_granted_it_may_deactivate() -> None:
    get_settings.cache_clear()
    assert may_deactivate(_envelope(CommandName.USER_UPDATE, _service(test_settings.SERVICE_WRITER)))
    assert not may_deactivate(_envelope(CommandName.USER_UPDATE, _service(test_settings.SERVICE_LIMITED)))
    assert not may_deactivate(_envelope(CommandName.USER_UPDATE, Actor.user(7)))
    assert not may_deactivate(_envelope(CommandName.USER_UPDATE, Actor.anonymous()))
