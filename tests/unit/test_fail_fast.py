"""A missing model, package or device makes a stage fail at construction, in seconds, with a
message that says what to install or configure (never a long wait, never a hub download)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from serve_app.errors import PrerequisiteError


def fails_fast(build, *needles: str) -> None:
    started = time.perf_counter()
    with pytest.raises(PrerequisiteError) as info:
        build()
    assert time.perf_counter() - started < 10
    for needle in needles:
        assert needle in info.value.message, info.value.message


def test_whisper_model_folder_missing(tmp_path: Path) -> None:
    from deployments.transcription.transcriber import Transcriber

    fails_fast(lambda: Transcriber(str(tmp_path / "nope"), cache_dir=tmp_path), "TRANSLATOR_WHISPER_MODEL")
    (tmp_path / "empty").mkdir()
    fails_fast(lambda: Transcriber(str(tmp_path / "empty"), cache_dir=tmp_path), "model.bin")


def test_translation_backends_without_weights(tmp_path: Path) -> None:
    from deployments.translation.translator import Translator

    fails_fast(lambda: Translator.from_config("ctranslate2", str(tmp_path / "nllb"), cache_dir=tmp_path))
    fails_fast(lambda: Translator.from_config("transformers", str(tmp_path / "nllb"), cache_dir=tmp_path))
    fails_fast(lambda: Translator.from_config("marian", None, cache_dir=tmp_path), "unknown translation backend")


def test_tts_with_no_usable_backend(tmp_path: Path) -> None:
    from deployments.synthesis.synthesizer import Synthesizer

    fails_fast(lambda: Synthesizer.from_config({"*": ["xtts"]}, cache_dir=tmp_path), "xtts")


def test_voice_clone_backend_not_installed(tmp_path: Path) -> None:
    from deployments.voice_cloning.voice_cloner import VoiceCloner

    fails_fast(lambda: VoiceCloner.from_config("openvoice", cache_dir=tmp_path, warmup=False), "openvoice")
