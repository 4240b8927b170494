"""5 s French voice message -> en, es, de: the Ray Serve graph beside a naive baseline.

The baseline loads the same model classes in one process and calls them one after another
(decode, transcribe, embed, then per language translate -> synthesize -> convert -> encode), which
is how the system we replace worked. Both run in this same invocation on this machine, so the
ratio holds even where absolute times do not. Also reports the peak memory (PSS, which does not
double-count shared pages, and plain RSS) of every process of the running service.

    .venv/bin/python bench/voice_graph_vs_naive.py --runs 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from serve_app.settings import Settings  # noqa: E402
from tests.fixtures.ray_cluster import RayCluster, wait_http_ready  # noqa: E402
from tests.fixtures.speech import convert, espeak_wav  # noqa: E402

TEXT = "Bonjour, je serai en retard ce soir. On se voit au cinéma."
TARGETS = ["en", "es", "de"]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


class MemorySampler(threading.Thread):
    """Peak PSS/RSS summed over a set of processes (this one, or every Ray process)."""

    def __init__(self, ray_only: bool) -> None:
        super().__init__(daemon=True)
        self.ray_only, self.stop_flag = ray_only, threading.Event()
        self.peak_pss = self.peak_rss = 0

    def procs(self) -> list[psutil.Process]:
        if not self.ray_only:
            return [psutil.Process()]
        found = []
        for p in psutil.process_iter(["cmdline"]):
            cmd = " ".join(p.info["cmdline"] or [])
            if "ray" in cmd and ("raylet" in cmd or "gcs_server" in cmd or "ray::" in cmd or "dashboard" in cmd
                                 or "default_worker" in cmd or "log_monitor" in cmd or "runtime_env" in cmd):
                found.append(p)
        return found

    def run(self) -> None:
        while not self.stop_flag.is_set():
            pss = rss = 0
            for p in self.procs():
                try:
                    info = p.memory_full_info()
                    pss += info.pss
                    rss += info.rss
                except (psutil.Error, AttributeError):
                    continue
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
        self.whisper = Transcriber(s.whisper_model, cache_dir=s.cache_dir, beam_size=s.whisper_beam_size)
        self.translator = TranslationService(
            Translator.from_config(s.translator_backend, s.translator_model, cache_dir=s.cache_dir)
        )
        self.tts = SynthesisService(Synthesizer.from_config(s.tts_chains, cache_dir=s.cache_dir, warmup=True))
        self.cloner = CloningService(VoiceCloner.from_config(s.voice_clone_backend, cache_dir=s.cache_dir))
        stage_names = ("transcribe", "embed", "translate", "tts", "voice_clone")
        self.stages: dict[str, list[float]] = {k: [] for k in stage_names}

    def run(self, audio: bytes) -> float:
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
        for target in TARGETS:
            out = timed("translate", self.translator.translate_batch, [(text, "fr", target)])[0]
            clip = timed("tts", self.tts.synthesize, out.translated_text, target)
            converted = timed("voice_clone", self.cloner.convert, clip, reference)
            encode_audio(pcm_from_bytes(converted.pcm), converted.sample_rate, "mp3")
        return time.perf_counter() - t0


class Graph:
    """The service deployed from serve_config.local.yaml on a fresh 2-CPU Ray head, used over HTTP."""

    def __init__(self, tmp: Path) -> None:
        self.cluster = RayCluster(num_cpus=2, num_gpus=0).start()
        port = self.cluster.deploy(ROOT / "serve_config.local.yaml", tmp)
        self.cluster.wait_running()
        url = f"http://127.0.0.1:{port}"
        wait_http_ready(url)
        self.client = httpx.Client(base_url=url, timeout=600)
        self.sampler = MemorySampler(ray_only=True)
        self.sampler.start()
        self.stages: dict[str, list[float]] = {}

    def run(self, audio: bytes) -> float:
        t0 = time.perf_counter()
        r = self.client.post("/api/v1/voice/translate", files={"audio": ("a.m4a", audio, "audio/mp4")},
                             data={"target_languages": ",".join(TARGETS), "source_language": "fr"})
        elapsed = time.perf_counter() - t0
        r.raise_for_status()
        body = r.json()
        assert len(body["translations"]) == len(TARGETS), body.get("failed_languages")
        for k, v in body["timings_ms"].items():
            self.stages.setdefault(k, []).append(v / 1000)
        for item in body["translations"]:
            for k, v in item["timings_ms"].items():
                self.stages.setdefault(f"{k} (per lang, concurrent)", []).append(v / 1000)
        return elapsed

    def close(self) -> None:
        self.sampler.stop()
        self.client.close()
        self.cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        wav = espeak_wav(TEXT, Path(tmp) / "msg.wav")
        audio = convert(wav, "m4a")
    print(f"input: {len(audio)} bytes m4a, French, targets {TARGETS}, {args.runs} timed runs each (+1 warm-up),"
          " baseline and graph interleaved so drift on a shared machine hits both alike")
    baseline = NaiveBaseline()
    with tempfile.TemporaryDirectory() as tmp:
        graph = Graph(Path(tmp))
        base: list[float] = []
        g: list[float] = []
        try:
            for i in range(args.runs + 1):
                b_time, g_time = baseline.run(audio), graph.run(audio)  # the graph idles while the baseline runs
                if i:  # run 0 warms both up (JIT, first-call allocations)
                    base.append(b_time)
                    g.append(g_time)
                print(f"run {i}: baseline {b_time:.2f} s, graph {g_time:.2f} s", flush=True)
        finally:
            graph.close()
            baseline.sampler.stop()
    base_mem, g_mem = baseline.sampler, graph.sampler
    base_stages = {k: statistics.median(v) for k, v in baseline.stages.items()}
    g_stages = {k: statistics.median(v) for k, v in graph.stages.items()}
    print("\n| path | p50 s | p95 s | mean s | peak memory |")
    print("|---|---|---|---|---|")
    print(f"| naive baseline (1 process, sequential) | {statistics.median(base):.2f} | {pct(base, .95):.2f} | "
          f"{statistics.mean(base):.2f} | RSS {base_mem.peak_rss / 2**30:.2f} GiB |")
    print(f"| Ray Serve graph (serve_config.local.yaml) | {statistics.median(g):.2f} | {pct(g, .95):.2f} | "
          f"{statistics.mean(g):.2f} | PSS {g_mem.peak_pss / 2**30:.2f} GiB (RSS sum {g_mem.peak_rss / 2**30:.2f}) |")
    print(f"\nratio graph/baseline (p50): {statistics.median(g) / statistics.median(base):.2f}")
    print("\nbaseline per-stage medians (s, per call):", {k: round(v, 3) for k, v in base_stages.items()})
    print("graph per-stage medians (s):", {k: round(v, 3) for k, v in g_stages.items()})


if __name__ == "__main__":
    main()
