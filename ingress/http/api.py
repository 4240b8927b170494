"""The FastAPI application of the HTTP door and its error handlers.

Route classes (one module per API area) register on `app`'s routers; `ingress.http.deployment`
binds them into the Serve deployment. Every error is JSON `{error, errorCode}` with its status.
"""

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from ingress.http.rendering import error_response
from serve_app.errors import ServiceError, as_service_error

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
