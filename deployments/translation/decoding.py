"""Output checks for a small LLM translator: repeated clauses, dropped clauses, length in proportion.

Gemma 270M (a base model, few-shot prompted) sometimes says one clause twice and leaves the other
out ("Je serai en retard ce soir, commence sans moi." -> "I will be late tonight, I'll be late
tonight."). These pure functions bound the decode by the source's length, strip a clause that
repeats an earlier one, and count the faults for bench/translator_quality.py. No model, no Ray.
"""

from __future__ import annotations

import math
import re
import unicodedata
from difflib import SequenceMatcher

from pydantic import BaseModel, ConfigDict, Field

# A clause ends at , ; : or a sentence end; the separator stays with the clause before it.
_CLAUSE = re.compile(r"[^,;:.!?…，；。！？]+[,;:.!?…，；。！？]*\s*")
_WORD = re.compile(r"\w+")

REPEAT_SIMILARITY = 0.7
"""Two clauses this alike (0..1, on their lower-cased letters) count as the same thing said twice:
"I will be late tonight" / "I'll be late tonight" is 0.86; unrelated clauses score under 0.5."""


class DecodingOptions(BaseModel):
    """How the Gemma backend decodes; `translator_options` in settings sets any of these."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    repetition_penalty: float = Field(default=1.0, ge=1.0, description="1.0 = off")
    no_repeat_ngram_size: int = Field(default=0, ge=0, description="0 = off")
    length_ratio: float = Field(
        default=0.0, ge=0.0, description="max new tokens = source tokens x ratio + slack; 0 = off"
    )
    length_slack: int = Field(default=6, ge=0)
    drop_repeated_clauses: bool = False


def split_clauses(text: str) -> list[str]:
    """Clauses with their trailing punctuation and space, so "".join(...) gives the text back."""
    return [m.group(0) for m in _CLAUSE.finditer(text) if _WORD.search(m.group(0))]


def _letters(clause: str) -> str:
    folded = unicodedata.normalize("NFKD", clause.casefold())
    return "".join(ch for ch in folded if ch.isalnum())


def _same(a: str, b: str) -> bool:
    x, y = _letters(a), _letters(b)
    if not x or not y:
        return False
    return x == y or SequenceMatcher(None, x, y).ratio() >= REPEAT_SIMILARITY


def repeated_clause_indexes(text: str) -> list[int]:
    """Indexes of clauses that repeat an earlier clause of the same text."""
    clauses = split_clauses(text)
    return [i for i in range(1, len(clauses)) if any(_same(clauses[i], c) for c in clauses[:i])]


def count_repeated_clauses(text: str, source: str | None = None) -> int:
    """Repeats in the output beyond those the source itself has ("Merci, merci !" may say it twice)."""
    extra = len(repeated_clause_indexes(text))
    if source is not None:
        extra -= len(repeated_clause_indexes(source))
    return max(0, extra)


def drop_repeated_clauses(text: str, source: str) -> str:
    """Remove clauses that repeat an earlier one, unless the source repeats itself too."""
    if repeated_clause_indexes(source):
        return text
    repeats = set(repeated_clause_indexes(text))
    if not repeats:
        return text
    clauses = split_clauses(text)
    kept = [c for i, c in enumerate(clauses) if i not in repeats]
    joined = "".join(kept).strip()
    # The removed clause may have carried the sentence's final punctuation.
    last = clauses[-1].strip()[-1:]
    if last in ".!?…" and joined and joined[-1] in ",;:":
        joined = joined[:-1] + last
    return joined


def count_dropped_clauses(output: str, source: str) -> int:
    """Clauses the output lacks against the source: a crude count, fair for before/after figures."""
    return max(0, len(split_clauses(source)) - len(split_clauses(output)))


def length_ratio(output: str, source: str) -> float:
    """Characters out per character in; chat translations between en/fr/es/de sit near 0.8-1.3."""
    return len(output.strip()) / max(1, len(source.strip()))


def is_length_outlier(output: str, source: str, low: float = 0.6, high: float = 1.6) -> bool:
    return not (low <= length_ratio(output, source) <= high)


def new_token_budget(source_tokens: int, options: DecodingOptions, cap: int) -> int:
    """Most tokens the decode may add: the old budget (2x + 16), or the source-length bound."""
    loose = source_tokens * 2 + 16
    if options.length_ratio > 0:
        loose = min(loose, math.ceil(source_tokens * options.length_ratio) + options.length_slack)
    return max(1, min(cap, loose))
