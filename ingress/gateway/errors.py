"""Every failure becomes the error event the gateway expects for that type, with the ids it sent.

The renderers read the raw frame 0, not a validated model: a request that failed validation, or
was refused as busy before anyone validated it, must still be answered with whatever ids it has.
Each route names its renderer (`router.Route.errors`); an unknown type gets `generic_errors`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from ingress.gateway.protocol.events import (
    AudioProcessError,
    GatewayEvent,
    GenericError,
    TranscriptionErrorEvent,
    TranslationErrorEvent,
    VoiceApiError,
    VoiceProfileErrorEvent,
)
from serve_app.errors import BusyError, InvalidRequestError, NotFoundError, ServiceError

ErrorEvents = Callable[[dict[str, Any], ServiceError], list[GatewayEvent]]

AUDIO_ERROR_CODES = {
    "pipeline_unavailable", "processing_failed", "transcription_failed", "translation_failed", "tts_failed",
    "voice_clone_failed", "invalid_request", "busy",
}


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
    return err.code if err.code in AUDIO_ERROR_CODES else "processing_failed"


def voice_api_error_code(err: ServiceError) -> str:
    """The voice API speaks its own four upper-case codes, not the service's."""
    if isinstance(err, BusyError):
        return "RATE_LIMITED"
    if isinstance(err, NotFoundError):
        return "NOT_FOUND"
    if isinstance(err, InvalidRequestError) or 400 <= err.status < 500:
        return "INVALID_REQUEST"
    return "INTERNAL_ERROR"


def text_field(raw: dict[str, Any], key: str) -> str | None:
    value = raw.get(key)
    return value if isinstance(value, str) and value else None


def request_kind(raw: dict[str, Any]) -> str:
    """Missing `type` means translation (PROTOCOL.md §1); a type that is not a string is unknown."""
    kind = raw.get("type") or "translation"
    return kind if isinstance(kind, str) else "unknown"


def _targets(raw: dict[str, Any]) -> list[str | None]:
    targets = raw.get("targetLanguages")
    if isinstance(targets, list):
        named = [t for t in targets if isinstance(t, str) and t]
        if named:
            return list(dict.fromkeys(named))
    return [None]


def translation_errors(raw: dict[str, Any], err: ServiceError) -> list[GatewayEvent]:
    """One per target language: the gateway tracks languages, not messages."""
    return [
        TranslationErrorEvent(taskId=text_field(raw, "taskId") or "", messageId=text_field(raw, "messageId") or "",
                              error=err.message, errorCode=err.code, targetLanguage=t,
                              conversationId=text_field(raw, "conversationId"))
        for t in _targets(raw)
    ]


def audio_process_errors(raw: dict[str, Any], err: ServiceError) -> list[GatewayEvent]:
    # FIX (PROTOCOL.md): the gateway sends no taskId here; even a busy answer carries a generated one.
    return [AudioProcessError(taskId=text_field(raw, "taskId") or f"audio_{uuid.uuid4().hex}",
                              messageId=text_field(raw, "messageId") or "",
                              attachmentId=text_field(raw, "attachmentId") or "", error=err.message,
                              errorCode=audio_error_code(err), conversationId=text_field(raw, "conversationId"))]


def transcription_errors(raw: dict[str, Any], err: ServiceError) -> list[GatewayEvent]:
    code = "invalid_request" if isinstance(err, InvalidRequestError) else "transcription_failed"
    code = "busy" if isinstance(err, BusyError) else code
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
