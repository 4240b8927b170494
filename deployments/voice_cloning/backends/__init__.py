"""Conversion backends: each turns a base TTS voice toward a reference speaker.

A backend measures what it needs from the sender's audio (``describe``) and converts one clip
into one or more candidates; the cloner scores candidates with the speaker encoder and keeps the
closest, so no backend reports its own similarity.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from deployments.backend_registry import BackendRegistry
from serve_app.domain.speaker import SpeakerReference
from serve_app.errors import VoiceCloneError

BACKENDS = BackendRegistry(
    "voice clone",
    {
        "world": "deployments.voice_cloning.backends.world:from_config",
        "openvoice": "deployments.voice_cloning.backends.openvoice:from_config",
    },
)
"""Backend name -> factory(cache_dir=..., device=..., options=...); a backend's module is imported when chosen."""


class NothingToConvert(VoiceCloneError):
    """The input cannot be converted (e.g. too little voiced speech): deliver it unchanged."""


class CloneBackend(Protocol):
    name: str

    def describe(self, samples: np.ndarray, sample_rate: int) -> dict[str, Any]:
        """SpeakerReference fields this backend needs, measured from the sender's audio."""
        ...

    def can_convert(self, reference: SpeakerReference) -> str | None:
        """None when ``reference`` carries what the backend needs, else the reason it does not."""
        ...

    def candidates(
        self, samples: np.ndarray, sample_rate: int, reference: SpeakerReference
    ) -> list[tuple[np.ndarray, int]]:
        """Converted versions of ``samples`` (float32 mono, sample rate) to choose from."""
        ...


def make_backend(
    name: str, cache_dir: Path, device: str = "cpu", options: Mapping[str, Any] | None = None
) -> CloneBackend:
    """Build a backend by name; its constructor checks its prerequisites and fails fast."""
    factory = BACKENDS.resolve(name)
    return factory(cache_dir=cache_dir, device=device, options=dict(options or {}))
