# make setup : idempotent; apt packages, .venv with pinned deps (torch 2.13.0 CPU first), weights.
# make run   : setup if needed, then the whole service on the embedded CPU profile (HTTP 127.0.0.1:8000).
# make test  : setup if needed, lint (ruff, import layers), then unit and integration tests (real Ray, models).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.stamp
export RAY_AUTH_MODE := disabled
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export RAY_USAGE_STATS_ENABLED := 0

APT_PACKAGES := espeak-ng sox libsndfile1 redis-server chromium

.PHONY: setup apt venv weights run test unit integration bench bench-zmq bench-cache bench-translator bench-whisper bench-cpu lint clean

setup: apt $(STAMP) weights

apt:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing apt packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

$(STAMP): pyproject.toml
	test -x $(PY) || python3.11 -m venv $(VENV) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade "pip>=24"
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[dev]"
	touch $(STAMP)

weights: $(STAMP)
	$(PY) -m serve_app.assembly.cli prepare

# Ray's metrics agent serves every replica's metrics (voice_translator_*, ray_serve_*) in Prometheus
# text on http://127.0.0.1:$(METRICS_PORT)/metrics while `make run` runs.
METRICS_PORT ?= 8080

# The embedded head runs without Ray's dashboard: `serve run` does not need it, it is ~250 MiB of the
# 3 GiB budget (bench/voice_graph_vs_naive.py), and it is a job-submission API on loopback.
# `make run RAY_DASHBOARD=true` brings it back, with `serve status` and http://127.0.0.1:8265.
RAY_DASHBOARD ?= false

run: setup
	$(VENV)/bin/ray start --head --disable-usage-stats --include-dashboard=$(RAY_DASHBOARD) --dashboard-host=127.0.0.1 \
	  --metrics-export-port=$(METRICS_PORT)
	trap '$(VENV)/bin/ray stop' EXIT; $(VENV)/bin/serve run --address=auto serve_config.local.yaml

unit: setup
	$(PY) -m pytest -q -m "not integration" tests/unit

integration: setup
	$(PY) -m pytest -q -m integration tests/integration

test: setup lint
	$(PY) -m pytest -q tests

bench: setup
	set -o pipefail; $(PY) bench/voice_graph_vs_naive.py | tee bench/last_run_voice_graph.txt

bench-zmq: setup
	$(PY) bench/zmq_vs_http.py

bench-cache: setup
	$(PY) bench/cache_hit_vs_miss.py

bench-translator: setup
	set -o pipefail; $(PY) bench/translator_quality.py | tee bench/last_run_translator_quality.txt

bench-whisper: setup
	set -o pipefail; $(PY) bench/whisper_decoding.py | tee bench/last_run_whisper_decoding.txt

bench-cpu: setup
	$(PY) bench/cpu_timeline.py

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

clean:
	rm -rf $(VENV) .pytest_cache
