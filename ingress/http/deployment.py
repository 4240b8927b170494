"""The HTTP door as a Serve deployment: FastAPI behind `@serve.ingress`, one route class per API area.

No pipeline logic here: each route validates into the shared models, calls the pipeline through
`ingress.pipeline_client`, and renders. Everything the ingress class uses must be defined before
it: `serve.ingress` captures the class while this module is still executing.
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
class HttpIngress(
    text_routes.TextRoutes, voice_routes.VoiceRoutes, profile_routes.ProfileRoutes, health_routes.HealthRoutes
):
    def __init__(
        self,
        pipeline: DeploymentHandle,
        settings_overrides: dict[str, Any] | None = None,
        gateway: DeploymentHandle | None = None,
    ) -> None:
        self.pipeline = pipeline_client(pipeline)
        self.gateway = gateway
        self.settings = Settings(**(settings_overrides or {}))
