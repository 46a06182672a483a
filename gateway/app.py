"""The gateway application: create_app() wires broker, databases and routes in the lifespan."""

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator

from aiormq.exceptions import ChannelAccessRefused
from fastapi import APIRouter, FastAPI
from fastapi.exceptions import RequestValidationError
from faststream import AckPolicy
from faststream.rabbit import Channel, RabbitBroker, RabbitExchange, RabbitQueue
from starlette.exceptions import HTTPException

from gateway.bus import CommandBus
from gateway.consistency import ConsistencyHeaders, Reads
from gateway.deps import Services
from gateway.limits import EdgeLimits, RateLimits
from gateway.metrics import broker_middleware, instrument
from gateway.problems import http_exception_handler, validation_exception_handler
from gateway.recent_users import RecentUsers
from gateway.routes import activity, commands, docs, health, imports, items, login, users
from gateway.security import Passwords
from gateway.status import StatusProbe
from shared.contracts.outcomes import Outcome
from shared.db import create_engine
from shared.logging import configure_logging
from shared.settings import Settings, get_settings
from shared.topology import COMMANDS_EXCHANGE, declare_topology

log = logging.getLogger("gateway")


def _reply_subscriber(broker: RabbitBroker, bus_holder: list[CommandBus]) -> str:
    """This process's own reply queue: the worker sends each outcome where the command said."""
    name = f"opengovfood.replies.{uuid.uuid4().hex}"

    @broker.subscriber(
        RabbitQueue(name, exclusive=True, auto_delete=True, durable=False),
        ack_policy=AckPolicy.ACK_FIRST,
    )
    async def on_outcome(outcome: Outcome) -> None:
        bus_holder[0].resolve(outcome)

    return name


async def _declare_topology_if_allowed(settings: Settings) -> None:
    """Declare the topology, unless our bus user may only publish (production: the worker declares it)."""
    try:
        await declare_topology(settings.rabbit_url, settings.command_partitions, settings.command_delivery_limit)
    except ChannelAccessRefused:
        log.info("bus user may not declare the topology; relying on the worker's (least privilege)")


STARTUP_WAIT_S = 10.0


async def _connect_when_possible(broker: RabbitBroker, settings: Settings) -> None:
    """Connect to the broker, retrying with capped backoff: the gateway starts even while it is down."""
    delay = 0.5
    while True:
        try:
            await _declare_topology_if_allowed(settings)
            await broker.start()
            break
        except Exception as error:
            log.warning("broker unavailable (%r); retrying in %.1fs", error, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
    await _publish_without_declaring(broker)


# Equal (for FastStream's declarer cache) to COMMANDS_EXCHANGE, but declared passively.
PASSIVE_COMMANDS_EXCHANGE = RabbitExchange(
    COMMANDS_EXCHANGE.name, type=COMMANDS_EXCHANGE.type, durable=COMMANDS_EXCHANGE.durable, declare=False
)


async def _publish_without_declaring(broker: RabbitBroker) -> None:
    """Look the commands exchange up passively once: publishing then needs no configure permission."""
    delay = 0.5
    while True:
        try:
            await broker.declare_exchange(PASSIVE_COMMANDS_EXCHANGE)
            return
        except Exception as error:  # not declared yet: the worker declares it
            log.warning("commands exchange not found (%r); retrying in %.1fs", error, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging("gateway")
    broker = RabbitBroker(
        settings.rabbit_url,
        default_channel=Channel(on_return_raises=True),
        logger=log,
        middlewares=[broker_middleware()],
    )
    bus_holder: list[CommandBus] = []
    reply_queue = _reply_subscriber(broker, bus_holder)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        replica = create_engine(settings.read_database_url, settings, reads=True)
        primary = create_engine(settings.database_url, settings, read_only=True, reads=True)
        bus = CommandBus(broker, reply_queue, settings.rabbit_url, settings.publish_timeout)
        bus_holder.append(bus)
        connecting = asyncio.create_task(_connect_when_possible(broker, settings))
        await asyncio.wait({connecting}, timeout=STARTUP_WAIT_S)  # serve anyway: writes answer 503 until then
        app.state.services = Services(
            settings=settings,
            bus=bus,
            reads=Reads(
                replica,
                primary,
                same=settings.read_database_url == settings.database_url,
                wait_s=settings.consistency_wait,
            ),
            passwords=Passwords(settings.max_hashing),
            users=RecentUsers(settings.auth_cache_s),
            status=StatusProbe(
                replica, primary, settings.rabbit_url, settings.command_partitions, settings.max_replica_lag_s
            ),
        )
        try:
            yield
        finally:
            connecting.cancel()
            await app.state.services.status.close()
            await broker.stop()
            await replica.dispose()
            await primary.dispose()

    app = FastAPI(title="OpenGov-Food", version="1.0.0", lifespan=lifespan)
    app.add_middleware(ConsistencyHeaders)
    app.state.limits = RateLimits(settings)
    app.add_middleware(EdgeLimits, settings=settings, rate_limits=app.state.limits)  # 413 / 429 first
    app.add_exception_handler(HTTPException, http_exception_handler)
    app.add_exception_handler(RequestValidationError, validation_exception_handler)
    api = APIRouter(prefix="/api/v1")
    for module in (login, users, items, commands, imports, activity):
        api.include_router(module.router)
    app.include_router(api)
    app.include_router(health.router)
    app.include_router(docs.router)
    instrument(app)  # outermost middleware: request id, access log, metrics
    return app
