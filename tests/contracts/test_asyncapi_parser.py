"""The AsyncAPI project's own parser (@asyncapi/parser, pinned in tools/asyncapi) reports no error."""

import json
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
VALIDATE = ROOT / "tools" / "asyncapi" / "validate.cjs"


def parse(path: Path) -> dict[str, Any]:
    """What the parser says of the document at `path` (`make install` ran `npm ci` in tools/asyncapi)."""
    run = subprocess.run(["node", str(VALIDATE), str(path)], capture_output=True, text=True, timeout=120, check=False)
    assert run.stdout, run.stderr
    report: dict[str, Any] = json.loads(run.stdout)
    report["exit"] = run.returncode
    return report


def test_the_parser_reports_no_error_and_sees_every_channel_and_message() -> None:
    report = parse(ROOT / "docs" / "asyncapi.yaml")
    problems = [d for d in report["diagnostics"] if d["severity"] in ("Error", "Warning")]
    assert (report["exit"], report["parsed"], problems) == (0, True, [])
    # 7 commands, 7 events, 2 reply queues, dead letters, the event log (its 7 events as it keeps them)
    assert (report["channels"], report["messages"]) == (18, 30)


def test_the_parser_does_catch_a_wrong_binding(tmp_path: Path) -> None:
    """The check can fail: an exchange type AMQP bindings do not know is an error."""
    broken = tmp_path / "asyncapi.yaml"
    text = (ROOT / "docs" / "asyncapi.yaml").read_text(encoding="utf-8")
    broken.write_text(text.replace("type: topic", "type: x-consistent-hash", 1), encoding="utf-8")
    report = parse(broken)
    assert report["exit"] == 1
    assert report["errors"] >= 1
