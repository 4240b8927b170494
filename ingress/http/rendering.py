"""Pipeline results rendered into the HTTP door's shapes: JSON bodies, SSE events, errors (the door's own
`{error, errorCode, requestId}`, and OpenAI's shape under `/v1`)."""

from __future__ import annotations

import base64
import json
import math
from typing import Any

from fastapi.responses import JSONResponse

from ingress.http.protocol import (
    FailedLanguageOut,
    TranslateBody,
    TranslateResponse,
    TranslationOut,
    VoiceTranslateResponse,
)
from serve_app.domain.translation import TextTranslation
from serve_app.domain.voice import LanguageAudio, PipelineEvent, VoiceResult
from serve_app.errors import AuthenticationError, RateLimitedError, ServiceError, StageTimeoutError
from serve_app.json_bytes import utf8_json


class JsonResponse(JSONResponse):
    """The door's JSON responses: a lone surrogate echoed from a request goes out escaped, not as a 500."""

    def render(self, content: Any) -> bytes:
        return utf8_json(content, allow_nan=False)


# ---- OpenAI's error body, `{"error": {"message", "type", "param", "code"}}`, on the /v1 routes only ----
# The SDKs pick their exception class from the status (401 -> AuthenticationError, 429 -> RateLimitError)
# and show `message`; `code` keeps this service's own error code (e.g. `invalid_audio`).
OPENAI_PREFIX = "/v1/"


def is_openai_path(path: str) -> bool:
    return path.startswith(OPENAI_PREFIX)


def openai_error_type(status: int) -> str:
    if status == 401:
        return "invalid_request_error"  # what OpenAI itself sends with code invalid_api_key
    if status == 403:
        return "permission_error"
    if status == 404:
        return "not_found_error"
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


def openai_error_body(message: str, status: int, code: str | None, param: str | None = None) -> dict[str, Any]:
    if status == 401:
        code = "invalid_api_key"
    return {"error": {"message": message, "type": openai_error_type(status), "param": param, "code": code}}


def openai_service_error_body(exc: ServiceError) -> dict[str, Any]:
    return openai_error_body(exc.message, exc.status, exc.code)


def error_body(exc: ServiceError, request_id: str) -> dict[str, Any]:
    """`{error, errorCode, requestId}`: the id is what the caller quotes and the server log carries."""
    return {"error": exc.message, "errorCode": exc.code, "requestId": request_id}


def error_response(exc: ServiceError, request_id: str, openai: bool = False) -> JsonResponse:
    """The door's error body, or OpenAI's `{"error": {...}}` on the `/v1` routes (`openai`)."""
    headers: dict[str, str] = {}
    if isinstance(exc, AuthenticationError):
        headers["WWW-Authenticate"] = "Bearer"  # RFC 6750: how to authenticate, on every 401
    if isinstance(exc, RateLimitedError):
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s)))  # whole seconds (RFC 9110)
    body = openai_service_error_body(exc) if openai else error_body(exc, request_id)
    return JsonResponse(status_code=exc.status, content=body, headers=headers)


def translation_out(r: LanguageAudio) -> TranslationOut:
    return TranslationOut(
        **r.model_dump(include=set(TranslationOut.model_fields) - {"audio_base64"}),
        audio_base64=base64.b64encode(r.audio).decode("ascii"),
    )


def voice_response(result: VoiceResult) -> VoiceTranslateResponse:
    t = result.timings
    return VoiceTranslateResponse(
        success=bool(result.translations),
        original_text=result.transcription.text,
        original_language=result.transcription.language,
        transcription=result.transcription,
        translations=[translation_out(r) for r in result.translations],
        failed_languages=[FailedLanguageOut(**f.model_dump()) for f in result.failed],
        voice_cloned=result.voice_cloned,
        processing_time_ms=result.processing_time_ms,
        timings_ms={"decode": t.decode_ms, "transcribe": t.transcribe_ms, "embed": t.embed_ms},
        voice_profile=result.voice_profile,
        voice_profile_action=result.voice_profile_action,
    )


def translate_status(out: TextTranslation) -> int:
    """400 for what the caller asked wrong, 504 for a stage past its deadline, 500 otherwise."""
    if out.error_code in ("unsupported_language", "invalid_request"):
        return 400
    return StageTimeoutError.status if out.error_code == StageTimeoutError.code else 500


def translate_response(body: TranslateBody, out: TextTranslation) -> TranslateResponse:
    if out.error:
        raise ServiceError(out.error, code=out.error_code or "translation_failed", status=translate_status(out))
    return TranslateResponse(
        original_text=body.text,
        translated_text=out.translated_text,
        source_language=out.source_language,
        target_language=out.target_language,
        model_used=out.model,
        confidence_score=round(out.confidence, 4),
        processing_time_ms=out.processing_time_ms,
        from_cache=out.from_cache,
    )


def sse_event(event: PipelineEvent) -> str:
    payload: dict[str, Any] = {"kind": event.kind, "processing_time_ms": event.processing_time_ms}
    if event.transcription is not None:
        payload["transcription"] = event.transcription.model_dump()
    if event.language is not None:
        payload["translation"] = translation_out(event.language).model_dump()
    if event.failure is not None:
        payload["failure"] = event.failure.model_dump()
    if event.result is not None:
        payload["result"] = voice_response(event.result).model_dump(exclude={"translations"})
    return sse(event.kind, payload)


def sse(name: str, payload: dict[str, Any]) -> str:
    """One event of the door's own stream: named by an `event:` line."""
    return f"event: {name}\n" + sse_data(payload)


def sse_data(payload: dict[str, Any]) -> str:
    """One OpenAI-style server-sent event: a `data:` line whose JSON names its own `type`."""
    return f"data: {json.dumps(payload)}\n\n"
