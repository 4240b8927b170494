"""espeak-ng backend: robotic but speaks ~100 languages and needs no weights -> the last resort.

Runs the Debian `espeak-ng` binary in a subprocess (isolated, no global state to lock) and reads
the WAV it writes to stdout. The ISO 639-1 -> espeak voice map is built from `espeak-ng --voices`
so it follows whatever espeak-ng version is installed; the Kokoro backend reuses it for phonemes.
"""

from __future__ import annotations

import functools
import logging
import struct
import subprocess
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from deployments.synthesis.backends import SynthesizedSpeech, require_binary
from serve_app.errors import PrerequisiteError, SynthesisError, UnsupportedLanguageError, logged_failure

log = logging.getLogger(__name__)

ESPEAK_INSTALL_HINT = "install it with `apt-get install espeak-ng` (Debian/Ubuntu)"

# Where espeak-ng has several voices for one ISO code, the one we want (or an alias it lacks).
_PREFERRED = {
    "en": "en-us",
    "fr": "fr-fr",
    "es": "es",
    "pt": "pt-br",
    "zh": "cmn",
    "no": "nb",
    "nb": "nb",
    "hy": "hy",
    "vi": "vi",
    "fa": "fa",
}


@functools.lru_cache(maxsize=4)
def espeak_voice_map(binary: str) -> dict[str, str]:
    """ISO 639-1 code -> espeak-ng voice name, from the installed espeak-ng's voice list."""
    out = subprocess.run(
        [binary, "--voices"], capture_output=True, text=True, timeout=10, check=True
    ).stdout
    available: list[str] = []
    for line in out.splitlines()[1:]:
        cols = line.split()
        if len(cols) >= 2:
            available.append(cols[1])
    mapping: dict[str, str] = {}
    for code in available:
        base = code.split("-")[0].lower()
        if len(base) == 2 and base not in mapping:
            mapping[base] = code
    for iso, voice in _PREFERRED.items():
        if voice in available:
            mapping[iso] = voice
    return mapping


def parse_wav_bytes(data: bytes) -> tuple[np.ndarray, int]:
    """Decode 16-bit PCM WAV from a pipe.

    espeak-ng streams to stdout, so the RIFF/data sizes in its header are placeholders
    (~2 GiB); `wave` would trust them. We walk the chunks and take everything after `data`.
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise SynthesisError("espeak-ng did not produce a WAV stream")
    pos, rate, channels, width = 12, 0, 1, 2
    while pos + 8 <= len(data):
        chunk_id, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        body = pos + 8
        if chunk_id == b"fmt ":
            _, channels, rate, _, _, bits = struct.unpack("<HHIIHH", data[body : body + 16])
            width = bits // 8
        elif chunk_id == b"data":
            pcm = data[body : min(len(data), body + size)]
            pcm = pcm[: len(pcm) - len(pcm) % (width * channels)]
            if width != 2 or not rate:
                raise SynthesisError(f"unexpected WAV format from espeak-ng ({width * 8} bit)")
            samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
            if channels > 1:
                samples = samples.reshape(-1, channels).mean(axis=1)
            return samples, rate
        pos = body + size + (size & 1)
    raise SynthesisError("espeak-ng WAV stream has no data chunk")


class EspeakOptions(BaseModel):
    """Operator-tunable settings (from the service config's backend_options["espeak"])."""

    model_config = ConfigDict(extra="forbid")

    variant: str | None = Field(None, description="voice variant, e.g. 'm3' or 'f2' (espeak +v)")
    speed_wpm: int = Field(150, ge=80, le=450, description="words per minute (espeak default 175)")
    pitch: int | None = Field(None, ge=0, le=99)
    voices: dict[str, str] = Field(default_factory=dict, description="ISO code -> espeak voice")
    timeout_s: float = Field(30.0, gt=0)


class EspeakBackend:
    """Debian espeak-ng through a subprocess; every language espeak-ng knows."""

    name = "espeak"
    clones_voice = False

    def __init__(self, cache_dir: Path | None = None, device: str = "cpu", **options: object):
        self.options = EspeakOptions(**options)
        self._binary: str | None = None

    def check(self) -> None:
        self._binary = require_binary("espeak-ng", ESPEAK_INSTALL_HINT)
        try:
            espeak_voice_map(self._binary)
        except (OSError, subprocess.SubprocessError) as exc:
            raise PrerequisiteError(
                f"`espeak-ng --voices` failed ({exc}); reinstall espeak-ng"
            ) from exc

    def warmup(self) -> None:
        self.check()

    def _voice_map(self) -> dict[str, str]:
        if self._binary is None:
            self.check()
        return {**espeak_voice_map(self._binary), **self.options.voices}

    def languages(self) -> set[str] | None:
        return set(self._voice_map())

    def voice_for(self, language: str) -> str:
        voice = self._voice_map().get(language)
        if voice is None:
            raise UnsupportedLanguageError(f"espeak-ng has no voice for language '{language}'")
        return voice

    def synthesize(self, text: str, language: str) -> SynthesizedSpeech:
        voice = self.voice_for(language)
        full_voice = f"{voice}+{self.options.variant}" if self.options.variant else voice
        cmd = [self._binary or "espeak-ng", "--stdout", "--stdin", "-b", "1", "-v", full_voice]
        cmd += ["-s", str(self.options.speed_wpm)]
        if self.options.pitch is not None:
            cmd += ["-p", str(self.options.pitch)]
        try:
            proc = subprocess.run(
                cmd,
                input=text.encode("utf-8"),
                capture_output=True,
                timeout=self.options.timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise SynthesisError(f"espeak-ng timed out after {self.options.timeout_s}s") from exc
        if proc.returncode != 0 or not proc.stdout:
            err = proc.stderr.decode("utf-8", "replace").strip()
            raise logged_failure(SynthesisError, "espeak-ng failed", detail=f"rc={proc.returncode}: {err}")
        samples, rate = parse_wav_bytes(proc.stdout)
        return SynthesizedSpeech(
            samples=samples, sample_rate=rate, backend=self.name, voice=full_voice
        )
