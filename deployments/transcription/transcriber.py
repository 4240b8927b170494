"""Speech-to-text with faster-whisper (CTranslate2): the plain `Transcriber` class.

The class has no Ray in it, so it is tested directly; `deployments/transcription/deployment.py` wraps it
as a Ray Serve deployment.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import numpy as np

from serve_app.domain.transcription import Segment, TranscribeOptions, Transcription, Word
from serve_app.errors import InvalidRequestError, PrerequisiteError, TranscriptionError, logged_failure
from serve_app.weights import whisper_base_dir

log = logging.getLogger(__name__)
SAMPLE_RATE = 16_000


def resolve_whisper_model(name: str, cache_dir: Path) -> str:
    """`base` means the registry-shipped Whisper base; a folder is used as is; any other name must
    already be in the local model-hub cache (we never download at run time)."""
    if name == "base":
        return str(whisper_base_dir(cache_dir))
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "model.bin").exists():
            raise PrerequisiteError(f"Whisper model folder {path} has no model.bin (a CTranslate2 model is needed).")
        return str(path)
    return name


class Transcriber:
    def __init__(
        self,
        model: str = "base",
        *,
        cache_dir: Path,
        device: str = "cpu",
        compute_type: str = "int8",
        beam_size: int = 5,
        vad: bool = True,
        cpu_threads: int = 0,
        log_prob_threshold: float | None = None,
        repetition_penalty: float = 1.1,
    ) -> None:
        try:
            from faster_whisper import WhisperModel
        except ImportError as exc:  # pragma: no cover - installed by make setup
            raise PrerequisiteError("faster-whisper is not installed; run `make setup`.") from exc
        resolved = resolve_whisper_model(model, cache_dir)
        if device == "cuda" and compute_type == "int8":
            compute_type = "int8_float16"
        try:
            self.model = WhisperModel(
                resolved,
                device=device,
                compute_type=compute_type,
                cpu_threads=cpu_threads,
                local_files_only=True,
            )
        except Exception as exc:
            raise PrerequisiteError(
                f"Could not load Whisper model {model!r} ({resolved}) on {device}: {exc}. Set "
                "TRANSLATOR_WHISPER_MODEL to a CTranslate2 Whisper folder, or 'base' for the bundled one."
            ) from exc
        self.model_name = f"whisper-{model}" if "/" not in model else f"whisper:{Path(model).name}"
        self.beam_size = beam_size
        self.vad = vad
        # Measured by bench/whisper_decoding.py on 14 French voice messages: faster-whisper's default
        # log-prob fallback (-1.0) re-decoded most of them at rising temperatures (3.5 s mean, 8.6 s
        # worst, WER 0.91); no log-prob fallback and a mild repetition penalty: 1.7 s mean, 1.9 s worst,
        # WER 0.80. The compression-ratio fallback (repetition loops) stays on.
        self.log_prob_threshold = log_prob_threshold
        self.repetition_penalty = repetition_penalty
        self.multilingual = bool(self.model.model.is_multilingual)

    def transcribe(
        self, samples: np.ndarray, language: str | None = None, options: TranscribeOptions | None = None
    ) -> Transcription:
        """Transcribe 16 kHz mono float32 audio; `language=None` detects it. `options` (the OpenAI
        routes' prompt, temperature, word timestamps) leave the defaults alone when absent."""
        if samples.size == 0:
            raise InvalidRequestError("cannot transcribe empty audio")
        if language and not self.multilingual and language != "en":
            raise TranscriptionError(f"model {self.model_name} is English-only; cannot transcribe {language!r}")
        started = time.perf_counter()
        options = options or TranscribeOptions()
        tuning: dict[str, object] = {"word_timestamps": options.word_timestamps}
        if options.prompt:
            tuning["initial_prompt"] = options.prompt
        if options.temperature is not None:
            tuning["temperature"] = options.temperature
        try:
            segments_iter, info = self.model.transcribe(
                samples.astype(np.float32, copy=False),
                language=language or None,
                beam_size=self.beam_size,
                vad_filter=self.vad,
                condition_on_previous_text=False,
                log_prob_threshold=self.log_prob_threshold,
                repetition_penalty=self.repetition_penalty,
                **tuning,
            )
            raw_segments = list(segments_iter)
        except Exception as exc:
            raise logged_failure(TranscriptionError, "Whisper failed", exc) from exc
        segments = [
            Segment(
                text=s.text.strip(),
                startMs=int(s.start * 1000),
                endMs=int(s.end * 1000),
                confidence=_segment_confidence(s.avg_logprob, s.no_speech_prob),
            )
            for s in raw_segments
            if s.text.strip()
        ]
        words = None
        if options.word_timestamps:
            words = [
                Word(word=w.word.strip(), startMs=int(w.start * 1000), endMs=int(w.end * 1000),
                     probability=round(min(1.0, max(0.0, float(w.probability))), 4))
                for s in raw_segments for w in (s.words or []) if w.word.strip()
            ]
        text = " ".join(s.text for s in segments).strip()
        total_ms = sum(max(1, s.endMs - s.startMs) for s in segments)
        confidence = (
            sum(s.confidence * max(1, s.endMs - s.startMs) for s in segments) / total_ms if segments else 0.0
        )
        log.debug("transcribed %.1f s in %.2f s", len(samples) / SAMPLE_RATE, time.perf_counter() - started)
        return Transcription(
            text=text,
            language=info.language,
            confidence=round(confidence, 4),
            source="whisper",
            durationMs=int(round(1000 * len(samples) / SAMPLE_RATE)),
            segments=segments,
            model=self.model_name,
            languageProbability=round(float(info.language_probability), 4),
            words=words,
        )

    def detect_language(self, samples: np.ndarray) -> tuple[str, float]:
        language, probability, _ = self.model.detect_language(samples.astype(np.float32, copy=False))
        return language, float(probability)


def _segment_confidence(avg_logprob: float, no_speech_prob: float) -> float:
    """exp(mean token log-prob), discounted by Whisper's own no-speech estimate."""
    value = math.exp(max(avg_logprob, -10.0)) * (1.0 - 0.5 * float(no_speech_prob))
    return round(min(1.0, max(0.0, value)), 4)
