"""The pure decoding guards of the Gemma translator: clause split, repeat detection, length bound."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from deployments.translation.backends import gemma
from deployments.translation.decoding import (
    DecodingOptions,
    count_dropped_clauses,
    count_repeated_clauses,
    drop_repeated_clauses,
    is_length_outlier,
    new_token_budget,
    split_clauses,
)
from serve_app.sentences import split_sentences


def test_clauses_keep_their_punctuation_and_rebuild_the_text() -> None:
    text = "I'll be late tonight, start without me. See you; bye!"
    clauses = split_clauses(text)
    assert clauses == ["I'll be late tonight, ", "start without me. ", "See you; ", "bye!"]
    assert "".join(clauses) == text
    assert split_clauses("...") == []


def test_sentence_split_gives_one_decode_per_sentence() -> None:
    assert split_sentences("Je serai en retard. Commence sans moi !") == [
        "Je serai en retard.",
        "Commence sans moi !",
    ]


def test_the_reported_repeat_is_found_and_removed() -> None:
    source = "Je serai en retard ce soir, commence sans moi."
    bad = "I will be late tonight, I'll be late tonight."
    assert count_repeated_clauses(bad, source) == 1
    assert drop_repeated_clauses(bad, source) == "I will be late tonight."
    good = "I'll be late tonight, start without me."
    assert count_repeated_clauses(good, source) == 0
    assert drop_repeated_clauses(good, source) == good


def test_a_repeat_the_source_has_is_kept() -> None:
    source = "Vite, vite !"
    assert drop_repeated_clauses("Quick, quick!", source) == "Quick, quick!"
    assert count_repeated_clauses("Quick, quick!", source) == 0
    assert count_repeated_clauses("Quick, quick!", "Dépêche-toi !") == 1


def test_dropped_clauses_and_length_outliers_are_counted() -> None:
    source = "Je serai en retard ce soir, commence sans moi."
    assert count_dropped_clauses("I will be late tonight.", source) == 1
    assert count_dropped_clauses("I'll be late tonight, start without me.", source) == 0
    assert is_length_outlier("Late.", source)
    assert not is_length_outlier("I'll be late tonight, start without me.", source)


def test_token_budget_follows_the_source_length_when_bounded() -> None:
    off = DecodingOptions()
    assert new_token_budget(10, off, cap=160) == 36  # the old 2x + 16
    bounded = DecodingOptions(length_ratio=1.6, length_slack=6)
    assert new_token_budget(10, bounded, cap=160) == 22
    assert new_token_budget(500, bounded, cap=160) == 160
    assert new_token_budget(0, bounded, cap=160) == 6


def test_decoding_options_reject_unknown_or_invalid_values() -> None:
    with pytest.raises(ValidationError):
        DecodingOptions.model_validate({"repetition_penaltyy": 1.2})
    with pytest.raises(ValidationError):
        DecodingOptions(repetition_penalty=0.5)


def test_few_shot_sets_select_a_prefix_of_the_shots() -> None:
    five = gemma.build_prefix("fr", "en", "chat5")
    seven = gemma.build_prefix("fr", "en", "chat7")
    assert five.count("\nEnglish: ") == 5 and seven.count("\nEnglish: ") == 7
    assert seven.startswith(five)
