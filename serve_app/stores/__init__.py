"""Stores: the translation/transcription cache (Redis + in-process LRU), voice profiles
(MongoDB via motor, or JSON files when no MongoDB is configured) and async voice jobs (Redis,
MongoDB or JSON files).  Plain async classes, no Ray:
the pipeline and ingresses own their instances."""

from serve_app.domain.profiles import MATCH_THRESHOLD
from serve_app.domain.speaker import cosine, embedding_from_float32, embedding_to_float32
from serve_app.stores.circuit_breaker import CircuitBreaker
from serve_app.stores.errors import (
    ProfileConflictError,
    ProfileExistsError,
    ProfileNotFoundError,
    ProfileTooShortError,
    StoreError,
    StoreUnavailableError,
)
from serve_app.stores.factory import build_job_store, build_profile_store, build_translation_cache
from serve_app.stores.file_profiles import FileVoiceProfileStore
from serve_app.stores.job_store import JobRecord, JobStore
from serve_app.stores.mongo_profiles import MongoVoiceProfileStore
from serve_app.stores.profile_lifecycle import (
    NewSample,
    ProfileOutcome,
    VoiceProfileManager,
    blend_references,
    quality_score,
)
from serve_app.stores.translation_cache import CachedTranslation, CacheStats, TranslationCache, translation_key
from serve_app.stores.voice_profiles import (
    PendingSample,
    TrainingSample,
    VoiceFingerprint,
    VoiceProfile,
    VoiceProfileStore,
    compute_fingerprint,
)

__all__ = [
    "MATCH_THRESHOLD",
    "CacheStats",
    "CachedTranslation",
    "CircuitBreaker",
    "FileVoiceProfileStore",
    "JobRecord",
    "JobStore",
    "MongoVoiceProfileStore",
    "NewSample",
    "PendingSample",
    "ProfileConflictError",
    "ProfileExistsError",
    "ProfileNotFoundError",
    "ProfileOutcome",
    "ProfileTooShortError",
    "StoreError",
    "StoreUnavailableError",
    "TrainingSample",
    "TranslationCache",
    "VoiceFingerprint",
    "VoiceProfile",
    "VoiceProfileManager",
    "VoiceProfileStore",
    "blend_references",
    "build_job_store",
    "build_profile_store",
    "build_translation_cache",
    "compute_fingerprint",
    "cosine",
    "embedding_from_float32",
    "embedding_to_float32",
    "quality_score",
    "translation_key",
]
