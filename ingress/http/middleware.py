"""The HTTP door's trust boundary as plain ASGI middleware: what must happen before FastAPI reads a body.

FastAPI reads (and python-multipart spools to disk) a request's body before it solves a route's
dependencies, so a dependency is too late to refuse an oversized upload or a caller without a key.
These run first, on the raw ASGI messages: a request id for every response, the body-size cap
(declared `Content-Length` and counted chunks), and the API key. Each refusal is the door's usual
JSON error, with its request id.
"""

from __future__ import annotations

import uuid

from ray.serve.context import _get_serve_request_context
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ingress.http.rendering import error_response, is_openai_path
from serve_app.errors import AuthenticationError, PayloadTooLargeError, ServiceError
from serve_app.security.keys import KeyRing, Principal, bearer_key

REQUEST_ID_KEY = "voice_translator.request_id"
PRINCIPAL_KEY = "voice_translator.principal"
# Probes of the orchestrator (and the integration tests' readiness wait) carry no key.
PUBLIC_ROUTES = frozenset({("GET", "/live"), ("GET", "/ready"), ("HEAD", "/live"), ("HEAD", "/ready")})


def serve_request_id() -> str | None:
    """The id Serve's proxy gave this request (and returns as `X-Request-ID` itself); None outside Serve."""
    try:
        return _get_serve_request_context().request_id or None
    except Exception:  # noqa: BLE001 - no Serve context is the plain "not under Serve" case
        return None


def request_id_of(scope: Scope) -> str:
    """This request's id, as `RequestIdMiddleware` fixed it (a fresh one if it never ran)."""
    rid = scope.get(REQUEST_ID_KEY)
    if not rid:
        rid = scope[REQUEST_ID_KEY] = serve_request_id() or uuid.uuid4().hex
    return rid


def route_path(scope: Scope) -> str:
    """The path the router matches (Starlette's rule: the mount's root_path taken off)."""
    path, root = scope["path"], scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root):len(root) + 1] in ("", "/"):
        return path[len(root):]
    return path


async def refuse(scope: Scope, receive: Receive, send: Send, exc: ServiceError) -> None:
    await error_response(exc, request_id_of(scope), openai=is_openai_path(route_path(scope)))(scope, receive, send)


class RequestIdMiddleware:
    """Fixes the request id (Serve's, else a uuid4) before anything can fail, so every error body, the
    5xx log line and the `X-Request-ID` header agree. Under Serve the proxy sets that header on every
    response already; adding it here too would send it twice, so it is added only outside Serve."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from_serve = serve_request_id()
        rid = scope[REQUEST_ID_KEY] = from_serve or uuid.uuid4().hex
        if from_serve:
            await self.app(scope, receive, send)
            return

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)["X-Request-ID"] = rid
            await send(message)

        await self.app(scope, receive, send_with_id)


class _BodyTooLarge(Exception):
    """Raised into whoever is reading the body; the middleware answers 413 instead of their error."""


class BodySizeLimitMiddleware:
    """Refuses a body over `max_bytes` before it is spooled: at once on a declared `Content-Length`,
    and for a chunked body as soon as the counted bytes pass the cap (whatever the reader then
    makes of the aborted read, the answer is 413 `payload_too_large`)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = PayloadTooLargeError(f"request body exceeds {self.max_bytes} bytes")
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > self.max_bytes:
            await refuse(scope, receive, send, too_large)
            return
        received = 0
        over = started = False

        async def counted_receive() -> Message:
            nonlocal received, over
            if over:
                raise _BodyTooLarge
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    over = True
                    raise _BodyTooLarge
            return message

        async def send_unless_over(message: Message) -> None:
            nonlocal started
            if over and not started:
                return  # the app's answer to the aborted read; the 413 below replaces it
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, send_unless_over)
        except Exception:
            if not over:
                raise
        if over and not started:
            await refuse(scope, receive, send, too_large)


class AuthenticationMiddleware:
    """Turns the presented key into a `Principal` (kept in the scope for the `principal` dependency)
    before the body is read: no key or an unknown one is 401 with `WWW-Authenticate: Bearer`."""

    def __init__(self, app: ASGIApp, keyring: KeyRing) -> None:
        self.app = app
        self.keyring = keyring

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (scope["method"], route_path(scope)) in PUBLIC_ROUTES:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        try:
            principal: Principal = self.keyring.authenticate(
                bearer_key(headers.get("authorization"), headers.get("x-api-key"))
            )
        except AuthenticationError as exc:
            await refuse(scope, receive, send, exc)
            return
        scope[PRINCIPAL_KEY] = principal
        await self.app(scope, receive, send)
