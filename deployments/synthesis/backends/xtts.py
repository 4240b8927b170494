"""Coqui XTTS v2 backend: multilingual and clones the speaker from a reference clip by itself.

Neither XTTS weights nor an importable `TTS` package exist on the registry-only build machines
(PyPI's torchaudio is a CUDA build), so `check()` fails fast there and the chain falls back.
The real code path stays for GPU deployments that mount the weights (`model_dir` with
`model.pth`, `config.json`, `vocab.json`, `speakers_xtts.pth`).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from deployments.synthesis.backends import SynthesizedSpeech, to_float32_mono
from serve_app.errors import PrerequisiteError, SynthesisError, UnsupportedLanguageError, logged_failure

log = logging.getLogger(__name__)

XTTS_HINT = (
    "install coqui-tts with a torch/torchaudio build matching this machine and set "
    "xtts.model_dir to a folder holding the XTTS v2 checkpoint (model.pth, config.json, vocab.json)"
)
# XTTS v2 language codes, keyed by the ISO 639-1 code the service uses.
XTTS_LANGUAGES = {
    "en": "en",
    "es": "es",
    "fr": "fr",
    "de": "de",
    "it": "it",
    "pt": "pt",
    "pl": "pl",
    "tr": "tr",
    "ru": "ru",
    "nl": "nl",
    "cs": "cs",
    "ar": "ar",
    "zh": "zh-cn",
    "hu": "hu",
    "ko": "ko",
    "ja": "ja",
    "hi": "hi",
}


class XTTSOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_dir: Path | None = Field(None, description="folder with model.pth and config.json")
    config_path: Path | None = None
    default_speaker_wav: Path | None = Field(None, description="voice used without a reference")


class XTTSBackend:
    name = "xtts"
    clones_voice = True

    def __init__(self, cache_dir: Path | None = None, device: str = "cpu", **options: Any):
        self.options = XTTSOptions(**options)
        self.device = device
        self._tts: Any = None
        self._lock = threading.Lock()

    def languages(self) -> set[str] | None:
        return set(XTTS_LANGUAGES)

    def _config_path(self) -> Path:
        assert self.options.model_dir is not None
        return self.options.config_path or self.options.model_dir / "config.json"

    def check(self) -> None:
        # Cheapest checks first: no import (torch takes seconds) unless everything else is there.
        if importlib.util.find_spec("TTS") is None:
            raise PrerequisiteError(f"Python package 'TTS' (coqui-tts) is missing; {XTTS_HINT}")
        if self.options.model_dir is None:
            raise PrerequisiteError(f"xtts.model_dir is not configured; {XTTS_HINT}")
        missing = [
            str(p)
            for p in (self.options.model_dir / "model.pth", self._config_path())
            if not p.is_file()
        ]
        if missing:
            raise PrerequisiteError(f"XTTS files missing: {', '.join(missing)}; {XTTS_HINT}")
        try:
            import TTS.api  # noqa: F401
        except Exception as exc:  # CUDA-only torchaudio raises OSError/ImportError/RuntimeError
            raise PrerequisiteError(f"'TTS' cannot be imported here ({exc}); {XTTS_HINT}") from exc

    def warmup(self) -> None:
        if self._tts is not None:
            return
        with self._lock:
            if self._tts is None:
                from TTS.api import TTS

                tts = TTS(
                    model_path=str(self.options.model_dir), config_path=str(self._config_path())
                )
                self._tts = tts.to(self.device)

    def synthesize(
        self, text: str, language: str, *, speaker_wav: bytes | None = None
    ) -> SynthesizedSpeech:
        code = XTTS_LANGUAGES.get(language)
        if code is None:
            raise UnsupportedLanguageError(f"XTTS does not speak '{language}'")
        if speaker_wav is None and self.options.default_speaker_wav is None:
            raise SynthesisError(
                "XTTS needs a reference voice: pass speaker_wav or configure "
                "xtts.default_speaker_wav"
            )
        self.warmup()
        tmp_path: str | None = None
        try:
            if speaker_wav is not None:
                fd, tmp_path = tempfile.mkstemp(suffix=".wav")
                with os.fdopen(fd, "wb") as f:
                    f.write(speaker_wav)
            ref = tmp_path or str(self.options.default_speaker_wav)
            wav = self._tts.tts(text=text, speaker_wav=ref, language=code)
            rate = int(self._tts.synthesizer.output_sample_rate)
        except Exception as exc:  # torch/coqui raise many unrelated types
            raise logged_failure(SynthesisError, "XTTS failed", exc) from exc
        finally:
            if tmp_path:
                os.unlink(tmp_path)
        return SynthesizedSpeech(
            samples=to_float32_mono(wav),
            sample_rate=rate,
            backend=self.name,
            voice="xtts-v2",
            cloned=speaker_wav is not None,
        )
