"""`/v1/models`: what the deployed stages report they have loaded, in OpenAI's model-list shape.

The OpenAI names clients send by default (`whisper-1`, `tts-1`) are listed too, as the aliases
they are: every transcription runs the deployed Whisper, every speech the deployed TTS chain.
"""

from __future__ import annotations

import time
from typing import Any

from ingress.http.openai.protocol import SPEECH_MODEL_ALIASES, TRANSCRIPTION_MODEL_ALIASES, ModelCard, ModelList


def model_ids(components: dict[str, Any]) -> list[str]:
    ids: list[str] = []

    def add(name: Any) -> None:
        if isinstance(name, str) and name and name not in ids:
            ids.append(name)

    transcriber = components.get("transcriber") or {}
    if transcriber.get("status") == "ready":
        add(transcriber.get("model"))
        for alias in TRANSCRIPTION_MODEL_ALIASES:
            add(alias)
    translator = components.get("translator") or {}
    if translator.get("status") == "ready":
        add(translator.get("model"))
    synthesizer = components.get("synthesizer") or {}
    if synthesizer.get("status") == "ready":
        for backend in synthesizer.get("loaded") or {}:
            add(f"tts-{backend}")
        for alias in SPEECH_MODEL_ALIASES:
            add(alias)
    cloner = components.get("voice_cloner") or {}
    if cloner.get("status") == "ready":
        add(cloner.get("embedding_model"))
    return ids


def model_list(health: dict[str, Any]) -> ModelList:
    created = int(time.time() - float(health.get("uptime_s") or 0))
    return ModelList(data=[ModelCard(id=i, created=created) for i in model_ids(health.get("components") or {})])
