"""Liveness, readiness (what the gateway itself needs) and the status of the whole system."""

import asyncio

from fastapi import APIRouter, Response

from gateway.http.reports import Liveness, Readiness, SystemStatus
from gateway.infrastructure import repository
from gateway.infrastructure.services import Services
from gateway.routes.checks import CachedChecks, ChecksDep
from gateway.routes.deps import ServicesDep
from shared.reading import ReadDatabase

router = APIRouter(prefix="/health", tags=["health"])


@router.get("/live", operation_id="health-live")
async def live() -> Liveness:
    """The process is up."""
    return Liveness()


async def _has_tables(database: ReadDatabase) -> bool:
    return await database.run(repository.has_tables)


async def _ready_checks(services: Services, checks: CachedChecks) -> dict[str, bool]:
    """The broker connection (known in memory), and each database (a query, cached)."""
    replica, primary = await asyncio.gather(
        checks.result("replica", lambda: _has_tables(services.reads.replica)),
        checks.result("primary", lambda: _has_tables(services.reads.primary)),
    )
    return {"broker": services.bus.publisher.is_connected, "replica": bool(replica), "primary": bool(primary)}


@router.get(
    "/ready",
    operation_id="health-ready",
    responses={503: {"model": Readiness, "description": "The broker, the replica or the primary is unreachable"}},
)
async def ready(services: ServicesDep, checks: ChecksDep, response: Response) -> Readiness:
    """503 only when the broker, the replica or the primary (for fallbacks) is unreachable.

    A stopped worker does not make the gateway unready: commands wait safely in their queues. Each
    check is cached for a second, so probes cost the databases next to nothing.
    """
    found = await _ready_checks(services, checks)
    healthy = all(found.values())
    response.status_code = 200 if healthy else 503
    lag = await checks.result("replica_lag", services.status.replica_lag) if healthy else None
    return Readiness(status="ok" if healthy else "unavailable", checks=found, replica_lag=lag)


@router.get("/status", operation_id="health-status")
async def status(services: ServicesDep) -> SystemStatus:
    """The whole system: replica lag, queue depth and consumers, dead letters; `degraded` or `ok`."""
    return SystemStatus.model_validate(await services.status.report())
