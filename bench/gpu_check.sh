#!/usr/bin/env bash
# GPU check, for a machine with an NVIDIA GPU (cannot run on the CPU-only build machines):
#   bash bench/gpu_check.sh [--runs 10]
# 1. installs what the GPU profile needs into .venv-gpu: torch's CUDA build (PyPI's default Linux wheel,
#    which brings the CUDA runtime, cuBLAS and cuDNN that CTranslate2 also loads), the project, and
#    onnxruntime-gpu (pinned in the `gpu` extra) in place of the CPU onnxruntime for Piper/Kokoro;
# 2. assembles the registry-shipped weights once (voice-translator prepare);
# 3. runs bench/gpu_check.py: serve_config.yaml deployed on the GPU, the four model deployments sharing
#    the device (serve status, nvidia-smi per-process memory), then the voice-message p50 over 10 runs
#    (5 s French -> en, es, de) beside the same on CPU (serve_config.local.yaml).
# Under 10 minutes once the wheels are downloaded (first install: add the download, ~3 GB).
set -euo pipefail
cd "$(dirname "$0")/.."

command -v nvidia-smi >/dev/null || { echo "nvidia-smi not found: this check needs an NVIDIA GPU and driver" >&2; exit 2; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
NUM_GPUS=$(nvidia-smi --query-gpu=index --format=csv,noheader | wc -l)

for p in espeak-ng sox libsndfile1; do
  dpkg -s "$p" >/dev/null 2>&1 || { SUDO=$([ "$(id -u)" = 0 ] || echo sudo); $SUDO apt-get update -qq; \
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq espeak-ng sox libsndfile1 >/dev/null; break; }
done

VENV=${VENV:-.venv-gpu}
PY=$VENV/bin/python
if [ ! -x "$PY" ]; then
  python3.11 -m venv "$VENV"
  "$PY" -m pip install -q --upgrade "pip>=24"
  "$PY" -m pip install -q torch==2.13.0              # CUDA build from PyPI (the CPU one is only in the local index)
  "$PY" -m pip install -q -e ".[dev]"
  # onnxruntime-gpu is the same module as onnxruntime: swap the build, without letting pip re-resolve
  # piper-tts's `onnxruntime` requirement back in (its other dependencies are already installed).
  "$PY" -m pip uninstall -q -y onnxruntime
  "$PY" -m pip install -q --no-deps "$(grep -oE 'onnxruntime-gpu==[0-9.]+' pyproject.toml)"
fi
"$PY" - <<'PY'
import ctranslate2, onnxruntime, torch
print(f"torch {torch.__version__} cuda={torch.cuda.is_available()}; ctranslate2 CUDA devices: "
      f"{ctranslate2.get_cuda_device_count()}; onnxruntime providers: {onnxruntime.get_available_providers()}")
PY
"$PY" -m serve_app.assembly.cli prepare

export RAY_AUTH_MODE=disabled HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 RAY_USAGE_STATS_ENABLED=0 VIRTUAL_ENV=$PWD/$VENV
export PYTHONPATH=$PWD
timeout 900 "$PY" bench/gpu_check.py --num-gpus "$NUM_GPUS" --num-cpus "$(nproc)" "$@"
