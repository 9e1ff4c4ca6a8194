#!/usr/bin/env bash
# The whole test suite, with all set-up, on a fresh Debian machine:
#   - libclang (for the bindgen staleness check of csrc/kernels.h against src/kernels/sys.rs),
#   - the default model (scripts/fetch-model.sh, cached in models/) and the test adapters
#     (scripts/make-test-adapters.sh),
#   - nvcc from PyPI (scripts/install-nvcc.sh), then the CUDA kernels compiled warning-free and the
#     `cuda` tests built with the `cuda` feature (no GPU here: the GPU tests print SKIP), and the
#     CUDA decoders built for the host and checked against the C reference,
#   - valgrind and pkg-config, for the C API test (tests/capi_c.rs),
#   - cargo test of every unit and integration test (the model tests run the real model).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
apt_updated=
apt_install() {
    [ -n "$apt_updated" ] || { $SUDO apt-get update -qq; apt_updated=1; }
    $SUDO apt-get install -y -qq "$@" >/dev/null
}
# libclang itself (libclang.so*, libclang-<version>.so*), not libclang-cpp, which other packages
# bring and bindgen cannot use.
have_libclang() {
    local f
    for f in /usr/lib/llvm-*/lib/libclang.so* /usr/lib/llvm-*/lib/libclang-[0-9]*.so* \
        /usr/lib/*-linux-gnu/libclang.so* /usr/lib/*-linux-gnu/libclang-[0-9]*.so*; do
        [ -e "$f" ] && return 0
    done
    return 1
}
if ! have_libclang; then
    echo "== installing libclang for bindgen" >&2
    apt_install libclang-dev
fi
echo "== NEON kernels against their references (cross-compiled, run under qemu-aarch64)" >&2
if ! command -v aarch64-linux-gnu-gcc >/dev/null || ! command -v qemu-aarch64 >/dev/null; then
    apt_install gcc-aarch64-linux-gnu qemu-user || true
fi
if command -v aarch64-linux-gnu-gcc >/dev/null && command -v qemu-aarch64 >/dev/null; then
    tmp=$(mktemp -d)
    aarch64-linux-gnu-gcc -O2 -std=c11 -Wall -Werror -march=armv8.2-a+dotprod+fp16 -Icsrc tests/c/neon_check.c \
        csrc/cpu/ops_neon.c csrc/cpu/ops_ref.c csrc/cpu/quant_ref.c csrc/cpu/quant_neon.c \
        csrc/cpu/adapter_ref.c csrc/cpu/adapter_neon.c csrc/cpu/int8_ref.c csrc/cpu/int8_neon.c -lm -static -o "$tmp/neon_check"
    qemu-aarch64 "$tmp/neon_check"
    rm -rf "$tmp"
else
    echo "SKIP: no aarch64 cross compiler or qemu-aarch64 (apt-get install gcc-aarch64-linux-gnu qemu-user)" >&2
fi
if ! command -v valgrind >/dev/null || ! command -v pkg-config >/dev/null; then
    echo "== installing valgrind and pkg-config for the C API test" >&2
    apt_install valgrind pkg-config || echo "could not install them: the C API test falls back to ASan and skips pkg-config" >&2
fi
echo "== fetching the default model, making the test adapters" >&2
./scripts/fetch-model.sh
./scripts/make-test-adapters.sh
echo "== checking src/kernels/sys.rs against csrc/kernels.h (bindgen)" >&2
cargo build --quiet --features bindgen
echo "== CUDA: csrc/cuda/*.cu through nvcc (warnings are errors), tests/cuda.rs with the cuda feature" >&2
nvcc=$(./scripts/install-nvcc.sh)
NVCC="$nvcc" cargo test --quiet --features cuda --test cuda 2>&1
echo "== CUDA decoders (dequant.cuh built for the host) against the C reference, bit for bit" >&2
tmp=$(mktemp -d)
cc -O2 -std=c11 -ffp-contract=off -Icsrc -c csrc/cpu/quant_ref.c -o "$tmp/quant_ref.o"
"$nvcc" -std=c++17 -Werror all-warnings -Xcompiler -ffp-contract=off -Icsrc -L"$(dirname "$(dirname "$nvcc")")/lib" \
    tests/c/cuda_dequant_check.cu "$tmp/quant_ref.o" -o "$tmp/cuda_dequant_check"
"$tmp/cuda_dequant_check"
rm -rf "$tmp"
if [ "$(uname -m)" = x86_64 ] && [ "$(uname -s)" = Linux ]; then
    # Leak and memory-error check of the adapter registry under concurrency (3 generators against
    # 1000 load/rescale/swap/unload cycles): AddressSanitizer with LeakSanitizer, which fails the run
    # on any leak or invalid access. (valgrind runs threads one at a time and the pool's idle workers
    # spin, so it cannot finish this test.) -Zsanitizer needs RUSTC_BOOTSTRAP on a stable toolchain.
    echo "== adapter churn under AddressSanitizer + LeakSanitizer" >&2
    RUSTC_BOOTSTRAP=1 RUSTFLAGS="-Zsanitizer=address" CARGO_TARGET_DIR=target/asan \
        cargo test --quiet --release --target x86_64-unknown-linux-gnu --test adapter_registry 2>&1
fi
echo "== cargo test" >&2
cargo test --all-targets "$@" 2>&1
