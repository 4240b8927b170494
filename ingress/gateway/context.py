"""What a handler is given besides its validated request, and what the handlers share.

Handlers see the transport only through `Call` (the binary frames and the PUB side), so they never
depend on the sockets. `GatewayState` holds the counters every family updates, and the live figures
only the server knows (requests in flight, its transport counters), which it plugs in when it is
built around the router, and the voice API's history.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ingress.gateway.history import VoiceHistory
from ingress.gateway.protocol.events import GatewayEvent

Publish = Callable[[GatewayEvent, Sequence[bytes]], Awaitable[None]]


@dataclass(frozen=True)
class Call:
    """One request's transport: frame 0 is already validated; binary frames are read from here."""

    frames: list[bytes]
    publish: Publish


def _no_stats() -> dict[str, Any]:
    return {}


@dataclass
class GatewayState:
    received: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    deduplicated: int = 0
    started_at: float = field(default_factory=time.time)
    # What the voice API translated, for voice_history / voice_stats / voice_admin_metrics.
    history: VoiceHistory = field(default_factory=lambda: VoiceHistory(1000))
    # Plugged in by the server: voice_stats and voice_health report the transport's figures too
    # (requests in flight, busy rejections, malformed input, loop state).
    in_flight: Callable[[], int] = lambda: 0
    transport_stats: Callable[[], dict[str, Any]] = _no_stats
