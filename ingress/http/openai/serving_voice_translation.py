"""`/v1/audio/voice-translations` (beyond OpenAI): the voice-message pipeline's events as OpenAI-style SSE.

Events, each a `data:` line naming its `type`: `voice_translation.transcript` (text, language), one
`voice_translation.language` per target as soon as it is spoken (text, base64 audio in the sender's
cloned voice, similarity) or `voice_translation.language_failed`, then `voice_translation.done`.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

from ingress.http.rendering import openai_service_error_body, sse_data
from serve_app.domain.voice import PipelineEvent
from serve_app.errors import as_service_error

FORMATS = {"mp3": "mp3", "opus": "ogg", "wav": "wav"}  # OpenAI's name -> the voice flow's


def event_payload(event: PipelineEvent) -> dict[str, Any] | None:
    if event.kind == "transcription" and event.transcription is not None:
        t = event.transcription
        return {"type": "voice_translation.transcript", "text": t.text, "language": t.language,
                "duration": t.durationMs / 1000}
    if event.kind == "language" and event.language is not None:
        lang = event.language
        return {"type": "voice_translation.language", "language": lang.target_language, "text": lang.translated_text,
                "audio": base64.b64encode(lang.audio).decode(), "audio_mime_type": lang.audio_mime_type,
                "duration": lang.duration_ms / 1000, "voice_cloned": lang.voice_cloned,
                "voice_similarity": lang.voice_similarity, "base_voice_similarity": lang.base_voice_similarity}
    if event.kind == "language_failed" and event.failure is not None:
        return {"type": "voice_translation.language_failed", "language": event.failure.target_language,
                "error": {"message": event.failure.error, "code": event.failure.error_code}}
    if event.kind == "completed" and event.result is not None:
        r = event.result
        return {"type": "voice_translation.done", "languages": [x.target_language for x in r.translations],
                "failed_languages": [f.target_language for f in r.failed], "voice_cloned": r.voice_cloned,
                "processing_time_ms": r.processing_time_ms}
    return None


async def voice_translation_events(first: PipelineEvent, rest: AsyncIterator[PipelineEvent]) -> AsyncIterator[str]:
    event: PipelineEvent | None = first
    try:
        while event is not None:
            payload = event_payload(event)
            if payload is not None:
                yield sse_data(payload)
            event = await anext(rest, None)
    except Exception as exc:  # noqa: BLE001 - a stream reports its own failure, in OpenAI's error shape
        yield sse_data(openai_service_error_body(as_service_error(exc)))
