#!/usr/bin/env bash
# Installs nvcc (CUDA 13.0) from PyPI into a virtual environment and prints the path of nvcc on
# stdout (the last line; progress goes to stderr). Idempotent: does nothing but print the path when
# the pinned version is already there. No GPU or driver is needed: nvcc only compiles.
#
#   NVCC=$(./scripts/install-nvcc.sh) cargo build --features cuda
#
# All four wheels are pinned: an unpinned nvidia-nvvm pulls a newer cicc whose PTX the 13.0 ptxas
# rejects. GRAFT_NVCC_VENV picks the environment (default ~/.cache/graft/nvcc-13.0.88, shared by
# work trees and CI runs on one machine).
set -euo pipefail
venv=${GRAFT_NVCC_VENV:-$HOME/.cache/graft/nvcc-13.0.88}
pins=(nvidia-cuda-nvcc==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-crt==13.0.88 nvidia-cuda-runtime==13.0.96)
find_nvcc() { ls "$venv"/lib/python3*/site-packages/nvidia/cu13/bin/nvcc 2>/dev/null | head -n1; }
nvcc=$(find_nvcc || true)
if [ -n "$nvcc" ] && "$nvcc" --version 2>/dev/null | grep -q "V13.0.88"; then
    echo "$nvcc"
    exit 0
fi
if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
if [ ! -x "$venv/bin/python" ]; then
    echo "== creating $venv" >&2
    mkdir -p "$(dirname "$venv")"
    if ! python3 -m venv "$venv" >&2; then
        # Debian's python3 lacks ensurepip until python3-venv is installed.
        rm -rf "$venv"
        $SUDO apt-get update -qq && $SUDO apt-get install -y -qq python3-venv >/dev/null
        python3 -m venv "$venv" >&2
    fi
fi
echo "== installing ${pins[*]}" >&2
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${pins[@]}" >&2
nvcc=$(find_nvcc)
[ -n "$nvcc" ] || { echo "install-nvcc.sh: nvcc not found under $venv after install" >&2; exit 1; }
"$nvcc" --version >&2
echo "$nvcc"
