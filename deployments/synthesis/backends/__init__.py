"""Backend contract and registry for the TTS stage.

Every engine (Piper, Kokoro, espeak-ng, XTTS) hides behind the same small `TTSBackend` protocol so
the `Synthesizer` can walk a per-language fallback chain without knowing any engine. Backends are
registered by name with a lazy "module:Class" path in the shared `BackendRegistry`: importing this
package stays cheap (no onnx, torch or subprocess at import time), and adding an engine is one file
plus one registry line (or a `register_backend` call from outside).
"""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from deployments.backend_registry import BackendRegistry
from serve_app.errors import PrerequisiteError


@dataclass(frozen=True)
class SynthesizedSpeech:
    """Mono float32 audio in [-1, 1] plus where it came from (for logs and the cloning stage)."""

    samples: np.ndarray
    sample_rate: int
    backend: str
    voice: str
    cloned: bool = False  # True when the backend already spoke in the reference speaker's voice

    @property
    def duration_s(self) -> float:
        return len(self.samples) / float(self.sample_rate) if self.sample_rate else 0.0


@runtime_checkable
class TTSBackend(Protocol):
    """What the Synthesizer needs from an engine.

    `check()` must be fast and raise PrerequisiteError naming what to install; heavy loading
    happens in `warmup()` or lazily on the first `synthesize()`.
    """

    name: str
    clones_voice: bool

    def languages(self) -> set[str] | None:
        """ISO 639-1 codes this backend can speak, or None for "any"."""
        ...

    def check(self) -> None: ...

    def warmup(self) -> None: ...

    def synthesize(self, text: str, language: str) -> SynthesizedSpeech: ...


BackendFactory = Callable[[Path, str, dict[str, Any]], TTSBackend]
"""factory(cache_dir, device, options) -> backend; must not load weights (check() gates)."""


def _constructor(cls: type[TTSBackend]) -> BackendFactory:
    """A registered backend class as a factory: options become its keyword arguments."""

    def factory(cache_dir: Path, device: str, options: dict[str, Any]) -> TTSBackend:
        return cls(cache_dir=cache_dir, device=device, **(options or {}))  # type: ignore[call-arg]

    factory.__qualname__ = f"constructor[{cls.__module__}.{cls.__qualname__}]"
    return factory


BACKENDS = BackendRegistry(
    "TTS",
    {
        "piper": "deployments.synthesis.backends.piper:PiperBackend",
        "kokoro": "deployments.synthesis.backends.kokoro:KokoroBackend",
        "espeak": "deployments.synthesis.backends.espeak:EspeakBackend",
        "xtts": "deployments.synthesis.backends.xtts:XTTSBackend",
    },
    adapt=_constructor,
)
"""Backend name -> factory(cache_dir, device, options); a backend's module is imported when looked up."""


def register_backend(name: str, factory: BackendFactory) -> None:
    """Add (or replace) a backend factory under `name`."""
    BACKENDS.register(name, factory)


# ---- small helpers shared by backends -------------------------------------------------------


def require_binary(binary: str, install_hint: str) -> str:
    """Path of `binary` on PATH, or PrerequisiteError telling the operator how to get it."""
    path = shutil.which(binary)
    if path is None:
        raise PrerequisiteError(f"'{binary}' not found on PATH; {install_hint}")
    return path


def package_dir(package: str, install_hint: str) -> Path:
    """Directory of an installed package WITHOUT importing it (keeps check() fast)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise PrerequisiteError(f"Python package '{package}' is not installed; {install_hint}")
    return Path(next(iter(spec.submodule_search_locations)))


def onnx_providers(device: str) -> list[str]:
    """CUDA first when asked for and present in this onnxruntime build, CPU always as fallback."""
    import onnxruntime as ort

    providers = ["CPUExecutionProvider"]
    if device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    return providers


def to_float32_mono(samples: Any) -> np.ndarray:
    """Flatten to mono float32 and clip to [-1, 1] (engines return int16, float64 or 2-D)."""
    arr = np.asarray(samples)
    if arr.dtype == np.int16:
        arr = arr.astype(np.float32) / 32768.0
    arr = arr.astype(np.float32, copy=False)
    if arr.ndim > 1:
        arr = np.squeeze(arr)
        if arr.ndim == 2:  # average channels, whichever axis is the short one
            arr = arr.mean(axis=0 if arr.shape[0] < arr.shape[1] else 1)
    return np.clip(arr.ravel(), -1.0, 1.0)


__all__ = [
    "BACKENDS",
    "BackendFactory",
    "SynthesizedSpeech",
    "TTSBackend",
    "onnx_providers",
    "package_dir",
    "register_backend",
    "require_binary",
    "to_float32_mono",
]
