"""Ray-free adapter from the plain `Synthesizer` to the byte-level stage API the pipeline speaks.

The Serve deployment and the benchmark's naive baseline both use it, so the conversion from numpy
arrays to the PCM bytes that cross process boundaries is written once.
"""

from __future__ import annotations

from typing import Any

from serve_app.audio import pcm_to_bytes
from serve_app.domain.voice import SpeechClip


class SynthesisService:
    def __init__(self, synthesizer: Any) -> None:
        self.synthesizer = synthesizer

    def synthesize(self, text: str, language: str) -> SpeechClip:
        speech = self.synthesizer.synthesize(text, language)
        return SpeechClip(
            pcm=pcm_to_bytes(speech.samples),
            sample_rate=speech.sample_rate,
            backend=speech.backend,
            voice=speech.voice,
        )

    def describe(self) -> dict[str, Any]:
        return self.synthesizer.describe()
