"""Structured-log context: which gateway request (taskId, messageId) or HTTP request a log line belongs to.

Inside a Serve replica, Serve's own logger (`ray.serve`) writes the replica's log file in the
encoding of the config's `logging_config` (JSON in both serve configs), adding `request_id`,
deployment and replica to every record. `configure_replica_logging` makes the service's loggers
write through those same handlers, so our lines land in the replica's file, as JSON, with the
request id; outside Serve (scripts, unit tests) it falls back to plain text on stderr.

Across replicas the thread is Serve's `request_id`: Serve copies the caller's onto every handle call.
The HTTP door's is the proxy's (the `X-Request-ID` the client sees); the ZMQ door has no Serve request,
so it binds the gateway's id (taskId, else request_id/messageId/...) as the request id of the task that
serves the message (`bind_gateway_request`), through a hook the ZMQ deployment installs, and every
replica on the request's path logs it. On the ZMQ door's own lines `RequestContextFilter` also adds
`taskId` and `messageId`.

What never goes in a log: audio, embeddings, keys, full URLs (`security.outbound.redact_url`).
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable, Mapping
from typing import Any

SERVE_LOGGER = "ray.serve"
APP_LOGGERS = ("serve_app", "deployments", "ingress")
PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
GATEWAY_ID_KEYS = ("taskId", "request_id", "messageId", "jobId", "attachmentId", "postId")
MAX_ID_CHARS = 128

_gateway_ids: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "voice_translator_gateway_ids", default=None)
_request_id_hook: Callable[[str], None] | None = None


def gateway_request_id(raw: Mapping[str, Any]) -> str | None:
    """The id a gateway request is known by: its taskId, else the first other id it carries."""
    for key in GATEWAY_ID_KEYS:
        value = raw.get(key)
        if isinstance(value, str) and 0 < len(value) <= MAX_ID_CHARS:
            return value
    return None


def set_request_id_hook(hook: Callable[[str], None] | None) -> None:
    """How this process makes an id the request id of the current task (the ZMQ deployment installs
    one that sets Serve's request context, so handle calls carry it to the next replicas)."""
    global _request_id_hook
    _request_id_hook = hook


def bind_gateway_request(raw: Mapping[str, Any]) -> None:
    """Call at the start of the task serving one gateway message: its ids go on every log line the
    task writes, and (through the hook) on every replica it calls."""
    ids = {key: raw[key] for key in ("taskId", "messageId")
           if isinstance(raw.get(key), str) and 0 < len(raw[key]) <= MAX_ID_CHARS}
    _gateway_ids.set(ids)
    request_id = gateway_request_id(raw)
    if request_id and _request_id_hook is not None:
        try:
            _request_id_hook(request_id)
        except Exception as exc:  # noqa: BLE001 - logging context must never fail a request
            logging.getLogger(__name__).debug("request id not bound: %s", exc)


def current_gateway_ids() -> dict[str, str]:
    return dict(_gateway_ids.get() or {})


class RequestContextFilter(logging.Filter):
    """Adds `taskId` / `messageId` of the gateway message being served (when there is one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in (_gateway_ids.get() or {}).items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


def configure_replica_logging(level: int = logging.INFO) -> None:
    """Route the service's loggers through Serve's replica handlers when Serve has configured them
    (its `logging_config`: encoding, level, file), else log plain text on stderr. Idempotent."""
    serve_logger = logging.getLogger(SERVE_LOGGER)
    if not serve_logger.handlers:
        logging.basicConfig(level=level, format=PLAIN_FORMAT)
        return
    for handler in serve_logger.handlers:
        if not any(isinstance(f, RequestContextFilter) for f in handler.filters):
            handler.addFilter(RequestContextFilter())
    for name in APP_LOGGERS:
        app_logger = logging.getLogger(name)
        app_logger.handlers = list(serve_logger.handlers)
        app_logger.setLevel(serve_logger.level or level)
        app_logger.propagate = False
