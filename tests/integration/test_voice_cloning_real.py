"""Voice cloning with the real GE2E encoder (resemblyzer) and WORLD (pyworld) on espeak-ng voices.

The "sender" is a high-pitched French female espeak voice, the base TTS voice a male US-English
one: the pair where conversion reliably moves the measured similarity (~0.6 -> ~0.85).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile

from deployments.voice_cloning import VoiceCloner
from serve_app.domain.speaker import SpeakerReference, cosine

pytestmark = pytest.mark.integration

CACHE_DIR = Path("~/.cache/voice-translator").expanduser()  # keeps numba's JIT cache across runs
SENDER_TEXT = (
    "Bonjour à tous, je vous envoie ce petit message pour vous dire que je serai en retard ce "
    "soir. Le train est bloqué à cause de la neige, mais je pense arriver vers neuf heures."
)
SENDER_OTHER_TEXT = "Merci beaucoup pour votre aide, on se voit demain matin au bureau."
BASE_TEXT = "I will be late tonight, the train is stuck because of the snow."


def espeak(tmp: Path, name: str, voice: str, text: str, pitch: int = 50) -> tuple[np.ndarray, int]:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng (Debian package) is needed to make speech fixtures")
    path = tmp / f"{name}.wav"
    subprocess.run(
        ["espeak-ng", "-v", voice, "-p", str(pitch), "-w", str(path), text], check=True, timeout=30
    )
    samples, sr = soundfile.read(str(path), dtype="float32")
    return samples, sr


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> dict[str, tuple[np.ndarray, int]]:
    tmp = tmp_path_factory.mktemp("voices")
    return {
        "sender": espeak(tmp, "sender", "fr+f3", SENDER_TEXT, pitch=70),
        "sender_other": espeak(tmp, "sender_other", "fr+f3", SENDER_OTHER_TEXT, pitch=70),
        "base": espeak(tmp, "base", "en-us+m3", BASE_TEXT),
    }


@pytest.fixture(scope="module")
def cloner() -> VoiceCloner:
    return VoiceCloner.from_config(backend="world", cache_dir=CACHE_DIR)


@pytest.fixture(scope="module")
def reference(cloner: VoiceCloner, speech) -> SpeakerReference:
    return cloner.reference_from_audio(*speech["sender"])


def test_reference_carries_measured_voice_statistics(reference, speech) -> None:
    samples, sr = speech["sender"]
    assert reference.embedding.shape == (256,) and reference.embedding.dtype == np.float32
    assert np.linalg.norm(reference.embedding) == pytest.approx(1.0, abs=1e-4)
    assert reference.duration_ms == pytest.approx(1000 * samples.size / sr, abs=1)
    assert 180 < np.exp(reference.log_f0_mean) < 320  # espeak f3 at pitch 70 sits around 240 Hz
    assert reference.has_world_stats and np.isfinite(reference.envelope_db).all()


def test_similarity_tells_the_sender_from_the_base_voice(cloner, reference, speech) -> None:
    same = cloner.similarity(*speech["sender_other"], reference)
    other = cloner.similarity(*speech["base"], reference)
    assert same > 0.8 and other < 0.75 and same - other > 0.1


def test_conversion_moves_toward_the_sender_and_reports_what_it_measured(
    cloner, reference, speech
) -> None:
    samples, sr = speech["base"]
    out = cloner.convert(samples, sr, reference)
    assert out.converted and out.backend == "world" and out.sample_rate == sr
    assert out.samples.dtype == np.float32 and np.max(np.abs(out.samples)) <= 1.0
    # duration preserved (WORLD resynthesises frame by frame, no time stretching)
    assert out.samples.size / out.sample_rate == pytest.approx(samples.size / sr, rel=0.01)
    # the reported numbers are the cosines we can measure ourselves
    encoder = cloner.encoder
    assert out.base_similarity == pytest.approx(
        cosine(encoder.embed(samples, sr), reference.embedding), abs=1e-4
    )
    assert out.similarity == pytest.approx(
        cosine(encoder.embed(out.samples, out.sample_rate), reference.embedding), abs=1e-4
    )
    assert out.similarity > out.base_similarity + 0.1


def test_serialised_reference_converts_identically(cloner, reference, speech) -> None:
    samples, sr = speech["base"]
    restored = SpeakerReference.from_base64(reference.to_base64())
    first = cloner.convert(samples, sr, reference)
    second = cloner.convert(samples, sr, restored)
    np.testing.assert_allclose(second.samples, first.samples, atol=1e-6)
    assert second.similarity == pytest.approx(first.similarity, abs=1e-5)


def test_embedding_only_reference_scores_but_does_not_convert(cloner, reference, speech) -> None:
    samples, sr = speech["base"]
    forwarded = cloner.reference_from_embedding(reference.embedding_bytes())
    out = cloner.convert(samples, sr, forwarded)
    assert out.converted is False
    np.testing.assert_array_equal(out.samples, samples)
    assert out.similarity == out.base_similarity
    assert out.similarity == pytest.approx(cloner.similarity(samples, sr, reference), abs=1e-4)
