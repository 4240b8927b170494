"""Two-tier cache of translations and transcriptions: in-process LRU always, Redis when configured.

Why two tiers: the LRU answers repeated messages in microseconds inside one replica and keeps the
service working when Redis is down; Redis shares results across replicas and restarts.  Redis is
optional *at run time* too: every call is bounded by short socket timeouts plus an overall
deadline and guarded by a circuit breaker, so a dead Redis costs at most a few fast failures
before it is skipped entirely until the cooldown ends; then one probe decides whether to use it
again.  Values are JSON (pydantic ``model_dump_json``), never pickle: a shared cache is input.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import unicodedata
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar

from cachetools import TTLCache
from pydantic import BaseModel, ValidationError

from serve_app.observability.metrics import CACHE_HITS, CACHE_MISSES
from serve_app.stores.circuit_breaker import BreakerState, CircuitBreaker

log = logging.getLogger(__name__)

KEY_VERSION = "v1"
T = TypeVar("T")
_WHITESPACE = re.compile(r"\s+")


class CachedTranslation(BaseModel):
    translated_text: str
    source_language: str
    target_language: str
    model: str
    confidence: float | None = None


class CacheStats(BaseModel):
    hits: int
    misses: int
    hit_rate: float
    backend: Literal["redis", "memory"]
    redis_configured: bool
    breaker_state: BreakerState
    lru_size: int
    redis_errors: int
    transcription_hits: int = 0
    transcription_misses: int = 0


def normalize_text(text: str) -> str:
    """NFC, whitespace runs collapsed to one space, stripped; case is kept (it can change meaning)."""
    return _WHITESPACE.sub(" ", unicodedata.normalize("NFC", text)).strip()


def translation_key(text: str, source: str, target: str, model: str) -> str:
    digest = hashlib.sha256(normalize_text(text).encode("utf-8")).hexdigest()
    return f"translation:{KEY_VERSION}:{digest}:{source}:{target}:{model}"


def audio_digest(audio: bytes) -> str:
    """SHA-256 (hex) of the audio a transcription was made from: half of its cache key."""
    return hashlib.sha256(audio).hexdigest()


def transcription_key(attachment_id: str, digest: str) -> str:
    """``audio:transcription:{attachmentId}:{sha256[:32]}``: a transcription belongs to an attachment
    *and* to the exact audio it was made from. A caller who names someone else's attachment id with
    other audio neither reads that transcript nor plants one for the real audio (the last 32 hex
    digits are always the digest of the audio being transcribed, whatever the id contains)."""
    if len(digest) < 32:
        raise ValueError("the audio digest must be a SHA-256 hex digest")
    return f"audio:transcription:{attachment_id}:{digest[:32]}"


class _Unavailable(Exception):
    """Internal: Redis was skipped or failed; the caller falls back to the LRU."""


class TranslationCache:
    """``redis`` is a ``redis.asyncio.Redis`` (or None for memory only); build it with ``from_url``."""

    def __init__(
        self,
        redis: Any | None = None,
        *,
        lru_size: int = 10_000,
        lru_ttl_s: float = 3600.0,
        translation_ttl_s: int = 7 * 86400,
        transcription_ttl_s: int = 7 * 86400,
        op_timeout_s: float = 1.0,
        breaker: CircuitBreaker | None = None,
        timer: Callable[[], float] | None = None,
    ) -> None:
        ttl_kwargs: dict[str, Any] = {"timer": timer} if timer is not None else {}
        self._lru: TTLCache[str, str] = TTLCache(maxsize=lru_size, ttl=lru_ttl_s, **ttl_kwargs)
        self._transcriptions: TTLCache[str, str] = TTLCache(maxsize=max(1, lru_size // 10), ttl=lru_ttl_s, **ttl_kwargs)
        self._redis = redis
        self._translation_ttl_s = int(translation_ttl_s)
        self._transcription_ttl_s = int(transcription_ttl_s)
        self._op_timeout_s = op_timeout_s
        self.breaker = breaker or CircuitBreaker(name="redis_cache")
        self._hits = self._misses = 0
        self._t_hits = self._t_misses = 0
        self._redis_errors = 0

    @classmethod
    def from_url(
        cls,
        url: str | None,
        *,
        connect_timeout_s: float = 0.5,
        socket_timeout_s: float = 0.5,
        **kwargs: Any,
    ) -> TranslationCache:
        """No retries inside redis-py (its default retries with backoff would stall a request)."""
        client = None
        if url:
            from redis.asyncio import Redis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff

            client = Redis.from_url(
                url,
                socket_connect_timeout=connect_timeout_s,
                socket_timeout=socket_timeout_s,
                retry=Retry(NoBackoff(), 0),
                decode_responses=True,
            )
        kwargs.setdefault("op_timeout_s", 2 * max(connect_timeout_s, socket_timeout_s))
        return cls(client, **kwargs)

    @property
    def redis_configured(self) -> bool:
        return self._redis is not None

    async def get(self, text: str, source: str, target: str, model: str) -> CachedTranslation | None:
        key = translation_key(text, source, target, model)
        raw, tier = await self._lookup(self._lru, key)
        value = self._decode(raw, key)
        if value is None:
            self._misses += 1
            CACHE_MISSES.inc(kind="translation")
        else:
            self._hits += 1
            CACHE_HITS.inc(kind="translation", tier=tier)
        return value

    async def put(self, text: str, source: str, target: str, model: str, value: CachedTranslation) -> None:
        key = translation_key(text, source, target, model)
        await self._store(self._lru, key, value.model_dump_json(), self._translation_ttl_s)

    async def get_transcription(self, attachment_id: str, digest: str) -> dict[str, Any] | None:
        """The transcription of this attachment's audio whose SHA-256 is `digest` (`audio_digest`)."""
        raw, tier = await self._lookup(self._transcriptions, transcription_key(attachment_id, digest))
        value = None
        if raw is not None:
            try:
                loaded = json.loads(raw)
                value = loaded if isinstance(loaded, dict) else None
            except ValueError:
                log.warning("ignoring a corrupt cached transcription for %s", attachment_id)
        if value is None:
            self._t_misses += 1
            CACHE_MISSES.inc(kind="transcription")
        else:
            self._t_hits += 1
            CACHE_HITS.inc(kind="transcription", tier=tier)
        return value

    async def put_transcription(self, attachment_id: str, digest: str, transcription: dict[str, Any]) -> None:
        payload = json.dumps(transcription, ensure_ascii=False, separators=(",", ":"))
        key = transcription_key(attachment_id, digest)
        await self._store(self._transcriptions, key, payload, self._transcription_ttl_s)

    def stats(self) -> CacheStats:
        lookups = self._hits + self._misses
        state = self.breaker.state
        return CacheStats(
            hits=self._hits,
            misses=self._misses,
            hit_rate=self._hits / lookups if lookups else 0.0,
            backend="redis" if self._redis is not None and state != "open" else "memory",
            redis_configured=self._redis is not None,
            breaker_state=state,
            lru_size=len(self._lru),
            redis_errors=self._redis_errors,
            transcription_hits=self._t_hits,
            transcription_misses=self._t_misses,
        )

    async def close(self) -> None:
        if self._redis is not None:
            try:
                await self._redis.aclose()
            except Exception as exc:  # noqa: BLE001 - closing a dead connection must not fail shutdown
                log.debug("closing redis: %s", exc)

    # -- internals ------------------------------------------------------------------------------

    async def _lookup(self, lru: TTLCache[str, str], key: str) -> tuple[str | None, str]:
        """The raw value and the tier that answered ("lru" or "redis")."""
        raw = lru.get(key)
        if raw is not None:
            return raw, "lru"
        try:
            raw = await self._call(lambda r: r.get(key))
        except _Unavailable:
            return None, "redis"
        if raw is not None:
            lru[key] = raw  # backfill so the next lookup in this replica skips the network
        return raw, "redis"

    async def _store(self, lru: TTLCache[str, str], key: str, payload: str, ttl_s: int) -> None:
        lru[key] = payload
        try:
            await self._call(lambda r: r.set(key, payload, ex=ttl_s))
        except _Unavailable:
            pass

    async def _call(self, op: Callable[[Any], Awaitable[T]]) -> T:
        """Run one Redis command under the breaker and a hard deadline, or raise _Unavailable."""
        if self._redis is None or not self.breaker.allow():
            raise _Unavailable
        try:
            result = await asyncio.wait_for(op(self._redis), timeout=self._op_timeout_s)
        except Exception as exc:  # noqa: BLE001 - any Redis failure means "use the LRU", never an error
            self._redis_errors += 1
            self.breaker.record_failure()
            log.warning("redis unavailable (%s: %s); breaker %s", type(exc).__name__, exc, self.breaker.state)
            raise _Unavailable from exc
        self.breaker.record_success()
        return result

    @staticmethod
    def _decode(raw: str | None, key: str) -> CachedTranslation | None:
        if raw is None:
            return None
        try:
            return CachedTranslation.model_validate_json(raw)
        except ValidationError:
            log.warning("ignoring a corrupt cached translation under %s", key)
            return None
