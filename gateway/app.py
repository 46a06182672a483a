"""The gateway application: create_app() wires broker, databases and routes in the lifespan."""

import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from faststream import AckPolicy
from faststream.rabbit import Channel, RabbitBroker, RabbitQueue
from starlette.exceptions import HTTPException

from gateway.bus import CommandBus
from gateway.consistency import SERVED_BY_HEADER, TOKEN_HEADER, Reads, served_by
from gateway.deps import Services
from gateway.problems import http_exception_handler, validation_exception_handler
from gateway.routes import commands, health, items, login, users
from gateway.security import Passwords
from shared.contracts.outcomes import Outcome
from shared.db import create_engine
from shared.settings import Settings, get_settings
from shared.topology import declare_topology

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


async def consistency_headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """Echo the client's consistency token, and say which database answered the reads."""
    noted: list[str] = []
    served_by.set(noted)
    response = await call_next(request)
    token = request.headers.get(TOKEN_HEADER)
    if token and TOKEN_HEADER not in response.headers and response.status_code < 400:
        response.headers[TOKEN_HEADER] = token
    if noted:
        response.headers[SERVED_BY_HEADER] = noted[-1]
    return response


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    broker = RabbitBroker(settings.rabbit_url, default_channel=Channel(on_return_raises=True), logger=log)
    bus_holder: list[CommandBus] = []
    reply_queue = _reply_subscriber(broker, bus_holder)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        replica = create_engine(settings.read_database_url, settings)
        primary = create_engine(settings.database_url, settings, read_only=True)
        bus = CommandBus(broker, reply_queue, settings.rabbit_url, settings.publish_timeout)
        bus_holder.append(bus)
        await declare_topology(settings.rabbit_url, settings.command_partitions, settings.command_delivery_limit)
        await broker.start()
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
        )
        try:
            yield
        finally:
            await broker.stop()
            await replica.dispose()
            await primary.dispose()

    app = FastAPI(title="OpenGov-Food", version="1.0.0", lifespan=lifespan)
    app.middleware("http")(consistency_headers)
    app.add_exception_handler(HTTPException, http_exception_handler)
    app.add_exception_handler(RequestValidationError, validation_exception_handler)
    api = APIRouter(prefix="/api/v1")
    for module in (login, users, items, commands):
        api.include_router(module.router)
    app.include_router(api)
    app.include_router(health.router)
    return app
