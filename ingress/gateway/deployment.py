"""The ZMQ door as a Ray Serve deployment (name "ZmqIngress": the serve configs refer to it).

One replica, pinned (config: `num_replicas: 1`, `max_replicas_per_node: 1`, head-node resource),
so the ports never collide. `check_health` fails if the receive loop has died, so Serve replaces
the replica instead of leaving a door that no longer answers. On shutdown it drains (`__del__`).
"""

from __future__ import annotations

from typing import Any

from ray import serve
from ray.serve import metrics as serve_metrics
from ray.serve.context import _set_request_context
from ray.serve.handle import DeploymentHandle

from ingress.gateway.server import build_gateway
from ingress.pipeline_client import pipeline_client
from serve_app.observability.logs import set_request_id_hook
from serve_app.observability.metrics import install_module_metrics
from serve_app.settings import replica_settings


def bind_serve_request_id(request_id: str) -> None:
    """The gateway's id becomes the Serve request id of the task serving the message: Serve logs it
    (`request_id`) here and copies it onto every handle call, so each replica on the path logs it too."""
    _set_request_context(request_id=request_id)


@serve.deployment(name="ZmqIngress")
class ZmqIngress:
    async def __init__(self, pipeline: DeploymentHandle, settings_overrides: dict[str, Any] | None = None) -> None:
        settings = replica_settings(settings_overrides)
        install_module_metrics(serve_metrics)
        set_request_id_hook(bind_serve_request_id)
        self.server = build_gateway(pipeline_client(pipeline), settings)
        await self.server.start()

    async def check_health(self) -> None:
        self.server.check()

    async def stats(self) -> dict[str, Any]:
        return self.server.stats()

    async def __del__(self) -> None:
        """Serve's graceful shutdown (config `graceful_shutdown_timeout_s`, above `zmq_drain_timeout_s`):
        stop pulling, free the ports for the next replica, drain what is in flight, answer the rest."""
        server = getattr(self, "server", None)
        if server is not None:
            await server.shutdown(server.settings.zmq_drain_timeout_s)
