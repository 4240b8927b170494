"""Voice profiles, in the two dialects the gateway speaks.

The voice API's `voice_profile_get|create|update|delete|list` (camelCase) return their `result` as
the gateway reads it (`VoiceProfile`, `{profiles, total}`, `{success}`), which the router wraps in
`voice_api_success` / `voice_api_error`. The older snake_case family,
`voice_profile_analyze|verify|compare` (FIX: the old translator never routed them), returns its
result, which the router spreads into `<type>_result` beside `request_id` and `success`, or answers
`voice_profile_error`: the analysis with its `transcription` (`VoiceProfileTranscription`) and
`voice_previews` (`VoicePreviewSampleZMQ`) in snake_case. Both call the same typed pipeline methods.
"""

from __future__ import annotations

from typing import Any

from ingress.gateway.audio_sources import decode_base64, voice_api_audio
from ingress.gateway.context import Call
from ingress.gateway.protocol.requests import (
    VoiceProfileAnalyzeRequest,
    VoiceProfileApiRequest,
    VoiceProfileCompareRequest,
    VoiceProfileVerifyRequest,
)
from ingress.gateway.protocol.results import VoiceProfileDeleted, VoiceProfileList
from ingress.gateway.rendering import voice_profile
from serve_app.errors import InvalidRequestError
from serve_app.pipeline.voice_pipeline import VoicePipeline
from serve_app.settings import Settings


def _user_id(req: VoiceProfileApiRequest) -> str:
    if not req.userId:
        raise InvalidRequestError("userId is required")
    return req.userId


class ServingProfiles:
    def __init__(self, pipeline: VoicePipeline, settings: Settings) -> None:
        self.pipeline = pipeline
        self.settings = settings

    # ---- voice API (camelCase) ----
    async def list_profiles(self, req: VoiceProfileApiRequest, call: Call) -> dict[str, Any]:
        page = await self.pipeline.profile_list(req.limit, req.offset)
        return VoiceProfileList(profiles=[voice_profile(p) for p in page["profiles"]], total=page["total"],
                                limit=page["limit"], offset=page["offset"]).to_wire()

    async def get_profile(self, req: VoiceProfileApiRequest, call: Call) -> dict[str, Any]:
        return voice_profile(await self.pipeline.profile_get(_user_id(req))).to_wire()

    async def delete_profile(self, req: VoiceProfileApiRequest, call: Call) -> dict[str, Any]:
        deleted = await self.pipeline.profile_delete(_user_id(req))
        return VoiceProfileDeleted(success=bool(deleted["deleted"]), deleted=bool(deleted["deleted"]),
                                   userId=deleted["userId"]).to_wire()

    async def create_profile(self, req: VoiceProfileApiRequest, call: Call) -> dict[str, Any]:
        user_id = _user_id(req)  # before the audio: a request without a user fails on that, not on its audio
        created = await self.pipeline.profile_create(user_id, await voice_api_audio(req, self.settings))
        return voice_profile(created).to_wire()

    async def update_profile(self, req: VoiceProfileApiRequest, call: Call) -> dict[str, Any]:
        user_id = _user_id(req)
        return voice_profile(await self.pipeline.profile_update(user_id, await voice_api_audio(req, self.settings))
                             ).to_wire()

    # ---- voice profile family (snake_case) ----
    async def analyze(self, req: VoiceProfileAnalyzeRequest, call: Call) -> dict[str, Any]:
        analysis = await self.pipeline.profile_analyze(
            decode_base64(req.audio_data, self.settings, "audio_data"), user_id=req.user_id,
            include_transcription=req.include_transcription, min_profile_audio=True,
            preview_languages=req.preview_languages if req.generate_previews else [],
            preview_text=req.preview_text,
        )
        return analysis.to_wire()

    async def verify(self, req: VoiceProfileVerifyRequest, call: Call) -> dict[str, Any]:
        verification = await self.pipeline.profile_verify(
            decode_base64(req.audio_data, self.settings, "audio_data"), req.user_id, req.existing_fingerprint,
        )
        return verification.to_wire()

    async def compare(self, req: VoiceProfileCompareRequest, call: Call) -> dict[str, Any]:
        match = await self.pipeline.profile_compare(req.fingerprint_a, req.fingerprint_b)
        return match.to_wire()
