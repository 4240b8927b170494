"""The FastAPI application of the HTTP door, built once per replica for its `HttpDoor`.

Built per replica rather than at import because what wraps the routes depends on the replica's
settings: the CORS origins, the body cap, the key ring. Every error is JSON
`{error, errorCode, requestId}` with its status; FastAPI's own 404/405/422 keep their `detail` and
gain the same three fields. Under `/v1` (the OpenAI-compatible routes) every error is OpenAI's
`{"error": {"message", "type", "param", "code"}}` instead, which the SDKs parse.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware

from ingress.http import health_routes, profile_routes, text_routes, voice_routes
from ingress.http.door import HttpDoor
from ingress.http.middleware import (
    AuthenticationMiddleware,
    BodySizeLimitMiddleware,
    RequestIdMiddleware,
    request_id_of,
    route_path,
    serve_request_id,
)
from ingress.http.openai import routes as openai_routes
from ingress.http.rendering import error_response, is_openai_path, openai_error_body
from serve_app.errors import ServiceError, as_service_error

log = logging.getLogger(__name__)

CORS_METHODS = ["GET", "POST", "PUT", "DELETE"]
CORS_HEADERS = ["Authorization", "X-API-Key", "Content-Type"]
CORS_EXPOSED = ["X-Request-ID", "Retry-After", "X-Duration-Ms", "X-TTS-Backend"]
HTTP_ERROR_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


def create_app(door: HttpDoor) -> FastAPI:
    app = FastAPI(
        title="Voice translation service",
        version="0.1.0",
        description="Speech and text translation for chat: Whisper -> NLLB -> TTS -> voice cloning, on Ray Serve. "
        "Every route but /live and /ready needs `Authorization: Bearer <key>` (or `X-API-Key`) when keys are on.",
    )
    app.state.door = door
    for area in (text_routes, voice_routes, profile_routes, health_routes, openai_routes):
        app.include_router(area.router)
    _add_error_handlers(app)
    # Added innermost first: a request meets the request id, then CORS (so refusals below carry
    # CORS headers a browser can read, and preflights need no key), then the body cap, then the key.
    app.add_middleware(AuthenticationMiddleware, keyring=door.keyring)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=door.settings.max_http_body_bytes)
    if door.settings.cors_allowed_origins:  # none configured: no CORS headers at all
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(door.settings.cors_allowed_origins),
            allow_methods=CORS_METHODS,
            allow_headers=CORS_HEADERS,
            expose_headers=CORS_EXPOSED,
        )
    app.add_middleware(RequestIdMiddleware)
    return app


def _openai(request: Request) -> bool:
    return is_openai_path(route_path(request.scope))


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError) -> JSONResponse:
        rid = request_id_of(request.scope)
        if exc.status >= 500:
            log.error("request %s failed: %s %s", rid, exc.code, exc.message)
        return error_response(exc, rid, openai=_openai(request))

    @app.exception_handler(Exception)
    async def _any_error(request: Request, exc: Exception) -> JSONResponse:
        rid = request_id_of(request.scope)
        err = as_service_error(exc)
        if err.status >= 500:  # an unexpected exception's traceback is logged once, by as_service_error
            log.error("request %s failed: %s %s (ref %s)", rid, err.status, err.code, err.error_id)
        response = error_response(err, rid, openai=_openai(request))
        if serve_request_id() is None:  # answered outside every middleware; under Serve the proxy adds it
            response.headers["X-Request-ID"] = rid
        return response

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        rid = request_id_of(request.scope)
        if _openai(request):
            code = HTTP_ERROR_CODES.get(exc.status_code, "invalid_request")
            return JSONResponse(status_code=exc.status_code, headers=exc.headers,
                                content=openai_error_body(str(exc.detail), exc.status_code, code))
        body = {"detail": exc.detail, "error": str(exc.detail), "requestId": rid,
                "errorCode": HTTP_ERROR_CODES.get(exc.status_code, "invalid_request")}
        return JSONResponse(status_code=exc.status_code, content=body, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        rid = request_id_of(request.scope)
        errors = exc.errors()
        first = errors[0] if errors else {}
        where = ".".join(str(part) for part in first.get("loc", ()))
        if _openai(request):
            param = str(first.get("loc", ("",))[-1]) if first.get("loc") else None
            return JSONResponse(status_code=400, content=openai_error_body(
                f"invalid request: {where} {first.get('msg', '')}".strip(), 400, "invalid_request", param))
        body = {"detail": jsonable_encoder(errors), "error": f"invalid request: {where} {first.get('msg', '')}".strip(),
                "errorCode": "invalid_request", "requestId": rid}
        return JSONResponse(status_code=422, content=body)
