#!/bin/bash
# Builds dist/windows_<arch>/openai-proxy.exe (scripts/dist.sh windows_<arch> comes here).
#
#   windows_amd64  cross-built on Debian with mingw-w64's -posix toolchain (std::thread over
#                  winpthreads) and mbedTLS 2.28 from Debian's source package, built for it
#                  by scripts/mbedtls.sh: static (-static: libgcc, libstdc++, winpthreads
#                  inside), stripped. Packages: scripts/deps.sh --windows.
#   windows_arm64  not buildable here: Debian 12 ships mingw-w64 for i686 and x86_64 only
#                  (no aarch64-w64-mingw32 GCC; GCC itself has no aarch64 Windows target in
#                  version 12), and its clang-14 has no aarch64 mingw runtime to link
#                  against. llvm-mingw (not packaged by Debian) would be the way.
#
# Verification (scripts/check-windows-exe.sh, which `make test-windows` runs too): PE32+
# x86-64 console program, stripped, importing only DLLs that every Windows has (objdump
# -p: anything else fails the build), and `-version` run under Wine when installed.
#
# Exit status as scripts/dist.sh: 0 built and verified; 3 cannot be built on this
# machine (explained on stderr); anything else: the build or its verification failed.
set -euo pipefail
cd "$(dirname "$0")/.."

arch=${1:?usage: scripts/dist-windows.sh amd64}
platform=windows_$arch
out=dist/$platform/openai-proxy.exe
build=build/static-$platform
jobs=${JOBS:-$(nproc 2>/dev/null || echo 2)}

cannot() {
    echo "dist/$platform: cannot be built on this machine: $*" >&2
    exit 3
}

case "$arch" in
    amd64) ;;
    arm64) cannot "Debian's mingw-w64 targets i686 and x86_64 only; an aarch64 Windows build needs\
 llvm-mingw (clang with an aarch64-w64-mingw32 runtime), which Debian does not package" ;;
    *) echo "dist/$platform: unknown Windows architecture '$arch' (amd64)" >&2; exit 2 ;;
esac

cc=x86_64-w64-mingw32-gcc-posix
cxx=x86_64-w64-mingw32-g++-posix
command -v "$cxx" >/dev/null 2>&1 && command -v "$cc" >/dev/null 2>&1 ||
    cannot "the mingw-w64 -posix cross compilers ($cxx; Debian: scripts/deps.sh --windows)"

# mbedTLS for Windows, built once into build/mbedtls-prefix/windows_amd64.
rc=0
scripts/mbedtls.sh windows_amd64 --cc "$cc" --system Windows --processor x86_64 \
    --cflags "-O2 -ffunction-sections -fdata-sections" || rc=$?
[ "$rc" = 3 ] && cannot "mbedTLS's source (scripts/deps.sh --mbedtls-src, then apt-get source works)"
[ "$rc" = 0 ] || exit "$rc"

cmake -S . -B "$build" -DCMAKE_TOOLCHAIN_FILE="$PWD/cmake/mingw-w64-x86_64.cmake" -DCMAKE_BUILD_TYPE=Release \
    -DOP_TESTS=OFF -DOP_SANITIZE=OFF -DOP_STATIC=ON -DOP_TLS=mbedtls \
    -DMBEDTLS_ROOT_DIR="$PWD/build/mbedtls-prefix/windows_amd64"
cmake --build "$build" --target openai-proxy -j "$jobs"
mkdir -p "dist/$platform"
install -m 755 "$build/openai-proxy.exe" "$out.tmp"
mv -f "$out.tmp" "$out"

scripts/check-windows-exe.sh "$out"
echo "$out: $(wc -c <"$out") bytes"
