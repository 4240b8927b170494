"""Per-language TTS fallback chains over pluggable backends.

The old system waited 120 s on a missing TTS engine; here every backend is checked at start-up
(fast), unusable ones are skipped with the reason recorded, and each request walks an ordered
chain for its language (best voice first, espeak-ng last) so one engine failing degrades the
voice, not the request.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, field_validator

from deployments.synthesis.backends import BACKENDS, SynthesizedSpeech, TTSBackend
from serve_app.errors import (
    InvalidRequestError,
    PrerequisiteError,
    ServiceError,
    SynthesisError,
    TextTooLongError,
    UnsupportedLanguageError,
    as_service_error,
)
from serve_app.languages import normalize_language
from serve_app.sentences import split_text

log = logging.getLogger(__name__)

DEFAULT_CHAIN = "*"
# Measured with Whisper base, forced language, mean WER (kokoro voice jf_gongitsune vs espeak-ng):
# es 0.15 vs 0.42, fr 0.48 vs 0.88, it 0.27 vs 0.37, pt 0.11 vs 0.74, de 0.21 vs 0.22; en: piper
# 0.03 (0.25 s/sentence), kokoro 0.02 (1.2 s). Kokoro only claims the languages it was measured on,
# so "*" falls through to espeak-ng for everything else.
DEFAULT_LANGUAGE_CHAINS: dict[str, list[str]] = {
    "en": ["piper", "kokoro", "espeak"],
    DEFAULT_CHAIN: ["kokoro", "espeak"],
}



class LanguageChains(BaseModel):
    """Validated `language_chains` config: ISO code (or "*") -> ordered backend names."""

    chains: dict[str, list[str]]

    @field_validator("chains")
    @classmethod
    def _valid(cls, chains: dict[str, list[str]]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for lang, names in chains.items():
            key = lang if lang == DEFAULT_CHAIN else normalize_language(lang)
            if not names:
                raise ValueError(f"language chain for '{lang}' is empty")
            out[key] = list(dict.fromkeys(names))
        return out


class Synthesizer:
    """Text -> speech through the first backend in the language's chain that works."""

    def __init__(
        self,
        backends: dict[str, TTSBackend],
        language_chains: dict[str, list[str]],
        *,
        failed: dict[str, str] | None = None,
        sentence_pause_s: float = 0.25,
        max_sentence_chars: int = 300,
        max_chars: int = 5000,
    ) -> None:
        self.backends = dict(backends)
        self.language_chains = LanguageChains(chains=language_chains).chains
        self.failed = dict(failed or {})
        self.sentence_pause_s = sentence_pause_s
        self.max_sentence_chars = max_sentence_chars
        self.max_chars = max_chars

    @classmethod
    def from_config(
        cls,
        language_chains: dict[str, list[str]] | None,
        cache_dir: Path,
        device: str = "cpu",
        backend_options: dict[str, dict[str, Any]] | None = None,
        *,
        warmup: bool = False,
        **kwargs: Any,
    ) -> Synthesizer:
        """Build only the backends the chains name; skip (and log) those whose check() fails."""
        chains = LanguageChains(chains=language_chains or DEFAULT_LANGUAGE_CHAINS).chains
        names = list(dict.fromkeys(n for chain in chains.values() for n in chain))
        unknown = [n for n in names if n not in BACKENDS]
        if unknown:
            raise PrerequisiteError(
                f"unknown TTS backend(s) {unknown} in language_chains; known: {BACKENDS.names()}"
            )
        options = backend_options or {}
        backends: dict[str, TTSBackend] = {}
        failed: dict[str, str] = {}
        for name in names:
            try:
                backend = BACKENDS[name](Path(cache_dir), device, dict(options.get(name) or {}))
                backend.check()
                if warmup:
                    backend.warmup()
            except (ServiceError, ImportError, OSError) as exc:
                failed[name] = str(exc)
                log.warning("TTS backend '%s' unavailable: %s", name, exc)
                continue
            backends[name] = backend
            log.info("TTS backend '%s' ready", name)
        if not backends:
            reasons = "; ".join(f"{n}: {r}" for n, r in failed.items())
            raise PrerequisiteError(f"no TTS backend is usable ({reasons})")
        return cls(backends, chains, failed=failed, **kwargs)

    # ---- routing --------------------------------------------------------------------------
    def candidates(self, language: str) -> list[str]:
        """Loaded backends, in chain order, that claim the (normalised) language."""
        lang = normalize_language(language)
        chain = self.language_chains.get(lang) or self.language_chains.get(DEFAULT_CHAIN, [])
        out = []
        for name in chain:
            backend = self.backends.get(name)
            if backend is None:
                continue
            langs = backend.languages()
            if langs is None or lang in langs:
                out.append(name)
        return out

    def backend_for(self, language: str) -> str:
        names = self.candidates(language)
        if not names:
            raise UnsupportedLanguageError(f"no text-to-speech voice for language '{language}'")
        return names[0]

    def describe(self) -> dict[str, Any]:
        loaded = {}
        for name, backend in self.backends.items():
            langs = backend.languages()
            loaded[name] = {
                "languages": "*" if langs is None else sorted(langs),
                "clones_voice": bool(getattr(backend, "clones_voice", False)),
            }
        return {
            "loaded": loaded,
            "failed": dict(self.failed),
            "language_chains": {k: list(v) for k, v in self.language_chains.items()},
        }

    # ---- synthesis ------------------------------------------------------------------------
    def synthesize(
        self, text: str, language: str, *, speaker_wav: bytes | None = None
    ) -> SynthesizedSpeech:
        """Speak `text`; `speaker_wav` is handed only to backends that clone voices themselves."""
        if not text or not re.search(r"\w", text):
            raise InvalidRequestError("text to synthesize is empty")
        if len(text) > self.max_chars:
            raise TextTooLongError(f"text has {len(text)} characters (max {self.max_chars})")
        lang = normalize_language(language)
        names = self.candidates(lang)
        if not names:
            raise UnsupportedLanguageError(f"no text-to-speech voice for language '{language}'")
        sentences = [piece.text for piece in split_text(text, self.max_sentence_chars)]
        errors: list[str] = []
        for name in names:
            try:
                return self._speak(self.backends[name], sentences, lang, speaker_wav)
            except Exception as exc:  # noqa: BLE001 - any engine failure degrades to the next one
                errors.append(f"{name}: {as_service_error(exc, 'tts_failed').message}")
                log.warning("TTS backend '%s' failed for %s, trying next: %s", name, lang, exc)
        raise SynthesisError(f"all TTS backends failed for '{lang}': " + "; ".join(errors))

    def _speak(
        self, backend: TTSBackend, sentences: list[str], lang: str, speaker_wav: bytes | None
    ) -> SynthesizedSpeech:
        clones = bool(getattr(backend, "clones_voice", False))
        parts: list[SynthesizedSpeech] = []
        for sentence in sentences:
            if clones:
                part = backend.synthesize(sentence, lang, speaker_wav=speaker_wav)  # type: ignore[call-arg]
            else:
                part = backend.synthesize(sentence, lang)
            if part.samples.size == 0:
                raise SynthesisError(f"{backend.name} returned no audio for a sentence")
            parts.append(part)
        rate = parts[0].sample_rate
        if any(p.sample_rate != rate for p in parts):
            raise SynthesisError(f"{backend.name} mixed sample rates within one text")
        gap = np.zeros(int(self.sentence_pause_s * rate), dtype=np.float32)
        pieces: list[np.ndarray] = []
        for i, part in enumerate(parts):
            if i:
                pieces.append(gap)
            pieces.append(np.asarray(part.samples, dtype=np.float32))
        return SynthesizedSpeech(
            samples=np.concatenate(pieces),
            sample_rate=rate,
            backend=backend.name,
            voice=parts[0].voice,
            cloned=all(p.cloned for p in parts),
        )
