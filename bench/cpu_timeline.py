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

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.voice_graph_vs_naive import TARGETS, Graph, _process_label, messages  # noqa: E402

OUTPUT = ROOT / "bench" / "last_run_cpu_timeline.txt"
COLUMNS = ("Transcriber", "VoiceCloner", "Translator", "Synthesizer", "Pipeline", "ServeController")


def cpu_seconds(procs: dict[int, psutil.Process]) -> dict[int, float]:
    """CPU seconds so far by pid, its exited children included (espeak-ng runs as one per clause)."""
    out: dict[int, float] = {}
    for pid, p in procs.items():
        try:
            t = p.cpu_times()
            out[pid] = t.user + t.system + t.children_user + t.children_system
        except psutil.Error:
            continue
    return out


def sample(procs: dict[int, psutil.Process], labels: dict[int, str], every: float, stop: threading.Event,
           rows: list[tuple[float, dict[str, float]]]) -> None:
    """Append (seconds since start, CPU seconds by label in the last bin) every `every` s until `stop`."""
    before, t0 = cpu_seconds(procs), time.perf_counter()
    while not stop.wait(every):
        now = cpu_seconds(procs)
        used: dict[str, float] = {}
        for pid, seconds in now.items():
            used[labels[pid]] = used.get(labels[pid], 0.0) + seconds - before.get(pid, seconds)
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
        procs = {p.pid: p for p in graph.sampler.procs()}
        labels = {pid: _process_label(" ".join(p.cmdline())) for pid, p in procs.items()}
        for run in range(args.runs):
            rows: list[tuple[float, dict[str, float]]] = []
            stop = threading.Event()
            sampler = threading.Thread(target=sample, args=(procs, labels, args.bin, stop, rows), daemon=True)
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
