"""What every model deployment shares: settings from the bound overrides, logging, device."""

from __future__ import annotations

import logging
from typing import Any

from serve_app.settings import Settings, resolve_device


def deployment_settings(overrides: dict[str, Any] | None) -> Settings:
    """Settings come from the environment, then from the application's builder args (config file)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return Settings(**(overrides or {}))


def device_of(settings: Settings) -> str:
    return resolve_device(settings.device)
