"""Split long text into translation-sized chunks and join the translations back.

Seq2seq and small LLM translators degrade (or truncate) on long inputs, so long messages are
translated piecewise. Plain regular expressions: no NLTK data download, works for any script.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# End of sentence: . ! ? … before whitespace (so "3.5" and "a.b" stay whole), or a CJK /
# Devanagari / Arabic full stop anywhere (those scripts put no space after it); closing quotes
# and brackets, even French-spaced ones ("bien. »"), stay with their sentence.
_SENTENCE_END = re.compile(r"[.!?…]+(?:\s?[\"'”’»)\]]+)?(?=\s|$)|[。！？।۔؟]+[\"'”’»)\]」』]*")
_CLAUSE_BREAK = re.compile(r"(?<=[,;:，；、])\s+")


@dataclass(frozen=True)
class Piece:
    """One chunk to translate, and the whitespace that followed it in the original text."""

    text: str
    sep: str


def _hard_split(text: str, limit: int) -> list[str]:
    """Cut at spaces when possible, else mid-word; last resort for huge unpunctuated runs."""
    out: list[str] = []
    rest = text
    while len(rest) > limit:
        cut = rest.rfind(" ", 0, limit + 1)
        if cut <= 0:
            cut = limit
        out.append(rest[:cut].strip())
        rest = rest[cut:].strip()
    if rest:
        out.append(rest)
    return [p for p in out if p]


def _split_long(sentence: str, limit: int) -> list[str]:
    if len(sentence) <= limit:
        return [sentence]
    out: list[str] = []
    for clause in _pack(_CLAUSE_BREAK.split(sentence), limit, " "):
        out.extend(_hard_split(clause, limit) if len(clause) > limit else [clause])
    return out


def _pack(parts: list[str], limit: int, joiner: str) -> list[str]:
    """Greedily merge consecutive parts while the result stays within `limit`."""
    merged: list[str] = []
    for part in (p.strip() for p in parts):
        if not part:
            continue
        if merged and len(merged[-1]) + len(joiner) + len(part) <= limit:
            merged[-1] = f"{merged[-1]}{joiner}{part}"
        else:
            merged.append(part)
    return merged


def split_sentences(text: str) -> list[str]:
    """Split text into sentences on terminal punctuation (never returns empty strings)."""
    out: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        sentence = text[start : match.end()].strip()
        if sentence:
            out.append(sentence)
        start = match.end()
    tail = text[start:].strip()
    if tail:
        out.append(tail)
    return out


def split_text(text: str, max_chars: int = 400) -> list[Piece]:
    """Chunks of at most `max_chars`, each a run of whole sentences when possible.

    Paragraph breaks are kept as separators so `join_pieces` restores the layout. Short
    sentences are NOT merged: a small translator handles one sentence at a time best, and a
    batch of sentences is cheaper than one long sequence.
    """
    if max_chars < 1:
        raise ValueError("max_chars must be >= 1")
    pieces: list[Piece] = []
    paragraphs = re.split(r"(\n\s*\n|\n)", text)
    for i in range(0, len(paragraphs), 2):
        para = paragraphs[i]
        sep = paragraphs[i + 1] if i + 1 < len(paragraphs) else ""
        chunks: list[str] = []
        for sentence in split_sentences(para):
            chunks.extend(_split_long(sentence, max_chars))
        if not chunks:
            if pieces and sep:
                pieces[-1] = Piece(pieces[-1].text, pieces[-1].sep + sep)
            continue
        pieces.extend(Piece(c, " ") for c in chunks[:-1])
        pieces.append(Piece(chunks[-1], "\n\n" if sep.count("\n") > 1 else sep))
    if pieces:
        pieces[-1] = Piece(pieces[-1].text, "")
    return pieces


def join_pieces(pieces: list[Piece], translations: list[str]) -> str:
    """Re-assemble translated chunks with the original separators."""
    if len(pieces) != len(translations):
        raise ValueError("one translation per piece is required")
    return "".join(t.strip() + p.sep for p, t in zip(pieces, translations, strict=True)).strip()
