#!/bin/bash
# Builds mbedTLS 2.28 from Debian's source package for a target that Debian has no
# libmbedtls-dev for (Windows via mingw-w64, macOS via zig cc, routers with a trimmed
# configuration), as static libraries in a prefix that CMake's -DMBEDTLS_ROOT_DIR takes.
#
#   scripts/mbedtls.sh NAME [options]        ->  build/mbedtls-prefix/NAME/{include,lib}
#
#   --cc COMPILER         C compiler (a path or a name on PATH; default: cc)
#   --ar AR               archiver (default: CMake's choice next to the compiler)
#   --ranlib RANLIB       ranlib (default: CMake's choice)
#   --system NAME         CMAKE_SYSTEM_NAME when cross-compiling (Linux, Windows, Darwin)
#   --processor CPU       CMAKE_SYSTEM_PROCESSOR (informational)
#   --config FILE         a shell file of `scripts/config.py` lines (set/unset/...) run
#                         after the defaults below; see platform/mbedtls/
#   --cflags FLAGS        extra C flags (e.g. -Os -ffunction-sections -fdata-sections)
#
# Always: MBEDTLS_THREADING_C + MBEDTLS_THREADING_PTHREAD (the proxy shares one
# configuration between worker threads; mingw's -posix toolchain has winpthreads),
# MBEDTLS_X509_TRUSTED_CERTIFICATE_CALLBACK (the proxy keeps a CA bundle as an index and
# hands mbedTLS the few anchors a chain needs: src/tls_mbedtls.cpp), no programs, no tests. The installed include/mbedtls/config.h is the configuration the
# libraries were built with, so the proxy compiles against the same one.
#
# The source: build/mbedtls-prefix/src/mbedtls_*.orig.tar.gz, fetched once with
# `apt-get source --download-only mbedtls` (needs a deb-src entry: scripts/deps.sh
# --mbedtls-src adds one in a file of its own), or MBEDTLS_SRC_TARBALL=path.
# Rebuilds only when the options or the config file changed (a stamp holds them).
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD

name=${1:?usage: scripts/mbedtls.sh NAME [--cc CC] [--ar AR] [--ranlib RANLIB] [--system NAME] [--processor CPU] [--config FILE] [--cflags FLAGS]}
shift
cc=cc ar="" ranlib="" system="" processor="" config="" cflags=""
while [ $# -gt 0 ]; do
    case "$1" in
        --cc) cc=$2 ;;
        --ar) ar=$2 ;;
        --ranlib) ranlib=$2 ;;
        --system) system=$2 ;;
        --processor) processor=$2 ;;
        --config) config=$2 ;;
        --cflags) cflags=$2 ;;
        *) echo "mbedtls.sh: unknown option '$1'" >&2; exit 2 ;;
    esac
    shift 2
done

base=$top/build/mbedtls-prefix
prefix=$base/$name
work=$base/work-$name
mkdir -p "$base/src"

tarball=${MBEDTLS_SRC_TARBALL:-}
if [ -z "$tarball" ]; then
    tarball=$(ls "$base"/src/mbedtls_2.28.*.orig.tar.gz 2>/dev/null | tail -1 || true)
fi
if [ -z "$tarball" ]; then
    echo "mbedtls.sh: fetching Debian's mbedtls source package into $base/src"
    if ! (cd "$base/src" && apt-get source --download-only mbedtls >/dev/null); then
        echo "mbedtls.sh: 'apt-get source mbedtls' failed: it needs a deb-src entry" \
             "(run scripts/deps.sh --mbedtls-src as root), or set MBEDTLS_SRC_TARBALL" >&2
        exit 3
    fi
    tarball=$(ls "$base"/src/mbedtls_2.28.*.orig.tar.gz | tail -1)
fi

# Everything that shapes the result goes into the stamp.
stamp_text=$(printf '%s\n' "$tarball" "$cc" "$ar" "$ranlib" "$system" "$processor" "$cflags"
             [ -n "$config" ] && cat "$config"; cat "$0")
if [ -f "$prefix/.stamp" ] && [ "$(cat "$prefix/.stamp")" = "$stamp_text" ] &&
   [ -f "$prefix/lib/libmbedtls.a" ]; then
    echo "mbedtls.sh: $prefix is up to date"
    exit 0
fi

rm -rf "$work" "$prefix"
mkdir -p "$work"
tar xzf "$tarball" -C "$work"
src=$(echo "$work"/*/)
src=${src%/}

(
    cd "$src"
    python3 scripts/config.py set MBEDTLS_THREADING_C
    python3 scripts/config.py set MBEDTLS_THREADING_PTHREAD
    python3 scripts/config.py set MBEDTLS_X509_TRUSTED_CERTIFICATE_CALLBACK
    if [ -n "$config" ]; then
        # shellcheck disable=SC1090  # lines such as: cfg unset MBEDTLS_SSL_SRV_C
        cfg() { python3 scripts/config.py "$@"; }
        . "$top/$config" 2>/dev/null || . "$config"
    fi
)

cmake_args=(-S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=MinSizeRel
            -DENABLE_PROGRAMS=OFF -DENABLE_TESTING=OFF -DUSE_SHARED_MBEDTLS_LIBRARY=OFF
            -DUSE_STATIC_MBEDTLS_LIBRARY=ON -DMBEDTLS_FATAL_WARNINGS=OFF
            -DCMAKE_INSTALL_PREFIX="$prefix" -DCMAKE_C_COMPILER="$cc"
            -DCMAKE_C_FLAGS="$cflags")
[ -n "$ar" ] && cmake_args+=(-DCMAKE_AR="$(command -v "$ar" || echo "$ar")")
[ -n "$ranlib" ] && cmake_args+=(-DCMAKE_RANLIB="$(command -v "$ranlib" || echo "$ranlib")")
[ -n "$system" ] && cmake_args+=(-DCMAKE_SYSTEM_NAME="$system")
[ -n "$processor" ] && cmake_args+=(-DCMAKE_SYSTEM_PROCESSOR="$processor")
cmake "${cmake_args[@]}" >"$work/configure.log" || { cat "$work/configure.log" >&2; exit 1; }
cmake --build "$work/build" -j "${JOBS:-$(nproc 2>/dev/null || echo 2)}" >"$work/build.log" ||
    { tail -50 "$work/build.log" >&2; exit 1; }
cmake --install "$work/build" >/dev/null
printf '%s' "$stamp_text" >"$prefix/.stamp"
rm -rf "$work"
echo "mbedtls.sh: built $prefix ($(du -sh "$prefix/lib" | cut -f1) of static libraries)"
