"""The Grafana dashboard and the alert rules read only metrics that exist: ours as declared (in Ray's
export namespace, with the suffix of their kind), Serve's as captured from a real scrape of the test
cluster (tests/fixtures/ray_serve_metric_names.txt; tests/integration/test_metrics_logs.py checks the
dashboard's names against a live scrape too)."""

from __future__ import annotations

import json

import pytest

from serve_app.observability.metrics import EXPORT_PREFIX, REGISTRY
from tests.fixtures.dashboard import (
    ALERTS,
    DASHBOARD,
    alert_metric_names,
    base_name,
    dashboard_metric_names,
    ray_serve_builtins,
)

KIND_SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}


def check_known(names: set[str]) -> None:
    builtins = ray_serve_builtins()
    for sample in names:
        if sample.startswith("ray_serve_"):
            assert sample in builtins, f"{sample} is not a Serve metric seen in a real scrape"
            continue
        assert sample.startswith(EXPORT_PREFIX + "voice_translator_"), f"{sample}: not as Ray exports it"
        declared = base_name(sample)[len(EXPORT_PREFIX):]
        spec = REGISTRY.get(declared) or REGISTRY.get(sample[len(EXPORT_PREFIX):])
        assert spec is not None, f"{sample} is not declared in serve_app/observability/metrics.py"
        suffix = sample[len(EXPORT_PREFIX) + len(spec.name):]
        assert suffix in KIND_SUFFIXES[spec.kind], f"{sample}: a {spec.kind} has no {suffix!r} series"


def test_dashboard_names_exist() -> None:
    names = dashboard_metric_names()
    assert names, "no metric found in the dashboard's queries"
    check_known(names)


def test_dashboard_shows_every_declared_metric_and_the_replica_counts() -> None:
    used = {base_name(n)[len(EXPORT_PREFIX):] for n in dashboard_metric_names() if "voice_translator_" in n}
    assert set(REGISTRY) <= used, sorted(set(REGISTRY) - used)
    assert "ray_serve_deployment_replica_healthy" in dashboard_metric_names()  # autoscaling, seen


def test_alert_rules_are_complete_and_use_known_names() -> None:
    import yaml

    rules = [r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]]
    assert rules
    for rule in rules:
        assert rule["alert"].startswith("VoiceTranslator") and rule["expr"].strip(), rule
        assert rule["labels"]["severity"] in ("critical", "warning", "info"), rule
        assert rule["annotations"]["summary"] and rule["annotations"]["runbook"].startswith("README.md#runbook")
    check_known(alert_metric_names())


@pytest.mark.parametrize("panel", json.loads(DASHBOARD.read_text())["panels"], ids=lambda p: p["title"])
def test_every_panel_queries_prometheus(panel: dict) -> None:
    assert panel["targets"] and all(t["expr"] for t in panel["targets"])
    assert panel["datasource"]["type"] == "prometheus"
