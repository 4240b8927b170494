"""Stores: the translation/transcription cache (Redis + in-process LRU) and voice profiles
(MongoDB via motor, or JSON files when no MongoDB is configured).  Plain async classes, no Ray:
the pipeline and ingresses own their instances."""

from serve_app.stores.circuit_breaker import CircuitBreaker
from serve_app.stores.errors import (
    ProfileConflictError,
    ProfileExistsError,
    ProfileNotFoundError,
    ProfileTooShortError,
    StoreError,
    StoreUnavailableError,
)
from serve_app.stores.file_profiles import FileVoiceProfileStore
from serve_app.stores.mongo_profiles import MongoVoiceProfileStore
from serve_app.stores.profile_lifecycle import (
    MATCH_THRESHOLD,
    NewSample,
    ProfileOutcome,
    VoiceProfileManager,
    blend_references,
    cosine_similarity,
    quality_score,
)
from serve_app.stores.translation_cache import (
    CachedTranslation,
    CacheStats,
    TranslationCache,
    build_translation_cache,
    translation_key,
)
from serve_app.stores.voice_profiles import (
    PendingSample,
    TrainingSample,
    VoiceFingerprint,
    VoiceProfile,
    VoiceProfileStore,
    build_profile_store,
    compute_fingerprint,
    embedding_from_bytes,
    embedding_to_bytes,
)

__all__ = [
    "MATCH_THRESHOLD",
    "CacheStats",
    "CachedTranslation",
    "CircuitBreaker",
    "FileVoiceProfileStore",
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
    "build_profile_store",
    "build_translation_cache",
    "compute_fingerprint",
    "cosine_similarity",
    "embedding_from_bytes",
    "embedding_to_bytes",
    "quality_score",
    "translation_key",
]
