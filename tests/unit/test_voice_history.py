"""The voice API's history: paging newest first, date windows, ratings, per-user stats, today's counts."""

from __future__ import annotations

from ingress.gateway.history import VoiceHistory, day_start
from ingress.gateway.protocol.results import TranslationHistoryEntry

NOW = 1_800_000_000.0


def entry(i: int, user: str = "u1", ms: int = 1000) -> TranslationHistoryEntry:
    return TranslationHistoryEntry(id=f"vtr_{i}", userId=user, timestamp="2027-01-15T08:00:00.000Z",
                                   sourceLanguage="fr", targetLanguages=["en"], originalText="bonjour",
                                   translatedTexts={"en": "hello"}, audioGenerated=True, voiceCloned=True,
                                   processingTimeMs=ms, requestType="voice_translate", audioDurationMs=30_000)


def test_page_filters_and_ratings() -> None:
    history = VoiceHistory(max_entries=3, started_at=NOW - 10 * 86_400)
    for i in range(4):  # the oldest falls out
        history.record(entry(i, ms=1000 * (i + 1)), at=NOW - 86_400 * (3 - i))
    history.record(entry(9, user="u2"), at=NOW)
    page, total = history.page("u1", limit=1, offset=0)
    assert total == 2 and [e.id for e in page] == ["vtr_3"]  # vtr_0 and vtr_1 fell out (3 kept, one is u2)
    assert [e.id for e in history.page("u1", 10, 1)[0]] == ["vtr_2"]
    assert history.page("u1", 10, 0, since=NOW - 0.5 * 86_400)[1] == 1
    assert history.page("u1", 10, 0, until=NOW - 0.5 * 86_400)[0][0].id == "vtr_2"
    assert history.page(None, 10, 0)[1] == 3

    history.record_feedback("u1", "vtr_3", 5, at=NOW)
    history.record_feedback("u1", "vtr_9", 1, at=NOW)  # someone else's translation: counted for u1's ratings only
    assert history.page("u1", 1, 0)[0][0].feedbackRating == 5
    assert history.page("u2", 1, 0)[0][0].feedbackRating is None
    stats = history.user_stats("u1", since=history.period_start("week", NOW))
    assert stats == {"totalTranslations": 2, "totalAudioMinutes": 1.0, "languagesUsed": ["en", "fr"],
                     "averageProcessingTimeMs": 3500, "averageFeedbackRating": 3.0, "feedbackCount": 2}
    assert history.period_start("all", NOW) == NOW - 10 * 86_400


def test_today_counts_from_midnight_utc() -> None:
    history = VoiceHistory(10)
    midnight = day_start(NOW)
    history.record(entry(1), at=midnight - 1)
    history.record(entry(2), at=midnight + 1)
    history.record_failure(at=midnight + 2)
    assert history.today(NOW) == (1, 1) and history.average_processing_ms() == 1000
