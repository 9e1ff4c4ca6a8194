#!/usr/bin/env bash
# Makes the adapters the tests and benchmarks use, next to the default model in models/ (ignored):
#   lora-r8-s7.gguf   random rank-8 LoRA on all 7 projections (the reference PPL figures' adapter),
#   lora-r16-s1.gguf  random rank-16 LoRA on all 7 projections (the speed figures' adapter).
# scripts/make_gguf_lora.py needs numpy and gguf from PyPI: installed into models/.pyenv if missing.
# Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/fetch-model.sh
base=models/SmolLM2-135M-Instruct.Q4_1.gguf
py=python3
if ! python3 -c "import gguf, numpy" 2>/dev/null; then
    if [ ! -x models/.pyenv/bin/python ] || ! models/.pyenv/bin/python -c "import gguf, numpy" 2>/dev/null; then
        python3 -m venv models/.pyenv
        models/.pyenv/bin/pip install --quiet gguf numpy
    fi
    py=models/.pyenv/bin/python
fi
[ -s models/lora-r8-s7.gguf ] || $py scripts/make_gguf_lora.py "$base" models/lora-r8-s7.gguf 8 7 all 0.08
[ -s models/lora-r16-s1.gguf ] || $py scripts/make_gguf_lora.py "$base" models/lora-r16-s1.gguf 16 1 all 0.02
