"""Pipeline results rendered into the gateway's shapes, for the families that share them.

`translated_audio` is one language in audio_process events and in voice API results alike, so the
two can never drift apart; `voice_result_json` is the voice API's `VoiceTranslationResult`, shared
by voice_translate and the async job's final event.
"""

from __future__ import annotations

import base64
import time
import uuid
from typing import Any

from ingress.gateway.protocol.events import TranslatedAudioWire
from serve_app.domain.voice import LanguageAudio, VoiceResult


def elapsed_ms(since: float) -> int:
    return int(round((time.perf_counter() - since) * 1000))


def translated_audio(r: LanguageAudio) -> TranslatedAudioWire:
    quality = r.voice_similarity if r.voice_similarity is not None else 0.0
    return TranslatedAudioWire(
        targetLanguage=r.target_language, translatedText=r.translated_text, durationMs=r.duration_ms,
        voiceCloned=r.voice_cloned, voiceQuality=round(float(quality), 4), audioMimeType=r.audio_mime_type,
    )


def voice_result_json(result: VoiceResult, user_id: str | None) -> dict[str, Any]:
    """The voice API's JSON-only result: audio travels as base64 here (no binary frames on this API)."""
    return {
        "translationId": f"vtr_{uuid.uuid4().hex[:16]}",
        "userId": user_id,
        "originalText": result.transcription.text,
        "originalLanguage": result.transcription.language,
        "transcription": result.transcription.model_dump(mode="json"),
        "translations": [
            {**translated_audio(r).model_dump(mode="json"), "audioBase64": base64.b64encode(r.audio).decode("ascii"),
             "voiceSimilarity": r.voice_similarity, "baseVoiceSimilarity": r.base_voice_similarity}
            for r in result.translations
        ],
        "failedLanguages": [
            {"targetLanguage": f.target_language, "error": f.error, "errorCode": f.error_code} for f in result.failed
        ],
        "voiceCloned": result.voice_cloned,
        "processingTimeMs": result.processing_time_ms,
    }
