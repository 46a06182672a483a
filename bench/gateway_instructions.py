"""Instructions the gateway executes per request, counted by callgrind, for checkouts side by side.

    python -m bench.gateway_instructions --before /path/to/old/checkout [--after .] [--rounds 2]

CPU time per request in `make bench` moves by ±10 % between runs on a shared 2-core machine, so a
change of a few percent hides in it; callgrind counts the instructions one process executes, which
move by well under 1 % from run to run. Each checkout's gateway (one process, this repo's virtualenv,
its own code) runs under valgrind beside a normal worker, on its own database and vhost; after a
warm-up, instrumentation is switched on for N requests of each kind, one at a time. Needs valgrind.
"""

import os

os.environ.setdefault("TEST_DATABASE", "ogf_instructions")
os.environ.setdefault("TEST_VHOST", "ogf_instructions")

from tests import settings as test_settings  # noqa: E402

test_settings.apply()  # before anything reads the settings

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import httpx  # noqa: E402

from bench.checkouts import CheckoutGateway, CheckoutWorker  # noqa: E402
from gateway.infrastructure.security import create_access_token  # noqa: E402
from shared.settings import get_settings  # noqa: E402
from tests.support.database import reset_database  # noqa: E402
from tests.support.rabbit import reset_vhost  # noqa: E402

WARM_UP = 200  # requests of each kind before counting: caches filled, lazy imports done
KINDS = {"POST": "POST /items", "GET one": "GET /items/{id}", "GET page": "GET /items?limit=20"}


class CountedGateway(CheckoutGateway):
    """One gateway process of `checkout` under callgrind, counting only while switched on."""

    def __init__(self, checkout: Path, out: Path) -> None:
        super().__init__(checkout, {"GATEWAY_WORKERS": "1"}, name="gateway-instructions")
        self.out = out

    def command(self) -> list[str]:
        valgrind = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={self.out}"]
        return valgrind + super().command()

    def control(self, *options: str) -> None:
        assert self.process is not None
        subprocess.run(["callgrind_control", *options, str(self.process.pid)], check=True, capture_output=True)


def _totals(dump: Path) -> int:
    """The instructions a dump counted (its `summary:` header stays 0 when counting starts switched off)."""
    for line in reversed(dump.read_text().splitlines()):
        if line.startswith("totals:"):
            return int(line.split()[1])
    raise ValueError(f"no totals in {dump}")


async def _requests(http: httpx.AsyncClient, kind: str, count: int, token: str, ids: list[int]) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    for n in range(count):
        if kind == "POST":
            response = await http.post("/api/v1/items", content=json.dumps({"title": f"n {n}"}), headers=headers | {
                "Content-Type": "application/json"})  # fmt: skip
        elif kind == "GET one":
            response = await http.get(f"/api/v1/items/{ids[n % len(ids)]}", headers=headers)
        else:
            response = await http.get("/api/v1/items?limit=20", headers=headers)
        if not response.is_success:
            raise RuntimeError(f"{kind}: {response.status_code} {response.text[:200]}")


async def count(checkout: Path, kinds: list[str], requests: int, token: str, ids: list[int]) -> dict[str, float]:
    """Instructions per request of each kind, for the gateway of `checkout`."""
    await reset_vhost()  # each checkout's worker declares its own topology
    with tempfile.TemporaryDirectory() as directory, CheckoutWorker(checkout):
        gateway = CountedGateway(checkout, Path(directory) / "callgrind.out")
        gateway.start(deadline_s=600)
        per_request = {}
        try:
            async with httpx.AsyncClient(base_url=gateway.url, timeout=120) as http:
                for kind in kinds:
                    await _requests(http, kind, WARM_UP, token, ids)
                    gateway.control("--zero")
                    gateway.control("--instr=on")
                    await _requests(http, kind, requests, token, ids)
                    gateway.control("--instr=off")
                    gateway.control("--dump")
                    dumps = sorted(Path(directory).glob("callgrind.out.*"), key=lambda p: p.stat().st_mtime)  # noqa: ASYNC240
                    per_request[kind] = _totals(dumps[-1]) / requests
                    dumps[-1].unlink()
        finally:
            gateway.stop()
        return per_request


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="a checkout of the code to compare with")
    parser.add_argument("--after", type=Path, default=Path.cwd(), help="default: this checkout")
    parser.add_argument("--rounds", type=int, default=2, help="alternating runs of each checkout")
    parser.add_argument("--requests", type=int, default=300, help="counted requests of each kind per run")
    parser.add_argument("--kinds", default="POST,GET one,GET page")
    args = parser.parse_args()
    kinds = args.kinds.split(",")
    from bench.run import HASH, create_users, readable_items  # bench.run imports this module

    await reset_database()
    owner = (await create_users(1))[0]
    ids = await readable_items(owner)
    token = create_access_token(owner, HASH, get_settings())
    results: dict[str, dict[str, list[float]]] = {"before": {k: [] for k in kinds}, "after": {k: [] for k in kinds}}
    for round_ in range(1, args.rounds + 1):
        for side in ("before", "after"):
            checkout = getattr(args, side).resolve()
            counted = await count(checkout, kinds, args.requests, token, ids)
            for kind, value in counted.items():
                results[side][kind].append(value)
            print(f"round {round_} {side}: " + ", ".join(f"{k} {v / 1000:,.0f}k" for k, v in counted.items()))
    print("\ninstructions per request (thousands), median of runs; after / before")
    for kind in kinds:
        before, after = statistics.median(results["before"][kind]), statistics.median(results["after"][kind])
        print(f"  {kind:9} before {before / 1000:8,.0f}k  after {after / 1000:8,.0f}k  {after / before:.3f}×")
    sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(main())
