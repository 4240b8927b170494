"""The pipeline's voice profile operations over a file store and fake stages: analyze (with
previews), verify, compare, CRUD errors, and feedback that is kept, not dropped."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from serve_app.domain.speaker import SpeakerReference
from serve_app.domain.voice import VoiceAnalysis
from serve_app.errors import InvalidRequestError
from serve_app.pipeline.voice_pipeline import VoicePipeline
from serve_app.settings import Settings
from serve_app.stores.errors import ProfileNotFoundError, ProfileTooShortError, StoreUnavailableError
from serve_app.stores.file_profiles import FileVoiceProfileStore
from serve_app.stores.profile_lifecycle import VoiceProfileManager
from serve_app.voice_acoustics import measure_acoustics
from tests.fixtures.fake_stages import FakeStages

CHARACTERISTICS = {"pitchMeanHz": 140.0, "pitchStdHz": 10.0, "pitchMinHz": 120.0, "pitchMaxHz": 160.0,
                   "pitchRangeHz": 40.0, "energyDb": -20.0, "energyStdDb": 3.0, "speakingRate": 4.0,
                   "speakingRateUnit": "syllables_per_second", "voicedRatio": 0.6, "durationMs": 12_000}


def voice(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=256).astype(np.float32)


def tone(hz: float, seconds: float = 1.0, rate: int = 16_000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.2 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


ACOUSTICS = measure_acoustics(tone(140.0), 16_000)


def fake_analyze(durations: dict[bytes, int]):  # noqa: ANN201 - a test double of Pipeline.analyze_voice
    async def analyze(audio: bytes, transcribe: bool, detailed: bool = False) -> VoiceAnalysis:
        vec = voice(audio[0])
        return VoiceAnalysis(duration_ms=durations.get(audio, 12_000), embedding=vec.tolist(),
                             embedding_model="resemblyzer-ge2e-256",
                             speaker_reference=SpeakerReference(embedding=vec, log_f0_mean=5.0,
                                                                log_f0_std=0.2).to_npz_bytes(),
                             characteristics=CHARACTERISTICS, acoustics=ACOUSTICS if detailed else None)
    return analyze


@pytest.fixture
async def service(tmp_path: Path) -> VoicePipeline:
    settings = Settings(cache_dir=tmp_path)
    store = FileVoiceProfileStore(tmp_path / "profiles")
    await store.start()
    pipeline = VoicePipeline(FakeStages(), settings, profiles=VoiceProfileManager(store, settings))
    pipeline.analyze_voice = fake_analyze({b"\x02short": 4000})  # type: ignore[method-assign]
    return pipeline


async def test_analyze_gives_a_fingerprint_that_verify_and_compare_accept(service: VoicePipeline) -> None:
    a = (await service.profile_analyze(b"\x01sample", user_id="u1", preview_languages=["en", "zz"],
                                    preview_text="Bonjour")).to_wire()
    assert a["embedding_dimension"] == 256 and a["signature_short"] == a["fingerprint"]["signatureShort"]
    assert a["profile_id"].startswith("vfp_") and a["quality_score"] == pytest.approx(0.5)
    [preview] = a["voice_previews"]
    assert preview["language"] == "en" and preview["voice_cloned"] and preview["audio_base64"]
    assert (preview["original_text"], preview["translated_text"]) == ("Bonjour", "Bonjour->en")
    assert preview["audio_format"] == "mp3" and isinstance(preview["duration_ms"], int) and preview["generated_at"]
    [failed] = a["voice_previews_failed"]
    assert failed["language"] == "zz" and failed["error_code"] == "unsupported_language"
    assert a["pitch"]["mean"] == pytest.approx(140, abs=2) and a["classification"]["gender"] == "male"
    assert "transcription" not in a  # the double transcribes nothing

    same = (await service.profile_verify(b"\x01again", "u1", a["fingerprint"])).to_wire()
    assert same["is_match"] is True and same["similarity_score"] == pytest.approx(1.0, abs=1e-4)
    other = (await service.profile_analyze(b"\x07other")).to_wire(camel=True)
    assert "signatureShort" in other and "embeddingData" in other
    compared = (await service.profile_compare(a["fingerprint"], other["fingerprint"])).to_wire()
    assert compared["is_match"] is False and compared["threshold"] == 0.8


async def test_profile_crud_and_its_errors(service: VoicePipeline) -> None:
    with pytest.raises(ProfileNotFoundError):
        await service.profile_get("nobody")
    with pytest.raises(ProfileTooShortError):
        await service.profile_create("u2", b"\x02short")
    created = await service.profile_create("u2", b"\x03long")
    assert created["version"] == 1 and "embedding" not in created
    updated = await service.profile_update("u2", b"\x04more")
    assert updated["version"] == 2 and updated["audioCount"] == 2
    listed = await service.profile_list(10, 0)
    assert listed["total"] == 1 and listed["profiles"][0]["userId"] == "u2"
    with pytest.raises(ProfileNotFoundError):
        await service.profile_verify(b"\x01x", "nobody")
    assert (await service.profile_delete("u2"))["deleted"] is True
    with pytest.raises(ProfileNotFoundError):
        await service.profile_delete("u2")


async def test_feedback_is_written_down(service: VoicePipeline, tmp_path: Path) -> None:
    out = await service.record_feedback({"userId": "u1", "translationId": "vtr_1", "rating": 4})
    lines = (tmp_path / "voice_feedback.jsonl").read_text().splitlines()
    assert json.loads(lines[-1])["feedbackId"] == out["feedbackId"] and json.loads(lines[-1])["rating"] == 4


async def test_verify_uses_the_stored_profile_and_ignores_a_callers_fingerprint(service: VoicePipeline) -> None:
    await service.profile_create("u5", b"\x05long")  # u5's stored voice: seed 5
    impostor = (await service.profile_analyze(b"\x09impostor")).to_wire()  # another voice: seed 9
    forged = (await service.profile_verify(b"\x09again", "u5", impostor["fingerprint"])).to_wire()
    assert forged["is_match"] is False and forged["verified_against"] == "stored_profile"
    genuine = (await service.profile_verify(b"\x05again", "u5", impostor["fingerprint"])).to_wire()
    assert genuine["is_match"] is True and genuine["similarity_score"] == pytest.approx(1.0, abs=1e-4)


async def test_a_fingerprint_counts_only_for_a_user_with_no_stored_profile(service: VoicePipeline) -> None:
    fingerprint = (await service.profile_analyze(b"\x06mine")).to_wire()["fingerprint"]
    out = (await service.profile_verify(b"\x06again", "u6", fingerprint)).to_wire()
    assert out["is_match"] is True and out["verified_against"] == "fingerprint"
    assert (await service.profile_verify(b"\x08other", "u6", fingerprint)).is_match is False


async def test_verify_does_not_fall_back_to_the_fingerprint_when_the_store_fails(
    service: VoicePipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    fingerprint = (await service.profile_analyze(b"\x06mine")).to_wire()["fingerprint"]

    async def down(user_id: str) -> None:
        raise StoreUnavailableError("voice profile store did not answer")

    monkeypatch.setattr(service.profiles, "get", down)
    with pytest.raises(StoreUnavailableError):
        await service.profile_verify(b"\x06again", "u6", fingerprint)


async def test_verify_without_a_store_uses_the_fingerprint_or_answers_503(tmp_path: Path) -> None:
    pipeline = VoicePipeline(FakeStages(), Settings(cache_dir=tmp_path))
    pipeline.analyze_voice = fake_analyze({})  # type: ignore[method-assign]
    fingerprint = (await pipeline.profile_analyze(b"\x06mine")).to_wire()["fingerprint"]
    assert (await pipeline.profile_verify(b"\x06again", "u6", fingerprint)).verified_against == "fingerprint"
    with pytest.raises(StoreUnavailableError):
        await pipeline.profile_verify(b"\x06again", "u6")


async def test_feedback_comment_over_the_limit_is_refused(service: VoicePipeline, tmp_path: Path) -> None:
    limit = service.settings.max_feedback_comment_chars
    with pytest.raises(InvalidRequestError):
        await service.record_feedback({"userId": "u1", "translationId": "t", "rating": 4, "comment": "x" * (limit + 1)})
    assert not (tmp_path / "voice_feedback.jsonl").exists()
