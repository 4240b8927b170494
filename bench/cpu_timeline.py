"""Where the 2 cores go while the graph answers one voice message: cores used per process, bin by bin.

A diagnostic beside `voice_graph_vs_naive.py`, not a benchmark with a baseline: it deploys the graph the
same way (a dashboard-less head, `serve run serve_config.local.yaml`), sends new 5 s French messages to en,
es, de one at a time, and samples every service process's CPU time (children included: espeak-ng runs as
one) every `--bin` seconds. The table shows which stage holds the cores and where one of them idles (the
Whisper-only start, a single TTS call or voice conversion finishing alone at the end).

    .venv/bin/python bench/cpu_timeline.py            # output teed to bench/last_run_cpu_timeline.txt
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.voice_graph_vs_naive import TARGETS, Graph, MemorySampler, messages  # noqa: E402

OUTPUT = ROOT / "bench" / "last_run_cpu_timeline.txt"
COLUMNS = ("Transcriber", "VoiceCloner", "Translator", "Synthesizer", "Pipeline", "ServeController")


def sample(sampler: MemorySampler, every: float, stop: threading.Event,
           rows: list[tuple[float, dict[str, float]]]) -> None:
    """Append (seconds since start, CPU seconds by process label in the last bin) every `every` s until `stop`."""
    before, t0 = sampler.cpu_seconds(), time.perf_counter()
    while not stop.wait(every):
        now = sampler.cpu_seconds()
        used: dict[str, float] = {}
        for pid, (label, seconds) in now.items():
            used[label] = used.get(label, 0.0) + seconds - before.get(pid, (label, seconds))[1]
        rows.append((time.perf_counter() - t0, used))
        before = now


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=4, help="messages sent; the first is a warm-up, not shown")
    parser.add_argument("--bin", type=float, default=0.5, help="seconds per row")
    parser.add_argument("--settings", default="{}", help="JSON settings overrides for the graph's deploy")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    source = messages(5, tmp)
    graph = Graph(tmp, settings=json.loads(args.settings))
    lines: list[str] = []

    def say(text: str) -> None:
        print(text, flush=True)
        lines.append(text)

    try:
        for run in range(args.runs):
            rows: list[tuple[float, dict[str, float]]] = []
            stop = threading.Event()
            sampler = threading.Thread(target=sample, args=(graph.sampler, args.bin, stop, rows), daemon=True)
            sampler.start()
            first, total = graph.run(next(source), TARGETS)
            stop.set()
            sampler.join()
            if run == 0:
                continue
            busy = sum(sum(used.values()) for _, used in rows) / max(rows[-1][0], 1e-9) if rows else 0.0
            say(f"\nmessage {run}: first audio {first:.2f} s, all {len(TARGETS)} languages {total:.2f} s, "
                f"{busy:.2f} of 2 cores busy on average; cores used per {args.bin} s:")
            say("    t " + " ".join(f"{c[:11]:>11}" for c in COLUMNS) + "       other       total")
            for t, used in rows:
                other = sum(v for k, v in used.items() if k not in COLUMNS)
                say(f"{t:5.1f} " + " ".join(f"{used.get(c, 0.0) / args.bin:11.2f}" for c in COLUMNS)
                    + f" {other / args.bin:11.2f} {sum(used.values()) / args.bin:11.2f}")
    finally:
        graph.client.close()
        graph.cluster.stop()
    OUTPUT.write_text("\n".join(lines) + "\n")
    print(f"\n(written to {OUTPUT.relative_to(ROOT)})")


if __name__ == "__main__":
    main()
