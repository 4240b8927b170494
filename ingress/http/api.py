"""The FastAPI application of the HTTP door, its error handlers, and what routes depend on.

Routes are plain functions on one APIRouter per area (`*_routes.py`), included here; they reach the
pipeline, the settings and the ZMQ door through dependencies that read the Serve replica's ingress
object (`HttpIngress`), so a test can override them and run the routes without Ray. Every error is
JSON `{error, errorCode}` with its status.
"""

import logging
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from ray import serve
from ray.serve.handle import DeploymentHandle

from ingress.http.rendering import error_response
from serve_app.errors import ServiceError, as_service_error
from serve_app.pipeline.voice_pipeline import VoicePipeline
from serve_app.settings import Settings

log = logging.getLogger(__name__)

app = FastAPI(
    title="Voice translation service",
    version="0.1.0",
    description="Speech and text translation for chat: Whisper -> NLLB -> TTS -> voice cloning, on Ray Serve.",
)


@app.exception_handler(ServiceError)
async def _service_error(_: Request, exc: ServiceError) -> JSONResponse:
    return error_response(exc)


@app.exception_handler(Exception)
async def _any_error(_: Request, exc: Exception) -> JSONResponse:
    err = as_service_error(exc)
    if err.status >= 500:
        log.exception("request failed", exc_info=exc)
    return error_response(err)


def ingress_object() -> Any:
    """The `HttpIngress` instance serving this request (it holds the pipeline client and settings)."""
    return serve.get_replica_context().servable_object


def get_pipeline(ingress: Annotated[Any, Depends(ingress_object)]) -> VoicePipeline:
    return ingress.pipeline


def get_settings(ingress: Annotated[Any, Depends(ingress_object)]) -> Settings:
    return ingress.settings


def get_gateway(ingress: Annotated[Any, Depends(ingress_object)]) -> DeploymentHandle | None:
    return ingress.gateway


PipelineDep = Annotated[VoicePipeline, Depends(get_pipeline)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
GatewayDep = Annotated[DeploymentHandle | None, Depends(get_gateway)]
