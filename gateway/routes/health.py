"""Liveness, readiness (what the gateway itself needs) and the status of the whole system."""

from typing import Any

from fastapi import APIRouter, Response
from sqlalchemy import text

from gateway.deps import ServicesDep
from gateway.schemas import Liveness, Readiness, SystemStatus

router = APIRouter(prefix="/health", tags=["health"])
EXPECTED_TABLES = ("user", "item", "command")


@router.get("/live", operation_id="health-live")
async def live() -> Liveness:
    """The process is up."""
    return Liveness()


async def _has_tables(factory: Any) -> bool:
    try:
        async with factory() as session:
            for table in EXPECTED_TABLES:
                await session.execute(text(f'SELECT 1 FROM "{table}" LIMIT 1'))
        return True
    except Exception:
        return False


@router.get(
    "/ready",
    operation_id="health-ready",
    responses={503: {"model": Readiness, "description": "The broker, the replica or the primary is unreachable"}},
)
async def ready(services: ServicesDep, response: Response) -> Readiness:
    """503 only when the broker, the replica or the primary (for fallbacks) is unreachable.

    A stopped worker does not make the gateway unready: commands wait safely in their queues.
    """
    checks = {
        "broker": services.bus.publisher.is_connected,
        "replica": await _has_tables(services.reads.replica),
        "primary": await _has_tables(services.reads.primary),
    }
    healthy = all(checks.values())
    response.status_code = 200 if healthy else 503
    lag = None
    if healthy:
        try:
            lag = await services.status.replica_lag()
        except Exception:
            lag = None
    return Readiness(status="ok" if healthy else "unavailable", checks=checks, replica_lag=lag)


@router.get("/status", operation_id="health-status")
async def status(services: ServicesDep) -> SystemStatus:
    """The whole system: replica lag, queue depth and consumers, dead letters; `degraded` or `ok`."""
    return SystemStatus.model_validate(await services.status.report())
