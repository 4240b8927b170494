"""Operations routes: models, health (with the ZMQ door's counters), readiness, liveness, stats."""

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from ray.serve.handle import DeploymentHandle

from serve_app.errors import as_service_error
from serve_app.pipeline.voice_pipeline import VoicePipeline

router = APIRouter(tags=["operations"])


class HealthRoutes:
    pipeline: VoicePipeline
    gateway: DeploymentHandle | None  # the ZMQ ingress, reported in /health

    @router.get("/models")
    async def models(self) -> dict[str, Any]:
        health = await self.pipeline.health()
        return {"models": health["components"]}

    @router.get("/health")
    async def health(self) -> dict[str, Any]:
        health = await self.pipeline.health()
        stats = await self.pipeline.stats()
        health.update(cache=stats["cache"], profiles=stats["profiles"])  # readiness stays the fresh one
        if self.gateway is not None:
            try:
                health["components"]["zmq_ingress"] = {"status": "ready", **await self.gateway.stats.remote()}
            except Exception as exc:  # noqa: BLE001 - reported, not raised
                health["components"]["zmq_ingress"] = {"status": "unavailable", "error": as_service_error(exc).message}
        return health

    @router.get("/ready")
    async def ready(self) -> JSONResponse:
        health = await self.pipeline.health()
        return JSONResponse(status_code=200 if health["ready"] else 503, content=health)

    @router.get("/live")
    async def live(self) -> dict[str, str]:
        return {"status": "alive"}

    @router.get("/stats")
    async def stats(self) -> dict[str, Any]:
        """Cache hits/misses/hit rate and the profile store's state."""
        return await self.pipeline.stats()
