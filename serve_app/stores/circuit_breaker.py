"""A tiny circuit breaker for calls to an optional remote (the Redis tier of the cache).

Why not pybreaker: it has no asyncio support (its call wrappers are synchronous, and its Tornado
path is gone), and what we need is only a state machine the caller consults before and informs
after each call, so it fits in a few lines and can be driven by an injected clock in tests.

closed --(failure_threshold consecutive failures)--> open --(cooldown_s elapsed)--> half_open
half_open lets exactly one probe through: success closes the breaker, failure re-opens it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

from serve_app.observability.metrics import BREAKER_STATE, breaker_state_value

BreakerState = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    def __init__(
        self,
        failure_threshold: int = 3,
        cooldown_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        name: str | None = None,
    ) -> None:
        """`name`: the breaker's tag on `voice_translator_breaker_state` (None: not exported)."""
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be >= 1")
        if cooldown_s < 0:
            raise ValueError("cooldown_s must be >= 0")
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._state: BreakerState = "closed"
        self._failures = 0
        self._opened_at = 0.0
        self._probe_started: float | None = None
        self.name = name
        self._export()

    @property
    def state(self) -> BreakerState:
        """The state as of now: an open breaker whose cooldown has passed reports half_open."""
        if self._state == "open" and self._clock() - self._opened_at >= self.cooldown_s:
            self._state = "half_open"
            self._probe_started = None
            self._export()
        return self._state

    def _export(self) -> None:
        if self.name is not None:
            BREAKER_STATE.set(breaker_state_value(self._state), breaker=self.name)

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def allow(self) -> bool:
        """May the caller try the remote now?  In half_open only one probe is in flight at a time.

        A probe whose outcome is never recorded (the caller was cancelled) expires after one
        cooldown, so a lost probe cannot wedge the breaker half-open for ever.
        """
        state = self.state
        if state == "closed":
            return True
        if state == "open":
            return False
        now = self._clock()
        if self._probe_started is not None and now - self._probe_started < max(self.cooldown_s, 1e-9):
            return False
        self._probe_started = now
        return True

    def record_success(self) -> None:
        changed = self._state != "closed"
        self._state = "closed"
        self._failures = 0
        self._probe_started = None
        if changed:
            self._export()

    def record_failure(self) -> None:
        self._failures += 1
        if self._state == "half_open" or self._failures >= self.failure_threshold:
            self._state = "open"
            self._opened_at = self._clock()
            self._probe_started = None
            self._export()
