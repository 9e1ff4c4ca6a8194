#!/usr/bin/env bash
# The whole test suite, with all set-up, on a fresh Debian machine:
#   - libclang (for the bindgen staleness check of csrc/kernels.h against src/kernels/sys.rs),
#   - the default model (scripts/fetch-model.sh, cached in models/),
#   - cargo test of every unit and integration test (the model tests run the real model).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! ls /usr/lib/llvm-*/lib/libclang.so >/dev/null 2>&1 && ! ls /usr/lib/x86_64-linux-gnu/libclang*.so* >/dev/null 2>&1; then
    echo "== installing libclang for bindgen" >&2
    if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq libclang-dev >/dev/null
fi
echo "== fetching the default model" >&2
./scripts/fetch-model.sh
echo "== checking src/kernels/sys.rs against csrc/kernels.h (bindgen)" >&2
cargo build --quiet --features bindgen
echo "== cargo test" >&2
cargo test --all-targets "$@" 2>&1
