"""GET /metrics: Prometheus exposition, every gateway process's metrics in one scrape (infrastructure/metrics.py)."""

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from gateway.infrastructure.metrics import REPLICA_LAG_BYTES, REPLICA_LAG_SECONDS, exposition
from gateway.routes.checks import get_checks

router = APIRouter()


async def sample_replica_lag(request: Request) -> None:
    """Set the lag gauges from the readiness checks' cache: one query a second at most, whoever asks."""
    services = getattr(request.app.state, "services", None)
    if services is None:
        return
    lag = await get_checks(request).result("replica_lag", services.status.replica_lag)
    if lag is not None:  # unmeasured (a database away): the last sample stays
        REPLICA_LAG_BYTES.set(lag["bytes"])
        REPLICA_LAG_SECONDS.set(lag["seconds"])


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Prometheus exposition (text format)."""
    await sample_replica_lag(request)
    return Response(exposition(), media_type=CONTENT_TYPE_LATEST)
