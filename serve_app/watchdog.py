"""A model deployment's watchdog: lets `check_health` see the request path, not just the event loop.

Ray's default health check pings the actor's event loop, which answers even while the model thread
is wedged (a SIGSTOPped or deadlocked backend). The watchdog records every model call *in the thread
that runs it*, so a call the Pipeline has long given up on (its awaiting task cancelled) still counts
until the model actually returns. A replica is stalled when some call has run past its own stage
deadline plus a grace, and no call at all finished in that time: one slow call among healthy ones
is not a stall; a model that finishes nothing is. Ray-free, so it is unit tested as is.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class StalledError(RuntimeError):
    """Raised by `check`: Serve marks the replica unhealthy and replaces it."""


@dataclass(frozen=True)
class Call:
    name: str
    started: float
    limit_s: float


class CallWatchdog:
    def __init__(
        self,
        grace_s: float,
        clock: Callable[[], float] = time.monotonic,
        on_idle: Callable[[], object] | None = None,
    ) -> None:
        """`on_idle` runs in the model thread after a call that leaves none in flight (the deployments
        pass `serve_app.heap.release_free_heap`)."""
        self.grace_s = grace_s
        self._on_idle = on_idle
        self._clock = clock
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._calls: dict[int, Call] = {}
        self.last_finished = clock()
        self.finished = 0

    def run(self, name: str, limit_s: float, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """`fn(*args)`, recorded while it runs; call it in the model thread (`asyncio.to_thread`)."""
        with self._lock:
            key = next(self._ids)
            self._calls[key] = Call(name, self._clock(), limit_s)
        try:
            return fn(*args, **kwargs)
        finally:
            with self._lock:
                del self._calls[key]
                self.last_finished = self._clock()
                self.finished += 1
                idle = not self._calls
            if idle and self._on_idle is not None:
                self._on_idle()

    def in_flight(self) -> int:
        with self._lock:
            return len(self._calls)

    def check(self) -> None:
        """Raise `StalledError` when a call is past its deadline + grace and nothing finished meanwhile."""
        now = self._clock()
        with self._lock:
            calls = list(self._calls.values())
            idle_s = now - self.last_finished
        for call in calls:
            threshold = call.limit_s + self.grace_s
            age = now - call.started
            if age > threshold and idle_s > threshold:
                raise StalledError(
                    f"{call.name} has run {age:.0f} s (deadline {call.limit_s:.0f} s + {self.grace_s:.0f} s grace) "
                    f"and no call finished for {idle_s:.0f} s: the model thread is wedged"
                )
