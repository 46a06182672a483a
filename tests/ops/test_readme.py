"""The README's Quickstart runs, exactly as written, against what `make run` starts.

`scripts/run.sh` (what `make run` runs once the services are up) starts the worker and the gateway
on the embedded SQLite database, here a file in a temporary directory rather than the checkout's
`./opengovfood.db`, and on a RabbitMQ vhost of this test's own. The Quickstart's shell block then
runs with bash, stopping at its first failing command.
"""

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import settings as test_settings
from tests.support.processes import LOGS, ROOT, answers_ready, free_port, partitions_consumed, wait_until
from tests.support.rabbit import vhost_of_its_own

pytestmark = pytest.mark.rabbit
VHOST = f"{test_settings.VHOST}_quickstart"
MANAGEMENT = "http://127.0.0.1:15672/api"
GUEST = ("guest", "guest")
PARTITIONS = 4  # COMMAND_PARTITIONS' default


def quickstart() -> str:
    """The one shell block of the README's Quickstart section."""
    section = (ROOT / "README.md").read_text(encoding="utf-8").split("\n## Quickstart\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^```sh\n(.*?)^```", section, re.DOTALL | re.MULTILINE)
    assert len(blocks) == 1, "the Quickstart holds one shell block"
    return str(blocks[0])


@pytest.fixture(scope="module")
def own_vhost() -> Iterator[str]:
    with vhost_of_its_own(VHOST) as url:
        yield url


@pytest.fixture(scope="module")
def make_run(own_vhost: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """scripts/run.sh with `make run`'s defaults, but for the database file, the vhost and the ports."""
    state = tmp_path_factory.mktemp("make-run")
    port = free_port()
    env = {name: value for name, value in os.environ.items() if name not in test_settings.ENV}
    env |= {
        "VENV": sys.prefix,
        "DATABASE_URL": f"sqlite+aiosqlite:///{state}/opengovfood.db",
        "RABBIT_URL": own_vhost,
        "GATEWAY_PORT": str(port),
        "WORKER_METRICS_PORT": "0",
        "WORKER_HEARTBEAT_FILE": str(state / "worker.alive"),
        "PYTHONUNBUFFERED": "1",
    }
    LOGS.mkdir(parents=True, exist_ok=True)
    log = (LOGS / "make-run.log").open("ab")
    process = subprocess.Popen(
        [str(ROOT / "scripts" / "run.sh")], env=env, stdout=log, stderr=log, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: process.poll() is None and answers_ready(url) and partitions_consumed(PARTITIONS, VHOST),
            60,
            "make run's gateway and worker",
        )
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # run.sh stops the gateway and the worker, then exits
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def _run(block: str, url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The block in bash, stopping at the first command that fails (as set -e and pipefail do)."""
    env = {"PATH": os.environ["PATH"], "HOME": str(cwd), "API": url}
    return subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", block], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def test_the_quickstart_runs_against_make_run(make_run: str, tmp_path: Path) -> None:
    block = quickstart()
    done = _run(block, make_run, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    user = json.loads(lines[0])
    assert user["full_name"] == "Ada Cook"  # signed up, and the outcome waited for
    assert "HTTP/1.1 201 Created" in lines  # the create answered its outcome (Prefer: wait)
    created = re.search(r"^item (\d+) created; consistency token: none \(SQLite has no replica\)$", done.stdout, re.M)
    assert created, done.stdout
    item = json.loads(lines[-1])  # read back
    assert (item["id"], item["title"], item["owner_id"]) == (int(created.group(1)), "Lentil soup", user["id"])

    # The harness can fail: the same block against a route that does not exist stops with an error.
    broken = _run(block.replace('"$API/api/v1/items"', '"$API/api/v1/things"'), make_run, tmp_path)
    assert broken.returncode != 0
    assert "Lentil soup" not in broken.stdout
