"""Every metric the service exports, declared once: name, kind, tag keys, histogram buckets.

Why a sink: the ground floor stays Ray-free (import-linter), yet its figures must reach Ray's metrics
agent from whichever replica records them. Code records through the module-level declarations below
(`STAGE_LATENCY.observe(0.4, stage="translate")`); where the figures go is the installed sink's
business. The default sink drops everything; unit tests install `InMemorySink` and read it back;
each replica installs `MetricClassSink(ray.serve.metrics)` at start (`install_replica_metrics`
in the deployments and the doors), which makes one Ray Serve Counter/Gauge/Histogram per
declaration, tagged by Serve with the deployment, replica and application. Prometheus sees the names
below in Ray's namespace (`ray_voice_translator_...`, `exported`), Counters with `_total`, histograms
with `_bucket`/`_sum`/`_count`.

Tag values are kept low-cardinality on purpose: stages, languages (normalised ISO codes), error
codes, message types of the fixed dispatch table; never a user, a key or an id.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Mapping
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict

from serve_app.errors import ServiceError
from serve_app.languages import normalize_language

log = logging.getLogger(__name__)

MetricKind = Literal["counter", "gauge", "histogram"]
PREFIX = "voice_translator_"
EXPORT_PREFIX = "ray_"  # Ray's metrics agent exports every metric in its "ray" Prometheus namespace
LATENCY_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
SIMILARITY_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95)
BREAKER_STATE_VALUES = {"closed": 0, "half_open": 1, "open": 2}
GAUGE_REFRESH_S = 5.0
TagValues = Mapping[str, str]


class MetricSink(Protocol):
    """Where recorded values go. `declare` is called once per metric when the sink is installed."""

    def declare(self, spec: MetricSpec) -> None: ...

    def record(self, spec: MetricSpec, value: float, tags: dict[str, str]) -> None: ...


class NullSink:
    """The default: a process that installed nothing (a script, a bench baseline) records nothing."""

    def declare(self, spec: MetricSpec) -> None:
        return None

    def record(self, spec: MetricSpec, value: float, tags: dict[str, str]) -> None:
        return None


_sink: MetricSink = NullSink()
_lock = threading.Lock()


class MetricSpec(BaseModel):
    """One declared metric. Recording checks the tag keys: a wrong key is a bug, found by unit tests."""

    model_config = ConfigDict(frozen=True)

    name: str
    kind: MetricKind
    description: str
    tag_keys: tuple[str, ...] = ()
    boundaries: tuple[float, ...] = ()

    def inc(self, value: float = 1.0, **tags: str) -> None:
        if value > 0:  # Ray's counters refuse 0 and negatives; a counter only goes up anyway
            self._emit("counter", value, tags)

    def set(self, value: float, **tags: str) -> None:
        self._emit("gauge", value, tags)

    def observe(self, value: float, **tags: str) -> None:
        self._emit("histogram", value, tags)

    def _emit(self, kind: MetricKind, value: float, tags: dict[str, str]) -> None:
        if kind != self.kind:
            raise TypeError(f"{self.name} is a {self.kind}, not a {kind}")
        if set(tags) != set(self.tag_keys):
            raise ValueError(f"{self.name} takes tags {self.tag_keys}, got {tuple(sorted(tags))}")
        try:
            _sink.record(self, float(value), {k: str(v) for k, v in tags.items()})
        except Exception as exc:  # noqa: BLE001 - a metric must never fail the request it measures
            log.debug("metric %s not recorded: %s", self.name, exc)


REGISTRY: dict[str, MetricSpec] = {}


def _declare(kind: MetricKind, name: str, description: str, tag_keys: tuple[str, ...] = (),
             boundaries: tuple[float, ...] = ()) -> MetricSpec:
    assert name.startswith(PREFIX) and name not in REGISTRY, name
    spec = MetricSpec(name=name, kind=kind, description=description, tag_keys=tag_keys, boundaries=boundaries)
    REGISTRY[name] = spec
    return spec


# ---- the pipeline -----------------------------------------------------------------------------------
STAGE_LATENCY = _declare(
    "histogram", "voice_translator_stage_latency_seconds",
    "Time one pipeline stage took, as the Pipeline waits for it (transcribe, embed, translate, synthesize, "
    "convert, encode).", ("stage",), LATENCY_BUCKETS_S)
LANGUAGE_FAILURES = _declare(
    "counter", "voice_translator_language_failures",
    "Target languages that failed while others were delivered, by flow (text/voice), language and error code.",
    ("flow", "language", "error_code"))
VOICE_SIMILARITY = _declare(
    "histogram", "voice_translator_voice_similarity",
    "Speaker similarity of a delivered voice to the sender (converted) and of the unconverted base voice (base).",
    ("voice",), SIMILARITY_BUCKETS)
AUDIO_SECONDS = _declare(
    "counter", "voice_translator_audio_seconds",
    "Seconds of audio processed: decoded input (in) and synthesized, delivered output (out).", ("direction",))

# ---- stores -----------------------------------------------------------------------------------------
CACHE_HITS = _declare(
    "counter", "voice_translator_cache_hits",
    "Cache lookups answered, by what was looked up (translation/transcription) and the tier (lru/redis).",
    ("kind", "tier"))
CACHE_MISSES = _declare(
    "counter", "voice_translator_cache_misses", "Cache lookups that found nothing in any tier.", ("kind",))
BREAKER_STATE = _declare(
    "gauge", "voice_translator_breaker_state",
    "A circuit breaker's state: 0 closed, 1 half_open (one probe), 2 open (the remote is skipped).", ("breaker",))

# ---- the doors --------------------------------------------------------------------------------------
ZMQ_RECEIVED = _declare(
    "counter", "voice_translator_zmq_received", "Gateway requests received, by message type.", ("type",))
ZMQ_PUBLISHED = _declare(
    "counter", "voice_translator_zmq_published", "Events published to the gateway, by event type.", ("type",))
ZMQ_REJECTED = _declare(
    "counter", "voice_translator_zmq_rejected",
    "Gateway messages refused before a handler ran: busy, malformed, rate_limited, invalid, unknown_type.",
    ("reason",))
IN_FLIGHT = _declare(
    "gauge", "voice_translator_in_flight", "Requests being served now, per door replica (http, zmq).", ("door",))
JOBS = _declare(
    "gauge", "voice_translator_jobs",
    "Async voice jobs running in a ZMQ door replica, by state (pending = queued, not started; processing). "
    "Finished jobs live in the job store, not in a replica.", ("state",))
RATE_LIMITED = _declare(
    "counter", "voice_translator_rate_limited",
    "Requests refused by a rate limit, by door and by what was over its limit (principal/user).",
    ("door", "scope"))


# ---- sinks ------------------------------------------------------------------------------------------
def use_sink(sink: MetricSink) -> MetricSink:
    """Install `sink` for this process (declaring every metric on it); returns the previous one."""
    global _sink
    with _lock:
        for spec in REGISTRY.values():
            sink.declare(spec)
        previous, _sink = _sink, sink
    return previous


def current_sink() -> MetricSink:
    return _sink


def _key(tags: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(tags.items()))


class InMemorySink:
    """Keeps what was recorded, for unit tests: counters summed, gauges last value, histograms all values."""

    def __init__(self) -> None:
        self.declared: dict[str, MetricSpec] = {}
        self.counters: dict[str, dict[tuple[tuple[str, str], ...], float]] = defaultdict(lambda: defaultdict(float))
        self.gauges: dict[str, dict[tuple[tuple[str, str], ...], float]] = defaultdict(dict)
        self.histograms: dict[str, dict[tuple[tuple[str, str], ...], list[float]]] = defaultdict(
            lambda: defaultdict(list))

    def declare(self, spec: MetricSpec) -> None:
        self.declared[spec.name] = spec

    def record(self, spec: MetricSpec, value: float, tags: dict[str, str]) -> None:
        key = _key(tags)
        if spec.kind == "counter":
            self.counters[spec.name][key] += value
        elif spec.kind == "gauge":
            self.gauges[spec.name][key] = value
        else:
            self.histograms[spec.name][key].append(value)

    def counter(self, spec: MetricSpec, **tags: str) -> float:
        return self.counters[spec.name].get(_key(tags), 0.0)

    def gauge(self, spec: MetricSpec, **tags: str) -> float | None:
        return self.gauges[spec.name].get(_key(tags))

    def observations(self, spec: MetricSpec, **tags: str) -> list[float]:
        """Values of a histogram with exactly these tags (all of its values when no tag is given)."""
        series = self.histograms[spec.name]
        if not tags:
            return [v for values in series.values() for v in values]
        return list(series.get(_key(tags), []))


class MetricClassSink:
    """A sink over a metrics module with Prometheus-style classes: `Counter(name, description, tag_keys)
    .inc(value, tags)`, `Gauge(...).set(value, tags)`, `Histogram(name, description, boundaries,
    tag_keys).observe(value, tags)` — the shape of `ray.serve.metrics` (and `ray.util.metrics`).

    The module is passed in, so this file never imports Ray; the objects are made in `declare`, i.e.
    when a replica installs the sink, inside its own Serve context (whose tags Serve adds)."""

    def __init__(self, module: Any, gauge_refresh_s: float = GAUGE_REFRESH_S) -> None:
        self.module = module
        self.objects: dict[str, Any] = {}
        self.gauge_refresh_s = gauge_refresh_s
        # Ray's metrics agent forgets a gauge not re-reported within ~2 export intervals, so a value set
        # once (a breaker that stays closed, no jobs) would vanish from the scrape: the last value of
        # every gauge series is re-recorded by a daemon thread until the process ends.
        self._gauges: dict[tuple[str, tuple[tuple[str, str], ...]], tuple[float, dict[str, str]]] = {}
        self._gauges_lock = threading.Lock()
        self._refresher: threading.Thread | None = None

    def declare(self, spec: MetricSpec) -> None:
        if spec.name in self.objects:
            return
        if spec.kind == "counter":
            obj = self.module.Counter(spec.name, description=spec.description, tag_keys=spec.tag_keys)
        elif spec.kind == "gauge":
            obj = self.module.Gauge(spec.name, description=spec.description, tag_keys=spec.tag_keys)
        else:
            obj = self.module.Histogram(spec.name, description=spec.description, boundaries=list(spec.boundaries),
                                        tag_keys=spec.tag_keys)
        self.objects[spec.name] = obj

    def record(self, spec: MetricSpec, value: float, tags: dict[str, str]) -> None:
        obj = self.objects[spec.name]
        if spec.kind == "counter":
            obj.inc(value, tags=tags)
        elif spec.kind == "gauge":
            obj.set(value, tags=tags)
            with self._gauges_lock:
                self._gauges[(spec.name, _key(tags))] = (value, tags)
            self._start_refresher()
        else:
            obj.observe(value, tags=tags)

    def refresh_gauges(self) -> None:
        """Re-record the last value of every gauge series (what the refresher thread does)."""
        with self._gauges_lock:
            last = list(self._gauges.items())
        for (name, _), (value, tags) in last:
            self.objects[name].set(value, tags=tags)

    def _start_refresher(self) -> None:
        if self._refresher is not None or self.gauge_refresh_s <= 0:
            return
        self._refresher = threading.Thread(target=self._refresh_forever, name="metrics-gauge-refresh", daemon=True)
        self._refresher.start()

    def _refresh_forever(self) -> None:
        while True:
            time.sleep(self.gauge_refresh_s)
            try:
                self.refresh_gauges()
            except Exception as exc:  # noqa: BLE001 - the refresher must outlive one failed export
                log.debug("gauges not refreshed: %s", exc)


def install_module_metrics(module: Any) -> None:
    """What a replica calls at start with `ray.serve.metrics`; a second call in one process is a no-op."""
    if isinstance(_sink, MetricClassSink) and _sink.module is module:
        return
    use_sink(MetricClassSink(module))


def language_tag(code: str) -> str:
    """A language as a tag value: its ISO code when supported, else "other" (client strings never grow
    the series)."""
    try:
        return normalize_language(code)
    except ServiceError:
        return "other"


def exported(spec: MetricSpec) -> str:
    """The name Prometheus scrapes (before `_total` / `_bucket` suffixes)."""
    return EXPORT_PREFIX + spec.name


def breaker_state_value(state: str) -> int:
    return BREAKER_STATE_VALUES[state]
