"""Gateway requests turned into the pipeline's `VoiceJob`: target languages and the voice API's audio.

Shared by voice_translate and voice_translate_async (and, for the targets, audio_process), so a
request is refused the same way whichever of them carries it.
"""

from __future__ import annotations

from ingress.gateway.audio_sources import voice_api_audio
from ingress.gateway.protocol.events import FailedLanguageWire
from ingress.gateway.protocol.requests import VoiceTranslateRequest
from serve_app.domain.voice import VoiceJob
from serve_app.errors import ServiceError, UnsupportedLanguageError
from serve_app.languages import normalize_language
from serve_app.settings import Settings


def split_targets(targets: list[str]) -> tuple[list[str], list[FailedLanguageWire]]:
    """Known languages go to the pipeline; an unknown one fails alone instead of sinking the message."""
    ok: list[str] = []
    rejected: list[FailedLanguageWire] = []
    for code in dict.fromkeys(targets):
        try:
            iso = normalize_language(code)
        except ServiceError as exc:
            rejected.append(FailedLanguageWire(targetLanguage=code, error=exc.message, errorCode=exc.code))
            continue
        if iso not in ok:
            ok.append(iso)
    return ok, rejected


async def voice_job(req: VoiceTranslateRequest, settings: Settings) -> VoiceJob:
    """Unlike audio_process, the voice API refuses the whole request for one unknown language."""
    targets, rejected = split_targets(req.targetLanguages)
    if rejected:
        raise UnsupportedLanguageError("; ".join(f.error for f in rejected))
    return VoiceJob(audio=await voice_api_audio(req, settings), target_languages=targets,
                    source_language=req.sourceLanguage, generate_voice_clone=req.generateVoiceClone,
                    user_id=req.userId, output_format=req.outputFormat)
