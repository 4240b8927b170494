"""Which store backs what, from the settings: the one place that knows every backend.

Kept apart from the store modules so none of them imports another to choose itself (that was an
import cycle between the profile interface and its two implementations).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from serve_app.settings import Settings
from serve_app.stores.circuit_breaker import CircuitBreaker
from serve_app.stores.file_jobs import FileJobStore
from serve_app.stores.file_profiles import FileVoiceProfileStore
from serve_app.stores.job_store import JobStore
from serve_app.stores.mongo_jobs import MongoJobStore
from serve_app.stores.mongo_profiles import MongoVoiceProfileStore
from serve_app.stores.redis_jobs import RedisJobStore
from serve_app.stores.translation_cache import TranslationCache
from serve_app.stores.voice_profiles import VoiceProfileStore


def build_translation_cache(settings: Settings) -> TranslationCache:
    """From the service settings: Redis tier only when ``REDIS_URL`` is set."""
    return TranslationCache.from_url(
        settings.redis_url,
        connect_timeout_s=settings.redis_connect_timeout_s,
        socket_timeout_s=settings.redis_socket_timeout_s,
        lru_size=settings.cache_lru_size,
        lru_ttl_s=settings.cache_lru_ttl_s,
        translation_ttl_s=settings.translation_cache_ttl_s,
        transcription_ttl_s=settings.transcription_cache_ttl_s,
        breaker=CircuitBreaker(settings.cache_breaker_failures, settings.cache_breaker_cooldown_s),
    )


def build_profile_store(settings: Settings) -> VoiceProfileStore:
    """MongoDB when ``MONGODB_URL`` is set, else the embedded file store (works with no server)."""
    pending_ttl = timedelta(days=settings.voice_profile_pending_ttl_days)
    if settings.mongodb_url:
        return MongoVoiceProfileStore(
            settings.mongodb_url, settings.mongodb_database, timeout_ms=settings.mongodb_timeout_ms,
            pending_ttl=pending_ttl,
        )
    directory = settings.voice_profile_dir or Path(settings.cache_dir) / "voice_profiles"
    return FileVoiceProfileStore(directory, pending_ttl=pending_ttl)


def build_job_store(settings: Settings) -> JobStore:
    """Redis when ``REDIS_URL`` is set (shared, fast), else MongoDB when ``MONGODB_URL`` is, else JSON
    files under ``cache_dir`` (replicas on one machine share them)."""
    bounds = {"max_jobs": settings.max_jobs, "record_ttl_s": settings.job_record_ttl_s,
              "result_ttl_s": settings.job_result_ttl_s}
    if settings.redis_url:
        return RedisJobStore(
            settings.redis_url, connect_timeout_s=settings.redis_connect_timeout_s,
            socket_timeout_s=settings.redis_socket_timeout_s,
            breaker=CircuitBreaker(settings.cache_breaker_failures, settings.cache_breaker_cooldown_s), **bounds,
        )
    if settings.mongodb_url:
        return MongoJobStore(settings.mongodb_url, settings.mongodb_database, timeout_ms=settings.mongodb_timeout_ms,
                             **bounds)
    return FileJobStore(settings.job_store_dir or Path(settings.cache_dir) / "voice_jobs", **bounds)
