"""Stage latencies of the pipeline: every measurement goes to the `voice_translator_stage_latency_seconds`
histogram (per stage, for the dashboard), and the voice flow's three main stages also keep the median
of their last 100 for health reports (`/health`, `voice_health`).

Measured where the pipeline calls the stages, so they are what a voice message waits for, cache hits
included: transcribe (Whisper, or the attachment's cached transcription), embed (speaker embedding),
translate, synthesize, convert (voice cloning), encode (mp3/ogg/wav).
"""

from __future__ import annotations

import statistics
from collections import deque

from serve_app.observability.metrics import STAGE_LATENCY

METRIC_STAGES = ("transcribe", "embed", "translate", "synthesize", "convert", "encode")
# The health report's names (a stable part of /health and the gateway's VoiceServiceLatency).
REPORTED = {"transcribe": "transcription", "translate": "translation", "synthesize": "tts"}
STAGES = tuple(REPORTED.values())
WINDOW = 100


class StageLatency:
    def __init__(self, window: int = WINDOW) -> None:
        self.samples: dict[str, deque[int]] = {stage: deque(maxlen=window) for stage in STAGES}

    def record(self, stage: str, ms: int) -> None:
        """`stage` is one of METRIC_STAGES."""
        if stage not in METRIC_STAGES:
            raise ValueError(f"unknown stage {stage!r}; one of {METRIC_STAGES}")
        STAGE_LATENCY.observe(ms / 1000.0, stage=stage)
        if stage in REPORTED:
            self.samples[REPORTED[stage]].append(int(ms))

    def report(self) -> dict[str, dict[str, int | None]]:
        """{stage: {"median_ms": int | None (nothing measured yet), "samples": n}}."""
        return {
            stage: {"median_ms": int(statistics.median(values)) if values else None, "samples": len(values)}
            for stage, values in self.samples.items()
        }
