"""The gateway stays one a newcomer can walk (issue 19): measured as docs/architecture.md says, so a
change that lengthens the path of one command or the chain of imports fails here, not in a review."""

import os
import re
import subprocess
import sys

from tests import settings as test_settings
from tests.support.database import ROOT
from tests.support.processes import Gateway, Worker
from tools.import_chain import longest_chain

MAX_CHAIN = 6  # modules on the longest import chain inside gateway/
MAX_CALLS, MAX_FILES = 8, 5  # on the stack at the publish of one POST /api/v1/items


def test_the_longest_import_chain_of_the_gateway_is_at_most_six_modules() -> None:
    for type_checking in (True, False):
        chain = longest_chain("gateway", type_checking=type_checking)
        assert len(chain) <= MAX_CHAIN, " -> ".join(chain)


def test_one_post_reaches_the_publish_in_at_most_eight_calls_in_five_files(stack: tuple[Worker, Gateway]) -> None:
    env = {**os.environ, **test_settings.ENV, "PYTHONPATH": str(ROOT)}
    walked = subprocess.run(
        [sys.executable, "-m", "bench.write_path"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert walked.returncode == 0, walked.stderr[-2000:]
    # 202, or 404 when the worker answers within the wait: the command names a user it does not know
    assert walked.stdout.startswith(("answer: 202", "answer: 404")), walked.stdout[:500]
    found = re.search(r"stack at the publish: (\d+) calls in (\d+) files", walked.stdout)
    assert found is not None, walked.stdout[:500]
    calls, files = int(found[1]), int(found[2])
    assert (calls <= MAX_CALLS, files <= MAX_FILES) == (True, True), walked.stdout
