"""HTTP ingress: FastAPI behind `@serve.ingress`, compatibility routes plus voice/audio routes.

No pipeline logic here: validate into the shared models, call the Pipeline handle, render.
"""


import base64
import json
import logging
from typing import Annotated, Any

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field, ValidationError
from ray import serve
from ray.serve.handle import DeploymentHandle

from ingress.http.protocol import DetectLanguageBody, DetectLanguageResponse, TranslateBody, TranslateResponse
from serve_app.domain.transcription import MobileTranscription, Transcription
from serve_app.domain.translation import TextTranslation
from serve_app.domain.voice import LanguageAudio, OutputFormat, PipelineEvent, VoiceJob, VoiceResult
from serve_app.errors import InvalidRequestError, PayloadTooLargeError, ServiceError, as_service_error
from serve_app.languages import SUPPORTED_LANGUAGES
from serve_app.settings import Settings

log = logging.getLogger(__name__)
MAX_BATCH = 10

app = FastAPI(
    title="Voice translation service",
    version="0.1.0",
    description="Speech and text translation for chat: Whisper -> NLLB -> TTS -> voice cloning, on Ray Serve.",
)


class TranslationOut(BaseModel):
    target_language: str
    translated_text: str
    audio_base64: str
    audio_mime_type: str
    duration_ms: int
    voice_cloned: bool
    voice_similarity: float | None = None
    base_voice_similarity: float | None = None
    tts_backend: str = ""
    timings_ms: dict[str, int] = Field(default_factory=dict)


class FailedLanguageOut(BaseModel):
    target_language: str
    error: str
    error_code: str


class VoiceTranslateResponse(BaseModel):
    success: bool
    original_text: str
    original_language: str
    transcription: Transcription
    translations: list[TranslationOut]
    failed_languages: list[FailedLanguageOut] = Field(default_factory=list)
    voice_cloned: bool
    processing_time_ms: int
    timings_ms: dict[str, int] = Field(default_factory=dict)
    voice_profile: dict[str, Any] | None = None
    voice_profile_action: str | None = None


class FingerprintCompareBody(BaseModel):
    fingerprint_a: dict[str, Any]
    fingerprint_b: dict[str, Any]


class SpeechBody(BaseModel):
    text: str = Field(min_length=1)
    language: str = Field(min_length=2)
    format: OutputFormat = "mp3"


def _error(exc: ServiceError) -> JSONResponse:
    return JSONResponse(status_code=exc.status, content={"error": exc.message, "errorCode": exc.code})


@app.exception_handler(ServiceError)
async def _service_error(_: Request, exc: ServiceError) -> JSONResponse:
    return _error(exc)


@app.exception_handler(Exception)
async def _any_error(_: Request, exc: Exception) -> JSONResponse:
    err = as_service_error(exc)
    if err.status >= 500:
        log.exception("request failed", exc_info=exc)
    return _error(err)


def _translation_out(r: LanguageAudio) -> TranslationOut:
    return TranslationOut(
        **r.model_dump(include=set(TranslationOut.model_fields) - {"audio_base64"}),
        audio_base64=base64.b64encode(r.audio).decode("ascii"),
    )


def _render_voice(result: VoiceResult) -> VoiceTranslateResponse:
    t = result.timings
    return VoiceTranslateResponse(
        success=bool(result.translations),
        original_text=result.transcription.text,
        original_language=result.transcription.language,
        transcription=result.transcription,
        translations=[_translation_out(r) for r in result.translations],
        failed_languages=[FailedLanguageOut(**f.model_dump()) for f in result.failed],
        voice_cloned=result.voice_cloned,
        processing_time_ms=result.processing_time_ms,
        timings_ms={"decode": t.decode_ms, "transcribe": t.transcribe_ms, "embed": t.embed_ms},
        voice_profile=result.voice_profile,
        voice_profile_action=result.voice_profile_action,
    )


def _as_translate_response(body: TranslateBody, out: TextTranslation) -> TranslateResponse:
    if out.error:
        raise ServiceError(out.error, code=out.error_code or "translation_failed",
                           status=400 if out.error_code in ("unsupported_language", "invalid_request") else 500)
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


def _sse(event: PipelineEvent) -> str:
    payload: dict[str, Any] = {"kind": event.kind, "processing_time_ms": event.processing_time_ms}
    if event.transcription is not None:
        payload["transcription"] = event.transcription.model_dump()
    if event.language is not None:
        payload["translation"] = _translation_out(event.language).model_dump()
    if event.failure is not None:
        payload["failure"] = event.failure.model_dump()
    if event.result is not None:
        payload["result"] = _render_voice(event.result).model_dump(exclude={"translations"})
    return f"event: {event.kind}\ndata: {json.dumps(payload)}\n\n"


# Everything the ingress class uses must be defined above it: `serve.ingress` captures the
# class while this module is still executing.
@serve.deployment(name="HttpIngress")
@serve.ingress(app)
class HttpIngress:
    def __init__(
        self,
        pipeline: DeploymentHandle,
        settings_overrides: dict[str, Any] | None = None,
        gateway: DeploymentHandle | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.gateway = gateway  # the ZMQ ingress, reported in /health
        self.settings = Settings(**(settings_overrides or {}))

    # ---- compatibility routes ----
    @app.post("/translate", response_model=TranslateResponse)
    async def translate(self, body: TranslateBody) -> TranslateResponse:
        [out] = await self.pipeline.translate_text.remote(body.text, body.source_language, [body.target_language])
        return _as_translate_response(body, out)

    @app.post("/translate/batch", response_model=list[TranslateResponse])
    async def translate_batch(self, bodies: list[TranslateBody]) -> list[TranslateResponse]:
        if not bodies:
            raise InvalidRequestError("the batch is empty")
        if len(bodies) > MAX_BATCH:
            raise InvalidRequestError(f"a batch holds at most {MAX_BATCH} items, got {len(bodies)}")
        responses = [
            self.pipeline.translate_text.remote(b.text, b.source_language, [b.target_language]) for b in bodies
        ]
        return [_as_translate_response(b, (await r)[0]) for b, r in zip(bodies, responses, strict=True)]

    @app.post("/detect-language", response_model=DetectLanguageResponse)
    async def detect_language(self, body: DetectLanguageBody) -> DetectLanguageResponse:
        language, confidence = await self.pipeline.detect_language.remote(body.text)
        return DetectLanguageResponse(language=language, confidence=round(confidence, 4))

    @app.get("/languages")
    async def languages(self) -> dict[str, Any]:
        return {
            "languages": [
                {"code": lang.code, "name": lang.name, "nllb_code": lang.nllb}
                for lang in sorted(SUPPORTED_LANGUAGES.values(), key=lambda item: item.code)
            ],
            "count": len(SUPPORTED_LANGUAGES),
        }

    @app.get("/models")
    async def models(self) -> dict[str, Any]:
        health = await self.pipeline.health.remote()
        return {"models": health["components"]}

    @app.get("/health")
    async def health(self) -> dict[str, Any]:
        health = await self.pipeline.health.remote()
        stats = await self.pipeline.stats.remote()
        health.update(cache=stats["cache"], profiles=stats["profiles"])  # readiness stays the fresh one
        if self.gateway is not None:
            try:
                health["components"]["zmq_ingress"] = {"status": "ready", **await self.gateway.stats.remote()}
            except Exception as exc:  # noqa: BLE001 - reported, not raised
                health["components"]["zmq_ingress"] = {"status": "unavailable", "error": as_service_error(exc).message}
        return health

    @app.get("/ready")
    async def ready(self) -> JSONResponse:
        health = await self.pipeline.health.remote()
        return JSONResponse(status_code=200 if health["ready"] else 503, content=health)

    @app.get("/live")
    async def live(self) -> dict[str, str]:
        return {"status": "alive"}

    # ---- voice and audio ----
    async def _read_audio(self, upload: UploadFile) -> bytes:
        data = await upload.read(self.settings.max_audio_bytes + 1)
        if len(data) > self.settings.max_audio_bytes:
            raise PayloadTooLargeError(f"audio upload exceeds {self.settings.max_audio_bytes} bytes")
        return data

    async def _voice_job(
        self,
        audio: UploadFile,
        target_languages: str,
        source_language: str | None,
        generate_voice_clone: bool,
        user_id: str | None,
        output_format: str,
        mobile_transcription: str | None,
        attachment_id: str | None = None,
    ) -> VoiceJob:
        mobile = None
        if mobile_transcription:
            try:
                mobile = MobileTranscription.model_validate(json.loads(mobile_transcription))
            except (ValueError, ValidationError) as exc:
                raise InvalidRequestError(f"mobile_transcription is not valid JSON of the right shape: {exc}") from exc
        targets = [t.strip() for t in target_languages.split(",") if t.strip()]
        try:
            return VoiceJob(
                audio=await self._read_audio(audio),
                target_languages=targets,
                source_language=source_language or None,
                generate_voice_clone=generate_voice_clone,
                user_id=user_id,
                output_format=output_format,
                mobile_transcription=mobile,
                audio_mime_type=audio.content_type,
                attachment_id=attachment_id or None,
            )
        except ValidationError as exc:
            raise InvalidRequestError(f"invalid voice request: {exc.errors(include_url=False)}") from exc

    @app.post("/api/v1/voice/translate", response_model=VoiceTranslateResponse)
    async def voice_translate(
        self,
        audio: Annotated[UploadFile, File(description="The voice message (mp4/m4a, ogg, webm, mp3, wav, flac)")],
        target_languages: Annotated[str, Form(description="Comma-separated ISO 639-1 codes, e.g. en,es")],
        source_language: Annotated[str | None, Form()] = None,
        generate_voice_clone: Annotated[bool, Form()] = True,
        user_id: Annotated[str | None, Form()] = None,
        output_format: Annotated[str, Form()] = "mp3",
        mobile_transcription: Annotated[str | None, Form(description="JSON of a client-side transcription")] = None,
        attachment_id: Annotated[str | None, Form(description="Caches the transcription for retries")] = None,
    ) -> VoiceTranslateResponse:
        """With user_id, the sender's voice profile is reused, created or improved along the way."""
        job = await self._voice_job(
            audio, target_languages, source_language, generate_voice_clone, user_id, output_format,
            mobile_transcription, attachment_id,
        )
        result: VoiceResult = await self.pipeline.run_voice.remote(job)
        return _render_voice(result)

    @app.post("/api/v1/voice/translate/stream")
    async def voice_translate_stream(
        self,
        audio: Annotated[UploadFile, File()],
        target_languages: Annotated[str, Form()],
        source_language: Annotated[str | None, Form()] = None,
        generate_voice_clone: Annotated[bool, Form()] = True,
        user_id: Annotated[str | None, Form()] = None,
        output_format: Annotated[str, Form()] = "mp3",
        mobile_transcription: Annotated[str | None, Form()] = None,
    ) -> StreamingResponse:
        """Server-sent events: `transcription`, one `language` per target as each is ready, `completed`."""
        job = await self._voice_job(
            audio, target_languages, source_language, generate_voice_clone, user_id, output_format,
            mobile_transcription,
        )
        stream = self.pipeline.options(stream=True).process_voice.remote(job)

        async def events() -> Any:
            try:
                async for event in stream:
                    yield _sse(event)
            except Exception as exc:  # noqa: BLE001 - the stream reports its own failure
                err = as_service_error(exc)
                yield f"event: error\ndata: {json.dumps({'error': err.message, 'errorCode': err.code})}\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    @app.post("/api/v1/audio/transcribe", response_model=Transcription)
    async def transcribe(
        self,
        audio: Annotated[UploadFile, File()],
        language: Annotated[str | None, Form()] = None,
    ) -> Transcription:
        return await self.pipeline.transcribe.remote(await self._read_audio(audio), language)

    # ---- voice profiles (the same service the ZMQ voice API uses) ----
    @app.get("/api/v1/voice/profiles")
    async def list_profiles(self, limit: int = 50, offset: int = 0) -> dict[str, Any]:
        if not 1 <= limit <= 500 or offset < 0:
            raise InvalidRequestError("limit must be 1-500 and offset >= 0")
        return await self.pipeline.profile_call.remote("list", limit=limit, offset=offset)

    @app.get("/api/v1/voice/profiles/{user_id}")
    async def get_profile(self, user_id: str) -> dict[str, Any]:
        return await self.pipeline.profile_call.remote("get", user_id=user_id)

    @app.post("/api/v1/voice/profiles/{user_id}", status_code=201)
    async def create_profile(self, user_id: str, audio: Annotated[UploadFile, File()]) -> dict[str, Any]:
        """Create from at least 10 s of speech."""
        return await self.pipeline.profile_call.remote("create", user_id=user_id, audio=await self._read_audio(audio))

    @app.put("/api/v1/voice/profiles/{user_id}")
    async def update_profile(self, user_id: str, audio: Annotated[UploadFile, File()]) -> dict[str, Any]:
        """Improve with a new sample: 0.7 old / 0.3 new, version + 1."""
        return await self.pipeline.profile_call.remote("update", user_id=user_id, audio=await self._read_audio(audio))

    @app.delete("/api/v1/voice/profiles/{user_id}")
    async def delete_profile(self, user_id: str) -> dict[str, Any]:
        return await self.pipeline.profile_call.remote("delete", user_id=user_id)

    @app.post("/api/v1/voice/analyze")
    async def analyze_voice(
        self,
        audio: Annotated[UploadFile, File()],
        user_id: Annotated[str | None, Form()] = None,
        include_transcription: Annotated[bool, Form()] = True,
    ) -> dict[str, Any]:
        """Embedding, fingerprint (with embedding_data for verify/compare), characteristics."""
        return await self.pipeline.profile_call.remote(
            "analyze", audio=await self._read_audio(audio), user_id=user_id,
            include_transcription=include_transcription,
        )

    @app.post("/api/v1/voice/verify")
    async def verify_voice(
        self, audio: Annotated[UploadFile, File()], user_id: Annotated[str, Form()]
    ) -> dict[str, Any]:
        """Is this the stored profile's voice? Cosine similarity, threshold 0.80."""
        return await self.pipeline.profile_call.remote("verify", audio=await self._read_audio(audio), user_id=user_id)

    @app.post("/api/v1/voice/compare")
    async def compare_fingerprints(self, body: FingerprintCompareBody) -> dict[str, Any]:
        return await self.pipeline.profile_call.remote(
            "compare", fingerprint_a=body.fingerprint_a, fingerprint_b=body.fingerprint_b
        )

    @app.get("/stats")
    async def stats(self) -> dict[str, Any]:
        """Cache hits/misses/hit rate and the profile store's state."""
        return await self.pipeline.stats.remote()

    @app.post("/api/v1/tts", response_class=Response)
    async def tts(self, body: SpeechBody) -> Response:
        out = await self.pipeline.speak.remote(body.text, body.language, body.format)
        return Response(
            content=out["audio"],
            media_type=out["mime_type"],
            headers={"X-Duration-Ms": str(out["duration_ms"]), "X-TTS-Backend": out["backend"]},
        )

