"""What voice_languages says of each language: autonyms, and features from the stages' own descriptions."""

from __future__ import annotations

from faster_whisper.tokenizer import _LANGUAGE_CODES

from serve_app.language_support import NATIVE_NAMES, WHISPER_LANGUAGES, language_features, native_name
from serve_app.languages import SUPPORTED_LANGUAGES

READY = {
    "transcriber": {"status": "ready", "model": "base", "multilingual": True},
    "translator": {"status": "ready", "backend": "gemma", "model": "gemma-3-270m"},
    "synthesizer": {"status": "ready", "loaded": {"piper": {"languages": ["en"]}, "kokoro": {"languages": ["fr"]},
                                                   "espeak": {"languages": ["de", "en", "fr"]}},
                    "language_chains": {"en": ["piper", "espeak"], "*": ["kokoro", "espeak"]}},
    "voice_cloner": {"status": "ready", "backend": "world", "embedding_model": "resemblyzer"},
}


def test_whisper_languages_are_faster_whispers_table() -> None:
    assert set(_LANGUAGE_CODES) == WHISPER_LANGUAGES


def test_native_names() -> None:
    assert set(NATIVE_NAMES) <= set(SUPPORTED_LANGUAGES)
    assert (native_name("fr"), native_name("ja"), native_name("ar"), native_name("no")) == (
        "français", "日本語", "العربية", "norsk")
    assert native_name("fon") == "Fon"  # no autonym known: the English name


def test_features_follow_the_stages() -> None:
    features = language_features(READY)
    assert set(features) == set(SUPPORTED_LANGUAGES)
    assert features["fr"] == {"transcription": True, "translation": True, "tts": True, "voiceClone": True}
    assert features["jv"]["transcription"] is True  # Whisper spells it "jw"
    assert features["ak"]["transcription"] is False and features["haw"]["translation"] is False
    assert features["es"]["tts"] is False  # no loaded backend of its chain claims Spanish
    assert features["de"]["tts"] is True and features["de"]["voiceClone"] is True

    english_only = {**READY, "transcriber": {"status": "ready", "multilingual": False}}
    assert [c for c, f in language_features(english_only).items() if f["transcription"]] == ["en"]
    cloner_down = {**READY, "voice_cloner": {"status": "unavailable"}}
    assert not any(f["voiceClone"] for f in language_features(cloner_down).values())
    assert not any(any(f.values()) for f in language_features({}).values())
