"""The HTTP door as a Serve deployment: FastAPI behind `@serve.ingress`, one router per API area.

No pipeline logic here: each route validates into the shared models, calls the pipeline through
`ingress.pipeline_client`, and renders. Routes are plain functions with dependencies rather than
Serve's class-based views: those rewrite method signatures in the driver, and a method importable
by reference reaches the replica without the rewrite (its `self` became a required query field).
"""

from typing import Any

from ray import serve
from ray.serve.handle import DeploymentHandle

from ingress.http import health_routes, profile_routes, text_routes, voice_routes
from ingress.http.api import app
from ingress.pipeline_client import pipeline_client
from serve_app.settings import Settings

for area in (text_routes, voice_routes, profile_routes, health_routes):
    app.include_router(area.router)


@serve.deployment(name="HttpIngress")
@serve.ingress(app)
class HttpIngress:
    """What the routes depend on (`ingress.http.api`): the pipeline client, settings, the ZMQ door."""

    def __init__(
        self,
        pipeline: DeploymentHandle,
        settings_overrides: dict[str, Any] | None = None,
        gateway: DeploymentHandle | None = None,
    ) -> None:
        self.pipeline = pipeline_client(pipeline)
        self.gateway = gateway  # reported in /health
        self.settings = Settings(**(settings_overrides or {}))
