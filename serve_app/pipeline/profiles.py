"""Voice profile operations behind both doors: CRUD, analyze, verify, compare, feedback.

A mixin of `VoicePipeline`: typed methods returning door-neutral models (`serve_app.domain.profiles`)
or the profile's stored summary; each door renders its own casing. Audio is measured by
`analyze_voice` (embedding, converter statistics, characteristics); the lifecycle rules live in
`VoiceProfileManager`.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from typing import TYPE_CHECKING, Any

import numpy as np

from serve_app.audio import MIME_TYPES
from serve_app.domain.profiles import (
    MATCH_THRESHOLD,
    PreviewFailure,
    ProfileAnalysis,
    ProfileTranscription,
    VoiceComparison,
    VoiceMatch,
    VoicePreview,
    VoiceVerification,
    iso_utc,
)
from serve_app.domain.speaker import cosine, embedding_from_float32, embedding_to_float32
from serve_app.domain.voice import LanguageAudio, LanguageFailure, VoiceAnalysis
from serve_app.errors import InvalidRequestError
from serve_app.settings import Settings
from serve_app.stores.errors import ProfileNotFoundError, ProfileTooShortError, StoreUnavailableError
from serve_app.stores.feedback import FeedbackLog
from serve_app.stores.profile_lifecycle import NewSample, VoiceProfileManager, quality_score
from serve_app.stores.voice_profiles import VoiceProfile, compute_fingerprint, new_profile_id
from serve_app.voice_acoustics import compare as compare_acoustics
from serve_app.voice_characteristics import VoiceCharacteristics


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
        raise InvalidRequestError(f"{what}.embedding_data is not a base64 float32 embedding") from exc


def similarity(a: np.ndarray, b: np.ndarray) -> tuple[bool, float]:
    if a.shape != b.shape:
        raise InvalidRequestError(f"embeddings of different sizes cannot be compared ({a.size} vs {b.size})")
    score = cosine(a, b)
    return score >= MATCH_THRESHOLD, round(score, 4)


def _need_audio(audio: bytes | None) -> bytes:
    if not audio:
        raise InvalidRequestError("audio is required (audioBase64 over ZMQ, a file upload over HTTP)")
    return audio


class ProfileOps:
    settings: Settings
    profiles: VoiceProfileManager | None
    feedback_log: FeedbackLog

    if TYPE_CHECKING:  # SpeechOps and VoiceMessageOps provide them; declared for type checkers only, so no
        # stub can shadow the real method whatever the order of VoicePipeline's bases
        async def analyze_voice(
            self, audio: bytes, transcribe: bool = False, detailed: bool = False
        ) -> VoiceAnalysis: ...
        async def speak_as(self, text: str, target: str, reference: bytes) -> LanguageAudio | LanguageFailure: ...

    def _manager(self) -> VoiceProfileManager:
        if self.profiles is None:
            raise StoreUnavailableError("no voice profile store is configured")
        return self.profiles

    async def _sample(self, audio: bytes) -> NewSample:
        analysis = await self.analyze_voice(audio, True)
        return NewSample(
            attachment_id=f"api_{uuid.uuid4().hex[:16]}",
            duration_ms=analysis.duration_ms,
            language=analysis.transcription.language if analysis.transcription else None,
            embedding=np.asarray(analysis.embedding, dtype=np.float32),
            speaker_reference=analysis.speaker_reference,
            characteristics=VoiceCharacteristics.model_validate(analysis.characteristics),
        )

    async def _require_profile(self, user_id: str) -> VoiceProfile:
        profile = await self._manager().get(user_id)
        if profile is None:
            raise ProfileNotFoundError(f"user {user_id!r} has no voice profile")
        return profile

    # ---- CRUD: the stored profile's summary (camelCase, as the documents are) ----
    async def profile_get(self, user_id: str) -> dict[str, Any]:
        return (await self._require_profile(user_id)).summary()

    async def profile_list(self, limit: int = 50, offset: int = 0) -> dict[str, Any]:
        manager = self._manager()
        profiles, total = await asyncio.gather(manager.list(limit, offset), manager.count())
        return {"profiles": [p.summary() for p in profiles], "total": total, "limit": limit, "offset": offset}

    async def profile_delete(self, user_id: str) -> dict[str, Any]:
        if not await self._manager().delete(user_id):
            raise ProfileNotFoundError(f"user {user_id!r} has no voice profile")
        return {"deleted": True, "userId": user_id}

    async def profile_create(self, user_id: str, audio: bytes | None) -> dict[str, Any]:
        manager = self._manager()
        return (await manager.create_from_sample(user_id, await self._sample(_need_audio(audio)))).summary()

    async def profile_update(self, user_id: str, audio: bytes | None) -> dict[str, Any]:
        manager = self._manager()
        return (await manager.update_from_sample(user_id, await self._sample(_need_audio(audio)))).summary()

    # ---- analysis, verification, comparison ----
    async def profile_analyze(
        self,
        audio: bytes,
        user_id: str | None = None,
        include_transcription: bool = True,
        min_profile_audio: bool = False,
        preview_languages: list[str] | None = None,
        preview_text: str | None = None,
    ) -> ProfileAnalysis:
        analysis = await self.analyze_voice(audio, include_transcription, detailed=True)
        if min_profile_audio and analysis.duration_ms < self.settings.voice_profile_min_speech_ms:
            raise ProfileTooShortError(
                f"profile audio must be at least {self.settings.voice_profile_min_speech_ms / 1000:.0f} s, "
                f"got {analysis.duration_ms / 1000:.1f} s"
            )
        if analysis.acoustics is None:  # pragma: no cover - detailed=True always measures them
            raise InvalidRequestError("the sample could not be measured")
        embedding = np.asarray(analysis.embedding, dtype=np.float32)
        fingerprint = fingerprint_wire(embedding, analysis.embedding_model)
        existing = await self._manager().get(user_id) if user_id else None
        previews, failed = await self._previews(analysis, preview_languages, preview_text) if preview_languages \
            else (None, None)
        return ProfileAnalysis(
            profile_id=existing.profileId if existing else new_profile_id(),
            user_id=user_id,
            quality_score=quality_score(analysis.duration_ms, 1),
            audio_duration_ms=analysis.duration_ms,
            voice_characteristics=analysis.characteristics,
            fingerprint=fingerprint,
            signature_short=fingerprint["signatureShort"],
            embedding_data=fingerprint["embedding_data"],
            embedding_dimension=int(embedding.size),
            embedding_model=analysis.embedding_model,
            **analysis.acoustics.model_dump(),
            transcription=ProfileTranscription.of(analysis.transcription, analysis.transcription_ms or 0)
            if analysis.transcription else None,
            voice_previews=previews,
            voice_previews_failed=failed or None,
        )

    async def _previews(
        self, analysis: VoiceAnalysis, languages: list[str], text: str | None
    ) -> tuple[list[VoicePreview], list[PreviewFailure]]:
        """`text` (else what the sample said) spoken in each language in the sample's voice; a language
        that fails is listed apart, so every preview the gateway stores is complete."""
        source = text or (analysis.transcription.text if analysis.transcription else "")
        if not source.strip():
            raise InvalidRequestError("previews need preview_text or a transcribable sample")
        outcomes = await asyncio.gather(*(self.speak_as(source, lang, analysis.speaker_reference)
                                          for lang in dict.fromkeys(languages)))
        formats = {mime: fmt for fmt, mime in MIME_TYPES.items()}
        previews: list[VoicePreview] = []
        failed: list[PreviewFailure] = []
        for out in outcomes:
            if isinstance(out, LanguageFailure):
                failed.append(PreviewFailure(language=out.target_language, error=out.error, error_code=out.error_code))
            else:
                previews.append(VoicePreview(
                    language=out.target_language, original_text=source, translated_text=out.translated_text,
                    audio_base64=base64.b64encode(out.audio).decode("ascii"),
                    audio_format=formats.get(out.audio_mime_type, self.settings.output_format),
                    duration_ms=out.duration_ms, generated_at=iso_utc(), voice_cloned=out.voice_cloned,
                    voice_similarity=out.voice_similarity,
                ))
        return previews, failed

    async def profile_verify(
        self, audio: bytes, user_id: str, fingerprint: dict[str, Any] | None = None
    ) -> VoiceVerification:
        """Does `audio` sound like `user_id`? Measured against the user's *stored* profile whenever
        there is one: a caller-supplied fingerprint is then ignored, so nobody can verify as a user
        by sending audio together with a fingerprint of that same audio. The fingerprint is used
        only when the user has no stored profile (the gateway keeps its own copy of a fingerprint
        that `profile_analyze` returned) or no profile store is configured. A store that does not
        answer is a 503, never a fall-back to the caller's fingerprint."""
        has_fingerprint = bool(fingerprint and (fingerprint.get("embedding_data") or fingerprint.get("embedding")))
        stored = None
        if self.profiles is not None or not has_fingerprint:
            stored = await self._manager().get(user_id)  # no store and no fingerprint: 503
        if stored is not None:
            reference, against = stored.vector(), "stored_profile"
        elif has_fingerprint:
            reference, against = embedding_of_fingerprint(fingerprint, "existing_fingerprint"), "fingerprint"
        else:
            raise ProfileNotFoundError(f"user {user_id!r} has no voice profile")
        analysis = await self.analyze_voice(audio, False)
        is_match, score = similarity(np.asarray(analysis.embedding, dtype=np.float32), reference)
        return VoiceVerification(user_id=user_id, is_match=is_match, similarity_score=score,
                                 verified_against=against)

    async def profile_compare(self, fingerprint_a: dict[str, Any], fingerprint_b: dict[str, Any]) -> VoiceMatch:
        is_match, score = similarity(embedding_of_fingerprint(fingerprint_a, "fingerprint_a"),
                                     embedding_of_fingerprint(fingerprint_b, "fingerprint_b"))
        return VoiceMatch(is_match=is_match, similarity_score=score)

    async def compare_voices(self, audio_a: bytes, audio_b: bytes) -> VoiceComparison:
        a, b = await asyncio.gather(self.analyze_voice(audio_a, False, detailed=True),
                                    self.analyze_voice(audio_b, False, detailed=True))
        is_match, score = similarity(np.asarray(a.embedding, dtype=np.float32),
                                     np.asarray(b.embedding, dtype=np.float32))
        if a.acoustics is None or b.acoustics is None:  # pragma: no cover - detailed=True always measures them
            raise InvalidRequestError("the samples could not be measured")
        return VoiceComparison.of(is_match, score, compare_acoustics(a.acoustics, b.acoustics),
                                  a.characteristics, b.characteristics)

    async def record_feedback(self, feedback: dict[str, Any]) -> dict[str, Any]:
        return await self.feedback_log.record(feedback)
