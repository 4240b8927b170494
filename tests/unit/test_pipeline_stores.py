"""The pipeline with its stores, over fake model stages: cache-first translation, cached
transcriptions per attachment, the profile lifecycle, and degraded mode when the store fails."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from serve_app.audio import encode_audio
from serve_app.domain.voice import VoiceJob
from serve_app.pipeline.voice_pipeline import VoicePipeline
from serve_app.settings import Settings
from serve_app.stores.errors import StoreUnavailableError
from serve_app.stores.file_profiles import FileVoiceProfileStore
from serve_app.stores.profile_lifecycle import VoiceProfileManager
from serve_app.stores.translation_cache import TranslationCache
from tests.fixtures.fake_stages import FakeStages


def speech_like(seconds: float) -> bytes:
    """A voiced, pitched signal long enough for the profile rules (not speech, but measurable)."""
    t = np.arange(int(16_000 * seconds)) / 16_000
    tone = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 6))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t) ** 2
    return encode_audio((0.2 * tone * envelope).astype(np.float32), 16_000, "wav")


@pytest.fixture
def cache() -> TranslationCache:
    return TranslationCache(None)


def make(settings: Settings, cache: TranslationCache | None = None, manager: Any = None) -> tuple[VoicePipeline,
                                                                                                   FakeStages]:
    stages = FakeStages()
    return VoicePipeline(stages, settings, cache=cache, profiles=manager), stages


async def test_cached_languages_skip_the_model(cache: TranslationCache) -> None:
    pipe, stages = make(Settings(), cache)
    first = await pipe.translate_text("Bonjour", "fr", ["en", "es", "de"])
    assert not any(t.from_cache for t in first)
    stages.calls.clear()
    second = await pipe.translate_text("Bonjour", "fr", ["en", "es", "de", "it", "pt"])
    assert [t.from_cache for t in second] == [True, True, True, False, False]
    assert sorted(c for c in stages.calls if c.startswith("translate")) == ["translate:it", "translate:pt"]
    assert second[0].translated_text == first[0].translated_text
    stats = cache.stats()
    assert (stats.hits, stats.misses) == (3, 5)


async def test_a_retried_attachment_is_not_transcribed_again(cache: TranslationCache) -> None:
    pipe, stages = make(Settings(), cache)
    job = VoiceJob(audio=speech_like(1.0), target_languages=["en"], attachment_id="att-1")
    await pipe.run_voice(job)
    await pipe.run_voice(job)
    assert stages.calls.count("transcribe") == 1
    assert cache.stats().transcription_hits == 1


async def test_profile_created_then_reused_then_improved(tmp_path: Path) -> None:
    store = FileVoiceProfileStore(tmp_path)
    await store.start()
    settings = Settings(voice_profile_max_age_days=30)
    pipe, _ = make(settings, manager=VoiceProfileManager(store, settings))
    job = VoiceJob(audio=speech_like(11.0), target_languages=["en"], user_id="u1", attachment_id="a1")
    created = await pipe.run_voice(job)
    assert created.voice_profile_action == "created"
    assert created.voice_profile is not None and created.voice_profile["version"] == 1
    reused = await pipe.run_voice(job.model_copy(update={"attachment_id": "a2"}))
    assert reused.voice_profile_action == "reused" and reused.voice_profile["version"] == 1

    aged = Settings(voice_profile_max_age_days=0)
    pipe, _ = make(aged, manager=VoiceProfileManager(store, aged))
    improved = await pipe.run_voice(job.model_copy(update={"attachment_id": "a3"}))
    assert improved.voice_profile_action == "improved" and improved.voice_profile["version"] == 2
    profile = await store.get("u1")
    assert profile is not None and [s.attachmentId for s in profile.trainingAudioSamples] == ["a1", "a3"]
    assert improved.translations[0].voice_cloned


async def test_short_messages_aggregate_until_there_is_enough_speech(tmp_path: Path) -> None:
    store = FileVoiceProfileStore(tmp_path)
    await store.start()
    settings = Settings()
    pipe, _ = make(settings, manager=VoiceProfileManager(store, settings))
    base = VoiceJob(audio=speech_like(6.0), target_languages=["en"], user_id="u2")
    first = await pipe.run_voice(base.model_copy(update={"attachment_id": "s1"}))
    assert first.voice_profile_action == "pending" and await store.get("u2") is None
    second = await pipe.run_voice(base.model_copy(update={"attachment_id": "s2"}))
    assert second.voice_profile_action == "created"
    assert second.voice_profile is not None and second.voice_profile["audioCount"] == 2


async def test_a_forwarded_message_leaves_the_forwarders_profile_alone(tmp_path: Path) -> None:
    store = FileVoiceProfileStore(tmp_path)
    await store.start()
    settings = Settings()
    pipe, stages = make(settings, manager=VoiceProfileManager(store, settings))
    from tests.fixtures.fake_stages import FAKE_REFERENCE

    job = VoiceJob(audio=speech_like(11.0), target_languages=["en"], user_id="forwarder",
                   forwarded_reference=FAKE_REFERENCE)
    result = await pipe.run_voice(job)
    assert result.voice_profile_action == "forwarded" and result.voice_profile is None
    assert "reference" not in stages.calls and await store.get("forwarder") is None
    assert result.translations[0].voice_cloned


class DeadStore(FileVoiceProfileStore):
    async def get(self, user_id: str):  # noqa: ANN201 - matches the store protocol
        raise StoreUnavailableError("MongoDB did not answer in 2 s")


async def test_a_dead_profile_store_degrades_to_the_messages_own_voice(tmp_path: Path) -> None:
    settings = Settings()
    pipe, _ = make(settings, manager=VoiceProfileManager(DeadStore(tmp_path), settings))
    result = await pipe.run_voice(VoiceJob(audio=speech_like(11.0), target_languages=["en"], user_id="u3"))
    assert result.voice_profile is None and result.voice_profile_action is None
    assert result.translations and result.translations[0].voice_cloned


class EchoStages(FakeStages):
    """Transcribes to a text that names the audio, so a cached transcript shows whose audio it was."""

    async def transcribe(self, pcm: bytes, language: str | None):  # noqa: ANN201 - the Stages protocol
        out = await super().transcribe(pcm, language)
        return out.model_copy(update={"text": f"audio of {len(pcm)} bytes"})


async def test_other_audio_under_a_known_attachment_id_is_transcribed_not_served(cache: TranslationCache) -> None:
    stages = EchoStages()
    pipe = VoicePipeline(stages, Settings(), cache=cache)
    victim, attacker = speech_like(1.0), speech_like(1.5)
    first = await pipe.transcribe(victim, attachment_id="att-v")
    stolen = await pipe.transcribe(attacker, attachment_id="att-v")  # the victim's id, other audio
    assert stolen.text != first.text and stages.calls.count("transcribe") == 2
    again = await pipe.transcribe(victim, attachment_id="att-v")  # a genuine retry still hits
    assert again.text == first.text and stages.calls.count("transcribe") == 2
    assert cache.stats().transcription_hits == 1 and cache.stats().transcription_misses == 2


def test_cache_key_changes_with_decoding_not_with_threads():
    """Text made under other decoding options must not be served; thread or batch sizes change nothing."""
    from serve_app.pipeline.voice_pipeline import translation_cache_model_key
    from serve_app.settings import Settings

    base = translation_cache_model_key(Settings())
    threads = translation_cache_model_key(Settings(translator_options={"intra_threads": 1, "inter_threads": 2}))
    decoding = translation_cache_model_key(Settings(translator_options={"repetition_penalty": 1.0}))
    assert threads == base
    assert decoding != base
    assert base.startswith("gemma:default:d2:")
