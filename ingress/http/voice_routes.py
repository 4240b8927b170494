"""Voice and audio routes: a voice message to every target language (whole, or streamed as SSE),
transcription alone, and plain TTS in the service's base voice."""

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import Response, StreamingResponse

from ingress.http.access import ANY_CALLER, Sender
from ingress.http.api import PipelineDep, SettingsDep
from ingress.http.middleware import request_id_of
from ingress.http.protocol import SpeechBody, VoiceTranslateResponse
from ingress.http.rendering import error_body, sse, sse_event, voice_response
from ingress.http.uploads import read_upload, voice_job_from_form
from serve_app.domain.transcription import Transcription
from serve_app.errors import as_service_error

router = APIRouter(tags=["voice"])


@router.post("/api/v1/voice/translate", response_model=VoiceTranslateResponse)
async def voice_translate(
    pipeline: PipelineDep,
    settings: SettingsDep,
    sender: Sender,
    audio: Annotated[UploadFile, File(description="The voice message (mp4/m4a, ogg, webm, mp3, wav, flac)")],
    target_languages: Annotated[str, Form(description="Comma-separated ISO 639-1 codes, e.g. en,es")],
    source_language: Annotated[str | None, Form()] = None,
    generate_voice_clone: Annotated[bool, Form()] = True,
    output_format: Annotated[str, Form()] = "mp3",
    mobile_transcription: Annotated[str | None, Form(description="JSON of a client-side transcription")] = None,
    attachment_id: Annotated[str | None, Form(description="Caches the transcription for retries")] = None,
) -> VoiceTranslateResponse:
    """With a sender (`user_id`, or a `user` key's own), its voice profile is reused, created or improved."""
    job = await voice_job_from_form(
        audio, settings.max_audio_bytes, target_languages, source_language, generate_voice_clone, sender.user_id,
        output_format, mobile_transcription, attachment_id,
    )
    return voice_response(await pipeline.run_voice(job))


@router.post("/api/v1/voice/translate/stream", response_class=StreamingResponse, responses={200: {
    "description": "Server-sent events; a failure after the stream has started is an `error` event.",
    "content": {"text/event-stream": {}}}})
async def voice_translate_stream(
    request: Request,
    pipeline: PipelineDep,
    settings: SettingsDep,
    sender: Sender,
    audio: Annotated[UploadFile, File()],
    target_languages: Annotated[str, Form()],
    source_language: Annotated[str | None, Form()] = None,
    generate_voice_clone: Annotated[bool, Form()] = True,
    output_format: Annotated[str, Form()] = "mp3",
    mobile_transcription: Annotated[str | None, Form()] = None,
) -> StreamingResponse:
    """Server-sent events: `transcription`, one `language` per target as each is ready, `completed`."""
    job = await voice_job_from_form(
        audio, settings.max_audio_bytes, target_languages, source_language, generate_voice_clone, sender.user_id,
        output_format, mobile_transcription,
    )
    request_id = request_id_of(request.scope)
    stream = pipeline.process_voice(job)

    async def events() -> Any:
        try:
            async for event in stream:
                yield sse_event(event)
        except Exception as exc:  # noqa: BLE001 - the stream reports its own failure
            err = as_service_error(exc)
            yield sse("error", error_body(err, request_id))

    return StreamingResponse(events(), media_type="text/event-stream")


@router.post("/api/v1/audio/transcribe", response_model=Transcription, dependencies=[ANY_CALLER])
async def transcribe(
    pipeline: PipelineDep,
    settings: SettingsDep,
    audio: Annotated[UploadFile, File()],
    language: Annotated[str | None, Form()] = None,
) -> Transcription:
    return await pipeline.transcribe(await read_upload(audio, settings.max_audio_bytes), language)


@router.post("/api/v1/tts", response_class=Response, dependencies=[ANY_CALLER])
async def tts(pipeline: PipelineDep, body: SpeechBody) -> Response:
    out = await pipeline.speak(body.text, body.language, body.format)
    return Response(
        content=out.audio,
        media_type=out.mime_type,
        headers={"X-Duration-Ms": str(out.duration_ms), "X-TTS-Backend": out.backend},
    )
