"""The service's metrics on the in-memory sink: each is recorded where it should be, with its tags."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ingress.gateway.jobs import JobRegistry
from serve_app.audio import encode_audio
from serve_app.domain.voice import VoiceJob
from serve_app.errors import RateLimitedError
from serve_app.observability import metrics as m
from serve_app.pipeline.latency import METRIC_STAGES, StageLatency
from serve_app.pipeline.voice_pipeline import VoicePipeline
from serve_app.security.rate_limits import RateLimiter
from serve_app.settings import Settings
from serve_app.stores.circuit_breaker import CircuitBreaker
from serve_app.stores.file_jobs import FileJobStore
from serve_app.stores.translation_cache import CachedTranslation, TranslationCache
from tests.fixtures.fake_stages import FakeStages
from tests.fixtures.gateway_client import connected_client, new_id
from tests.fixtures.gateway_server import running_gateway


@pytest.fixture
def sink() -> Iterator[m.InMemorySink]:
    memory = m.InMemorySink()
    previous = m.use_sink(memory)
    try:
        yield memory
    finally:
        m.use_sink(previous)


def tone(seconds: float) -> bytes:
    t = np.arange(int(16_000 * seconds)) / 16_000
    return encode_audio((0.2 * np.sin(2 * np.pi * 140 * t)).astype(np.float32), 16_000, "wav")


def test_every_metric_is_declared_once_with_the_prefix(sink: m.InMemorySink) -> None:
    assert set(sink.declared) == set(m.REGISTRY)
    assert all(name.startswith("voice_translator_") for name in m.REGISTRY)
    assert all(spec.boundaries for spec in m.REGISTRY.values() if spec.kind == "histogram")


def test_wrong_tags_or_kind_are_refused(sink: m.InMemorySink) -> None:
    with pytest.raises(ValueError, match="takes tags"):
        m.CACHE_HITS.inc(kind="translation")
    with pytest.raises(TypeError):
        m.CACHE_HITS.observe(1.0, kind="translation", tier="lru")
    m.AUDIO_SECONDS.inc(0.0, direction="in")  # a counter never records 0 (Ray's would refuse it)
    assert sink.counter(m.AUDIO_SECONDS, direction="in") == 0.0


def test_a_failing_sink_never_fails_the_caller() -> None:
    class Broken:
        def declare(self, spec: m.MetricSpec) -> None: ...

        def record(self, spec: m.MetricSpec, value: float, tags: dict[str, str]) -> None:
            raise RuntimeError("exporter down")

    previous = m.use_sink(Broken())
    try:
        m.CACHE_MISSES.inc(kind="translation")
    finally:
        m.use_sink(previous)


def test_stage_latency_feeds_the_histogram_and_keeps_the_health_report(sink: m.InMemorySink) -> None:
    latency = StageLatency()
    for stage in METRIC_STAGES:
        latency.record(stage, 250)
    for stage in METRIC_STAGES:
        assert sink.observations(m.STAGE_LATENCY, stage=stage) == [0.25]
    assert latency.report() == {name: {"median_ms": 250, "samples": 1} for name in ("transcription", "translation",
                                                                                      "tts")}
    with pytest.raises(ValueError):
        latency.record("tts", 1)


async def test_a_voice_message_records_every_stage_audio_and_similarity(tmp_path: Path,
                                                                        sink: m.InMemorySink) -> None:
    pipeline = VoicePipeline(FakeStages(fail_tts_for="de"), Settings(cache_dir=tmp_path),
                             cache=TranslationCache(None))
    result = await pipeline.run_voice(VoiceJob(audio=tone(2.0), target_languages=["en", "es", "de"]))
    assert [t.target_language for t in result.translations] == ["en", "es"]
    for stage in METRIC_STAGES:
        assert sink.observations(m.STAGE_LATENCY, stage=stage), stage
    assert len(sink.observations(m.STAGE_LATENCY, stage="synthesize")) == 2  # de failed in TTS
    assert sink.counter(m.AUDIO_SECONDS, direction="in") == pytest.approx(2.0, abs=0.05)
    assert sink.counter(m.AUDIO_SECONDS, direction="out") == pytest.approx(2 * 0.5)  # 8000 samples at 16 kHz each
    assert sink.observations(m.VOICE_SIMILARITY, voice="converted") == [0.7, 0.7]
    assert sink.observations(m.VOICE_SIMILARITY, voice="base") == [0.5, 0.5]
    assert sink.counter(m.LANGUAGE_FAILURES, flow="voice", language="de", error_code="tts_failed") == 1
    assert sink.counter(m.CACHE_MISSES, kind="translation") == 3


async def test_cache_hits_by_tier_and_misses(sink: m.InMemorySink) -> None:
    cache = TranslationCache(None)
    assert await cache.get("Bonjour", "fr", "en", "m") is None
    await cache.put("Bonjour", "fr", "en", "m", CachedTranslation(translated_text="Hello", source_language="fr",
                                                                   target_language="en", model="m"))
    assert await cache.get("Bonjour", "fr", "en", "m") is not None
    assert await cache.get_transcription("att", "d" * 32) is None
    assert sink.counter(m.CACHE_MISSES, kind="translation") == 1
    assert sink.counter(m.CACHE_HITS, kind="translation", tier="lru") == 1
    assert sink.counter(m.CACHE_MISSES, kind="transcription") == 1


def test_breaker_state_gauge_follows_transitions(sink: m.InMemorySink) -> None:
    now = [0.0]
    breaker = CircuitBreaker(failure_threshold=2, cooldown_s=10, clock=lambda: now[0], name="redis_cache")
    assert sink.gauge(m.BREAKER_STATE, breaker="redis_cache") == 0
    breaker.record_failure()
    breaker.record_failure()
    assert sink.gauge(m.BREAKER_STATE, breaker="redis_cache") == 2
    now[0] = 11.0
    assert breaker.allow()
    assert sink.gauge(m.BREAKER_STATE, breaker="redis_cache") == 1
    breaker.record_success()
    assert sink.gauge(m.BREAKER_STATE, breaker="redis_cache") == 0
    CircuitBreaker(name=None).record_failure()  # unnamed breakers are not exported
    assert set(sink.gauges[m.BREAKER_STATE.name]) == {(("breaker", "redis_cache"),)}


async def test_rate_limit_rejections_by_door_and_scope(sink: m.InMemorySink) -> None:
    limiter = RateLimiter("100/minute", "1/minute", door="http")
    await limiter.check("key-a", "u1")
    with pytest.raises(RateLimitedError):
        await limiter.check("key-a", "u1")
    assert sink.counter(m.RATE_LIMITED, door="http", scope="user") == 1
    assert sink.counter(m.RATE_LIMITED, door="http", scope="principal") == 0


async def test_job_states_gauge(sink: m.InMemorySink, tmp_path: Path) -> None:
    jobs = JobRegistry(FileJobStore(tmp_path / "jobs", max_jobs=10, record_ttl_s=3600, result_ttl_s=3600), lease_s=30)
    await jobs.start()
    assert sink.gauge(m.JOBS, state="pending") == 0 and sink.gauge(m.JOBS, state="processing") == 0
    job, created = await jobs.create("t1", "u1", ["en"], None, None)
    assert created and sink.gauge(m.JOBS, state="pending") == 1
    await jobs.update(job, status="processing")
    assert sink.gauge(m.JOBS, state="pending") == 0 and sink.gauge(m.JOBS, state="processing") == 1
    await jobs.update(job, status="completed")
    assert sink.gauge(m.JOBS, state="processing") == 0 and sink.gauge(m.JOBS, state="pending") == 0


async def test_zmq_events_received_published_rejected(tmp_path: Path, sink: m.InMemorySink) -> None:
    async with running_gateway(tmp_path) as server:
        client = await connected_client(server.settings.zmq_pull_port, server.settings.zmq_pub_port, timeout_s=10)
        try:
            task = new_id()
            await client.send({"type": "translation", "taskId": task, "messageId": "m1", "text": "Bonjour",
                               "sourceLanguage": "fr", "targetLanguages": ["en", "zz-nowhere"]})
            events = [await client.wait_for(lambda e: e.get("taskId") == task, 10) for _ in range(2)]
            assert {e.type for e in events} == {"translation_completed", "translation_error"}
            await client.send(b"{not json")
            await client.send({"type": "no_such_type", "taskId": new_id()})
            await client.wait_for(lambda e: e.type == "error", 10)
            await client.wait_for(lambda e: e.get("errorCode") == "unknown_type", 10)
        finally:
            client.close()
        assert sink.counter(m.ZMQ_RECEIVED, type="translation") == 1
        assert sink.counter(m.ZMQ_RECEIVED, type="unknown") == 1
        assert sink.counter(m.ZMQ_PUBLISHED, type="translation_completed") == 1
        assert sink.counter(m.ZMQ_REJECTED, reason="malformed") == 1
        assert sink.counter(m.ZMQ_REJECTED, reason="unknown_type") == 1
        assert sink.gauge(m.IN_FLIGHT, door="zmq") == 0
        assert sink.counter(m.LANGUAGE_FAILURES, flow="text", language="other", error_code="unsupported_language") == 1
        assert sink.gauge(m.JOBS, state="pending") == 0  # every state exported from the start


def test_metric_class_sink_builds_one_object_per_declaration() -> None:
    made: list[tuple[str, str, dict[str, Any]]] = []
    calls: list[tuple[str, str, float, dict[str, str]]] = []

    def factory(kind: str) -> Any:
        class Metric:
            def __init__(self, name: str, **kwargs: Any) -> None:
                self.name = name
                made.append((kind, name, kwargs))

            def _call(self, op: str, value: float, tags: dict[str, str]) -> None:
                calls.append((op, self.name, value, tags))

            def inc(self, value: float, tags: dict[str, str]) -> None:
                self._call("inc", value, tags)

            def set(self, value: float, tags: dict[str, str]) -> None:
                self._call("set", value, tags)

            def observe(self, value: float, tags: dict[str, str]) -> None:
                self._call("observe", value, tags)

        return Metric

    class Module:
        Counter, Gauge, Histogram = factory("counter"), factory("gauge"), factory("histogram")

    previous = m.current_sink()
    try:
        m.install_module_metrics(Module)
        m.install_module_metrics(Module)  # a second install in the same process changes nothing
        assert len(made) == len(m.REGISTRY)
        hist = next(kw for kind, name, kw in made if name == m.STAGE_LATENCY.name)
        assert hist["boundaries"] == list(m.LATENCY_BUCKETS_S) and hist["tag_keys"] == ("stage",)
        m.STAGE_LATENCY.observe(0.5, stage="embed")
        m.CACHE_HITS.inc(kind="translation", tier="redis")
        m.IN_FLIGHT.set(3, door="http")
    finally:
        m.use_sink(previous)
    assert calls == [("observe", m.STAGE_LATENCY.name, 0.5, {"stage": "embed"}),
                     ("inc", m.CACHE_HITS.name, 1.0, {"kind": "translation", "tier": "redis"}),
                     ("set", m.IN_FLIGHT.name, 3.0, {"door": "http"})]


def test_gauges_are_re_recorded_so_ray_keeps_exporting_them() -> None:
    sets: list[tuple[float, dict[str, str]]] = []

    class FakeGauge:
        def __init__(self, name: str, **kwargs: Any) -> None:
            self.name = name

        def set(self, value: float, tags: dict[str, str]) -> None:
            if self.name == m.BREAKER_STATE.name:
                sets.append((value, tags))

    class Module:
        Counter = Histogram = Gauge = FakeGauge

    sink = m.MetricClassSink(Module, gauge_refresh_s=0)  # no thread: refreshed by hand
    for spec in m.REGISTRY.values():
        sink.declare(spec)
    sink.record(m.BREAKER_STATE, 2.0, {"breaker": "redis_cache"})
    sink.record(m.BREAKER_STATE, 0.0, {"breaker": "redis_cache"})
    sink.record(m.BREAKER_STATE, 1.0, {"breaker": "profile_store"})
    sets.clear()
    sink.refresh_gauges()
    assert sorted(sets, key=lambda s: s[1]["breaker"]) == [(1.0, {"breaker": "profile_store"}),
                                                            (0.0, {"breaker": "redis_cache"})]
