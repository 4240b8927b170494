"""Multipart uploads into the pipeline's models: the audio read with its size bound, the form fields
of a voice message validated into a `VoiceJob`."""

from __future__ import annotations

import json

from fastapi import UploadFile
from pydantic import ValidationError

from serve_app.domain.transcription import MobileTranscription
from serve_app.domain.voice import VoiceJob
from serve_app.errors import InvalidRequestError, PayloadTooLargeError


async def read_upload(upload: UploadFile, max_bytes: int) -> bytes:
    data = await upload.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise PayloadTooLargeError(f"audio upload exceeds {max_bytes} bytes")
    return data


async def voice_job_from_form(
    audio: UploadFile,
    max_bytes: int,
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
            audio=await read_upload(audio, max_bytes),
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
