#!/usr/bin/env bash
# The demo, with all set-up: fetch the default model if missing (and make two test adapters), build
# graft, generate from a prompt, hot-swap two adapters on one loaded base, then measure speed.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/fetch-model.sh
./scripts/make-test-adapters.sh
cargo build --release --quiet
prompt=${1:-"Once upon a time, there was a little robot who"}
echo "== graft run -p \"$prompt\" --temp 0 -n 48" >&2
./target/release/graft run -p "$prompt" --temp 0 -n 48
echo "== graft swap: two adapters alternately on one base (no reload), swap time on stderr" >&2
./target/release/graft swap -p "The capital of France is" -n 20 --rounds 2 \
    -a models/lora-r8-s7.gguf:0.5 -a models/lora-r16-s1.gguf
echo "== graft bench -p 128 -n 64 -t 2" >&2
./target/release/graft bench -p 128 -n 64 -t 2 -r 3
