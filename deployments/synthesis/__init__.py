"""Text-to-speech stage: per-language backend chains (Piper, Kokoro, espeak-ng, XTTS)."""

from deployments.synthesis.backends import (
    BACKENDS,
    SynthesizedSpeech,
    TTSBackend,
    register_backend,
)
from deployments.synthesis.synthesizer import (
    DEFAULT_LANGUAGE_CHAINS,
    Synthesizer,
)

__all__ = [
    "BACKENDS",
    "DEFAULT_LANGUAGE_CHAINS",
    "SynthesizedSpeech",
    "Synthesizer",
    "TTSBackend",
    "register_backend",
]
