"""What the voice-profile operations answer, door-neutral: snake_case fields, camelCase by alias.

The HTTP routes and the gateway's voice-profile family speak snake_case, the ZMQ voice API camelCase
(PROTOCOL.md §2); each door picks with `to_wire(camel=...)`, the pipeline never decides. The
analysis transcription and previews are the gateway's `VoiceProfileTranscription` /
`VoicePreviewSampleZMQ` in snake_case (the shared `VoiceProfileTranscription` / `VoicePreviewSample`
in camelCase); milliseconds are integers.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

from serve_app.domain.acoustics import (
    AcousticSimilarity,
    EnergyAnalysis,
    MfccAnalysis,
    PitchAnalysis,
    TimbreAnalysis,
    VoiceAcoustics,
    VoiceClassification,
)
from serve_app.domain.transcription import Transcription
from serve_app.domain.wire import WireModel

__all__ = [
    "MATCH_THRESHOLD", "ProfileAnalysis", "ProfileSegment", "ProfileTranscription", "PreviewFailure",
    "VoiceComparison", "VoiceMatch", "VoicePreview", "VoiceVerification", "WireModel", "iso_utc",
]

MATCH_THRESHOLD = 0.80
# Distance from the threshold at which a verdict is fully confident (FACTS.md: the same voice scores
# ~0.8-0.9, different voices ~0.4-0.65).
CONFIDENT_MARGIN = 0.20


def iso_utc(moment: datetime | float | None = None) -> str:
    """ISO 8601 in UTC with milliseconds and a Z, as JavaScript's toISOString writes it."""
    if moment is None:
        moment = datetime.now(UTC)
    elif isinstance(moment, int | float):
        moment = datetime.fromtimestamp(moment, UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ProfileSegment(WireModel):
    text: str
    start_ms: int
    end_ms: int
    confidence: float


class ProfileTranscription(WireModel):
    """What was said in the sample: `duration_ms` of the audio, `processing_time_ms` of the transcription."""

    omit_if_none: ClassVar[tuple[str, ...]] = ("model",)

    text: str
    language: str
    confidence: float
    duration_ms: int
    source: str
    model: str | None = None
    segments: list[ProfileSegment]
    processing_time_ms: int

    @classmethod
    def of(cls, t: Transcription, processing_time_ms: int) -> ProfileTranscription:
        return cls(
            text=t.text, language=t.language, confidence=t.confidence, duration_ms=t.durationMs, source=t.source,
            model=t.model or None, processing_time_ms=processing_time_ms,
            segments=[ProfileSegment(text=s.text, start_ms=s.startMs, end_ms=s.endMs, confidence=s.confidence)
                      for s in t.segments],
        )


class VoicePreview(WireModel):
    """`original_text` spoken in `language` (as `translated_text`) in the analysed voice."""

    omit_if_none: ClassVar[tuple[str, ...]] = ("voice_similarity",)

    language: str
    original_text: str
    translated_text: str
    audio_base64: str
    audio_format: str  # mp3 | ogg | wav, not a MIME type
    duration_ms: int
    generated_at: str  # ISO 8601
    voice_cloned: bool
    voice_similarity: float | None = None


class PreviewFailure(WireModel):
    language: str
    error: str
    error_code: str


class ProfileAnalysis(WireModel):
    """A voice sample measured for a profile: fingerprint (with the embedding), characteristics, the
    detailed acoustics (`pitch`..`classification`, the gateway's `VoiceAnalysisResult`), optional
    transcription and per-language previews spoken in that voice (failed ones listed apart)."""

    omit_if_none: ClassVar[tuple[str, ...]] = ("transcription", "voice_previews", "voice_previews_failed")

    profile_id: str
    user_id: str | None
    quality_score: float
    audio_duration_ms: int
    voice_characteristics: dict[str, Any]
    fingerprint: dict[str, Any]
    signature_short: str
    embedding_data: str
    embedding_dimension: int
    embedding_model: str
    pitch: PitchAnalysis
    timbre: TimbreAnalysis
    mfcc: MfccAnalysis
    energy: EnergyAnalysis
    classification: VoiceClassification
    transcription: ProfileTranscription | None = None
    voice_previews: list[VoicePreview] | None = None
    voice_previews_failed: list[PreviewFailure] | None = None

    def acoustics(self) -> VoiceAcoustics:
        return VoiceAcoustics(pitch=self.pitch, timbre=self.timbre, mfcc=self.mfcc, energy=self.energy,
                              classification=self.classification)


class VoiceMatch(WireModel):
    """Cosine similarity of two voices against the match threshold."""

    is_match: bool
    similarity_score: float
    threshold: float = MATCH_THRESHOLD


class VoiceVerification(VoiceMatch):
    """`verified_against`: the user's stored profile whenever one exists, else the fingerprint the
    caller sent (only for a user with no stored profile)."""

    user_id: str
    verified_against: Literal["stored_profile", "fingerprint"] = "stored_profile"


class VoiceComparison(VoiceMatch):
    """Two recordings compared (the gateway's `VoiceComparisonResult` in camelCase): the speaker
    embeddings' cosine is the overall similarity and decides the verdict (no third band is invented:
    `uncertain` is never answered); `confidence` is the score's distance from the threshold, full at
    0.20; the per-family similarities say where the voices differ. With what was measured of each."""

    overall_similarity: float
    pitch_similarity: float
    timbre_similarity: float
    mfcc_similarity: float
    energy_similarity: float
    verdict: Literal["same_speaker", "different_speaker", "uncertain"]
    confidence: float
    voice_characteristics_1: dict[str, Any]
    voice_characteristics_2: dict[str, Any]

    @classmethod
    def of(cls, is_match: bool, score: float, parts: AcousticSimilarity, characteristics_1: dict[str, Any],
           characteristics_2: dict[str, Any]) -> VoiceComparison:
        return cls(
            is_match=is_match, similarity_score=score, overall_similarity=score, **parts.model_dump(),
            verdict="same_speaker" if is_match else "different_speaker",
            confidence=round(min(1.0, abs(score - MATCH_THRESHOLD) / CONFIDENT_MARGIN), 4),
            voice_characteristics_1=characteristics_1, voice_characteristics_2=characteristics_2,
        )
