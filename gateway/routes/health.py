"""Liveness and readiness of the gateway process."""

from fastapi import APIRouter, Response
from sqlalchemy import text

from gateway.deps import ServicesDep

router = APIRouter(prefix="/health", tags=["health"])


@router.get("/live")
async def live() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/ready")
async def ready(services: ServicesDep, response: Response) -> dict[str, object]:
    """What the gateway needs to serve: the broker and the replica (and the primary for fallbacks)."""
    checks: dict[str, bool] = {"broker": await services.bus.broker.ping(timeout=2.0)}
    for name, factory in (("replica", services.reads.replica), ("primary", services.reads.primary)):
        try:
            async with factory() as session:
                await session.execute(text("SELECT 1 FROM item LIMIT 1"))
            checks[name] = True
        except Exception:
            checks[name] = False
    healthy = all(checks.values())
    response.status_code = 200 if healthy else 503
    return {"status": "ok" if healthy else "unavailable", "checks": checks}
