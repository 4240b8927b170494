"""Real TTS backends on the registry-package weights (piper, kokoro) and Debian espeak-ng."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deployments.synthesis import DEFAULT_LANGUAGE_CHAINS, Synthesizer
from deployments.synthesis.backends.espeak import EspeakBackend
from deployments.synthesis.backends.kokoro import MAX_TOKENS, KokoroBackend, split_tokens
from deployments.synthesis.backends.piper import PiperBackend
from serve_app.errors import UnsupportedLanguageError
from tests.fixtures.speech import word_error_rate

pytestmark = pytest.mark.integration

WHISPER_DIR = Path.home() / ".cache" / "voice-translator" / "whisper-base"


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("tts-cache")


@pytest.fixture(scope="module")
def synth(cache_dir) -> Synthesizer:
    return Synthesizer.from_config(DEFAULT_LANGUAGE_CHAINS, cache_dir, warmup=True)


def assert_plausible_speech(samples: np.ndarray, rate: int, words: int) -> None:
    """Mono float32 in range, not silent, ~0.15-1.2 s per word (natural to slow speech)."""
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert np.abs(samples).max() <= 1.0
    assert np.sqrt(np.mean(samples**2)) > 0.01
    duration = len(samples) / rate
    assert 0.15 * words < duration < 1.2 * words + 1.0, duration


def test_piper_english(cache_dir):
    backend = PiperBackend(cache_dir=cache_dir)
    backend.check()
    assert backend.languages() == {"en"}
    speech = backend.synthesize("The weather is lovely today, let's go for a walk.", "en")
    assert speech.sample_rate == 22050 and speech.backend == "piper"
    assert speech.voice == "en_US-joe-medium"
    assert_plausible_speech(speech.samples, speech.sample_rate, words=10)
    with pytest.raises(UnsupportedLanguageError):
        backend.synthesize("Bonjour", "fr")


@pytest.mark.parametrize(
    "lang,text",
    [
        ("fr", "Je voudrais un café au lait, s'il vous plaît."),
        ("de", "Ich möchte heute Abend ins Kino gehen."),
        ("ru", "Привет, как у тебя дела сегодня?"),
    ],
)
def test_espeak_languages(lang, text):
    backend = EspeakBackend(variant="m3", speed_wpm=140)
    backend.check()
    assert {"en", "fr", "de", "es", "ru", "zh"} <= backend.languages()
    speech = backend.synthesize(text, lang)
    assert speech.sample_rate == 22050 and speech.voice.endswith("+m3")
    assert_plausible_speech(speech.samples, speech.sample_rate, words=max(3, len(text.split())))


def test_kokoro_spanish_assembles_model_once(cache_dir):
    backend = KokoroBackend(cache_dir=cache_dir)
    backend.check()
    speech = backend.synthesize("Mañana vamos a la playa con mis amigos.", "es")
    assert speech.sample_rate == 24000 and speech.backend == "kokoro"
    assert_plausible_speech(speech.samples, speech.sample_rate, words=7)
    model = cache_dir / "kokoro" / "kokoro-v1.0.int8.onnx"
    assert model.is_file() and model.stat().st_size > 80_000_000
    assert not list(model.parent.glob("*.part"))
    with pytest.raises(UnsupportedLanguageError):
        backend.synthesize("God dag", "sv")  # not in the default Kokoro languages


def test_kokoro_splits_input_longer_than_its_token_limit(cache_dir):
    backend = KokoroBackend(cache_dir=cache_dir)
    backend.check()
    long_text = ", ".join(["nous allons à la plage demain matin avec tous nos amis"] * 11) + "."
    phonemes = backend.phonemize(long_text, "fr")
    assert len(phonemes) > 510  # one model call would overflow Kokoro's 512-token context
    assert all(len(c) <= MAX_TOKENS for c in split_tokens(phonemes))
    # Inference over ~500 tokens takes ~15 s here, so run the multi-chunk path on a small limit.
    small = KokoroBackend(cache_dir=cache_dir, max_tokens=40)
    text = "Nous allons à la plage demain matin, avec tous nos amis, et rentrons ce soir à minuit."
    assert len(small.phonemize(text, "fr")) > 2 * 40  # at least three model calls
    speech = small.synthesize(text, "fr")
    assert_plausible_speech(speech.samples, speech.sample_rate, words=len(text.split()))


def test_synthesizer_defaults_route_and_report(synth):
    info = synth.describe()
    assert {"piper", "kokoro", "espeak"} <= set(info["loaded"])
    assert synth.backend_for("en-US") == "piper"
    assert synth.backend_for("es") == "kokoro"
    assert synth.backend_for("sv") == "espeak"  # only espeak speaks Swedish
    speech = synth.synthesize("Hej! Hur mår du idag? Jag mår bra, tack.", "sv")
    assert speech.backend == "espeak"
    assert_plausible_speech(speech.samples, speech.sample_rate, words=9)


def test_unusable_xtts_is_skipped_with_reason(cache_dir):
    synth = Synthesizer.from_config({"*": ["xtts", "espeak"]}, cache_dir)
    assert "xtts" in synth.describe()["failed"]
    assert synth.backend_for("fr") == "espeak"


# ---- intelligibility ------------------------------------------------------------------------


def test_word_error_rate_helper():
    assert word_error_rate("Hola, ¿qué tal?", "hola que tal") == pytest.approx(1 / 3)
    assert word_error_rate("a b c", "a b c") == 0


@pytest.mark.skipif(
    not (WHISPER_DIR / "model.bin").is_file(),
    reason=f"Whisper base not assembled at {WHISPER_DIR} (model.bin missing)",
)
@pytest.mark.parametrize(
    "lang,text,backend",
    [
        (
            "en",
            "I can't find the keys to my house. Do you want to have dinner with me tonight?",
            "piper",
        ),
        (
            "es",
            "Mañana vamos a la playa con mis amigos. No encuentro las llaves de mi casa.",
            "kokoro",
        ),
    ],
)
def test_whisper_understands_the_default_voices(synth, lang, text, backend):
    import soxr
    from faster_whisper import WhisperModel

    model = WhisperModel(str(WHISPER_DIR), device="cpu", compute_type="int8", cpu_threads=2)
    speech = synth.synthesize(text, lang)
    assert speech.backend == backend
    audio = soxr.resample(speech.samples, speech.sample_rate, 16000).astype(np.float32)
    segments, _ = model.transcribe(audio, language=lang, beam_size=5)
    heard = " ".join(s.text for s in segments)
    assert word_error_rate(text, heard) <= 0.25, heard
