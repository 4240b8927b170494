"""The VoiceClone stage: convert a base TTS voice toward the sender, and say how close it got.

Every similarity this class reports is a cosine between speaker-encoder embeddings that it has
just measured (input vs reference and output vs reference), never a constant: the client shows
it, and the numbers are only worth something if they can also come out bad.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from serve_app.domain.speaker import SpeakerReference, cosine, embedding_from_npy
from serve_app.errors import InvalidRequestError, ServiceError, VoiceCloneError, logged_failure

from .backends import CloneBackend, NothingToConvert, make_backend
from .speaker import Encoder, SpeakerEncoder, check_audio

MIN_REFERENCE_SECONDS = 1.0
MIN_INPUT_SECONDS = 0.3
DEFAULT_CACHE_DIR = Path("~/.cache/voice-translator").expanduser()


class ConvertedSpeech(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    samples: np.ndarray
    sample_rate: int
    similarity: float  # measured: output vs reference embedding
    base_similarity: float  # measured: unconverted input vs reference embedding
    converted: bool
    backend: str
    detail: str = ""  # why nothing was converted, or which candidate won
    elapsed_ms: float = 0.0


class VoiceCloner:
    def __init__(self, encoder: Encoder, backend: CloneBackend) -> None:
        self.encoder = encoder
        self.backend = backend

    @classmethod
    def from_config(
        cls,
        backend: str = "world",
        cache_dir: Path = DEFAULT_CACHE_DIR,
        device: str = "cpu",
        options: Mapping[str, Any] | None = None,
        warmup: bool = True,
        torch_threads: int | None = 1,
    ) -> VoiceCloner:
        """Build encoder and backend; raises PrerequisiteError (in seconds) if either is missing.

        The backend is checked first because it is the cheaper import and the likelier gap.
        ``options`` go to the backend (``WorldOptions`` / ``OpenVoiceOptions`` fields); ``warmup``
        runs one embedding so numba's JIT (or its cache load) happens here, not in a request.
        """
        cache_dir = Path(cache_dir).expanduser()
        chosen = make_backend(backend, cache_dir=cache_dir, device=device, options=options)
        encoder = SpeakerEncoder(cache_dir=cache_dir, device=device, torch_threads=torch_threads)
        if warmup:
            encoder.warmup()
        return cls(encoder, chosen)

    # -- references -----------------------------------------------------------------------
    def describe(self) -> dict[str, str]:
        """What /health and /models report for this stage."""
        return {"backend": self.backend.name, "embedding_model": self.encoder.name}

    def reference_from_audio(self, samples: np.ndarray, sample_rate: int) -> SpeakerReference:
        x = check_audio(
            samples, sample_rate, min_seconds=MIN_REFERENCE_SECONDS, what="reference audio"
        )
        embedding = self._embed(x, sample_rate)
        try:
            extra = self.backend.describe(x, int(sample_rate))
        except ServiceError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise logged_failure(VoiceCloneError, "could not analyse the reference voice", exc) from exc
        return SpeakerReference(
            embedding=embedding,
            embedding_model=self.encoder.name,
            duration_ms=round(1000 * x.size / int(sample_rate)),
            **extra,
        )

    def reference_from_embedding(
        self, embedding: np.ndarray | bytes | Sequence[float]
    ) -> SpeakerReference:
        """From a forwarded embedding (``.npy`` bytes or floats): it scores but cannot convert."""
        vec = embedding_from_npy(embedding) if isinstance(embedding, bytes) else embedding
        try:
            ref = SpeakerReference(embedding=vec, embedding_model=self.encoder.name)
        except ValueError as exc:
            raise InvalidRequestError(f"invalid speaker embedding: {exc}") from exc
        self._check_reference(ref)
        return ref

    # -- measuring and converting ---------------------------------------------------------
    def similarity(
        self, samples: np.ndarray, sample_rate: int, reference: SpeakerReference
    ) -> float:
        self._check_reference(reference)
        x = check_audio(samples, sample_rate, min_seconds=MIN_INPUT_SECONDS, what="audio")
        return cosine(self._embed(x, sample_rate), reference.embedding)

    def convert(
        self, samples: np.ndarray, sample_rate: int, reference: SpeakerReference
    ) -> ConvertedSpeech:
        start = time.perf_counter()
        self._check_reference(reference)
        x = check_audio(
            samples, sample_rate, min_seconds=MIN_INPUT_SECONDS, what="speech to convert"
        )
        sr = int(sample_rate)
        base = cosine(self._embed(x, sr), reference.embedding)
        reason = self.backend.can_convert(reference)
        if reason:
            return self._result(x, sr, base, base, False, reason, start)
        try:
            candidates = self.backend.candidates(x, sr, reference)
        except NothingToConvert as exc:
            return self._result(x, sr, base, base, False, str(exc), start)
        except ServiceError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise logged_failure(VoiceCloneError, f"{self.backend.name} conversion failed", exc) from exc
        if not candidates:
            raise VoiceCloneError(f"{self.backend.name} produced no output")
        best: tuple[float, np.ndarray, int, int] | None = None
        for i, (y, y_sr) in enumerate(candidates):
            score = cosine(self._embed(y, y_sr), reference.embedding)
            if best is None or score > best[0]:
                best = (score, y, y_sr, i)
        score, y, y_sr, index = best
        detail = f"candidate {index + 1}/{len(candidates)}"
        return self._result(y, y_sr, score, base, True, detail, start)

    # -- helpers --------------------------------------------------------------------------
    def _result(
        self,
        y: np.ndarray,
        sr: int,
        score: float,
        base: float,
        converted: bool,
        detail: str,
        start: float,
    ) -> ConvertedSpeech:
        return ConvertedSpeech(
            samples=np.asarray(y, dtype=np.float32),
            sample_rate=sr,
            similarity=score,
            base_similarity=base,
            converted=converted,
            backend=self.backend.name,
            detail=detail,
            elapsed_ms=1000 * (time.perf_counter() - start),
        )

    def _embed(self, x: np.ndarray, sample_rate: int) -> np.ndarray:
        try:
            return np.asarray(self.encoder.embed(x, int(sample_rate)), dtype=np.float32)
        except ServiceError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise logged_failure(VoiceCloneError, "speaker embedding failed", exc) from exc

    def _check_reference(self, reference: SpeakerReference) -> None:
        if reference.embedding_model != self.encoder.name:
            raise InvalidRequestError(
                f"reference embedding was made by {reference.embedding_model!r}, this service "
                f"uses {self.encoder.name!r}; re-create the reference from audio"
            )
        dim = getattr(self.encoder, "dim", None)
        if dim is not None and reference.embedding.size != dim:
            raise InvalidRequestError(
                f"reference embedding has {reference.embedding.size} values, expected {dim}"
            )
