"""Voice profile operations behind both doors: CRUD, analyze, verify, compare, feedback.

The Pipeline deployment owns one instance; the ZMQ voice API (camelCase), the voice-profile family
(snake_case, PROTOCOL.md §2) and the HTTP routes all call `call(operation, ...)` and get plain
dicts back. Audio is measured by the pipeline's `analyze` (embedding, converter statistics,
characteristics); the lifecycle rules live in `VoiceProfileManager`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
from pymongo.errors import PyMongoError

from serve_app.domain.speaker import cosine, embedding_from_float32, embedding_to_float32
from serve_app.domain.voice import LanguageAudio, LanguageFailure, VoiceAnalysis
from serve_app.errors import InvalidRequestError, ServiceError
from serve_app.settings import Settings
from serve_app.stores.errors import ProfileNotFoundError, ProfileTooShortError, StoreUnavailableError
from serve_app.stores.profile_lifecycle import MATCH_THRESHOLD, NewSample, VoiceProfileManager, quality_score
from serve_app.stores.voice_profiles import VoiceProfile, compute_fingerprint, new_profile_id
from serve_app.voice_characteristics import VoiceCharacteristics

log = logging.getLogger(__name__)

Analyze = Callable[[bytes, bool], Awaitable[VoiceAnalysis]]
Preview = Callable[[str, str, bytes], Awaitable[LanguageAudio | LanguageFailure]]


def fingerprint_wire(embedding: np.ndarray, model: str) -> dict[str, Any]:
    """A fingerprint the gateway can store and send back: signature plus the embedding itself,
    so verify/compare work on fingerprints alone (base64 of float32, never pickle)."""
    fingerprint = compute_fingerprint(embedding, model).model_dump(mode="json")
    fingerprint["embedding_data"] = base64.b64encode(embedding_to_float32(embedding)).decode("ascii")
    return fingerprint


def embedding_of_fingerprint(fingerprint: dict[str, Any] | None, what: str) -> np.ndarray:
    data = (fingerprint or {}).get("embedding_data") or (fingerprint or {}).get("embedding")
    if not isinstance(data, str) or not data:
        raise InvalidRequestError(f"{what} has no embedding_data (the base64 embedding that analyze returns)")
    try:
        return embedding_from_float32(base64.b64decode(data, validate=True))
    except (ValueError, TypeError) as exc:
        raise InvalidRequestError(f"{what}.embedding_data is not a base64 float32 embedding: {exc}") from exc


def match(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    if a.shape != b.shape:
        raise InvalidRequestError(f"embeddings of different sizes cannot be compared ({a.size} vs {b.size})")
    similarity = cosine(a, b)
    return {"is_match": similarity >= MATCH_THRESHOLD, "similarity_score": round(similarity, 4),
            "threshold": MATCH_THRESHOLD}


class FeedbackLog:
    """Ratings of translations: MongoDB `voice_feedback` when configured, else a JSONL file."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.path = Path(settings.cache_dir) / "voice_feedback.jsonl"
        self._collection: Any = None
        self._lock = asyncio.Lock()

    async def record(self, feedback: dict[str, Any]) -> dict[str, Any]:
        entry = {**feedback, "feedbackId": f"vfb_{uuid.uuid4().hex[:16]}", "createdAt": time.time()}
        if self.settings.mongodb_url:
            if self._collection is None:
                from motor.motor_asyncio import AsyncIOMotorClient

                timeout = self.settings.mongodb_timeout_ms
                client = AsyncIOMotorClient(self.settings.mongodb_url, serverSelectionTimeoutMS=timeout,
                                            connectTimeoutMS=timeout, socketTimeoutMS=timeout)
                self._collection = client[self.settings.mongodb_database]["voice_feedback"]
            try:
                await self._collection.insert_one(dict(entry))
            except PyMongoError as exc:
                raise StoreUnavailableError(f"feedback not recorded, MongoDB did not answer: {exc}") from exc
        else:
            async with self._lock:
                await asyncio.to_thread(self._append, entry)
        return {"recorded": True, "feedbackId": entry["feedbackId"]}

    def _append(self, entry: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry, ensure_ascii=False) + "\n")


class VoiceProfileService:
    def __init__(
        self, manager: VoiceProfileManager, analyze: Analyze, preview: Preview, settings: Settings
    ) -> None:
        self.manager = manager
        self.analyze = analyze
        self.preview = preview
        self.settings = settings
        self.feedback_log = FeedbackLog(settings)

    async def call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        handler = getattr(self, f"op_{operation}", None)
        if handler is None:
            raise InvalidRequestError(f"unknown voice profile operation {operation!r}")
        return await handler(**kwargs)

    async def _sample(self, audio: bytes, attachment_id: str | None = None) -> tuple[NewSample, VoiceAnalysis]:
        analysis = await self.analyze(audio, True)
        sample = NewSample(
            attachment_id=attachment_id or f"api_{uuid.uuid4().hex[:16]}",
            duration_ms=analysis.duration_ms,
            language=analysis.transcription.language if analysis.transcription else None,
            embedding=np.asarray(analysis.embedding, dtype=np.float32),
            speaker_reference=analysis.speaker_reference,
            characteristics=VoiceCharacteristics.model_validate(analysis.characteristics),
        )
        return sample, analysis

    async def _require(self, user_id: str) -> VoiceProfile:
        profile = await self.manager.get(user_id)
        if profile is None:
            raise ProfileNotFoundError(f"user {user_id!r} has no voice profile")
        return profile

    # ---- CRUD (camelCase voice API and HTTP) ----
    async def op_get(self, user_id: str, **_: Any) -> dict[str, Any]:
        return (await self._require(user_id)).summary()

    async def op_list(self, limit: int = 50, offset: int = 0, **_: Any) -> dict[str, Any]:
        profiles, total = await asyncio.gather(self.manager.list(limit, offset), self.manager.count())
        return {"profiles": [p.summary() for p in profiles], "total": total, "limit": limit, "offset": offset}

    async def op_delete(self, user_id: str, **_: Any) -> dict[str, Any]:
        if not await self.manager.delete(user_id):
            raise ProfileNotFoundError(f"user {user_id!r} has no voice profile")
        return {"deleted": True, "userId": user_id}

    async def op_create(self, user_id: str, audio: bytes | None = None, **_: Any) -> dict[str, Any]:
        sample, _analysis = await self._sample(_need_audio(audio))
        return (await self.manager.create_from_sample(user_id, sample)).summary()

    async def op_update(self, user_id: str, audio: bytes | None = None, **_: Any) -> dict[str, Any]:
        sample, _analysis = await self._sample(_need_audio(audio))
        return (await self.manager.update_from_sample(user_id, sample)).summary()

    # ---- analysis (snake_case family and voice_analyze) ----
    async def op_analyze(
        self,
        audio: bytes,
        user_id: str | None = None,
        include_transcription: bool = True,
        wire: str = "snake",
        min_profile_audio: bool = False,
        preview_languages: list[str] | None = None,
        preview_text: str | None = None,
        **_: Any,
    ) -> dict[str, Any]:
        analysis = await self.analyze(audio, include_transcription)
        if min_profile_audio and analysis.duration_ms < self.settings.voice_profile_min_speech_ms:
            raise ProfileTooShortError(
                f"profile audio must be at least {self.settings.voice_profile_min_speech_ms / 1000:.0f} s, "
                f"got {analysis.duration_ms / 1000:.1f} s"
            )
        embedding = np.asarray(analysis.embedding, dtype=np.float32)
        fingerprint = fingerprint_wire(embedding, analysis.embedding_model)
        existing = await self.manager.get(user_id) if user_id else None
        result = {
            "profile_id": existing.profileId if existing else new_profile_id(),
            "user_id": user_id,
            "quality_score": quality_score(analysis.duration_ms, 1),
            "audio_duration_ms": analysis.duration_ms,
            "voice_characteristics": analysis.characteristics,
            "fingerprint": fingerprint,
            "signature_short": fingerprint["signatureShort"],
            "embedding_data": fingerprint["embedding_data"],
            "embedding_dimension": int(embedding.size),
            "embedding_model": analysis.embedding_model,
        }
        if analysis.transcription is not None:
            result["transcription"] = analysis.transcription.model_dump(mode="json")
        if preview_languages:
            result["voice_previews"] = await self._previews(analysis, preview_languages, preview_text)
        if wire == "camel":
            return {_camel(k): v for k, v in result.items()}
        return result

    async def _previews(
        self, analysis: VoiceAnalysis, languages: list[str], text: str | None
    ) -> list[dict[str, Any]]:
        source = text or (analysis.transcription.text if analysis.transcription else "")
        if not source.strip():
            raise InvalidRequestError("previews need preview_text or a transcribable sample")
        outcomes = await asyncio.gather(*(self.preview(source, lang, analysis.speaker_reference)
                                          for lang in dict.fromkeys(languages)))
        previews: list[dict[str, Any]] = []
        for out in outcomes:
            if isinstance(out, LanguageFailure):
                previews.append({"language": out.target_language, "success": False, "error": out.error,
                                 "error_code": out.error_code})
            else:
                previews.append({
                    "language": out.target_language, "success": True, "text": out.translated_text,
                    "audio_base64": base64.b64encode(out.audio).decode("ascii"), "audio_format": out.audio_mime_type,
                    "duration_ms": out.duration_ms, "voice_cloned": out.voice_cloned,
                    "voice_similarity": out.voice_similarity,
                })
        return previews

    async def op_verify(
        self, audio: bytes, user_id: str, fingerprint: dict[str, Any] | None = None, **_: Any
    ) -> dict[str, Any]:
        if fingerprint and (fingerprint.get("embedding_data") or fingerprint.get("embedding")):
            reference = embedding_of_fingerprint(fingerprint, "existing_fingerprint")
        else:
            reference = (await self._require(user_id)).vector()
        analysis = await self.analyze(audio, False)
        return {"user_id": user_id, **match(np.asarray(analysis.embedding, dtype=np.float32), reference)}

    async def op_compare(
        self, fingerprint_a: dict[str, Any], fingerprint_b: dict[str, Any], **_: Any
    ) -> dict[str, Any]:
        return match(embedding_of_fingerprint(fingerprint_a, "fingerprint_a"),
                     embedding_of_fingerprint(fingerprint_b, "fingerprint_b"))

    async def op_compare_audio(self, audio_a: bytes, audio_b: bytes, **_: Any) -> dict[str, Any]:
        a, b = await asyncio.gather(self.analyze(audio_a, False), self.analyze(audio_b, False))
        out = match(np.asarray(a.embedding, dtype=np.float32), np.asarray(b.embedding, dtype=np.float32))
        return {"isMatch": out["is_match"], "similarityScore": out["similarity_score"], "threshold": out["threshold"],
                "voiceCharacteristics1": a.characteristics, "voiceCharacteristics2": b.characteristics}

    async def op_feedback(self, feedback: dict[str, Any], **_: Any) -> dict[str, Any]:
        return await self.feedback_log.record(feedback)


def _need_audio(audio: bytes | None) -> bytes:
    if not audio:
        raise InvalidRequestError("audio is required (audioBase64 over ZMQ, a file upload over HTTP)")
    return audio


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part.title() for part in rest)


__all__ = ["ServiceError", "VoiceProfileService", "fingerprint_wire", "match"]
