"""TranslationCache without a server: keys, LRU tier, TTL, stats, and a Redis URL that refuses.

The Redis tier itself (round trip, TTL, outage and recovery) is tested against a real redis-server
in tests/integration/test_stores_real.py.
"""

from __future__ import annotations

import time

import pytest

from serve_app.settings import Settings
from serve_app.stores.circuit_breaker import CircuitBreaker
from serve_app.stores.factory import build_translation_cache
from serve_app.stores.translation_cache import (
    CachedTranslation,
    TranslationCache,
    audio_digest,
    normalize_text,
    transcription_key,
    translation_key,
)
from tests.fixtures.ports import free_port

VALUE = CachedTranslation(
    translated_text="Hello", source_language="fr", target_language="en", model="gemma", confidence=0.9
)


def test_normalisation_collapses_whitespace_and_composes_unicode_but_keeps_case() -> None:
    decomposed = "Cafe\u0301  au\tlait \n"
    assert normalize_text(decomposed) == "Caf\u00e9 au lait"
    assert translation_key(decomposed, "fr", "en", "m") == translation_key("Café au lait", "fr", "en", "m")
    assert translation_key("Bonjour", "fr", "en", "m") != translation_key("bonjour", "fr", "en", "m")


def test_key_layout() -> None:
    key = translation_key("Bonjour", "fr", "en", "gemma")
    prefix, version, digest, src, tgt, model = key.split(":")
    assert (prefix, version, src, tgt, model) == ("translation", "v1", "fr", "en", "gemma")
    assert len(digest) == 64
    assert translation_key("Bonjour", "fr", "es", "gemma") != key
    assert translation_key("Bonjour", "fr", "en", "nllb") != key
    digest = audio_digest(b"pcm")
    assert transcription_key("att-1", digest) == f"audio:transcription:att-1:{digest[:32]}"
    assert transcription_key("att-1", audio_digest(b"other pcm")) != transcription_key("att-1", digest)
    with pytest.raises(ValueError):
        transcription_key("att-1", "")


async def test_memory_only_round_trip_and_stats() -> None:
    cache = TranslationCache(None)
    assert await cache.get("Bonjour", "fr", "en", "gemma") is None
    await cache.put("Bonjour", "fr", "en", "gemma", VALUE)
    assert await cache.get("  Bonjour ", "fr", "en", "gemma") == VALUE
    assert await cache.get("Bonjour", "fr", "de", "gemma") is None
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.hit_rate) == (1, 2, pytest.approx(1 / 3))
    assert stats.backend == "memory" and not stats.redis_configured and stats.lru_size == 1
    assert TranslationCache(None).stats().hit_rate == 0.0


async def test_transcriptions_are_cached_separately() -> None:
    cache = TranslationCache(None)
    digest = audio_digest(b"pcm")
    assert await cache.get_transcription("a1", digest) is None
    await cache.put_transcription("a1", digest, {"text": "Bonjour", "language": "fr", "segments": []})
    assert await cache.get_transcription("a1", digest) == {"text": "Bonjour", "language": "fr", "segments": []}
    stats = cache.stats()
    assert (stats.transcription_hits, stats.transcription_misses, stats.hits, stats.misses) == (1, 1, 0, 0)


async def test_a_transcription_belongs_to_its_audio_not_just_its_attachment_id() -> None:
    cache = TranslationCache(None)
    victim, attacker = audio_digest(b"victim pcm"), audio_digest(b"attacker pcm")
    await cache.put_transcription("att-v", victim, {"text": "secret", "language": "fr"})
    assert await cache.get_transcription("att-v", attacker) is None  # other audio, same id: a miss
    await cache.put_transcription("att-v", attacker, {"text": "planted", "language": "fr"})
    assert await cache.get_transcription("att-v", victim) == {"text": "secret", "language": "fr"}


async def test_lru_entries_expire_with_the_injected_timer() -> None:
    now = [0.0]
    cache = TranslationCache(None, lru_ttl_s=60, timer=lambda: now[0])
    await cache.put("Bonjour", "fr", "en", "gemma", VALUE)
    now[0] = 59
    assert await cache.get("Bonjour", "fr", "en", "gemma") == VALUE
    now[0] = 61
    assert await cache.get("Bonjour", "fr", "en", "gemma") is None


async def test_lru_is_bounded() -> None:
    cache = TranslationCache(None, lru_size=3)
    for i in range(10):
        await cache.put(f"text {i}", "fr", "en", "m", VALUE)
    assert cache.stats().lru_size == 3
    assert await cache.get("text 9", "fr", "en", "m") == VALUE


async def test_refusing_redis_falls_back_to_memory_fast_and_opens_the_breaker() -> None:
    """A URL to a closed port: every call stays fast, the breaker opens after 3 failures."""
    cache = TranslationCache.from_url(
        f"redis://127.0.0.1:{free_port()}", breaker=CircuitBreaker(failure_threshold=3, cooldown_s=60)
    )
    try:
        start = time.monotonic()
        await cache.put("Bonjour", "fr", "en", "gemma", VALUE)
        assert await cache.get("Bonjour", "fr", "en", "gemma") == VALUE  # from the LRU
        for i in range(5):
            assert await cache.get(f"missing {i}", "fr", "en", "gemma") is None
        assert time.monotonic() - start < 3.0
        stats = cache.stats()
        assert stats.redis_configured and stats.breaker_state == "open" and stats.backend == "memory"
        assert stats.redis_errors == 3  # after the third failure Redis is not tried any more
    finally:
        await cache.close()


def test_build_from_settings() -> None:
    settings = Settings(cache_lru_size=5, cache_breaker_failures=2, cache_breaker_cooldown_s=3)
    cache = build_translation_cache(settings.model_copy(update={"redis_url": None}))
    assert not cache.redis_configured
    assert cache.breaker.failure_threshold == 2 and cache.breaker.cooldown_s == 3
    with_redis = build_translation_cache(settings.model_copy(update={"redis_url": "redis://127.0.0.1:1"}))
    assert with_redis.redis_configured
