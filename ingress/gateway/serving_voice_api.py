"""The voice API (JSON only, camelCase): translate, analyze, compare, feedback, and the service's health.

Handlers return the `result` dict; the router wraps it in `voice_api_success` (with
processingTimeMs) or, on failure, `voice_api_error` with the API's own codes. Audio comes as
base64 (or a path/URL), never as binary frames. `ping` sits here too: like voice_health and
voice_stats it reports the pipeline's readiness and the door's own figures, but it answers with its
own `pong` event, which a busy translator still sends.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ingress.gateway.audio_sources import decode_base64, voice_api_audio
from ingress.gateway.context import Call, GatewayState
from ingress.gateway.protocol.events import Pong
from ingress.gateway.protocol.requests import (
    PingRequest,
    VoiceApiRequest,
    VoiceAudioRequest,
    VoiceCompareRequest,
    VoiceFeedbackRequest,
    VoiceTranslateRequest,
)
from ingress.gateway.rendering import voice_result_json
from ingress.gateway.voice_inputs import voice_job
from serve_app.languages import SUPPORTED_LANGUAGES
from serve_app.pipeline.voice_pipeline import VoicePipeline
from serve_app.settings import Settings

log = logging.getLogger(__name__)


class ServingVoiceApi:
    def __init__(self, pipeline: VoicePipeline, settings: Settings, state: GatewayState) -> None:
        self.pipeline = pipeline
        self.settings = settings
        self.state = state

    async def ping(self, req: PingRequest, call: Call) -> None:
        cache: dict[str, Any] | None = None
        available = True
        try:
            stats = await asyncio.wait_for(self.pipeline.stats(), 2.0)
            cache = stats.get("cache")
            available = bool(stats.get("ready", True))
        except Exception as exc:  # noqa: BLE001 - a pong is always sent; it says what it knows
            log.warning("ping: pipeline stats unavailable: %s", exc)
            available = False
        await call.publish(
            Pong(translator_port_pub=self.settings.zmq_pub_port, translator_port_pull=self.settings.zmq_pull_port,
                 audio_pipeline_available=available, cache=cache, in_flight=self.state.in_flight()),
            (),
        )

    async def translate(self, req: VoiceTranslateRequest, call: Call) -> dict[str, Any]:
        result = await self.pipeline.run_voice(await voice_job(req, self.settings))
        return voice_result_json(result, req.userId)

    async def analyze(self, req: VoiceAudioRequest, call: Call) -> dict[str, Any]:
        analysis = await self.pipeline.profile_analyze(await voice_api_audio(req, self.settings), user_id=req.userId)
        return analysis.to_wire(camel=True)

    async def compare(self, req: VoiceCompareRequest, call: Call) -> dict[str, Any]:
        comparison = await self.pipeline.compare_voices(
            decode_base64(req.audioBase64_1, self.settings, "audioBase64_1"),
            decode_base64(req.audioBase64_2, self.settings, "audioBase64_2"),
        )
        return comparison.to_wire(camel=True)

    async def feedback(self, req: VoiceFeedbackRequest, call: Call) -> dict[str, Any]:
        return await self.pipeline.record_feedback(req.model_dump(exclude={"type"}))

    async def languages(self, req: VoiceApiRequest, call: Call) -> dict[str, Any]:
        return {"languages": [{"code": lang.code, "name": lang.name} for lang in
                              sorted(SUPPORTED_LANGUAGES.values(), key=lambda x: x.code)],
                "count": len(SUPPORTED_LANGUAGES)}

    async def health(self, req: VoiceApiRequest, call: Call) -> dict[str, Any]:
        health = await self.pipeline.health()
        return {**health, "zmq": {"inFlight": self.state.in_flight()}}

    async def stats(self, req: VoiceApiRequest, call: Call) -> dict[str, Any]:
        return {"zmq": self.state.transport_stats(), **(await self.pipeline.stats())}

    async def admin_metrics(self, req: VoiceApiRequest, call: Call) -> dict[str, Any]:
        stats = await self.stats(req, call)
        stats["health"] = await self.pipeline.health()
        return stats
