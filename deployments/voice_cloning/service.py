"""Ray-free adapter from the plain `VoiceCloner` to the byte-level stage API the pipeline speaks.

The Serve deployment and the benchmark's naive baseline both use it, so the conversion between
numpy arrays and the PCM/npz bytes that cross process boundaries is written once.
"""

from __future__ import annotations

from typing import Any

from serve_app.audio import pcm_from_bytes, pcm_to_bytes
from serve_app.domain.voice import ConvertedClip, SpeechClip


class CloningService:
    def __init__(self, cloner: Any) -> None:
        self.cloner = cloner

    def reference(self, pcm: bytes, sample_rate: int) -> bytes:
        """The sender's voice as npz bytes (embedding + WORLD statistics); never pickled."""
        return self.cloner.reference_from_audio(pcm_from_bytes(pcm), sample_rate).to_npz_bytes()

    def convert(self, clip: SpeechClip, reference: bytes) -> ConvertedClip:
        from serve_app.domain.speaker import SpeakerReference

        converted = self.cloner.convert(
            pcm_from_bytes(clip.pcm), clip.sample_rate, SpeakerReference.from_npz_bytes(reference)
        )
        return ConvertedClip(
            pcm=pcm_to_bytes(converted.samples),
            sample_rate=converted.sample_rate,
            converted=converted.converted,
            similarity=converted.similarity,
            base_similarity=converted.base_similarity,
            backend=converted.backend,
        )

    def describe(self) -> dict[str, Any]:
        return self.cloner.describe()
