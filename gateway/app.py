"""The gateway application: create_app() wires the bus, the databases and the routes in the lifespan.

`python -m gateway.app [DIR]` writes DIR/openapi.json, the gateway's OpenAPI document (`make docs`).
"""

import asyncio
import contextlib
import json
import logging
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from aiormq.exceptions import ChannelAccessRefused
from fastapi import APIRouter, FastAPI

from gateway.edge.hot import HotRoutes
from gateway.edge.middleware import Edge
from gateway.http import problems
from gateway.infrastructure.bus import CommandBus
from gateway.infrastructure.consistency import Reads
from gateway.infrastructure.limits import RateLimits
from gateway.infrastructure.recent_users import RecentUsers
from gateway.infrastructure.security import Passwords
from gateway.infrastructure.services import Services
from gateway.infrastructure.status import LagMonitor, StatusProbe
from gateway.routes import activity, apidoc, commands, docs, health, imports, items, login, metrics, users
from shared.logging import configure_logging
from shared.publishing import Publisher
from shared.reading import read_database
from shared.retry import backoff
from shared.settings import Settings, get_settings
from shared.topology import COMMANDS_EXCHANGE_NAME, TopologyMismatch, declare_topology
from shared.tracing import configure_tracing, http_telemetry

log = logging.getLogger("gateway")
STARTUP_WAIT_S = 10.0


async def _declare_topology_if_allowed(settings: Settings) -> None:
    """Declare the topology, unless our bus user may only publish (production: the worker declares it)."""
    for delay in backoff():
        try:
            await declare_topology(settings.broker_urls, settings.command_partitions)
            return
        except ChannelAccessRefused:
            log.info("bus user may not declare the topology; relying on the worker's (least privilege)")
            return
        except TopologyMismatch as mismatch:  # only the worker's count matters: we publish to the exchange
            log.error("%s; relying on the worker's topology", mismatch)
            return
        except Exception as error:
            log.warning("broker unavailable (%r); retrying in %.1fs", error, delay)
            await asyncio.sleep(delay)


async def _connect(bus: CommandBus, settings: Settings) -> None:
    """Declare what we may, subscribe to our reply queue, then find the commands exchange (the
    worker declares it when we may not): until then, writes answer 503."""
    await _declare_topology_if_allowed(settings)
    await bus.start()
    for delay in backoff():
        try:
            await bus.publisher.exchange(COMMANDS_EXCHANGE_NAME)
            return
        except Exception as error:
            log.warning("commands exchange not found (%r); retrying in %.1fs", error, delay)
            await asyncio.sleep(delay)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging("gateway", settings.log_level)
    configure_tracing("gateway")  # off unless OTEL_* name an exporter (docs/observability.md)
    rate_limits = RateLimits(settings)  # counted at the edge, read by the routes (login, uploads)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        same = settings.read_database_url == settings.database_url  # no replica: read the primary
        replicas = [read_database(url, settings) for url in settings.read_database_urls]
        primary = replicas[0] if same else read_database(settings.database_url, settings)
        reads = Reads(replicas, primary, same=same, wait_s=settings.consistency_wait)
        lags = LagMonitor(reads.replica, primary, settings.max_replica_lag_s) if reads.on_standbys else None
        if lags is not None:
            lags.start()  # a standby past the bound serves no read without a token
        publisher = Publisher(settings.broker_urls, "opengovfood-gateway", timeout_s=settings.publish_timeout)
        bus = CommandBus(publisher, settings.publish_timeout)
        connecting = asyncio.create_task(_connect(bus, settings))
        await asyncio.wait({connecting}, timeout=STARTUP_WAIT_S)  # serve anyway: writes answer 503 until then
        app.state.services = Services(
            settings=settings,
            bus=bus,
            reads=reads,
            passwords=Passwords(settings.max_hashing),
            users=RecentUsers(settings.auth_cache_s),
            limits=rate_limits,
            status=StatusProbe(lags, settings.broker_urls, settings.command_partitions),
        )
        try:
            yield
        finally:
            connecting.cancel()
            await app.state.services.status.close()
            await publisher.close()
            if lags is not None:
                await lags.stop()
            await reads.close()

    app = FastAPI(title="OpenGov-Food", lifespan=lifespan, telemetry=http_telemetry())  # HTTP spans
    apidoc.install(app)
    if settings.fast_path:
        app.add_middleware(HotRoutes)  # the routes that carry the load, behind the edge
    app.add_middleware(Edge, settings=settings, rate_limits=rate_limits)  # 431 / 413 / 429 before any route
    problems.install(app)
    api = APIRouter(prefix="/api/v1")
    for module in (login, users, items, commands, imports, activity):
        api.include_router(module.router)
    app.include_router(api)
    app.include_router(health.router)
    app.include_router(docs.router)
    app.include_router(metrics.router)
    return app


def openapi_json() -> str:
    """The OpenAPI document as written to docs/openapi.json."""
    return json.dumps(create_app().openapi(), indent=2) + "\n"


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs")
    out.mkdir(parents=True, exist_ok=True)
    (out / "openapi.json").write_text(openapi_json(), encoding="utf-8")


if __name__ == "__main__":
    main()
