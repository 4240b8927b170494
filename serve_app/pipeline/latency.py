"""Recent stage latencies of the voice flow, for health reports: the median of the last 100 each.

Measured where the pipeline calls the stages (transcription of a voice message, translation and TTS
of each of its languages), so they are what a voice message waits for, cache hits included.
"""

from __future__ import annotations

import statistics
from collections import deque

STAGES = ("transcription", "translation", "tts")
WINDOW = 100


class StageLatency:
    def __init__(self, window: int = WINDOW) -> None:
        self.samples: dict[str, deque[int]] = {stage: deque(maxlen=window) for stage in STAGES}

    def record(self, stage: str, ms: int) -> None:
        self.samples[stage].append(int(ms))

    def report(self) -> dict[str, dict[str, int | None]]:
        """{stage: {"median_ms": int | None (nothing measured yet), "samples": n}}."""
        return {
            stage: {"median_ms": int(statistics.median(values)) if values else None, "samples": len(values)}
            for stage, values in self.samples.items()
        }
