"""Synthesizer routing/fallback with fake backends, plus the pure helpers of the real backends."""

from __future__ import annotations

import hashlib
import struct
import time
from pathlib import Path

import numpy as np
import pytest

from deployments.synthesis import BACKENDS, SynthesizedSpeech, Synthesizer
from deployments.synthesis.backends.espeak import parse_wav_bytes
from deployments.synthesis.backends.kokoro import assemble_model, ipa_to_kokoro, split_tokens
from deployments.synthesis.backends.xtts import XTTSBackend
from serve_app.errors import (
    InvalidRequestError,
    PrerequisiteError,
    SynthesisError,
    TextTooLongError,
    UnsupportedLanguageError,
)
from serve_app.languages import normalize_language
from serve_app.sentences import split_text

RATE = 1000


class FakeBackend:
    clones_voice = False

    def __init__(
        self,
        name: str,
        langs: set[str] | None = None,
        fail: bool = False,
        check_error: str | None = None,
    ) -> None:
        self.name = name
        self._langs = langs
        self.fail = fail
        self.check_error = check_error
        self.calls: list[tuple[str, str]] = []

    def languages(self) -> set[str] | None:
        return self._langs

    def check(self) -> None:
        if self.check_error:
            raise PrerequisiteError(self.check_error)

    def warmup(self) -> None:
        pass

    def synthesize(self, text: str, language: str) -> SynthesizedSpeech:
        self.calls.append((text, language))
        if self.fail:
            raise SynthesisError(f"{self.name} is broken")
        # 10 samples per character, so tests can check which text produced what
        return SynthesizedSpeech(np.full(10 * len(text), 0.5, np.float32), RATE, self.name, "v")


class FakeCloner(FakeBackend):
    clones_voice = True

    def synthesize(self, text: str, language: str, *, speaker_wav: bytes | None = None):
        self.calls.append((text, language))
        self.speaker_wav = speaker_wav
        return SynthesizedSpeech(
            np.ones(10, np.float32), RATE, self.name, "clone", cloned=speaker_wav is not None
        )


def make(chains: dict[str, list[str]], *backends: FakeBackend, **kw) -> Synthesizer:
    return Synthesizer({b.name: b for b in backends}, chains, **kw)


def test_chain_order_picks_first_backend_that_speaks_the_language():
    a, b = FakeBackend("a", {"en"}), FakeBackend("b", None)
    synth = make({"en": ["a", "b"], "*": ["b"]}, a, b)
    assert synth.backend_for("en") == "a"
    assert synth.backend_for("fr") == "b"
    assert synth.synthesize("Hello.", "en").backend == "a"
    assert b.calls == []


def test_backend_not_claiming_language_is_skipped_in_default_chain():
    a, b = FakeBackend("a", {"en"}), FakeBackend("b", {"fr", "de"})
    synth = make({"*": ["a", "b"]}, a, b)
    assert synth.synthesize("Bonjour.", "fr-FR").backend == "b"
    assert a.calls == []


def test_falls_back_when_a_backend_fails():
    a, b = FakeBackend("a", None, fail=True), FakeBackend("b", None)
    speech = make({"*": ["a", "b"]}, a, b).synthesize("Hola.", "es")
    assert speech.backend == "b"
    assert a.calls and b.calls == [("Hola.", "es")]


def test_all_backends_failing_raises_synthesis_error_with_reasons():
    synth = make({"*": ["a", "b"]}, FakeBackend("a", fail=True), FakeBackend("b", fail=True))
    with pytest.raises(SynthesisError, match="a is broken.*b is broken"):
        synth.synthesize("Hola.", "es")


@pytest.mark.parametrize("language", ["xx", "klingon!", "", "e"])
def test_unsupported_language(language):
    synth = make({"en": ["a"]}, FakeBackend("a", {"en"}))
    with pytest.raises(UnsupportedLanguageError):
        synth.synthesize("Hello.", language)
    with pytest.raises(UnsupportedLanguageError):
        synth.backend_for(language)


def test_chain_naming_an_unloaded_backend_skips_it():
    synth = make({"*": ["gone", "b"]}, FakeBackend("b"))
    assert synth.backend_for("it") == "b"


@pytest.mark.parametrize("text", ["", "   ", "\n\t", "?!."])
def test_empty_text_is_invalid_request(text):
    with pytest.raises(InvalidRequestError):
        make({"*": ["a"]}, FakeBackend("a")).synthesize(text, "en")


def test_too_long_text():
    synth = make({"*": ["a"]}, FakeBackend("a"), max_chars=20)
    with pytest.raises(TextTooLongError):
        synth.synthesize("word " * 10, "en")


def test_long_text_is_spoken_sentence_by_sentence_with_pauses():
    a = FakeBackend("a")
    synth = make({"*": ["a"]}, a, sentence_pause_s=0.1)
    text = "First one. Second one!  Third?\nFourth"
    speech = synth.synthesize(text, "en")
    assert [t for t, _ in a.calls] == ["First one.", "Second one!", "Third?", "Fourth"]
    chars = sum(len(t) for t, _ in a.calls)
    assert len(speech.samples) == 10 * chars + 3 * int(0.1 * RATE)
    assert speech.samples.dtype == np.float32
    # the gaps are real silence between the (constant 0.5) sentences
    first = 10 * len("First one.")
    assert np.all(speech.samples[first : first + int(0.1 * RATE)] == 0)


def test_overlong_sentence_is_cut_at_clauses_then_words():
    sentence = ", ".join(["uno dos tres cuatro cinco"] * 20) + " " + "palabra " * 60
    parts = [piece.text for piece in split_text(sentence, max_chars=100)]
    assert len(parts) > 3
    assert all(0 < len(p) <= 100 for p in parts)
    assert " ".join(parts).split() == sentence.split()


def test_speaker_wav_only_reaches_cloning_backends():
    cloner = FakeCloner("x")
    synth = make({"*": ["x"]}, cloner)
    speech = synth.synthesize("Hallo.", "de", speaker_wav=b"RIFF")
    assert cloner.speaker_wav == b"RIFF" and speech.cloned
    plain = FakeBackend("p")
    assert not make({"*": ["p"]}, plain).synthesize("Hi.", "en", speaker_wav=b"RIFF").cloned


def test_normalize_language():
    assert normalize_language("en-US") == "en"
    assert normalize_language("PT_br") == "pt"
    assert normalize_language("yue") == "yue"


@pytest.fixture
def fake_registry(monkeypatch):
    made: dict[str, FakeBackend] = {}

    def factory(name: str, **kw):
        def build(cache_dir: Path, device: str, options: dict):
            made[name] = FakeBackend(name, **{**kw, **options})
            return made[name]

        return build

    monkeypatch.setitem(BACKENDS, "good", factory("good"))
    monkeypatch.setitem(BACKENDS, "broken", factory("broken", check_error="pip install broken"))
    monkeypatch.setitem(BACKENDS, "unused", factory("unused"))
    return made


def test_from_config_skips_backends_whose_check_fails(fake_registry, tmp_path):
    synth = Synthesizer.from_config(
        {"en": ["broken", "good"], "*": ["good"]},
        tmp_path,
        backend_options={"good": {"langs": {"en"}}},
    )
    assert set(fake_registry) == {"good", "broken"}  # only named backends are built
    info = synth.describe()
    assert info["loaded"] == {"good": {"languages": ["en"], "clones_voice": False}}
    assert info["failed"] == {"broken": "pip install broken"}
    assert synth.backend_for("en") == "good"


def test_from_config_without_any_usable_backend(fake_registry, tmp_path):
    with pytest.raises(PrerequisiteError, match="pip install broken"):
        Synthesizer.from_config({"*": ["broken"]}, tmp_path)


def test_from_config_rejects_unknown_backend_names(tmp_path):
    with pytest.raises(PrerequisiteError, match="nope"):
        Synthesizer.from_config({"*": ["nope"]}, tmp_path)


# ---- pure helpers of the real backends -----------------------------------------------------

VOCAB = {c: i for i, c in enumerate(" ,.?!ʧʤIAOWYʦabdeiklmnorstuvwzɡɔɛəʁʃʒˈˌː\u0303")}


def test_ipa_to_kokoro_folds_ties_and_drops_unknown_symbols():
    assert ipa_to_kokoro("t^ʃˈa^ɪ d^ʒˈe^ɪ", VOCAB) == "ʧˈI ʤˈA"
    # language-switch flags, hyphens, ascii g and unknown symbols (ʘ) disappear or are mapped
    assert ipa_to_kokoro("lə- (en)wiːkˈɛnd(fr) gʘo", VOCAB) == "lə wiːkˈɛnd ɡo"
    # precomposed letters outside the vocab decompose into base + combining tilde
    assert ipa_to_kokoro("ɔ̃ õ", VOCAB) == "ɔ̃ o\u0303"


def test_split_tokens_respects_limit_and_keeps_everything():
    phon = ", ".join(["ab" * 30] * 30) + " " + "x" * 150
    pieces = split_tokens(phon, limit=100)
    assert all(0 < len(p) <= 100 for p in pieces)
    assert "".join(pieces).replace(" ", "") == phon.replace(" ", "")
    assert split_tokens("", 10) == []


def test_parse_wav_bytes_ignores_bogus_stream_sizes():
    pcm = (np.array([0, 16384, -16384, 32767], dtype="<i2")).tobytes()
    header = b"RIFF" + struct.pack("<I", 0x7FFFFFFF) + b"WAVE"
    fmt = b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, 22050, 44100, 2, 16)
    data = b"data" + struct.pack("<I", 0x7FFFFFFF) + pcm
    samples, rate = parse_wav_bytes(header + fmt + data)
    assert rate == 22050
    np.testing.assert_allclose(samples, [0, 0.5, -0.5, 32767 / 32768])
    with pytest.raises(SynthesisError):
        parse_wav_bytes(b"not a wav")


def test_assemble_model_joins_verifies_and_reuses(tmp_path):
    parts = []
    for i in range(3):
        p = tmp_path / f"part{i}"
        p.write_bytes(bytes([i]) * 1000)
        parts.append(p)
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in parts)).hexdigest()
    out = tmp_path / "cache" / "model.onnx"
    assert assemble_model(parts, digest, out) == out
    assert out.read_bytes() == b"".join(p.read_bytes() for p in parts)
    mtime = out.stat().st_mtime_ns
    time.sleep(0.01)
    assemble_model(parts, digest, out)
    assert out.stat().st_mtime_ns == mtime  # not rebuilt
    bad = tmp_path / "bad" / "model.onnx"
    with pytest.raises(PrerequisiteError, match="sha256"):
        assemble_model(parts, "0" * 64, bad)
    assert list(bad.parent.iterdir()) == []  # no half-written file left behind


def test_xtts_check_fails_fast_with_actionable_message(tmp_path):
    backend = XTTSBackend(cache_dir=tmp_path)
    assert backend.clones_voice is True
    start = time.perf_counter()
    with pytest.raises(PrerequisiteError, match="coqui-tts|model_dir"):
        backend.check()
    assert time.perf_counter() - start < 5
