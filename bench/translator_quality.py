"""Offline translator quality, before and after the decoding changes, in one run (no Ray).

Loads the Gemma 3 270M backend in-process (the converted CTranslate2 model; the first run ever
converts it, ~1-2 min) and translates a dev set of everyday chat messages written for this bench
(bench/data/chat_dev_set.json) in four directions, once per decoding configuration. For each it
prints chrF against the reference (sacrebleu), repeated clauses, dropped clauses (fewer clauses
than the source), output/source length-ratio outliers, and the seconds spent decoding.

    python bench/translator_quality.py                 # every configuration
    python bench/translator_quality.py --configs before,after
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import sacrebleu

from deployments.translation.backends import gemma
from deployments.translation.decoding import (
    DecodingOptions,
    count_dropped_clauses,
    count_repeated_clauses,
    is_length_outlier,
)
from deployments.translation.translator import Translator
from serve_app.domain.translation import TranslationRequest
from serve_app.settings import TranslatorSettings

DEV_SET = Path(__file__).parent / "data" / "chat_dev_set.json"
DIRECTIONS = (("fr", "en"), ("en", "fr"), ("en", "es"), ("en", "de"))
SHOWCASE = "Je serai en retard ce soir, commence sans moi."

# Each configuration is a change from plain greedy decoding with every guard off; "before" is the
# decoding the service shipped with, "after" (None) the backend's defaults (translator_options = {}).
CONFIGS: dict[str, dict[str, Any] | None] = {
    "before": {"few_shot": "chat5"},
    "shots7": {"few_shot": "chat7"},
    "rep1.15": {"few_shot": "chat5", "repetition_penalty": 1.15},
    "norepeat4": {"few_shot": "chat5", "no_repeat_ngram_size": 4},
    "lenbound": {"few_shot": "chat5", "length_ratio": 1.6},
    "dedupe": {"few_shot": "chat5", "drop_repeated_clauses": True},
    "guards5": {"few_shot": "chat5", "length_ratio": 1.6, "drop_repeated_clauses": True},
    "rep+norepeat": {"few_shot": "chat5", "repetition_penalty": 1.15, "no_repeat_ngram_size": 4},
    "after": None,
}


def load_rows() -> list[dict[str, str]]:
    return json.loads(DEV_SET.read_text(encoding="utf-8"))["rows"]


def configure(backend: gemma.GemmaBackend, options: dict[str, Any] | None) -> None:
    """Swap decoding settings on one loaded model, so every configuration shares the weights."""
    if options is None:
        backend.few_shot, backend.decoding = gemma.DEFAULT_FEW_SHOT, gemma.DEFAULT_DECODING
        return
    opts = dict(options)
    backend.few_shot = opts.pop("few_shot")
    backend.decoding = DecodingOptions.model_validate(opts)  # unset = off


def translate_all(
    translator: Translator, rows: list[dict[str, str]], batch_rows: int
) -> tuple[dict[tuple[str, str], list[str]], float]:
    """Batches shaped like the service's: `batch_rows` messages x every direction in one call, so
    mixed language pairs decode together (Translator -> backend.translate_pairs)."""
    hyps: dict[tuple[str, str], list[str]] = {d: [] for d in DIRECTIONS}
    started = time.perf_counter()
    for i in range(0, len(rows), batch_rows):
        chunk = rows[i : i + batch_rows]
        order = [(r, d) for r in chunk for d in DIRECTIONS]
        results = translator.translate_many(
            [TranslationRequest(text=r[a], source_language=a, target_language=b) for r, (a, b) in order]
        )
        for (_, d), res in zip(order, results, strict=True):
            hyps[d].append(getattr(res, "translated_text", ""))
    return hyps, time.perf_counter() - started


def evaluate(translator: Translator, rows: list[dict[str, str]], batch_rows: int) -> dict[str, Any]:
    per_direction: dict[str, dict[str, Any]] = {}
    showcase = ""
    all_hyps, seconds = translate_all(translator, rows, batch_rows)
    for src, tgt in DIRECTIONS:
        sources = [r[src] for r in rows]
        refs = [r[tgt] for r in rows]
        hyps = all_hyps[(src, tgt)]
        per_direction[f"{src}->{tgt}"] = {
            "chrf": sacrebleu.corpus_chrf(hyps, [refs]).score,
            "repeated": sum(count_repeated_clauses(h, s) for h, s in zip(hyps, sources, strict=True)),
            "dropped": sum(count_dropped_clauses(h, s) for h, s in zip(hyps, sources, strict=True)),
            "length_outliers": sum(is_length_outlier(h, s) for h, s in zip(hyps, sources, strict=True)),
            "hyps": hyps,
        }
        if src == "fr":
            showcase = hyps[sources.index(SHOWCASE)] if SHOWCASE in sources else ""
    return {"directions": per_direction, "seconds": seconds, "showcase": showcase}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated names")
    parser.add_argument(
        "--batch-rows", type=int, default=2,
        help="messages per backend call (x4 directions; 2 = 8 items = translator_max_batch_size)",
    )
    parser.add_argument("--show", action="store_true", help="print every output of each config")
    args = parser.parse_args()
    names = [n.strip() for n in args.configs.split(",") if n.strip()]
    rows = load_rows()
    settings = TranslatorSettings()
    started = time.perf_counter()
    backend = gemma.from_config(None, settings.cache_dir, **{"intra_threads": 2})
    translator = Translator(backend)
    print(f"model {backend.model_id} loaded in {time.perf_counter() - started:.1f} s; "
          f"{len(rows)} messages x {len(DIRECTIONS)} directions {['->'.join(d) for d in DIRECTIONS]}")
    print("configs: " + "; ".join(f"{n}={CONFIGS[n] or 'backend defaults'}" for n in names))
    print(f"backend defaults: few_shot={gemma.DEFAULT_FEW_SHOT} {gemma.DEFAULT_DECODING.model_dump()}")
    print()
    header = "| config | " + " | ".join(f"chrF {a}->{b}" for a, b in DIRECTIONS)
    print(header + " | chrF mean | repeated | dropped | length outliers | decode s |")
    print("|---" * (len(DIRECTIONS) + 6) + "|")
    outcomes = {}
    for name in names:
        configure(backend, CONFIGS[name])
        out = evaluate(translator, rows, args.batch_rows)
        outcomes[name] = out
        dirs = out["directions"].values()
        chrfs = [d["chrf"] for d in dirs]
        print(
            f"| {name} | " + " | ".join(f"{c:.1f}" for c in chrfs)
            + f" | {sum(chrfs) / len(chrfs):.1f} | {sum(d['repeated'] for d in dirs)}"
            + f" | {sum(d['dropped'] for d in dirs)} | {sum(d['length_outliers'] for d in dirs)}"
            + f" | {out['seconds']:.1f} |",
            flush=True,
        )
    print()
    print(f"showcase {SHOWCASE!r}:")
    for name, out in outcomes.items():
        print(f"  {name:>10}: {out['showcase']!r}")
    if args.show:
        for name, out in outcomes.items():
            for direction, d in out["directions"].items():
                for i, hyp in enumerate(d["hyps"]):
                    print(f"{name} {direction} {i}: {hyp}")


if __name__ == "__main__":
    main()
