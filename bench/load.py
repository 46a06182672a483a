"""HTTP load: Debian's `wrk` with a generated Lua script (a token per request), else an httpx client."""

import asyncio
import json
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass

import httpx


@dataclass(frozen=True)
class Load:
    requests: int
    ok: int  # 2xx answers
    seconds: float
    p50_ms: float
    p99_ms: float
    tool: str

    @property
    def ok_per_s(self) -> float:
        return self.ok / self.seconds


LUA = """
local tokens = {%(tokens)s}
local paths = {%(paths)s}
local body = %(body)s
local n = 0
request = function()
  n = n + 1
  local headers = {["Authorization"] = "Bearer " .. tokens[(n %% #tokens) + 1]}
  if body ~= "" then headers["Content-Type"] = "application/json" end
  return wrk.format(%(method)s, paths[(n %% #paths) + 1], headers, body ~= "" and body or nil)
end
done = function(summary, latency, requests)
  io.write(string.format('BENCH {"requests": %%d, "us": %%d, "p50": %%d, "p99": %%d, "bad": %%d, "errors": %%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""


def _lua_list(values: list[str]) -> str:
    return ", ".join(json.dumps(value) for value in values)


def run_wrk(
    url: str, method: str, paths: list[str], tokens: list[str], body: str, concurrency: int, seconds: float
) -> Load:
    script = LUA % {
        "tokens": _lua_list(tokens), "paths": _lua_list(paths), "body": json.dumps(body), "method": json.dumps(method)
    }  # fmt: skip
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as file:
        file.write(script)
        file.flush()
        threads = str(min(2, concurrency))
        command = [
            "wrk",
            "-t",
            threads,
            "-c",
            str(concurrency),
            "-d",
            f"{seconds:.0f}s",
            "--latency",
            "--timeout",
            "30s",  # the default 2 s would drop slow answers from the figures
            "-s",
            file.name,
            url,
        ]
        output = subprocess.run(command, capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    line = next(line for line in output.splitlines() if line.startswith("BENCH "))
    result = json.loads(line.removeprefix("BENCH "))
    return Load(
        requests=result["requests"],
        ok=max(result["requests"] - result["bad"], 0),  # socket errors and timeouts are not in requests
        seconds=result["us"] / 1e6,
        p50_ms=result["p50"] / 1000,
        p99_ms=result["p99"] / 1000,
        tool="wrk",
    )


async def run_httpx(
    url: str, method: str, paths: list[str], tokens: list[str], body: str, concurrency: int, seconds: float
) -> Load:
    latencies: list[float] = []
    ok = 0
    end = time.perf_counter() + seconds

    async def client(offset: int) -> None:
        nonlocal ok
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            n = offset
            while time.perf_counter() < end:
                n += concurrency
                headers = {"Authorization": f"Bearer {tokens[n % len(tokens)]}"}
                if body:
                    headers["Content-Type"] = "application/json"
                started = time.perf_counter()
                response = await http.request(method, paths[n % len(paths)], content=body or None, headers=headers)
                latencies.append(time.perf_counter() - started)
                ok += response.is_success

    start = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(concurrency)))
    cuts = statistics.quantiles(latencies, n=100)
    return Load(len(latencies), ok, time.perf_counter() - start, cuts[49] * 1000, cuts[98] * 1000, "httpx")


async def load(
    url: str, method: str, paths: list[str], tokens: list[str], *, body: str = "", concurrency: int, seconds: float
) -> Load:
    """Drive the gateway for `seconds` at `concurrency` connections, tokens and paths round robin."""
    if shutil.which("wrk"):
        return await asyncio.to_thread(run_wrk, url, method, paths, tokens, body, concurrency, seconds)
    return await run_httpx(url, method, paths, tokens, body, concurrency, seconds)
