"""examples/publish_command.py, run as another service would, against the real broker."""

import asyncio
import json
import os
import subprocess
import sys
import uuid

import asyncpg
import pytest

from tests import settings as test_settings
from tests.ops.cli import ROOT
from tests.support.api import unique_email
from tests.support.polling import eventually
from tests.support.processes import Gateway, Worker


def run_example(email: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "examples/publish_command.py", "--email", email, "--full-name", "From The Example"],
        cwd=ROOT,
        env={**os.environ, "RABBIT_URL": test_settings.RABBIT_URL, "EXAMPLE_PASSWORD": "example password 123"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.rabbit
async def test_the_example_publishes_a_command_that_is_applied(
    stack: tuple[Worker, Gateway], primary: asyncpg.Connection
) -> None:
    email = unique_email("example")
    result = await asyncio.to_thread(run_example, email)
    assert result.returncode == 0, result.stdout + result.stderr
    outcome = json.loads(result.stdout)
    assert (outcome["status"], outcome["code"], outcome["name"]) == ("applied", "created", "user.create")

    async def recorded() -> asyncpg.Record | None:
        return await primary.fetchrow(
            'SELECT c.status, c.actor, u.full_name FROM command c JOIN "user" u ON u.id = c.resource_id '
            "WHERE c.command_id = $1",
            uuid.UUID(outcome["command_id"]),
        )

    row = await eventually(recorded, lambda found: found is not None, deadline_s=10)
    assert row is not None
    assert (row["status"], row["actor"], row["full_name"]) == ("applied", "anonymous", "From The Example")
