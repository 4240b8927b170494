"""Metrics and structured logs on the real graph (issue 12's done-criterion).

After a voice message and a text message sent twice (the second answered from the cache) through the
ZMQ door, the head node's Prometheus endpoint (Ray's metrics agent, `ray start --metrics-export-port`)
shows every pipeline stage's latency histogram and the cache counters with sane values, plus the Serve
built-ins the dashboard reads; and the JSON lines of the replicas' log files carry the voice message's
taskId in at least three different replicas. Ray exports metrics every few seconds, so the scrape polls.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from serve_app.observability.metrics import (
    AUDIO_SECONDS,
    CACHE_HITS,
    CACHE_MISSES,
    STAGE_LATENCY,
    ZMQ_PUBLISHED,
    ZMQ_RECEIVED,
    exported,
)
from serve_app.pipeline.latency import METRIC_STAGES
from tests.fixtures.dashboard import alert_metric_names, dashboard_metric_names
from tests.fixtures.gateway_client import GatewayClient, ids_of, new_id
from tests.fixtures.speech import FRENCH_5S, convert, espeak_wav
from tests.integration.local_graph import LocalGraph

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]

VOICE_TIMEOUT_S = 300
TEXT_TIMEOUT_S = 120
SCRAPE_DEADLINE_S = 90
RATE_LIMIT_PER_USER = 120
SERVE_LOGS = Path("/tmp/ray/session_latest/logs/serve")
BASE64_RUN = re.compile(r"[A-Za-z0-9+/=]{400,}")  # an audio or embedding payload; no log line may hold one


def scrape(url: str) -> dict[str, list[Any]]:
    """Samples by sample name (`x_bucket`, `x_sum`, `x_count`, `y_total`...). With METRICS_SCRAPE_DUMP
    set, the raw text is also written there (how tests/fixtures/ray_serve_metric_names.txt was captured)."""
    text = httpx.get(url, timeout=10).text
    if dump := os.environ.get("METRICS_SCRAPE_DUMP"):
        Path(dump).write_text(text)
    samples: dict[str, list[Any]] = defaultdict(list)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name].append(sample)
    return samples


def total(samples: dict[str, list[Any]], name: str, **labels: str) -> float:
    return sum(s.value for s in samples.get(name, []) if all(s.labels.get(k) == v for k, v in labels.items()))


def serve_log_lines() -> dict[str, list[dict[str, Any]]]:
    """JSON records of every replica log file, by file."""
    out: dict[str, list[dict[str, Any]]] = {}
    for path in SERVE_LOGS.glob("replica_*.log"):
        records = []
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    records.append(json.loads(line))
                except ValueError:
                    continue
        out[path.name] = records
    return out


async def test_metrics_and_logs_of_a_voice_and_a_cached_text_message(
    local_graph: LocalGraph, gateway: GatewayClient, speech_dir: Path
) -> None:
    # A voice message to two languages, with a taskId we know.
    audio = convert(espeak_wav(FRENCH_5S, speech_dir / "metrics_fr.wav"), "m4a")
    voice_task = new_id("metrics-voice")
    await gateway.send({
        "type": "audio_process", "taskId": voice_task, "messageId": new_id("m"), "attachmentId": new_id("a"),
        "conversationId": "c-metrics", "senderId": "u-metrics", "audioMimeType": "audio/mp4",
        "binaryFrames": {"audio": 1, "audioMimeType": "audio/mp4", "audioSize": len(audio)},
        "targetLanguages": ["en", "es"], "generateVoiceClone": True, "timestamp": int(time.time() * 1000),
    }, audio)
    done = await gateway.wait_for(
        lambda e: voice_task in ids_of(e.body) and e.type in ("audio_process_completed", "audio_process_error"),
        VOICE_TIMEOUT_S)
    assert done.type == "audio_process_completed", done.body

    # The same text twice: the second answer comes from the cache.
    text = f"Bonjour, le rapport {new_id('')} est prêt."
    from_cache = []
    for _ in range(2):
        task = new_id("metrics-text")
        await gateway.send({"type": "translation", "taskId": task, "messageId": new_id("m"), "text": text,
                            "sourceLanguage": "fr", "targetLanguages": ["en"], "conversationId": "c-metrics",
                            "timestamp": int(time.time() * 1000)})
        event = await gateway.wait_for(lambda e, t=task: e.get("taskId") == t, TEXT_TIMEOUT_S)
        assert event.type == "translation_completed", event.body
        from_cache.append(event["result"]["fromCache"])
    assert from_cache == [False, True]

    # What the dashboard and alerts also read, made to happen: a malformed message, a language that
    # fails while the other is delivered, a user over the per-user rate limit (120/minute by default).
    await gateway.send(b"{not json")
    await gateway.wait_for(lambda e: e.type == "error", TEXT_TIMEOUT_S)
    task = new_id("metrics-fail")
    await gateway.send({"type": "translation", "taskId": task, "messageId": new_id("m"), "text": "Merci !",
                        "sourceLanguage": "fr", "targetLanguages": ["en", "zz-nowhere"]})
    answers = {(await gateway.wait_for(lambda e: e.get("taskId") == task, TEXT_TIMEOUT_S)).type for _ in range(2)}
    assert answers == {"translation_completed", "translation_error"}
    user = new_id("u-metrics-flood")
    for wave in range(RATE_LIMIT_PER_USER // 20 + 1):  # in waves under the in-flight cap (else: busy, not limited)
        wave_ids = [f"rl-{user}-{wave}-{i}" for i in range(20)]
        for task_id in wave_ids:
            await gateway.send({"type": "voice_job_status", "taskId": task_id, "userId": user, "jobId": "vjob_none"})
        prefix = f"rl-{user}-{wave}-"
        for _ in wave_ids:
            await gateway.wait_for(lambda e, p=prefix: str(e.get("taskId", "")).startswith(p), TEXT_TIMEOUT_S)
    await gateway.send({"type": "voice_job_status", "taskId": f"rl-{user}-last", "userId": user, "jobId": "vjob_none"})
    limited = await gateway.wait_for(lambda e: e.get("taskId") == f"rl-{user}-last", TEXT_TIMEOUT_S)
    assert "retryAfterMs" in limited.body, limited.body  # the per-user limit, not a busy answer

    # Metrics: every stage histogram filled, cache counters moved, Serve built-ins present.
    url = local_graph.cluster.metrics_url
    hist, hits, misses = exported(STAGE_LATENCY), exported(CACHE_HITS), exported(CACHE_MISSES)
    deadline = time.monotonic() + SCRAPE_DEADLINE_S
    while True:
        samples = scrape(url)
        stages_seen = {s.labels.get("stage") for s in samples.get(f"{hist}_count", []) if s.value > 0}
        # Each replica's figures reach the agent on its own export cycle (a replica Serve just replaced
        # starts a new one): wait until every name the dashboard and alerts read is there too.
        complete = not (dashboard_metric_names() | alert_metric_names()) - set(samples)
        if (set(METRIC_STAGES) <= stages_seen and complete
                and total(samples, f"{hits}_total", kind="translation") >= 1) or time.monotonic() > deadline:
            break
        time.sleep(3)
    assert set(METRIC_STAGES) <= stages_seen, (stages_seen, sorted(n for n in samples if "voice_translator" in n))
    for stage in METRIC_STAGES:
        count = total(samples, f"{hist}_count", stage=stage)
        seconds = total(samples, f"{hist}_sum", stage=stage)
        assert count >= 1 and 0 < seconds / count < VOICE_TIMEOUT_S, (stage, count, seconds)
        inf_bucket = total(samples, f"{hist}_bucket", stage=stage, le="+Inf")
        assert inf_bucket == count, (stage, inf_bucket, count)
    assert total(samples, f"{hits}_total", kind="translation", tier="lru") >= 1
    # The text is new, so its first lookup misses. The voice message's transcript may already sit in the
    # session's Redis (other modules send the same recording; a replica restarted by a test that borrowed
    # the machine's Ray starts its counters at zero), so its 2 lookups count as hits or as misses.
    assert total(samples, f"{misses}_total", kind="translation") >= 1
    assert (total(samples, f"{misses}_total", kind="translation")
            + total(samples, f"{hits}_total", kind="translation")) >= 4  # voice 2 + text 2
    for series in samples[f"{hist}_count"]:  # Serve tags every sample with where it was recorded
        assert series.labels.get("deployment") == "Pipeline" and series.labels.get("application") == "translator"
    assert total(samples, f"{exported(ZMQ_RECEIVED)}_total", type="audio_process") >= 1
    assert total(samples, f"{exported(ZMQ_PUBLISHED)}_total", type="audio_process_completed") >= 1
    assert total(samples, f"{exported(AUDIO_SECONDS)}_total", direction="in") >= 4  # ~5 s of speech
    missing = (dashboard_metric_names() | alert_metric_names()) - set(samples)
    assert not missing, f"the dashboard or alerts read metrics this scrape lacks: {sorted(missing)}"

    # Logs: the voice message's taskId on JSON lines of at least three replicas; no payload in any line.
    deadline = time.monotonic() + 30
    while True:
        carrying = {
            name: [r for r in records if voice_task in (r.get("request_id"), r.get("taskId"))]
            for name, records in serve_log_lines().items()
        }
        carrying = {name: lines for name, lines in carrying.items() if lines}
        if len(carrying) >= 3 or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert len(carrying) >= 3, sorted(carrying)
    zmq_lines = [r for name, lines in carrying.items() if "ZmqIngress" in name for r in lines]
    assert any(r.get("taskId") == voice_task and "messageId" in r for r in zmq_lines), zmq_lines[:3]
    # Serve names each line's deployment "<app>_<Deployment>"
    deployments = {str(r.get("deployment")).removeprefix("translator_") for lines in carrying.values() for r in lines}
    assert {"ZmqIngress", "Pipeline", "Transcriber"} <= deployments, deployments
    for lines in carrying.values():
        for record in lines:
            assert not BASE64_RUN.search(json.dumps(record)), str(record)[:300]
