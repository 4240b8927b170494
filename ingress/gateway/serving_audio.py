"""The voice message pipeline for the gateway: `audio_process` (PROTOCOL.md §2) and `transcription_only`.

FIX (PROTOCOL.md): the old gateway sends no `taskId` with audio_process. The router generates one
before validation (`Route.task_id_prefix`), so every event of the message, its error events
included, carries the same id beside `messageId` + `attachmentId`. Events go out as the pipeline
yields them: the transcription, then one per language as each finishes, then the completed event
with every audio as a binary frame (never base64 in the JSON). An unknown target language fails
alone in `failedLanguages` instead of sinking the others.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from ingress.gateway.audio_sources import binary_frame, resolve_audio
from ingress.gateway.context import Call
from ingress.gateway.protocol.events import (
    AudioLanguageReady,
    AudioProcessCompleted,
    FailedLanguageWire,
    NewVoiceProfileWire,
    TranscriptionCompleted,
    TranscriptionReady,
)
from ingress.gateway.protocol.requests import AudioProcessRequest, TranscriptionOnlyRequest
from ingress.gateway.rendering import elapsed_ms, translated_audio
from ingress.gateway.voice_inputs import split_targets
from serve_app.domain.voice import PipelineEvent, VoiceJob
from serve_app.errors import UnsupportedLanguageError
from serve_app.pipeline.voice_pipeline import VoicePipeline
from serve_app.settings import Settings

log = logging.getLogger(__name__)


class ServingAudio:
    def __init__(self, pipeline: VoicePipeline, settings: Settings) -> None:
        self.pipeline = pipeline
        self.settings = settings

    async def audio_process(self, req: AudioProcessRequest, call: Call) -> None:
        assert req.taskId, "the router generates a taskId when the gateway sends none"
        ids = {"taskId": req.taskId, "messageId": req.messageId, "attachmentId": req.attachmentId}
        audio = await resolve_audio(req, call.frames, self.settings)
        refs = req.binaryFrames
        forwarded: bytes | None = None
        if req.existingVoiceProfile is not None and req.useOriginalVoice and refs is not None:
            forwarded = binary_frame(call.frames, refs.voiceProfile or refs.embedding, "voiceProfile")
        targets, rejected = split_targets(req.targetLanguages)
        if not targets:
            raise UnsupportedLanguageError("; ".join(f.error for f in rejected))
        job = VoiceJob(
            audio=audio, target_languages=targets, generate_voice_clone=req.generateVoiceClone,
            # A forwarded message is the original sender's voice: it never updates the forwarder's profile.
            user_id=None if req.existingVoiceProfile is not None else req.senderId,
            mobile_transcription=req.mobileTranscription,
            output_format=self.settings.output_format,
            audio_mime_type=req.audioMimeType or (refs.audioMimeType if refs else None),
            attachment_id=req.attachmentId, forwarded_reference=forwarded,
        )
        total = len(targets) + len(rejected)
        done = 0
        for failure in rejected:
            done += 1
            log.info("audio_process %s: %s", req.taskId, failure.error)
        async for event in self.pipeline.process_voice(job):
            if event.kind == "transcription" and event.transcription is not None:
                await call.publish(TranscriptionReady(**ids, processingTimeMs=event.processing_time_ms,
                                                      transcription=event.transcription), ())
            elif event.kind in ("language", "language_failed"):
                done += 1
                if event.language is not None:
                    name = ("audio_translation_ready" if total == 1 else
                            "audio_translations_completed" if done == total else "audio_translations_progressive")
                    r = event.language
                    await call.publish(AudioLanguageReady(
                        type=name, **ids, language=r.target_language, translatedAudio=translated_audio(r),
                        binaryFrames={"audio": {"index": 1, "size": len(r.audio), "mimeType": r.audio_mime_type}},
                        processingTimeMs=event.processing_time_ms,
                    ), (r.audio,))
            elif event.kind == "completed" and event.result is not None:
                await self._audio_completed(req, ids, event, rejected, call)

    async def _audio_completed(
        self, req: AudioProcessRequest, ids: dict[str, str], event: PipelineEvent,
        rejected: list[FailedLanguageWire], call: Call,
    ) -> None:
        result = event.result
        assert result is not None
        binaries: list[bytes] = []
        refs: dict[str, dict[str, Any]] = {}
        for r in result.translations:
            binaries.append(r.audio)
            refs[f"audio_{r.target_language}"] = {"index": len(binaries), "size": len(r.audio),
                                                  "mimeType": r.audio_mime_type}
        if result.speaker_reference:
            binaries.append(result.speaker_reference)
            refs["embedding"] = {"index": len(binaries), "size": len(result.speaker_reference),
                                 "format": "npz"}
        similarities = [r.voice_similarity for r in result.translations if r.voice_similarity is not None]
        profile = result.voice_profile
        quality = profile["qualityScore"] if profile else (max(similarities) if similarities else 0.0)
        new_profile = None
        if profile and result.voice_profile_action in ("created", "improved"):
            new_profile = NewVoiceProfileWire.model_validate(profile)
        await call.publish(AudioProcessCompleted(
            **ids, transcription=result.transcription,
            translatedAudios=[translated_audio(r) for r in result.translations],
            failedLanguages=rejected + [FailedLanguageWire(targetLanguage=f.target_language, error=f.error,
                                                           errorCode=f.error_code) for f in result.failed],
            voiceModelUserId=(req.existingVoiceProfile.userId or req.originalSenderId or req.senderId)
            if req.existingVoiceProfile else req.senderId,
            voiceModelQuality=round(float(quality), 4), processingTimeMs=result.processing_time_ms,
            binaryFrames=refs, newVoiceProfile=new_profile, voiceProfileAction=result.voice_profile_action,
        ), binaries)

    async def transcription_only(self, req: TranscriptionOnlyRequest, call: Call) -> None:
        assert req.taskId, "the router generates a taskId when the gateway sends none"
        started = time.perf_counter()
        audio = await resolve_audio(req, call.frames, self.settings)
        transcription = await self.pipeline.transcribe(audio, req.language, req.mobileTranscription,
                                                       req.attachmentId or None)
        await call.publish(TranscriptionCompleted(taskId=req.taskId, messageId=req.messageId,
                                                  attachmentId=req.attachmentId, processingTimeMs=elapsed_ms(started),
                                                  transcription=transcription), ())
