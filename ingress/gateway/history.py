"""The voice API's memory of what it translated: `voice_history`, `voice_stats`, `voice_admin_metrics`.

Every voice translation this door delivers (`voice_translate`, and each `voice_translate_async` job)
is kept as the gateway's `TranslationHistoryEntry`, with the ratings `voice_feedback` gives it and
the translations that failed, bounded to the most recent `max_entries` like the async jobs (it lives
in the ZMQ ingress replica; ratings themselves are also written to the feedback store).
"""

from __future__ import annotations

import statistics
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime

from ingress.gateway.protocol.results import TranslationHistoryEntry

PERIOD_S = {"day": 86_400.0, "week": 7 * 86_400.0, "month": 30 * 86_400.0}


@dataclass
class _Record:
    at: float
    entry: TranslationHistoryEntry


@dataclass(frozen=True)
class _Rating:
    at: float
    user_id: str
    rating: float


def day_start(now: float) -> float:
    moment = datetime.fromtimestamp(now, UTC)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


class VoiceHistory:
    def __init__(self, max_entries: int, started_at: float | None = None) -> None:
        self.records: deque[_Record] = deque(maxlen=max_entries)
        self.failures: deque[float] = deque(maxlen=max_entries)
        self.ratings: deque[_Rating] = deque(maxlen=max_entries)
        self.started_at = started_at if started_at is not None else time.time()

    def record(self, entry: TranslationHistoryEntry, at: float | None = None) -> None:
        self.records.append(_Record(at if at is not None else time.time(), entry))

    def record_failure(self, at: float | None = None) -> None:
        self.failures.append(at if at is not None else time.time())

    def record_feedback(self, user_id: str, translation_id: str, rating: float, at: float | None = None) -> None:
        self.ratings.append(_Rating(at if at is not None else time.time(), user_id, rating))
        for record in self.records:
            if record.entry.id == translation_id and record.entry.userId == user_id:
                record.entry.feedbackRating = rating

    def _of(self, user_id: str | None, since: float = 0.0, until: float = float("inf")) -> list[_Record]:
        """Newest first."""
        return [r for r in reversed(self.records)
                if (user_id is None or r.entry.userId == user_id) and since <= r.at <= until]

    def page(self, user_id: str | None, limit: int, offset: int, since: float = 0.0,
             until: float = float("inf")) -> tuple[list[TranslationHistoryEntry], int]:
        records = self._of(user_id, since, until)
        return [r.entry for r in records[offset:offset + limit]], len(records)

    def period_start(self, period: str, now: float) -> float:
        if period in PERIOD_S:
            return now - PERIOD_S[period]
        return min([self.started_at, *(r.at for r in self.records)])

    def user_stats(self, user_id: str, since: float) -> dict[str, float | int | list[str]]:
        """The figures of VoiceUserStats that history knows (all but the profile count and period)."""
        entries = [r.entry for r in self._of(user_id, since)]
        ratings = [r.rating for r in self.ratings if r.user_id == user_id and r.at >= since]
        languages = sorted({lang for e in entries for lang in (e.sourceLanguage, *e.targetLanguages) if lang})
        return {
            "totalTranslations": len(entries),
            "totalAudioMinutes": round(sum(e.audioDurationMs for e in entries) / 60_000, 3),
            "languagesUsed": languages,
            "averageProcessingTimeMs": int(round(statistics.fmean(e.processingTimeMs for e in entries)))
            if entries else 0,
            "averageFeedbackRating": round(statistics.fmean(ratings), 3) if ratings else 0.0,
            "feedbackCount": len(ratings),
        }

    def today(self, now: float) -> tuple[int, int]:
        """(translations delivered, translations failed) since 00:00 UTC."""
        start = day_start(now)
        return sum(1 for r in self.records if r.at >= start), sum(1 for at in self.failures if at >= start)

    def average_processing_ms(self) -> int:
        return int(round(statistics.fmean(r.entry.processingTimeMs for r in self.records))) if self.records else 0
