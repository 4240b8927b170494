"""The HTTP door as a Serve deployment: the replica is an `HttpDoor` over the Pipeline's handle, and
Serve asks it for its FastAPI app once it is constructed (`__serve_build_asgi_app__`).

No pipeline logic here: each route validates into the shared models, calls the pipeline through
`ingress.pipeline_client`, and renders. The app is built per replica, after the constructor, because
its middleware (CORS origins, body cap, key ring) comes from the replica's settings; a replica that
requires keys and has none fails in the constructor, so the deploy fails with the fix in the message.
"""

from typing import Any

from fastapi import FastAPI
from ray import serve
from ray.serve import metrics as serve_metrics
from ray.serve.handle import DeploymentHandle

from ingress.http.app import create_app
from ingress.http.door import HttpDoor
from ingress.pipeline_client import pipeline_client
from serve_app.observability.metrics import install_module_metrics
from serve_app.settings import replica_settings


@serve.deployment(name="HttpIngress")
@serve.ingress()
class HttpIngress(HttpDoor):
    def __init__(
        self,
        pipeline: DeploymentHandle,
        settings_overrides: dict[str, Any] | None = None,
        gateway: DeploymentHandle | None = None,
    ) -> None:
        settings = replica_settings(settings_overrides)
        install_module_metrics(serve_metrics)
        super().__init__(pipeline_client(pipeline), settings, gateway)

    def __serve_build_asgi_app__(self) -> FastAPI:
        return create_app(self)
