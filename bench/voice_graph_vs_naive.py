"""French voice messages -> en, es, de (and 1/6 languages, 5 s/20 s): the Ray Serve graph beside a
naive baseline.

The baseline loads the same model classes in one process and calls them one after another
(decode, transcribe, embed, then per language translate -> synthesize -> convert -> encode), which
is how the system we replace worked. Both run in this same invocation on this machine, so the
ratio holds even where absolute times do not. Also reports the peak memory (PSS, which does not
double-count shared pages, and plain RSS) of every process of the running service.

Honest by construction: every timed run sends a message neither path has seen (a distinct French
text, so a distinct recording), so the graph's transcription and translation caches miss like the
baseline, which has none. A warm-cache line (the first message again) is printed apart. It also
prints the compute floor (the baseline's single-call stage times summed for one message, / 2
cores), the time to the first translated audio (the SSE `language` event), idle and peak PSS of the
whole service, and with --scaling a table over 1, 3, 6 languages x 5 s / 20 s messages.

    .venv/bin/python bench/voice_graph_vs_naive.py                  # what `make bench` runs
    .venv/bin/python bench/voice_graph_vs_naive.py --runs 2 --no-scaling   # a quick look
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.stats import pct  # noqa: E402
from serve_app.settings import Settings  # noqa: E402
from tests.fixtures.ray_cluster import RayCluster, wait_http_ready  # noqa: E402
from tests.fixtures.speech import convert, espeak_wav  # noqa: E402

# Short everyday sentences; a message is a run of them, so each timed run gets a new one.
SENTENCES = [
    "Bonjour, je serai en retard ce soir.",
    "On se voit au cinéma vers huit heures.",
    "N'oublie pas d'acheter du lait en rentrant.",
    "Le train est bloqué à cause de la neige.",
    "Appelle-moi quand tu es arrivé à la maison.",
    "Les enfants ont adoré le spectacle de samedi.",
    "Je pense que la réunion va durer longtemps.",
    "Tu peux garder le chien ce week-end ?",
    "Il fait très beau, allons manger dehors.",
    "Ma sœur arrive demain matin par le premier avion.",
    "J'ai trouvé un petit restaurant près du port.",
    "Nous devons finir le projet avant vendredi.",
    "Le médecin dit que tout va bien.",
    "Prends ton manteau, il va pleuvoir cet après-midi.",
]
TARGETS = ["en", "es", "de"]
SIX = ["en", "es", "de", "it", "pt", "nl"]
SENTENCES_PER = {5: 2, 20: 7}  # espeak at 140 wpm: ~2.5 s per sentence


def messages(seconds: int, tmp: Path) -> Iterator[bytes]:
    """Endless distinct French recordings (m4a) of about `seconds` of speech."""
    per = SENTENCES_PER[seconds]
    for i in itertools.count():
        text = " ".join(SENTENCES[(i + k) % len(SENTENCES)] for k in range(per))
        if i >= len(SENTENCES):
            text += f" C'est le message {i}."
        yield convert(espeak_wav(text, tmp / f"m{seconds}-{i}.wav"), "m4a")


# Every process of the service as `make run` runs it: Ray's daemons and workers (their files live in the
# ray package; workers retitle themselves `ray::…`), `-m ray.…` helpers (the client server) and the
# `serve run` driver `make run` keeps in the foreground.
RAY_PROCESS_MARKS = ("ray::", "/site-packages/ray/", "-m ray.", "bin/serve run")


def _process_label(cmdline: str) -> str:
    """A short name for a Ray process: the Serve replica's deployment, or the Ray component."""
    if "ServeReplica:" in cmdline:
        return cmdline.split("ServeReplica:", 1)[1].split()[0].split(":")[-1].split(".")[0]  # busy: `X.method`
    for part, label in (("gcs_server", "gcs_server"), ("raylet", "raylet"), ("dashboard", "dashboard"),
                        ("log_monitor", "log_monitor"), ("runtime_env", "runtime_env"),
                        ("ServeController", "ServeController"), ("ProxyActor", "ProxyActor"),
                        ("default_worker", "default_worker"), ("autoscaler", "autoscaler monitor"),
                        ("ray.util.client.server", "Ray client server"), ("bin/serve run", "serve run")):
        if part in cmdline:
            return label
    return cmdline.split()[0].rsplit("/", 1)[-1] if cmdline else "?"


class MemorySampler(threading.Thread):
    """Peak PSS/RSS summed over a set of processes (this one, or every Ray process)."""

    def __init__(self, ray_only: bool) -> None:
        super().__init__(daemon=True)
        self.ray_only, self.stop_flag = ray_only, threading.Event()
        self.peak_pss = self.peak_rss = 0
        self.peak_breakdown: dict[str, int] = {}
        self.last: dict[str, int] = {}

    def procs(self) -> list[psutil.Process]:
        if not self.ray_only:
            return [psutil.Process()]
        found = []
        for p in psutil.process_iter(["cmdline"]):
            cmd = " ".join(p.info["cmdline"] or [])
            if any(part in cmd for part in RAY_PROCESS_MARKS):
                found.append(p)
        return found

    def sample(self) -> tuple[int, int]:
        """(PSS, RSS) summed over the processes now; PSS counts a shared page once in total."""
        pss = rss = 0
        self.last: dict[str, int] = {}
        for p in self.procs():
            try:
                info = p.memory_full_info()
                pss += info.pss
                rss += info.rss
                name = _process_label(" ".join(p.cmdline()))
                self.last[name] = self.last.get(name, 0) + info.pss
            except (psutil.Error, AttributeError):
                continue
        return pss, rss

    def cpu_seconds(self) -> dict[int, tuple[str, float]]:
        """CPU seconds so far of each process, its exited children included (the Synthesizer runs espeak-ng
        once per clause), by pid: (label, seconds)."""
        out: dict[int, tuple[str, float]] = {}
        for p in self.procs():
            try:
                t = p.cpu_times()
                out[p.pid] = (_process_label(" ".join(p.cmdline())),
                              t.user + t.system + t.children_user + t.children_system)
            except psutil.Error:
                continue
        return out

    def run(self) -> None:
        while not self.stop_flag.is_set():
            pss, rss = self.sample()
            if pss > self.peak_pss:
                self.peak_breakdown = dict(self.last)
            self.peak_pss, self.peak_rss = max(self.peak_pss, pss), max(self.peak_rss, rss)
            time.sleep(0.5)

    def stop(self) -> None:
        self.stop_flag.set()
        self.join(timeout=5)


class NaiveBaseline:
    """The same model classes in this process, called one after another."""

    def __init__(self) -> None:
        from deployments.synthesis.service import SynthesisService
        from deployments.synthesis.synthesizer import Synthesizer
        from deployments.transcription.transcriber import Transcriber
        from deployments.translation.service import TranslationService
        from deployments.translation.translator import Translator
        from deployments.voice_cloning.service import CloningService
        from deployments.voice_cloning.voice_cloner import VoiceCloner

        s = Settings()
        self.sampler = MemorySampler(ray_only=False)
        self.sampler.start()
        self.whisper = Transcriber(s.whisper_model, cache_dir=s.cache_dir, beam_size=s.whisper_beam_size,
                                   log_prob_threshold=s.whisper_log_prob_threshold,
                                   repetition_penalty=s.whisper_repetition_penalty)
        self.translator = TranslationService(
            Translator.from_config(s.translator_backend, s.translator_model, cache_dir=s.cache_dir)
        )
        self.tts = SynthesisService(Synthesizer.from_config(s.tts_chains, cache_dir=s.cache_dir, warmup=True))
        self.cloner = CloningService(VoiceCloner.from_config(s.voice_clone_backend, cache_dir=s.cache_dir))
        stage_names = ("transcribe", "embed", "translate", "tts", "voice_clone")
        self.stages: dict[str, list[float]] = {k: [] for k in stage_names}

    def run(self, audio: bytes, targets: list[str]) -> float:
        from serve_app.audio import decode_audio, encode_audio, pcm_from_bytes, pcm_to_bytes

        def timed(stage: str, fn, *args):
            t = time.perf_counter()
            out = fn(*args)
            self.stages[stage].append(time.perf_counter() - t)
            return out

        t0 = time.perf_counter()
        decoded = decode_audio(audio)
        text = timed("transcribe", self.whisper.transcribe, decoded.samples, "fr").text  # the graph is told fr too
        reference = timed("embed", self.cloner.reference, pcm_to_bytes(decoded.samples), decoded.sample_rate)
        for target in targets:
            out = timed("translate", self.translator.translate_batch, [(text, "fr", target)])[0]
            clip = timed("tts", self.tts.synthesize, out.translated_text, target)
            converted = timed("voice_clone", self.cloner.convert, clip, reference)
            encode_audio(pcm_from_bytes(converted.pcm), converted.sample_rate, "mp3")
        return time.perf_counter() - t0

    def floor(self, languages: int, cores: int = 2) -> float:
        """One message's compute: the single-call stage medians summed, spread over the cores."""
        med = {k: statistics.median(v) for k, v in self.stages.items() if v}
        per_lang = med["translate"] + med["tts"] + med["voice_clone"]
        return (med["transcribe"] + med["embed"] + languages * per_lang) / cores


class Graph:
    """The service deployed from serve_config.local.yaml on a fresh 2-CPU Ray head, used over HTTP
    (the SSE route, so the first language's arrival is timed too)."""

    def __init__(self, tmp: Path, settings: dict | None = None) -> None:
        self.cluster = RayCluster(num_cpus=2, num_gpus=0, dashboard=False).start()  # as `make run` starts it
        self.tmp = tmp
        port = self.cluster.deploy(ROOT / "serve_config.local.yaml", tmp, settings=settings)
        self.cluster.wait_running()
        url = f"http://127.0.0.1:{port}"
        wait_http_ready(url)
        self.client = httpx.Client(base_url=url, timeout=600)
        self.sampler = MemorySampler(ray_only=True)
        self.stages: dict[str, list[float]] = {}
        self.cpu: dict[str, float] = {}  # CPU seconds by process over the timed runs, and their wall time
        self.cpu_wall = 0.0
        self.cpu_runs = 0

    def redeploy(self, settings: dict) -> None:
        """The same app with other settings (replicas are replaced; the models load again)."""
        self.cluster.deploy(ROOT / "serve_config.local.yaml", self.tmp, settings=settings)
        time.sleep(5)
        self.cluster.wait_running()
        wait_http_ready(str(self.client.base_url).rstrip("/"))

    def idle_pss(self) -> int:
        """PSS of every Ray process now (call while nothing runs)."""
        return self.sampler.sample()[0]

    def run(self, audio: bytes, targets: list[str]) -> tuple[float, float]:
        """(seconds to the first translated audio, seconds to the whole result)."""
        cpu_before = self.sampler.cpu_seconds()
        t0 = time.perf_counter()
        first = None
        languages = 0
        with self.client.stream(
            "POST", "/api/v1/voice/translate/stream", files={"audio": ("a.m4a", audio, "audio/mp4")},
            data={"target_languages": ",".join(targets), "source_language": "fr"},
        ) as r:
            r.raise_for_status()
            event = ""
            for line in r.iter_lines():
                if line.startswith("event: "):
                    event = line[7:].strip()
                elif line.startswith("data: "):
                    payload = json.loads(line[6:])
                    if event == "transcription":  # decode + transcribe (the embedding runs beside it)
                        self.stages.setdefault("decode+transcribe", []).append(payload["processing_time_ms"] / 1000)
                    elif event == "language":
                        languages += 1
                        first = first or time.perf_counter() - t0
                        for k, v in (payload.get("translation") or {}).get("timings_ms", {}).items():
                            self.stages.setdefault(f"{k} (per lang, concurrent)", []).append(v / 1000)
                    elif event == "error":
                        raise RuntimeError(payload)
        elapsed = time.perf_counter() - t0
        assert languages == len(targets), f"{languages} of {len(targets)} languages came back"
        for pid, (label, seconds) in self.sampler.cpu_seconds().items():
            self.cpu[label] = self.cpu.get(label, 0.0) + seconds - cpu_before.get(pid, (label, 0.0))[1]
        self.cpu_wall += elapsed
        self.cpu_runs += 1
        return first or elapsed, elapsed

    def close(self) -> None:
        self.sampler.stop()
        self.client.close()
        self.cluster.stop()


def interleaved(baseline: NaiveBaseline, graph: Graph, source: Iterator[bytes], targets: list[str],
                runs: int, label: str) -> dict[str, list[float]]:
    """`runs` timed runs (+1 warm-up), a new message each, baseline then graph on the same one."""
    out: dict[str, list[float]] = {"baseline": [], "graph": [], "first": []}
    for i in range(runs + 1):
        audio = next(source)
        b_time = baseline.run(audio, targets)
        first, g_time = graph.run(audio, targets)  # the graph idles while the baseline runs
        if i:  # run 0 warms both up (JIT, first-call allocations)
            out["baseline"].append(b_time)
            out["graph"].append(g_time)
            out["first"].append(first)
        print(f"{label} run {i}: baseline {b_time:.2f} s, graph {g_time:.2f} s (first audio {first:.2f} s)",
              flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5, help="timed runs of the main case (5 s -> en, es, de)")
    parser.add_argument("--scaling-runs", type=int, default=2, help="timed runs per cell of the scaling table")
    parser.add_argument("--no-scaling", action="store_true", help="skip the 1/3/6 languages x 5/20 s table")
    parser.add_argument("--warm-runs", type=int, default=2, help="graph runs of an already-seen message")
    parser.add_argument("--settings", default="{}", help="JSON settings overrides for the graph's deploy")
    parser.add_argument("--compare-settings", default="",
                        help="JSON overrides: after the main case, redeploy with them and run the main case again")
    args = parser.parse_args()
    tmp_dir = tempfile.TemporaryDirectory()
    tmp = Path(tmp_dir.name)
    five, twenty = messages(5, tmp), messages(20, tmp)
    print(f"French messages (espeak, m4a), a new one every timed run; main case 5 s -> {TARGETS}, {args.runs} "
          "timed runs each (+1 warm-up); baseline and graph interleaved so drift on a shared machine hits both")
    baseline = NaiveBaseline()
    graph = Graph(tmp, settings=json.loads(args.settings))
    try:
        idle = graph.idle_pss()
        graph.sampler.start()
        main_case = interleaved(baseline, graph, five, TARGETS, args.runs, "5s x3")
        first_msg = convert(espeak_wav(" ".join(SENTENCES[:2]), tmp / "warm.wav"), "m4a")
        warm = [graph.run(first_msg, TARGETS)[1] for _ in range(args.warm_runs + 1)][1:]
        graph.sampler.stop()  # peak PSS of the main case and the warm runs (a redeploy doubles replicas briefly)
        cells: dict[tuple[int, int], dict[str, list[float]]] = {}
        if not args.no_scaling:  # runs after the memory sampler stopped: the table is about time
            for seconds, source in ((5, five), (20, twenty)):
                for n in (1, 3, 6):
                    cells[(seconds, n)] = interleaved(
                        baseline, graph, source, SIX[:n], args.scaling_runs, f"{seconds}s x{n}")
        variant = None
        if args.compare_settings:
            graph.redeploy({**json.loads(args.settings), **json.loads(args.compare_settings)})
            variant = interleaved(baseline, graph, five, TARGETS, args.runs, "5s x3 variant")
    finally:
        graph.close()
        baseline.sampler.stop()
        tmp_dir.cleanup()
    report(baseline, graph, main_case, warm, cells, idle)
    if variant:
        b, g, f = (statistics.median(variant[k]) for k in ("baseline", "graph", "first"))
        print(f"\nwith {args.compare_settings}: baseline p50 {b:.2f} s, graph p50 {g:.2f} s (graph/baseline "
              f"{g / b:.2f}, graph/floor {g / baseline.floor(len(TARGETS)):.2f}), first audio p50 {f:.2f} s "
              f"(first/baseline {f / b:.2f})")


def report(baseline: NaiveBaseline, graph: Graph, main_case: dict[str, list[float]], warm: list[float],
           cells: dict[tuple[int, int], dict[str, list[float]]], idle_pss: int) -> None:
    base, g, first = main_case["baseline"], main_case["graph"], main_case["first"]
    base_mem, g_mem = baseline.sampler, graph.sampler
    floor = baseline.floor(len(TARGETS))
    print("\n| path (5 s French -> en, es, de, new message each run) | p50 s | p95 s | mean s | memory |")
    print("|---|---|---|---|---|")
    print(f"| naive baseline (1 process, sequential) | {statistics.median(base):.2f} | {pct(base, .95):.2f} | "
          f"{statistics.mean(base):.2f} | peak RSS {base_mem.peak_rss / 2**30:.2f} GiB |")
    print(f"| Ray Serve graph (serve_config.local.yaml) | {statistics.median(g):.2f} | {pct(g, .95):.2f} | "
          f"{statistics.mean(g):.2f} | PSS idle {idle_pss / 2**30:.2f} GiB, peak {g_mem.peak_pss / 2**30:.2f} GiB "
          f"(RSS sum {g_mem.peak_rss / 2**30:.2f}) |")
    print(f"| graph, first translated audio (SSE `language`) | {statistics.median(first):.2f} | "
          f"{pct(first, .95):.2f} | {statistics.mean(first):.2f} | |")
    if warm:
        print(f"| graph, warm cache (a message already seen) | {statistics.median(warm):.2f} | {pct(warm, .95):.2f} | "
              f"{statistics.mean(warm):.2f} | |")
    print(f"| compute floor (baseline's single-call stages / 2 cores) | {floor:.2f} | | | |")
    b50 = statistics.median(base)
    print(f"\ngraph/baseline (p50): {statistics.median(g) / b50:.2f}   (target <= 0.60)")
    print(f"graph/floor (p50): {statistics.median(g) / floor:.2f}   (target <= 1.25)")
    print(f"first audio/baseline total (p50): {statistics.median(first) / b50:.2f}   (target <= 0.40)")
    print(f"service PSS: idle {idle_pss / 2**30:.2f} GiB, peak {g_mem.peak_pss / 2**30:.2f} GiB   (target <= 3.0)")
    print("service PSS at its peak, by process (MiB):",
          {k: round(v / 2**20) for k, v in sorted(g_mem.peak_breakdown.items(), key=lambda kv: -kv[1])})
    print("\nbaseline per-stage medians (s, per call):",
          {k: round(statistics.median(v), 3) for k, v in baseline.stages.items() if v})
    print("graph per-stage medians (s):", {k: round(statistics.median(v), 3) for k, v in graph.stages.items()})
    busy = sum(graph.cpu.values())
    print(f"graph CPU over its {graph.cpu_runs} runs (warm-up included): {busy:.1f} CPU s in {graph.cpu_wall:.1f} s "
          f"of wall = {busy / graph.cpu_wall:.2f} cores busy of 2; CPU s per run by process:",
          {k: round(v / graph.cpu_runs, 2) for k, v in sorted(graph.cpu.items(), key=lambda kv: -kv[1]) if v >= 0.05})
    if cells:
        print("\n| audio | languages | baseline p50 s | graph p50 s | graph/baseline | first audio p50 s |")
        print("|---|---|---|---|---|---|")
        for (seconds, n), c in sorted(cells.items()):
            b, gg = statistics.median(c["baseline"]), statistics.median(c["graph"])
            print(f"| {seconds} s | {n} | {b:.2f} | {gg:.2f} | {gg / b:.2f} | {statistics.median(c['first']):.2f} |")
        for seconds in (5, 20):
            if (seconds, 1) in cells and (seconds, 6) in cells:
                def slope(path: str, seconds: int = seconds) -> float:
                    return (statistics.median(cells[(seconds, 6)][path])
                            - statistics.median(cells[(seconds, 1)][path])) / 5
                print(f"{seconds} s audio, seconds per added language: baseline {slope('baseline'):.2f}, "
                      f"graph {slope('graph'):.2f}")


if __name__ == "__main__":
    main()
