"""Builds the Ray Serve application graph; `serve run`/`serve deploy` import `build_app`.

The builder args (from the serve config's `args.settings`) are settings overrides: validated here
as a whole, then each model deployment is handed only its own section's (`serve_app.settings`), while
the Pipeline and the two doors take them all. One config file describes the whole service.
"""

from __future__ import annotations

from typing import Any

from ray.serve import Application

from deployments.pipeline import PipelineDeployment
from deployments.synthesis.deployment import SynthesizerDeployment
from deployments.transcription.deployment import TranscriberDeployment
from deployments.translation.deployment import TranslatorDeployment
from deployments.voice_cloning.deployment import VoiceClonerDeployment
from ingress.gateway.deployment import ZmqIngress
from ingress.http.deployment import HttpIngress
from serve_app.settings import (
    Settings,
    TranslatorSettings,
    TtsSettings,
    VoiceCloneSettings,
    WhisperSettings,
    section_overrides,
)


def build_app(args: dict[str, Any] | None = None) -> Application:
    overrides = dict((args or {}).get("settings") or {})
    Settings(**overrides)  # fail at build time, in the operator's terminal, on a bad setting
    transcriber = TranscriberDeployment.bind(section_overrides(WhisperSettings, overrides))
    translator = TranslatorDeployment.bind(section_overrides(TranslatorSettings, overrides))
    synthesizer = SynthesizerDeployment.bind(section_overrides(TtsSettings, overrides))
    cloner = VoiceClonerDeployment.bind(section_overrides(VoiceCloneSettings, overrides))
    pipeline = PipelineDeployment.bind(transcriber, translator, synthesizer, cloner, overrides)
    gateway = ZmqIngress.bind(pipeline, overrides)  # the gateway's door, in the same application
    return HttpIngress.bind(pipeline, overrides, gateway)
