"""Whisper decoding settings on French voice messages: time and WER, library defaults beside ours.

faster-whisper re-decodes a window at rising temperatures (beam search, then best-of-5 sampling)
when its mean log-prob is under -1.0 or its text compresses too well (a repetition loop). Synthetic
and noisy chat audio trips the log-prob test on most messages, so one 5 s message could take 10 s.
This prints, per setting, the mean and worst time and the mean WER over the same messages
(the bench's own French sentences, spoken by espeak-ng), so the defaults in `Transcriber` are a
measured choice.

    .venv/bin/python bench/whisper_decoding.py            # what `make bench-whisper` runs
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.voice_graph_vs_naive import SENTENCES  # noqa: E402
from serve_app.audio import decode_audio  # noqa: E402
from serve_app.settings import Settings  # noqa: E402
from tests.fixtures.speech import convert, espeak_wav, word_error_rate  # noqa: E402

VARIANTS: dict[str, dict[str, object]] = {
    "faster-whisper defaults (log-prob fallback -1.0)": {"log_prob_threshold": -1.0, "repetition_penalty": 1.0},
    "no log-prob fallback": {"log_prob_threshold": None, "repetition_penalty": 1.0},
    "no log-prob fallback, repetition penalty 1.1 (ours)": {"log_prob_threshold": None, "repetition_penalty": 1.1},
    "ours, beam 2": {"log_prob_threshold": None, "repetition_penalty": 1.1, "beam_size": 2},
    "ours, greedy (beam 1)": {"log_prob_threshold": None, "repetition_penalty": 1.1, "beam_size": 1},
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=14, help="two-sentence French messages (~5 s each)")
    parser.add_argument("--threads", type=int, default=1, help="CTranslate2 threads for Whisper")
    args = parser.parse_args()
    from deployments.transcription.transcriber import Transcriber

    settings = Settings()
    with tempfile.TemporaryDirectory() as tmp:
        items = []
        for i in range(args.messages):
            text = " ".join(SENTENCES[(i + k) % len(SENTENCES)] for k in range(2))
            audio = convert(espeak_wav(text, Path(tmp) / f"m{i}.wav"), "m4a")
            items.append((text, decode_audio(audio).samples))
    print(f"{len(items)} French messages (espeak-ng, ~5 s each), Whisper {settings.whisper_model}, beam "
          f"{settings.whisper_beam_size} unless named, VAD on, {args.threads} thread(s), language forced to fr")
    print("\n| decoding | mean s | worst s | mean WER |\n|---|---|---|---|")
    for label, options in VARIANTS.items():
        options = {"beam_size": settings.whisper_beam_size, **options}
        whisper = Transcriber(settings.whisper_model, cache_dir=settings.cache_dir,  # type: ignore[arg-type]
                              cpu_threads=args.threads, **options)
        times, errors = [], []
        for reference, samples in items:
            t0 = time.perf_counter()
            heard = whisper.transcribe(samples, "fr").text
            times.append(time.perf_counter() - t0)
            errors.append(word_error_rate(reference, heard))
        print(f"| {label} | {statistics.mean(times):.2f} | {max(times):.2f} | {statistics.mean(errors):.3f} |",
              flush=True)


if __name__ == "__main__":
    main()
