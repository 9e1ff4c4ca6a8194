#!/usr/bin/env bash
# The demo, with all set-up: fetch the default model if missing, build graft, generate from a prompt,
# then measure speed.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/fetch-model.sh
cargo build --release --quiet
prompt=${1:-"Once upon a time, there was a little robot who"}
echo "== graft run -p \"$prompt\" --temp 0 -n 48" >&2
./target/release/graft run -p "$prompt" --temp 0 -n 48
echo "== graft bench -p 128 -n 64 -t 2" >&2
./target/release/graft bench -p 128 -n 64 -t 2 -r 3
