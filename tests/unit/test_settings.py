"""Settings sections: each model deployment reads only its own section, the documented flat names
(env `TRANSLATOR_*`, config `args.settings`) work in every section, and no config key is a typo."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from serve_app.settings import (
    RuntimeSettings,
    Settings,
    TranslatorSettings,
    TtsSettings,
    VoiceCloneSettings,
    WhisperSettings,
    replica_settings,
    section_overrides,
)

ROOT = Path(__file__).resolve().parents[2]
MODEL_SECTIONS = (WhisperSettings, TranslatorSettings, TtsSettings, VoiceCloneSettings)


def test_a_model_section_gets_only_its_own_overrides() -> None:
    overrides = {"whisper_model": "tiny", "device": "cpu", "zmq_host": "127.0.0.1", "MONGODB_URL": "mongodb://db",
                 "translator_backend": "ctranslate2"}
    assert section_overrides(WhisperSettings, overrides) == {"whisper_model": "tiny", "device": "cpu"}
    assert section_overrides(TranslatorSettings, overrides) == {"device": "cpu", "translator_backend": "ctranslate2"}
    assert section_overrides(Settings, overrides) == overrides  # the whole service takes them all
    whisper = replica_settings(overrides, WhisperSettings)
    assert whisper.whisper_model == "tiny" and not hasattr(whisper, "zmq_host")


def test_sections_partition_the_model_settings() -> None:
    runtime = set(RuntimeSettings.model_fields)
    own = [set(section.model_fields) - runtime for section in MODEL_SECTIONS]
    for i, fields in enumerate(own):
        for other in own[i + 1:]:
            assert not fields & other
    assert set().union(*own, runtime) <= set(Settings.model_fields)


def test_documented_env_names_reach_every_section(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRANSLATOR_WHISPER_MODEL", "/models/whisper")
    monkeypatch.setenv("TRANSLATOR_TTS_BACKEND_OPTIONS", '{"kokoro": {"threads": 1}}')
    monkeypatch.setenv("REDIS_URL", "redis://cache:6379/0")
    assert WhisperSettings().whisper_model == Settings().whisper_model == "/models/whisper"
    assert TtsSettings().tts_backend_options == {"kokoro": {"threads": 1}}
    assert Settings().redis_url == "redis://cache:6379/0"


@pytest.mark.parametrize("config", ["serve_config.yaml", "serve_config.local.yaml"])
def test_every_config_setting_is_a_known_setting(config: str) -> None:
    settings = yaml.safe_load((ROOT / config).read_text())["applications"][0]["args"]["settings"]
    assert set(section_overrides(Settings, settings)) == set(settings)
    Settings(**settings)
