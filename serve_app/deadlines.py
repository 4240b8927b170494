"""How long each stage call may take: one formula, read by the Pipeline (which cancels a late call) and
by the model deployments' watchdogs (which call a replica stalled once the Pipeline has given up).

Every deadline is `base + per-unit x size`, sizes measured from the call's own arguments (audio
seconds of float32 PCM, characters of text), so a 45 s voice message gets more time than a hello and
a hung model still answers a short text within the gateway's 30 s retry.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from serve_app.settings import StageDeadlineSettings

T = TypeVar("T")

FLOAT32_BYTES = 4
STAGES = ("transcribe", "translate", "detect_language", "speaker_reference", "synthesize", "convert")


async def within_deadline(call: Awaitable[T], timeout_s: float, expired: Callable[[], Exception]) -> T:
    """`await call`, cancelled after `timeout_s` and replaced by `expired()`; a TimeoutError the call
    raised itself stays itself."""
    deadline = asyncio.timeout(timeout_s)
    try:
        async with deadline:
            return await call
    except TimeoutError as exc:
        if deadline.expired():
            raise expired() from exc
        raise


def audio_seconds(pcm: bytes, sample_rate: int) -> float:
    """Seconds of float32 mono PCM (how audio crosses deployments)."""
    return len(pcm) / FLOAT32_BYTES / max(1, sample_rate)


class StageDeadlines:
    def __init__(self, settings: StageDeadlineSettings) -> None:
        self.s = settings

    def transcribe(self, seconds: float) -> float:
        return self.s.transcribe_timeout_s + self.s.transcribe_timeout_per_audio_s * seconds

    def speaker_reference(self, seconds: float) -> float:
        return self.s.speaker_reference_timeout_s + self.s.speaker_reference_timeout_per_audio_s * seconds

    def translate(self, chars: int) -> float:
        return self.s.translate_timeout_s + self.s.translate_timeout_per_char_s * chars

    def detect_language(self, chars: int = 0) -> float:
        return self.s.detect_language_timeout_s

    def synthesize(self, chars: int) -> float:
        return self.s.synthesize_timeout_s + self.s.synthesize_timeout_per_char_s * chars

    def convert(self, seconds: float) -> float:
        return self.s.convert_timeout_s + self.s.convert_timeout_per_audio_s * seconds

    def worst_voice_message_s(self, max_audio_seconds: float) -> float:
        """The longest a voice message of `max_audio_seconds` can take when every stage uses its whole
        deadline: transcription (the speaker embedding runs beside it), then per language - all
        concurrently, so the number of languages does not add up - translate, synthesize, convert.
        `serve run`'s request_timeout_s must be at least this (tests/unit/test_deadlines.py checks it)."""
        chars = int(self.s.deadline_speech_chars_per_s * max_audio_seconds)
        spoken_s = 2 * max_audio_seconds
        first = max(self.transcribe(max_audio_seconds), self.speaker_reference(max_audio_seconds))
        per_language = self.translate(chars) + self.synthesize(chars) + self.convert(spoken_s)
        return first + per_language + self.s.deadline_overhead_s

    def door_text_s(self, chars: int) -> float:
        """How long a door waits on the Pipeline for one language of a text: the stage's deadline plus
        the overhead, so the stage's own `stage_timeout` always comes first."""
        return self.translate(chars) + self.s.deadline_overhead_s

    def door_request_s(self, max_audio_seconds: float) -> float:
        """How long a door waits on the Pipeline for any other request (a voice message at worst)."""
        return self.worst_voice_message_s(max_audio_seconds) + self.s.deadline_overhead_s
