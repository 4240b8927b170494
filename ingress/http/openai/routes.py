"""The OpenAI-compatible routes under `/v1` (same fields and shapes as OpenAI's audio API, so the
official SDKs and OpenAI's curl examples work unchanged), plus `/v1/audio/voice-translations`.

Routes only parse the form or body, call one pipeline method and hand the result to a `serving_*`
renderer. Errors on these paths are OpenAI's `{"error": {...}}` (`ingress.http.app` chooses by path).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

from ingress.http.access import ANY_CALLER, Sender, SpeechVoice
from ingress.http.api import PipelineDep, SettingsDep
from ingress.http.openai import serving_models, serving_speech, serving_transcription
from ingress.http.openai.protocol import (
    ModelCard,
    ModelList,
    TranscriptionFormat,
    TranscriptionJson,
    TranslationFormat,
    VerboseTranscription,
    VoiceMessageFormat,
)
from ingress.http.openai.serving_voice_translation import FORMATS, voice_translation_events
from ingress.http.uploads import read_upload, voice_job_from_form
from serve_app.domain.transcription import TranscribeOptions
from serve_app.errors import InvalidRequestError, NotFoundError, ServiceError

router = APIRouter(prefix="/v1", tags=["openai"])
AUDIO_DOC = "The audio file (mp3, mp4/m4a, ogg/opus, webm, wav, flac: anything PyAV decodes)"
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _options(prompt: str | None, temperature: float | None, words: bool) -> TranscribeOptions:
    try:
        return TranscribeOptions(prompt=prompt or None, temperature=temperature, word_timestamps=words)
    except ValueError as exc:
        raise InvalidRequestError(f"invalid transcription options: {exc}") from exc


@router.post("/audio/transcriptions", dependencies=[ANY_CALLER],
             responses={200: {"model": TranscriptionJson | VerboseTranscription}})
async def create_transcription(
    pipeline: PipelineDep,
    settings: SettingsDep,
    file: Annotated[UploadFile, File(description=AUDIO_DOC)],
    model: Annotated[str, Form()] = "whisper-1",
    language: Annotated[str | None, Form(description="ISO 639-1 code; default: detected")] = None,
    prompt: Annotated[str | None, Form()] = None,
    response_format: Annotated[TranscriptionFormat, Form()] = "json",
    temperature: Annotated[float | None, Form()] = None,
    timestamp_granularities: Annotated[list[str] | None, Form(alias="timestamp_granularities[]")] = None,
    stream: Annotated[bool, Form()] = False,
) -> Response:
    """`stream=true`: server-sent `transcript.text.delta` events, then `transcript.text.done`."""
    granularities = [g for g in timestamp_granularities or [] if g]
    if unknown := set(granularities) - {"segment", "word"}:
        raise InvalidRequestError(f"unknown timestamp_granularities: {sorted(unknown)}")
    words = response_format == "verbose_json" and "word" in granularities
    transcription = await pipeline.transcribe(
        await read_upload(file, settings.max_audio_bytes), language, None, None, _options(prompt, temperature, words)
    )
    if stream:
        return StreamingResponse(serving_transcription.transcript_events(transcription),
                                 media_type="text/event-stream", headers=SSE_HEADERS)
    return serving_transcription.render(transcription, response_format, granularities)


@router.post("/audio/translations", dependencies=[ANY_CALLER],
             responses={200: {"model": TranscriptionJson | VerboseTranscription}})
async def create_translation(
    pipeline: PipelineDep,
    settings: SettingsDep,
    file: Annotated[UploadFile, File(description=AUDIO_DOC)],
    model: Annotated[str, Form()] = "whisper-1",
    prompt: Annotated[str | None, Form()] = None,
    response_format: Annotated[TranslationFormat, Form()] = "json",
    temperature: Annotated[float | None, Form()] = None,
    target_language: Annotated[str, Form(description="Extension: translate into this language instead of "
                                                     "English (ISO 639-1)")] = "en",
) -> Response:
    """Speech in any language to English text, as OpenAI does; `target_language` (an extension) picks
    another language."""
    transcription, translated = await pipeline.translate_speech(
        await read_upload(file, settings.max_audio_bytes), target_language, _options(prompt, temperature, False)
    )
    if translated.error:
        status = 400 if translated.error_code in ("unsupported_language", "invalid_request") else 502
        raise ServiceError(translated.error, code=translated.error_code or "translation_failed", status=status)
    if response_format == "text":
        return PlainTextResponse(translated.translated_text + "\n")
    if response_format == "verbose_json":
        body = VerboseTranscription(task="translate", language=translated.target_language,
                                    duration=transcription.durationMs / 1000, text=translated.translated_text)
        return JSONResponse(body.model_dump(exclude_none=True))
    return JSONResponse(TranscriptionJson(text=translated.translated_text).model_dump())


@router.post("/audio/speech", response_class=Response,
             responses={200: {"content": {"audio/mpeg": {}, "text/event-stream": {}}}})
async def create_speech(pipeline: PipelineDep, order: SpeechVoice) -> Response:
    """Audio in the chosen format, streamed as sentences are spoken; `stream_format=sse` sends
    `speech.audio.delta` events (base64 audio, one sentence each) and `speech.audio.done`. A `voice`
    that is not a built-in name is a user id: the speech is converted toward that user's voice profile
    (a `user` key may only name its own user)."""
    req = order.request
    clips = aiter(pipeline.speak_sentences(req.input, req.language, req.voice_user_id, req.speed))
    first = await anext(clips)  # input errors (empty text, unknown language, no profile) answer 4xx here
    if req.stream_format == "sse":
        return StreamingResponse(serving_speech.speech_events(first, clips, req.response_format, req.input),
                                 media_type="text/event-stream", headers=SSE_HEADERS)
    return StreamingResponse(serving_speech.audio_chunks(first, clips, req.response_format),
                             media_type=serving_speech.media_type(req.response_format))


@router.get("/models", response_model=ModelList, dependencies=[ANY_CALLER])
async def list_models(pipeline: PipelineDep) -> ModelList:
    return serving_models.model_list(await pipeline.health())


@router.get("/models/{model_id}", response_model=ModelCard, dependencies=[ANY_CALLER])
async def retrieve_model(pipeline: PipelineDep, model_id: str) -> ModelCard:
    for card in serving_models.model_list(await pipeline.health()).data:
        if card.id == model_id:
            return card
    raise NotFoundError(f"the model {model_id!r} does not exist", code="model_not_found")


@router.post("/audio/voice-translations", response_class=StreamingResponse)
async def create_voice_translation(
    pipeline: PipelineDep,
    settings: SettingsDep,
    sender: Sender,
    file: Annotated[UploadFile, File(description=AUDIO_DOC)],
    target_languages: Annotated[str, Form(description="Comma-separated ISO 639-1 codes, e.g. en,es")],
    language: Annotated[str | None, Form(description="The message's language; default: detected")] = None,
    response_format: Annotated[VoiceMessageFormat, Form()] = "mp3",
    model: Annotated[str, Form()] = "voice-translator",
) -> StreamingResponse:
    """Beyond OpenAI: a voice message in, one translated voice message per target language out, in the
    sender's voice (`user_id`: their profile is reused, created or improved), streamed as server-sent
    events as each language is ready (the `/api/v1/voice/translate/stream` pipeline)."""
    job = await voice_job_from_form(file, settings.max_audio_bytes, target_languages, language, True,
                                    sender.user_id, FORMATS[response_format], None)
    events = aiter(pipeline.process_voice(job))
    first = await anext(events)  # bad audio or languages answer 4xx before the stream starts
    return StreamingResponse(voice_translation_events(first, events), media_type="text/event-stream",
                             headers=SSE_HEADERS)
