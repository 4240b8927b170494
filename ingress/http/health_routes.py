"""Operations routes: models, health (with the ZMQ door's counters), readiness, liveness, stats.

`/live` and `/ready` answer without a key (orchestrator probes); the others need any valid key (they
hold no user's data)."""

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ingress.http.access import ANY_CALLER
from ingress.http.api import GatewayDep, PipelineDep
from serve_app.errors import as_service_error

router = APIRouter(tags=["operations"])


@router.get("/models", dependencies=[ANY_CALLER])
async def models(pipeline: PipelineDep) -> dict[str, Any]:
    health = await pipeline.health()
    return {"models": health["components"]}


@router.get("/health", dependencies=[ANY_CALLER])
async def health(pipeline: PipelineDep, gateway: GatewayDep) -> dict[str, Any]:
    health = await pipeline.health()
    stats = await pipeline.stats()
    health.update(cache=stats["cache"], profiles=stats["profiles"])  # readiness stays the fresh one
    if gateway is not None:
        try:
            health["components"]["zmq_ingress"] = {"status": "ready", **await gateway.stats.remote()}
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            health["components"]["zmq_ingress"] = {"status": "unavailable", "error": as_service_error(exc).message}
    return health


@router.get("/ready")
async def ready(pipeline: PipelineDep) -> JSONResponse:
    health = await pipeline.health()
    return JSONResponse(status_code=200 if health["ready"] else 503, content=health)


@router.get("/live")
async def live() -> dict[str, str]:
    return {"status": "alive"}


@router.get("/stats", dependencies=[ANY_CALLER])
async def stats(pipeline: PipelineDep) -> dict[str, Any]:
    """Cache hits/misses/hit rate and the profile store's state."""
    return await pipeline.stats()
