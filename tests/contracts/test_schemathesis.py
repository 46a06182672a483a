"""Schemathesis against the live stack: every operation of docs/openapi.json, every check, no failure.

Every check runs (`--checks all`). The run's own rules, each with its reason where it is written:
- tests/contracts/schemathesis.toml: positive_data_acceptance also accepts 412 (a stale If-Match);
- tests/contracts/schemathesis_hooks.py: the caller is a signed-up user (Bearer token); a valid
  Idempotency-Key is unique and a valid cursor is one the API gave out, as real clients do; two kinds
  of generated case whose label does not match what goes on the wire are dropped.
"""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

from tests.support.processes import LOGS, ROOT, Gateway, Worker

HERE = Path(__file__).parent
SEED = 20261201
EXAMPLES = 60  # per operation and phase: 20 operations, ~1,900 cases, about 2 minutes on 2 cores


def test_schemathesis_finds_no_failure_and_no_server_error(stack: tuple[Worker, Gateway]) -> None:
    gateway = stack[1]
    command = [
        str(Path(sys.executable).with_name("st")), "--config-file", str(HERE / "schemathesis.toml"),
        "run", str(ROOT / "docs" / "openapi.json"), "--url", gateway.url,
        "--checks", "all",
        "-H", "Prefer: wait=10",  # writes answer their outcome, not 202
        "--generation-allow-x00", "true",
        "--seed", str(SEED), "--max-examples", str(EXAMPLES),
        "--generation-database", "none",  # no examples carried over from an earlier run
        "--no-color",
    ]  # fmt: skip
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.contracts.schemathesis_hooks", "OPENGOVFOOD_URL": gateway.url}
    started = time.monotonic()
    run = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    elapsed = time.monotonic() - started
    LOGS.mkdir(parents=True, exist_ok=True)
    (LOGS / "schemathesis.log").write_text(run.stdout + run.stderr)
    operations = re.search(r"Operations:\s+(\d+) selected / (\d+) total", run.stdout)
    cases = re.search(r"(\d+) generated, (.+)", run.stdout)
    print(f"\nschemathesis: {operations and operations.group(0)}; {cases and cases.group(0)}; {elapsed:.0f}s")
    assert run.returncode == 0, run.stdout[-20_000:]
    assert operations is not None
    assert operations.group(1) == operations.group(2)
    assert cases is not None
    assert cases.group(2) == f"{cases.group(1)} passed"
