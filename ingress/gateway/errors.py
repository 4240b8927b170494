"""Every failure becomes the error event the gateway expects for that type, with the ids it sent.

The renderers read the raw frame 0, not a validated model: a request that failed validation, or
was refused as busy before anyone validated it, must still be answered with whatever ids it has.
Each route names its renderer (`router.Route.errors`); an unknown type gets `generic_errors`.

Since that frame is unvalidated, an id is echoed only when it is well-formed (`wire_id`, the same rule
as the request models): events go out under ids the service validated or generated, never under
whatever a peer wrote. A burst of errors is bounded too: one event per distinct target language up
to `max_target_languages`, a single one beyond.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

from pydantic import ConfigDict, ValidationError

from ingress.gateway.protocol.events import (
    AudioProcessError,
    GatewayEvent,
    GenericError,
    TranscriptionErrorEvent,
    TranslationErrorEvent,
    VoiceApiError,
    VoiceProfileErrorEvent,
)
from ingress.gateway.protocol.requests import ID_CHARS, MAX_ID_CHARS
from serve_app.errors import (
    BusyError,
    InvalidRequestError,
    NotFoundError,
    RateLimitedError,
    ServiceError,
    StageTimeoutError,
)

ErrorEvents = Callable[[dict[str, Any], ServiceError], list[GatewayEvent]]

AUDIO_ERROR_CODES = {
    "pipeline_unavailable", "processing_failed", "transcription_failed", "translation_failed", "tts_failed",
    "voice_clone_failed", "invalid_request", "busy", "rate_limited",
}
_WIRE_ID = re.compile(rf"[{ID_CHARS}]{{1,{MAX_ID_CHARS}}}")
_KIND = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_LANGUAGE = re.compile(r"[A-Za-z0-9_-]{1,32}")


class ExtendedEvent(GatewayEvent):
    """An event with fields its model does not declare (retryAfterMs on any error event), verbatim."""

    model_config = ConfigDict(extra="allow")


def with_fields(event: GatewayEvent, **fields: Any) -> GatewayEvent:
    return ExtendedEvent(**{**event.to_wire(), **fields})


def validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False)[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "message"
        parts.append(f"{where}: {err['msg']}")
    return "invalid request: " + "; ".join(parts)


def audio_error_code(err: ServiceError) -> str:
    """audio_process has a closed list of codes (PROTOCOL.md); anything else is processing_failed."""
    if isinstance(err, InvalidRequestError):
        return "invalid_request"
    if isinstance(err, StageTimeoutError):  # the list has no stage_timeout: the stage's own code, the
        return err.family_code  # message names the stage and the deadline
    return err.code if err.code in AUDIO_ERROR_CODES else "processing_failed"


def voice_api_error_code(err: ServiceError) -> str:
    """The voice API speaks its own four upper-case codes, not the service's."""
    if isinstance(err, BusyError | RateLimitedError):
        return "RATE_LIMITED"
    if isinstance(err, NotFoundError):
        return "NOT_FOUND"
    if isinstance(err, InvalidRequestError) or 400 <= err.status < 500:
        return "INVALID_REQUEST"
    return "INTERNAL_ERROR"


def text_field(raw: dict[str, Any], key: str) -> str | None:
    """A well-formed id under `key` (conversationId: any string up to the id length), else None."""
    value = raw.get(key)
    if not isinstance(value, str) or not value:
        return None
    if key == "conversationId":
        return value if len(value) <= MAX_ID_CHARS else None
    return value if _WIRE_ID.fullmatch(value) else None


def request_kind(raw: dict[str, Any]) -> str:
    """Missing `type` means translation (PROTOCOL.md §1); a type that is not a short name is unknown."""
    kind = raw.get("type") or "translation"
    return kind if isinstance(kind, str) and _KIND.fullmatch(kind) else "unknown"


def _targets(raw: dict[str, Any], max_targets: int) -> list[str | None]:
    targets = raw.get("targetLanguages")
    if isinstance(targets, list):
        named = list(dict.fromkeys(t for t in targets if isinstance(t, str) and _LANGUAGE.fullmatch(t)))
        if 0 < len(named) <= max_targets:
            return list(named)
    return [None]  # no usable list, or one over the cap: a single event for the whole message


def translation_errors(max_targets: int) -> ErrorEvents:
    """One per target language (the gateway tracks languages, not messages), at most `max_targets`."""

    def render(raw: dict[str, Any], err: ServiceError) -> list[GatewayEvent]:
        return [
            TranslationErrorEvent(taskId=text_field(raw, "taskId") or "",
                                  messageId=text_field(raw, "messageId") or "", error=err.message,
                                  errorCode=err.code, targetLanguage=t,
                                  conversationId=text_field(raw, "conversationId"))
            for t in _targets(raw, max_targets)
        ]

    return render


def audio_process_errors(raw: dict[str, Any], err: ServiceError) -> list[GatewayEvent]:
    # FIX (PROTOCOL.md): the gateway sends no taskId here; even a busy answer carries a generated one.
    return [AudioProcessError(taskId=text_field(raw, "taskId") or f"audio_{uuid.uuid4().hex}",
                              messageId=text_field(raw, "messageId") or "",
                              attachmentId=text_field(raw, "attachmentId") or "", error=err.message,
                              errorCode=audio_error_code(err), conversationId=text_field(raw, "conversationId"))]


def transcription_errors(raw: dict[str, Any], err: ServiceError) -> list[GatewayEvent]:
    code = "invalid_request" if isinstance(err, InvalidRequestError) else "transcription_failed"
    code = "busy" if isinstance(err, BusyError) else "rate_limited" if isinstance(err, RateLimitedError) else code
    return [TranscriptionErrorEvent(taskId=text_field(raw, "taskId") or "",
                                    messageId=text_field(raw, "messageId") or "",
                                    attachmentId=text_field(raw, "attachmentId") or "", error=err.message,
                                    errorCode=code)]


def voice_api_errors(raw: dict[str, Any], err: ServiceError) -> list[GatewayEvent]:
    return [VoiceApiError(taskId=text_field(raw, "taskId") or "", requestType=request_kind(raw), error=err.message,
                          errorCode=voice_api_error_code(err))]


def voice_profile_errors(raw: dict[str, Any], err: ServiceError) -> list[GatewayEvent]:
    return [VoiceProfileErrorEvent(request_id=text_field(raw, "request_id") or "", requestType=request_kind(raw),
                                   error=err.message, errorCode=err.code)]


def generic_errors(raw: dict[str, Any], err: ServiceError) -> list[GatewayEvent]:
    """For a type with no event of its own (or an unknown one): every id that could be read."""
    return [GenericError(requestType=request_kind(raw), taskId=text_field(raw, "taskId"),
                         messageId=text_field(raw, "messageId"), attachmentId=text_field(raw, "attachmentId"),
                         request_id=text_field(raw, "request_id"), postId=text_field(raw, "postId"),
                         error=err.message, errorCode=err.code)]
