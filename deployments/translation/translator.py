"""Text translation front: validation, language resolution, chunking and grouped batching.

Backends only know how to translate a list of texts from one language to another. Everything a
client can get wrong (empty text, unknown language, text too long) is checked here, per request,
so one bad item never fails a whole Ray Serve batch; and requests that share a language pair go
to the backend as ONE call, which is where batched inference pays off.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from deployments.backend_registry import BackendRegistry
from serve_app.domain.translation import AUTO, TranslationRequest, TranslationResult
from serve_app.errors import (
    InvalidRequestError,
    ServiceError,
    TextTooLongError,
    TranslationError,
    UnsupportedLanguageError,
    logged_failure,
)
from serve_app.languages import normalize_language
from serve_app.sentences import Piece, join_pieces, split_text


@dataclass(frozen=True)
class BackendOutput:
    """One translated text and the model's confidence in it (0..1, exp of mean token logprob)."""

    text: str
    confidence: float


@runtime_checkable
class TranslatorBackend(Protocol):
    """A loaded model. `source`/`target` are canonical service codes (see serve_app.languages)."""

    name: str
    model_id: str

    def translate(self, texts: list[str], source: str, target: str) -> list[BackendOutput]: ...


BackendFactory = Callable[..., TranslatorBackend]


BACKENDS = BackendRegistry(
    "translation",
    {
        "ctranslate2": "deployments.translation.backends.ctranslate2_nllb:from_config",
        "transformers": "deployments.translation.backends.transformers_nllb:from_config",
        "gemma": "deployments.translation.backends.gemma:from_config",
    },
)
"""Backend name -> factory(model=..., cache_dir=..., device=..., **opts); each module is imported only
when chosen: torch/ctranslate2 are heavy and may be absent."""


Detector = Callable[[str], tuple[str, float]]


def _default_detector(text: str) -> tuple[str, float]:
    from serve_app.text_language import detect_text_language

    return detect_text_language(text)


@dataclass
class _Job:
    index: int
    source: str
    target: str
    pieces: list[Piece]
    detection_confidence: float | None


class Translator:
    """Validates and groups requests, then calls the backend once per language pair."""

    def __init__(
        self,
        backend: TranslatorBackend,
        max_text_chars: int = 10_000,
        max_chunk_chars: int = 400,
        detector: Detector | None = None,
        min_detection_confidence: float = 0.3,
    ) -> None:
        self.backend = backend
        self.max_text_chars = max_text_chars
        self.max_chunk_chars = max_chunk_chars
        self._detect = detector or _default_detector
        self.min_detection_confidence = min_detection_confidence

    @classmethod
    def from_config(
        cls,
        backend: str,
        model: str | None = None,
        cache_dir: Path | None = None,
        device: str = "cpu",
        *,
        max_text_chars: int = 10_000,
        max_chunk_chars: int = 400,
        **opts: object,
    ) -> Translator:
        """Load a backend by registry name; raises PrerequisiteError in seconds if it can't."""
        factory: BackendFactory = BACKENDS.resolve(backend)
        cache = Path(cache_dir) if cache_dir else Path.home() / ".cache" / "voice-translator"
        loaded = factory(model=model, cache_dir=cache, device=device, **opts)
        return cls(loaded, max_text_chars=max_text_chars, max_chunk_chars=max_chunk_chars)

    @property
    def model_id(self) -> str:
        return self.backend.model_id

    def translate(self, text: str, source_language: str, target_language: str) -> TranslationResult:
        """Single request convenience; raises the ServiceError instead of returning it."""
        req = TranslationRequest(
            text=text, source_language=source_language, target_language=target_language
        )
        result = self.translate_many([req])[0]
        if isinstance(result, ServiceError):
            raise result
        return result

    def translate_many(
        self, requests: list[TranslationRequest]
    ) -> list[TranslationResult | ServiceError]:
        """Translate a batch; each slot holds a result or the error for that request only."""
        results: list[TranslationResult | ServiceError | None] = [None] * len(requests)
        groups: dict[tuple[str, str], list[_Job]] = {}
        for i, req in enumerate(requests):
            try:
                job = self._prepare(i, req)
            except ServiceError as exc:
                results[i] = exc
                continue
            if job.source == job.target:
                results[i] = TranslationResult(
                    translated_text=req.text,
                    source_language=job.source,
                    target_language=job.target,
                    model="pass-through",
                    confidence=1.0,
                    pass_through=True,
                    detection_confidence=job.detection_confidence,
                )
            else:
                groups.setdefault((job.source, job.target), []).append(job)
        if len(groups) > 1 and hasattr(self.backend, "translate_pairs"):
            # The backend decodes mixed language pairs together: the whole batch is one call.
            everyone = [job for jobs in groups.values() for job in jobs]
            for job, outcome in zip(everyone, self._run_group(None, everyone), strict=True):
                results[job.index] = outcome
        else:
            for pair, jobs in groups.items():
                for job, outcome in zip(jobs, self._run_group(pair, jobs), strict=True):
                    results[job.index] = outcome
        return [r for r in results if r is not None]

    def _prepare(self, index: int, req: TranslationRequest) -> _Job:
        text = req.text
        if not text or not text.strip():
            raise InvalidRequestError("text is empty")
        if len(text) > self.max_text_chars:
            raise TextTooLongError(
                f"text is {len(text)} characters; the limit is {self.max_text_chars}"
            )
        target = normalize_language(req.target_language)
        detection: float | None = None
        if req.source_language.strip().lower() in (AUTO, ""):
            code, detection = self._detect(text)
            if detection < self.min_detection_confidence:
                raise InvalidRequestError(
                    "could not detect the text's language; pass source_language explicitly"
                )
            source = normalize_language(code)
        else:
            source = normalize_language(req.source_language)
        supported = getattr(self.backend, "supported_languages", None)
        if supported is not None and source != target:
            for lang in (source, target):
                if lang not in supported:
                    raise UnsupportedLanguageError(
                        f"language {lang!r} is not supported by translation model "
                        f"{self.backend.model_id!r}"
                    )
        return _Job(index, source, target, split_text(text, self.max_chunk_chars), detection)

    def _run_group(
        self, pair: tuple[str, str] | None, jobs: list[_Job]
    ) -> list[TranslationResult | ServiceError]:
        """One backend call for `jobs`: all of one language `pair`, or of mixed pairs (None)."""
        flat = [piece.text for job in jobs for piece in job.pieces]
        try:
            if pair is None:
                items = [(p.text, job.source, job.target) for job in jobs for p in job.pieces]
                outputs = self.backend.translate_pairs(items)  # type: ignore[attr-defined]
            else:
                outputs = self.backend.translate(flat, *pair)
        except ServiceError as exc:
            return [exc] * len(jobs)
        except Exception as exc:  # noqa: BLE001 - a model failure must become a client error
            err = logged_failure(TranslationError, f"{self.backend.name} translation failed", exc)
            return [err] * len(jobs)
        if len(outputs) != len(flat):
            err = TranslationError(
                f"{self.backend.name} returned {len(outputs)} outputs for {len(flat)} inputs"
            )
            return [err] * len(jobs)
        out: list[TranslationResult | ServiceError] = []
        pos = 0
        for job in jobs:
            mine = outputs[pos : pos + len(job.pieces)]
            pos += len(job.pieces)
            out.append(
                TranslationResult(
                    translated_text=join_pieces(job.pieces, [o.text for o in mine]),
                    source_language=job.source,
                    target_language=job.target,
                    model=self.backend.model_id,
                    confidence=_weighted_confidence(job.pieces, mine),
                    detection_confidence=job.detection_confidence,
                )
            )
        return out


def _weighted_confidence(pieces: list[Piece], outputs: list[BackendOutput]) -> float:
    """Length-weighted mean, so one short shaky fragment doesn't sink a long good message."""
    weights = [max(len(p.text), 1) for p in pieces]
    total = sum(w * _clamp(o.confidence) for w, o in zip(weights, outputs, strict=True))
    return round(total / sum(weights), 4)


def _clamp(value: float) -> float:
    if math.isnan(value):
        return 0.0
    return min(1.0, max(0.0, float(value)))


def confidence_from_logprob(mean_logprob: float) -> float:
    """Backends share this: exp(mean token log-probability), clamped into 0..1."""
    if mean_logprob is None or math.isnan(mean_logprob):
        return 0.0
    return _clamp(math.exp(min(0.0, mean_logprob)))
