#!/usr/bin/env bash
# Installs graft's C library under PREFIX: include/graft.h, lib/libgraft.a, the shared library
# (lib/libgraft.so, or .dylib on macOS) and lib/pkgconfig/graft.pc (from graft.pc.in), so that a C
# or C++ build finds them with pkg-config:
#   cc app.c $(pkg-config --cflags --libs graft)
#
#   scripts/install.sh PREFIX                    builds the release library, then installs it
#   GRAFT_LIB_DIR=DIR scripts/install.sh PREFIX  installs the libraries already built in DIR
set -euo pipefail
prefix=${1:?usage: scripts/install.sh PREFIX}
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$prefix"
prefix=$(cd "$prefix" && pwd)
if [ -z "${GRAFT_LIB_DIR:-}" ]; then
    (cd "$root" && cargo build --release --lib)
    GRAFT_LIB_DIR=$root/target/release
fi
case "$(uname -s)" in
    Darwin) shared=libgraft.dylib; libs_private="-framework Security -liconv -lSystem -lc -lm" ;;
    *) shared=libgraft.so; libs_private="-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc" ;;
esac
for f in libgraft.a "$shared"; do
    [ -f "$GRAFT_LIB_DIR/$f" ] || { echo "install.sh: $GRAFT_LIB_DIR/$f is missing" >&2; exit 1; }
done
mkdir -p "$prefix/include" "$prefix/lib/pkgconfig"
install -m 644 "$root/include/graft.h" "$prefix/include/graft.h"
install -m 644 "$GRAFT_LIB_DIR/libgraft.a" "$prefix/lib/libgraft.a"
install -m 755 "$GRAFT_LIB_DIR/$shared" "$prefix/lib/$shared"
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/Cargo.toml" | head -n 1)
sed -e "s|@PREFIX@|$prefix|" -e "s|@VERSION@|$version|" -e "s|@LIBS_PRIVATE@|$libs_private|" \
    "$root/graft.pc.in" > "$prefix/lib/pkgconfig/graft.pc"
echo "installed graft $version under $prefix (pkg-config: PKG_CONFIG_PATH=$prefix/lib/pkgconfig)" >&2
