"""The speaker encoder (resemblyzer GE2E) and the input checks the cloner applies to audio.

What the encoder produces, `SpeakerReference` and its codecs, is a shared value type in
`serve_app.domain.speaker`; this module holds what needs the model.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from serve_app.domain.speaker import EMBEDDING_DIM, EMBEDDING_MODEL, cosine
from serve_app.errors import AudioDecodeError, InvalidRequestError, PrerequisiteError

ENCODER_SAMPLE_RATE = 16_000
MIN_SAMPLE_RATE = 8_000
MAX_SAMPLE_RATE = 192_000


def check_audio(samples: Any, sample_rate: int, *, min_seconds: float, what: str) -> np.ndarray:
    """Validate mono float audio and return it as float32; raise a client error otherwise."""
    if not isinstance(sample_rate, (int, np.integer)) or not (
        MIN_SAMPLE_RATE <= int(sample_rate) <= MAX_SAMPLE_RATE
    ):
        raise InvalidRequestError(
            f"{what}: sample rate must be an int in [{MIN_SAMPLE_RATE}, {MAX_SAMPLE_RATE}], "
            f"got {sample_rate!r}"
        )
    x = np.asarray(samples)
    if x.ndim == 2 and 1 in x.shape:
        x = x.reshape(-1)
    if x.ndim != 1:
        raise InvalidRequestError(f"{what}: expected mono audio (1-D array), got shape {x.shape}")
    if x.dtype.kind != "f":  # int PCM would be 32768x too loud: the service speaks float
        raise InvalidRequestError(f"{what}: audio must be float samples in [-1, 1], got {x.dtype}")
    x = x.astype(np.float32, copy=False)
    seconds = x.size / int(sample_rate)
    if seconds < min_seconds:
        raise AudioDecodeError(
            f"{what}: audio is too short ({seconds:.2f} s); at least {min_seconds:.1f} s needed"
        )
    if not np.all(np.isfinite(x)):
        raise AudioDecodeError(f"{what}: audio contains NaN or infinite samples")
    if float(np.max(np.abs(x))) < 1e-4:
        raise AudioDecodeError(f"{what}: audio is silent")
    return x


class Encoder(Protocol):
    """What the cloner needs from a speaker encoder (the real one or a test fake)."""

    name: str

    def embed(self, samples: np.ndarray, sample_rate: int) -> np.ndarray: ...


def _configure_numba_cache(cache_dir: Path) -> None:
    """Point numba's JIT cache (librosa, used by resemblyzer) at a writable folder.

    The first embedding JIT-compiles librosa kernels (~15 s); with a persistent cache later
    processes load them in about a second.  site-packages may be read-only in a container, so
    unless the operator chose a folder we use one under ``cache_dir``.
    """
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    folder = Path(cache_dir) / "numba"
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["NUMBA_CACHE_DIR"] = str(folder)
    try:  # numba reads the variable at import; if it is already imported, tell it directly
        import sys

        if "numba" in sys.modules:
            sys.modules["numba"].config.CACHE_DIR = str(folder)
    except AttributeError:  # pragma: no cover - numba internals moved
        pass


class SpeakerEncoder:
    """resemblyzer's GE2E encoder: 256-d, L2-normalised utterance embeddings at 16 kHz."""

    name = EMBEDDING_MODEL
    dim = EMBEDDING_DIM

    def __init__(self, cache_dir: Path, device: str = "cpu", torch_threads: int | None = 1) -> None:
        """``torch_threads`` caps torch's intra-op threads *during* each embedding.

        The GE2E LSTM is tiny: on a loaded 2-core host two OpenMP threads made one embedding
        take 4-7 s instead of 0.15 s (threads waiting on each other), so one thread is the
        default.  The previous setting is restored afterwards for the rest of the process.
        """
        _configure_numba_cache(Path(cache_dir))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # pkg_resources / scipy deprecation noise
                from resemblyzer import VoiceEncoder, preprocess_wav
        except ImportError as exc:
            raise PrerequisiteError(
                "voice cloning needs the speaker encoder: pip install 'resemblyzer==0.1.4' "
                f"'setuptools<81' (import failed: {exc})"
            ) from exc
        import torch

        self._torch = torch
        self._threads = torch_threads
        self._preprocess = preprocess_wav
        self._encoder = VoiceEncoder(device=device, verbose=False)
        self.device = device

    def embed(self, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        x = np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0)
        # preprocess_wav resamples to 16 kHz, normalises loudness and trims long pauses.
        wav = self._preprocess(x, source_sr=int(sample_rate))
        if wav.size < ENCODER_SAMPLE_RATE // 2:  # VAD kept too little: use all of it instead
            import librosa

            wav = librosa.resample(x, orig_sr=int(sample_rate), target_sr=ENCODER_SAMPLE_RATE)
        with self._limited_threads():
            vec = np.asarray(self._encoder.embed_utterance(wav), dtype=np.float32)
        return vec / max(float(np.linalg.norm(vec)), 1e-12)

    @contextlib.contextmanager
    def _limited_threads(self) -> Iterator[None]:
        previous = self._torch.get_num_threads()
        if not self._threads or self._threads == previous:
            yield
            return
        self._torch.set_num_threads(self._threads)
        try:
            yield
        finally:
            self._torch.set_num_threads(previous)

    def warmup(self) -> None:
        """Run one embedding so numba compiles (or loads its cache) before the first request."""
        t = np.arange(ENCODER_SAMPLE_RATE, dtype=np.float32) / ENCODER_SAMPLE_RATE
        self.embed(0.3 * np.sin(2 * np.pi * 180.0 * t), ENCODER_SAMPLE_RATE)

    @staticmethod
    def cosine(a: np.ndarray, b: np.ndarray) -> float:
        return cosine(a, b)
