"""The ZMQ door's one dispatch table: message type -> request model, handler, error events, reply.

Every type goes through `GatewayRouter.handle` the same way, so none can forget a step: it is
counted (an unknown type as "unknown": client strings never grow the counters), rate limited per
peer and per user it acts for (pings excepted: a pong says the door is alive), frame 0 is
validated into the route's model with the service's limits as context (target and preview language
caps; a ValidationError is the type's own error event, invalid_request),
the handler is called and its result rendered by the route's `reply`: `voice_api_success` with
processingTimeMs for the voice API, `<type>_result` for the voice profile family. Handlers that
stream events (translation, audio_process, the async job's ack) publish themselves and have no
reply. Any failure becomes the type's error event, so the gateway always hears back about a request
it can identify, and no failure reaches the receive loop.

Adding a message type: its wire model in `protocol.requests`, its handler in a `serving_*` module,
one entry in `GatewayRouter._table`, one test in tests/unit/test_zmq_gateway.py.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from ingress.gateway.context import Call, GatewayState, Publish
from ingress.gateway.errors import (
    ErrorEvents,
    audio_process_errors,
    generic_errors,
    request_kind,
    transcription_errors,
    translation_errors,
    validation_message,
    voice_api_errors,
    voice_profile_errors,
    with_fields,
)
from ingress.gateway.history import VoiceHistory
from ingress.gateway.jobs import JobRegistry
from ingress.gateway.protocol.events import GatewayEvent, VoiceApiSuccess, VoiceProfileResult
from ingress.gateway.protocol.requests import (
    AudioProcessRequest,
    PingRequest,
    StoryTextObjectRequest,
    TranscriptionOnlyRequest,
    TranslationRequest,
    VoiceApiRequest,
    VoiceAudioRequest,
    VoiceCompareRequest,
    VoiceFeedbackRequest,
    VoiceHistoryRequest,
    VoiceJobRequest,
    VoiceProfileAnalyzeRequest,
    VoiceProfileApiRequest,
    VoiceProfileCompareRequest,
    VoiceProfileFamilyRequest,
    VoiceProfileVerifyRequest,
    VoiceStatsRequest,
    VoiceTranslateAsyncRequest,
    VoiceTranslateRequest,
)
from ingress.gateway.rendering import elapsed_ms
from ingress.gateway.serving_audio import ServingAudio
from ingress.gateway.serving_jobs import ServingJobs
from ingress.gateway.serving_profiles import ServingProfiles
from ingress.gateway.serving_text import ServingText
from ingress.gateway.serving_voice_api import ServingVoiceApi
from serve_app.errors import InvalidRequestError, RateLimitedError, ServiceError, as_service_error
from serve_app.pipeline.voice_pipeline import VoicePipeline
from serve_app.security.rate_limits import RateLimiter
from serve_app.settings import Settings
from serve_app.stores.factory import build_job_store

log = logging.getLogger(__name__)

Req = TypeVar("Req", bound=BaseModel)
ApiReq = TypeVar("ApiReq", bound=VoiceApiRequest)
ProfileReq = TypeVar("ProfileReq", VoiceProfileAnalyzeRequest, VoiceProfileVerifyRequest, VoiceProfileCompareRequest)
Reply = Callable[[str, Any, Any, float], GatewayEvent]
USER_KEYS = ("userId", "senderId", "user_id")  # whom a request acts for, in each family's spelling


@dataclass(frozen=True)
class Route(Generic[Req]):
    model: type[Req]
    handler: Callable[[Req, Call], Awaitable[Any]]
    errors: ErrorEvents = generic_errors
    reply: Reply | None = None  # None: the handler publishes its own events
    # FIX (PROTOCOL.md): generated before validation when the gateway sends no taskId, so every
    # event of the request, its error events included, carries the same one.
    task_id_prefix: str | None = None


def acting_user(raw: dict[str, Any]) -> str | None:
    """The user a request names, for the per-user rate limit (an over-long one fails validation anyway)."""
    for key in USER_KEYS:
        value = raw.get(key)
        if isinstance(value, str) and 0 < len(value) <= 128:
            return value
    return None


def voice_api_success(kind: str, req: VoiceApiRequest, result: dict[str, Any] | list[Any], started: float
                      ) -> GatewayEvent:
    return VoiceApiSuccess(taskId=req.taskId, requestType=kind, result=result, processingTimeMs=elapsed_ms(started))


def profile_result(kind: str, req: VoiceProfileFamilyRequest, result: dict[str, Any], started: float) -> GatewayEvent:
    return VoiceProfileResult(type=f"{kind}_result", request_id=req.request_id, result=result)


def voice_api(model: type[ApiReq], handler: Callable[[ApiReq, Call], Awaitable[Any]]) -> Route[ApiReq]:
    return Route(model, handler, errors=voice_api_errors, reply=voice_api_success)


def profile_family(
    model: type[ProfileReq], handler: Callable[[ProfileReq, Call], Awaitable[dict[str, Any]]]
) -> Route[ProfileReq]:
    return Route(model, handler, errors=voice_profile_errors, reply=profile_result)


class GatewayRouter:
    def __init__(self, pipeline: VoicePipeline, settings: Settings) -> None:
        self.state = GatewayState(history=VoiceHistory(settings.max_jobs))
        self.state.transport_stats = self.stats  # until a server reports its own, which include these
        self.jobs = JobRegistry(build_job_store(settings), settings.job_lease_s)
        self.limiter = RateLimiter.from_settings(settings, settings.redis_url)
        self.rate_limited = 0
        self.limits = {"max_target_languages": settings.max_target_languages,
                       "max_preview_languages": settings.max_preview_languages}
        self.routes: dict[str, Route[Any]] = self._table(pipeline, settings)

    def _table(self, pipeline: VoicePipeline, settings: Settings) -> dict[str, Route[Any]]:
        text = ServingText(pipeline, settings, self.state)
        audio = ServingAudio(pipeline, settings)
        api = ServingVoiceApi(pipeline, settings, self.state, self.jobs)
        profiles = ServingProfiles(pipeline, settings)
        jobs = ServingJobs(pipeline, settings, self.jobs, self.state.history)
        self.serving_jobs = jobs
        return {
            "ping": Route(PingRequest, api.ping),
            "translation": Route(TranslationRequest, text.translation,
                                 errors=translation_errors(settings.max_target_languages)),
            "story_text_object_translation": Route(StoryTextObjectRequest, text.story_text),
            "audio_process": Route(AudioProcessRequest, audio.audio_process, errors=audio_process_errors,
                                   task_id_prefix="audio"),
            "transcription_only": Route(TranscriptionOnlyRequest, audio.transcription_only,
                                        errors=transcription_errors, task_id_prefix="transcription"),
            # Voice API (camelCase): voice_api_success / voice_api_error.
            "voice_translate": voice_api(VoiceTranslateRequest, api.translate),
            "voice_translate_async": Route(VoiceTranslateAsyncRequest, jobs.translate_async, errors=voice_api_errors),
            "voice_analyze": voice_api(VoiceAudioRequest, api.analyze),
            "voice_compare": voice_api(VoiceCompareRequest, api.compare),
            "voice_profile_get": voice_api(VoiceProfileApiRequest, profiles.get_profile),
            "voice_profile_create": voice_api(VoiceProfileApiRequest, profiles.create_profile),
            "voice_profile_update": voice_api(VoiceProfileApiRequest, profiles.update_profile),
            "voice_profile_delete": voice_api(VoiceProfileApiRequest, profiles.delete_profile),
            "voice_profile_list": voice_api(VoiceProfileApiRequest, profiles.list_profiles),
            "voice_job_status": voice_api(VoiceJobRequest, jobs.status),
            "voice_job_cancel": voice_api(VoiceJobRequest, jobs.cancel),
            "voice_feedback": voice_api(VoiceFeedbackRequest, api.feedback),
            "voice_history": voice_api(VoiceHistoryRequest, jobs.history),
            "voice_stats": voice_api(VoiceStatsRequest, api.stats),
            "voice_admin_metrics": voice_api(VoiceApiRequest, api.admin_metrics),
            "voice_health": voice_api(VoiceApiRequest, api.health),
            "voice_languages": voice_api(VoiceApiRequest, api.languages),
            # Voice profile family (snake_case): <type>_result / voice_profile_error.
            "voice_profile_analyze": profile_family(VoiceProfileAnalyzeRequest, profiles.analyze),
            "voice_profile_verify": profile_family(VoiceProfileVerifyRequest, profiles.verify),
            "voice_profile_compare": profile_family(VoiceProfileCompareRequest, profiles.compare),
        }

    async def start(self, publish: Publish) -> None:
        """Background work that is not a request's: the async jobs' leases and orphan reports."""
        await self.serving_jobs.start(publish)

    def close(self) -> None:
        self.serving_jobs.close()

    def route_of(self, raw: dict[str, Any]) -> Route[Any] | None:
        kind = raw.get("type") or "translation"  # PROTOCOL.md §1: a missing type means translation
        return self.routes.get(kind) if isinstance(kind, str) else None

    async def handle(self, raw: dict[str, Any], frames: list[bytes], publish: Publish,
                     principal: str = "gateway") -> None:
        """`principal`: the peer the message came from (its address, or its CURVE key), for rate limits."""
        kind = raw.get("type") or "translation"
        route = self.route_of(raw)
        self.state.received[kind if route is not None else "unknown"] += 1
        try:
            if kind != "ping":
                await self._rate_limit(principal, acting_user(raw))
            if route is None:
                raise InvalidRequestError(f"unknown message type {request_kind(raw)!r}", code="unknown_type")
            await self._serve(kind, route, raw, Call(frames, publish))
        except asyncio.CancelledError:
            raise
        except ValidationError as exc:
            await self.publish_error(raw, InvalidRequestError(validation_message(exc)), publish)
        except Exception as exc:  # noqa: BLE001 - every failure is answered, none kills the loop
            await self.publish_error(raw, as_service_error(exc), publish)

    async def _rate_limit(self, principal: str, user_id: str | None) -> None:
        try:
            await self.limiter.check(principal, user_id)
        except RateLimitedError:
            self.rate_limited += 1
            raise

    async def _serve(self, kind: str, route: Route[Any], raw: dict[str, Any], call: Call) -> None:
        if route.task_id_prefix and raw.get("taskId") in (None, ""):  # absent; a malformed one fails validation
            raw["taskId"] = f"{route.task_id_prefix}_{uuid.uuid4().hex}"
        req = route.model.model_validate(raw, context=self.limits)
        started = time.perf_counter()
        result = await route.handler(req, call)
        if route.reply is not None:
            await call.publish(route.reply(kind, req, result, started), ())

    def error_events(self, raw: dict[str, Any], err: ServiceError) -> list[GatewayEvent]:
        """The error event(s) the gateway expects for a request of this type, carrying the ids it sent."""
        route = self.route_of(raw)
        events = (route.errors if route is not None else generic_errors)(raw, err)
        if isinstance(err, RateLimitedError):
            retry_ms = max(1, int(round(err.retry_after_s * 1000)))
            events = [with_fields(e, retryAfterMs=retry_ms) for e in events]
        return events

    async def publish_error(self, raw: dict[str, Any], err: ServiceError, publish: Publish) -> None:
        kind = request_kind(raw)
        self.state.failed[kind if kind in self.routes else "unknown"] += 1
        # A peer over its limit is refused at every request: one log line each would flood the log.
        level = logging.ERROR if err.status >= 500 else logging.DEBUG if err.code == "rate_limited" else logging.INFO
        log.log(level, "gateway request %s failed (%s): %s", kind, err.code, err.message)
        for event in self.error_events(raw, err):
            await publish(event, ())

    def stats(self) -> dict[str, Any]:
        return {
            "received": dict(self.state.received),
            "failed": dict(self.state.failed),
            "deduplicated": self.state.deduplicated,
            "rateLimited": self.rate_limited,
            "inFlight": self.state.in_flight(),
            "jobs": self.jobs.counts(),
            "uptimeS": round(time.time() - self.state.started_at, 1),
        }
