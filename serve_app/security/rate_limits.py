"""Rate limits per principal and per user, on both doors (`limits`, moving window).

In-process when no `REDIS_URL` is set (each replica counts for itself); in Redis otherwise, so every
replica of a door shares one count. A Redis that does not answer never blocks a request: the limiter
falls back to its in-process counts for that call (logged) rather than failing the caller.
"""

from __future__ import annotations

import logging
import time

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from serve_app.errors import RateLimitedError
from serve_app.observability.metrics import RATE_LIMITED
from serve_app.settings import SecuritySettings

log = logging.getLogger(__name__)


class RateLimiter:
    def __init__(self, per_principal: str, per_user: str, redis_url: str | None = None, door: str = "") -> None:
        """`door`: which door counts (http/zmq), the tag of `voice_translator_rate_limited`."""
        self.door = door
        self.per_principal: RateLimitItem = parse(per_principal)
        self.per_user: RateLimitItem = parse(per_user)
        self._local = MovingWindowRateLimiter(MemoryStorage())
        self._shared: MovingWindowRateLimiter | None = None
        if redis_url:
            storage: Storage = RedisStorage(
                redis_url.replace("redis://", "async+redis://", 1).replace("rediss://", "async+rediss://", 1),
                implementation="redispy", socket_timeout=0.5, socket_connect_timeout=0.5,
            )
            self._shared = MovingWindowRateLimiter(storage)

    @classmethod
    def from_settings(cls, settings: SecuritySettings, redis_url: str | None, door: str = "") -> RateLimiter:
        return cls(settings.rate_limit, settings.rate_limit_per_user, redis_url, door)

    async def check(self, principal: str, user_id: str | None = None) -> None:
        """Count one request of `principal` (acting for `user_id`); RateLimitedError when over a limit."""
        await self._hit(self.per_principal, "principal", principal)
        if user_id:
            await self._hit(self.per_user, "user", user_id)

    async def _hit(self, item: RateLimitItem, kind: str, who: str) -> None:
        limiter = self._shared or self._local
        try:
            allowed = await limiter.hit(item, kind, who)
        except Exception as exc:  # noqa: BLE001 - a dead Redis must not turn into failed requests
            log.warning("shared rate limit store unavailable (%s); counting in-process", type(exc).__name__)
            limiter = self._local
            allowed = await limiter.hit(item, kind, who)
        if allowed:
            return
        RATE_LIMITED.inc(door=self.door, scope=kind)
        stats = await limiter.get_window_stats(item, kind, who)
        retry_after = max(1.0, stats.reset_time - time.time())
        raise RateLimitedError(f"rate limit {item} exceeded for this {kind}; retry after {retry_after:.0f} s",
                               retry_after_s=retry_after)
