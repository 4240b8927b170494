"""Adapters from the plain model classes to the byte-level stage API the pipeline speaks.

The Ray deployments and the benchmark's baseline both use these, so the conversion between numpy arrays and
the PCM/npz bytes that cross process boundaries is written once.
"""

from __future__ import annotations

from typing import Any

from deployments.translation.translator import Translator
from serve_app.audio import pcm_from_bytes, pcm_to_bytes
from serve_app.domain.translation import TranslationRequest, TranslationResult
from serve_app.domain.voice import ConvertedClip, SpeechClip
from serve_app.errors import ServiceError


class TranslationService:
    def __init__(self, translator: Translator) -> None:
        self.translator = translator
        self.calls = 0  # backend batches run; exposed in describe() for cache/batching checks

    def translate_batch(self, items: list[tuple[str, str, str]]) -> list[TranslationResult | ServiceError]:
        self.calls += 1
        requests = [TranslationRequest(text=t, source_language=s, target_language=g) for t, s, g in items]
        return self.translator.translate_many(requests)

    def detect_language(self, text: str) -> tuple[str, float]:
        from serve_app.text_language import detect_text_language

        return detect_text_language(text)

    def describe(self) -> dict[str, Any]:
        backend = self.translator.backend
        return {"backend": backend.name, "model": backend.model_id, "batches": self.calls}


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
