"""The ZMQ door as a Ray Serve deployment (name "ZmqIngress": the serve configs refer to it).

One replica, pinned (config: `num_replicas: 1`, `max_replicas_per_node: 1`, head-node resource),
so the ports never collide. `check_health` fails if the receive loop has died, so Serve replaces
the replica instead of leaving a door that no longer answers.
"""

from __future__ import annotations

from typing import Any

from ray import serve
from ray.serve.handle import DeploymentHandle

from ingress.gateway.server import build_gateway
from ingress.pipeline_client import pipeline_client
from serve_app.settings import replica_settings


@serve.deployment(name="ZmqIngress")
class ZmqIngress:
    async def __init__(self, pipeline: DeploymentHandle, settings_overrides: dict[str, Any] | None = None) -> None:
        settings = replica_settings(settings_overrides)
        self.server = build_gateway(pipeline_client(pipeline), settings)
        await self.server.start()

    async def check_health(self) -> None:
        self.server.check()

    async def stats(self) -> dict[str, Any]:
        return self.server.stats()

    async def __del__(self) -> None:
        """Serve awaits this when it stops the replica (a redeploy, a scale-down): drain, so the ports
        pass to the next replica without losing a message already taken (graceful_shutdown_timeout_s
        in the serve configs must exceed zmq_drain_timeout_s)."""
        server = getattr(self, "server", None)
        if server is not None:
            await server.drain(server.settings.zmq_drain_timeout_s)
