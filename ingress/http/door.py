"""What one replica of the HTTP door holds for every request, built once at start-up.

The Serve deployment (`ingress.http.deployment.HttpIngress`) is this object with a pipeline handle;
unit tests build it over a plain `VoicePipeline`. The key ring is built here so that a replica
configured to require keys and given none fails at start-up, with the fix in the message, instead
of serving open or refusing every caller.
"""

from __future__ import annotations

import logging

from ray.serve.handle import DeploymentHandle

from serve_app.pipeline.voice_pipeline import VoicePipeline
from serve_app.security.keys import KeyRing
from serve_app.security.rate_limits import RateLimiter
from serve_app.settings import Settings

log = logging.getLogger(__name__)


class HttpDoor:
    def __init__(self, pipeline: VoicePipeline, settings: Settings, gateway: DeploymentHandle | None = None) -> None:
        self.pipeline = pipeline
        self.settings = settings
        self.gateway = gateway  # reported in /health
        self.keyring = KeyRing.from_settings(settings)
        self.limiter = RateLimiter.from_settings(settings, settings.redis_url, door="http")
        if self.keyring.enforced:
            log.info("HTTP door: %s", self.keyring.describe())
        else:
            log.warning("HTTP door: %s", self.keyring.describe())
