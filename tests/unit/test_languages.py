"""Language code table, normalisation and text language detection."""

from __future__ import annotations

import pytest

from serve_app.errors import UnsupportedLanguageError
from serve_app.languages import (
    SUPPORTED_LANGUAGES,
    from_nllb,
    is_supported,
    language_name,
    normalize_language,
    to_nllb,
)
from serve_app.text_language import detect_text_language

REQUIRED = (
    "af ar bg bn cs da de el en es fa fi fr he hi hr hu hy id ig it ja ko ln lt ms nl no pl pt "
    "ro ru sv sw th tr uk ur vi zh am ha yo zu xh so rw wo ny sn om ti lg"
).split()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("fr", "fr"),
        ("EN", "en"),
        ("en-US", "en"),
        ("pt_BR", "pt"),
        ("fra_Latn", "fr"),
        ("FRA_LATN", "fr"),
        ("fra", "fr"),
        ("deu", "de"),
        ("French", "fr"),
        ("iw", "he"),
        ("nb", "no"),
        ("zho_Hant", "zh"),
        ("swh_Latn", "sw"),
        ("lin", "ln"),
        (" sw ", "sw"),
    ],
)
def test_normalize_accepts_common_spellings(raw: str, expected: str) -> None:
    assert normalize_language(raw) == expected


@pytest.mark.parametrize("raw", ["xx", "", "   ", "klingon", "e", "english-ish", "zzz_Latn"])
def test_normalize_rejects_unknown_with_a_helpful_message(raw: str) -> None:
    with pytest.raises(UnsupportedLanguageError) as info:
        normalize_language(raw)
    assert "SUPPORTED_LANGUAGES" in info.value.message
    assert info.value.code == "unsupported_language"
    assert info.value.status == 400
    assert not is_supported(raw)


def test_required_languages_are_supported() -> None:
    missing = [code for code in REQUIRED if code not in SUPPORTED_LANGUAGES]
    assert missing == []


def test_round_trip_through_nllb_codes() -> None:
    for code in SUPPORTED_LANGUAGES:
        if code == "haw":  # not in FLORES-200
            continue
        assert from_nllb(to_nllb(code)) == code


def test_every_nllb_code_is_a_real_nllb_token() -> None:
    from transformers.models.nllb.tokenization_nllb import FAIRSEQ_LANGUAGE_CODES

    ours = {lang.nllb for code, lang in SUPPORTED_LANGUAGES.items() if code != "haw"}
    assert ours - set(FAIRSEQ_LANGUAGE_CODES) == set()


def test_specific_codes_and_names() -> None:
    assert to_nllb("fr") == "fra_Latn"
    assert to_nllb("en-GB") == "eng_Latn"
    assert to_nllb("zh") == "zho_Hans"
    assert to_nllb("ln") == "lin_Latn"
    assert from_nllb("arb_Arab") == "ar"
    assert language_name("de") == "German"
    assert language_name("yo") == "Yoruba"
    with pytest.raises(UnsupportedLanguageError):
        to_nllb("haw")
    with pytest.raises(UnsupportedLanguageError):
        from_nllb("fra")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Bonjour, comment allez-vous ?", "fr"),
        ("Hello, how are you today?", "en"),
        ("Ich bin heute sehr müde.", "de"),
        ("¿Dónde está la estación de tren?", "es"),
        ("Привет, как дела?", "ru"),
        ("שלום, מה שלומך?", "he"),
        ("こんにちは、お元気ですか", "ja"),
    ],
)
def test_detect_text_language(text: str, expected: str) -> None:
    code, probability = detect_text_language(text)
    assert code == expected
    assert 0.5 < probability <= 1.0


def test_detect_returns_und_for_nothing_to_detect() -> None:
    assert detect_text_language("") == ("und", 0.0)
    assert detect_text_language(" \n ") == ("und", 0.0)


def test_detect_handles_multiline_text() -> None:
    code, _ = detect_text_language("Salut !\nTu viens ce soir ?\nOn mange à huit heures.")
    assert code == "fr"
