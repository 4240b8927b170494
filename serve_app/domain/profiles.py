"""What the voice-profile operations answer, door-neutral: snake_case fields, camelCase by alias.

The HTTP routes and the gateway's voice-profile family speak snake_case, the ZMQ voice API camelCase
(PROTOCOL.md §2); each door picks with `to_wire(camel=...)`, the pipeline never decides.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from serve_app.domain.transcription import Transcription

MATCH_THRESHOLD = 0.80


class WireModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)
    omit_if_none: ClassVar[tuple[str, ...]] = ()

    def to_wire(self, camel: bool = False) -> dict[str, Any]:
        omit = {name for name in self.omit_if_none if getattr(self, name) is None}
        return self.model_dump(mode="json", by_alias=camel, exclude=omit)


class ProfileAnalysis(WireModel):
    """A voice sample measured for a profile: fingerprint (with the embedding), characteristics,
    optional transcription and per-language previews spoken in that voice."""

    omit_if_none: ClassVar[tuple[str, ...]] = ("transcription", "voice_previews")

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
    transcription: Transcription | None = None
    voice_previews: list[dict[str, Any]] | None = None


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
    """Two recordings compared, with what was measured of each."""

    voice_characteristics_1: dict[str, Any]
    voice_characteristics_2: dict[str, Any]
