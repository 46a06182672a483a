"""Run the installed `opengovfood` command as an operator would, with a chosen environment."""

import os
import subprocess
import sys
from pathlib import Path

from tests import settings as test_settings

ROOT = Path(__file__).resolve().parents[2]


def opengovfood(
    *args: str, env: dict[str, str] | None = None, check: bool = True, answer: str = ""
) -> subprocess.CompletedProcess[str]:
    """`answer` is what the operator types when asked (nothing: like a script without a terminal)."""
    executable = Path(sys.executable).with_name("opengovfood")
    result = subprocess.run(
        [str(executable), *args],
        cwd=ROOT,
        env={**os.environ, **test_settings.ENV, **(env or {})},
        input=answer,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if check:
        assert result.returncode == 0, f"opengovfood {' '.join(args)}: {result.stdout}\n{result.stderr}"
    return result
