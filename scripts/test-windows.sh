#!/bin/bash
# make test-windows: the Windows build of openai-proxy, cross-compiled with mingw-w64 and
# run under Wine on this Linux machine.
#
#   1. mbedTLS for Windows (scripts/mbedtls.sh windows_amd64, once);
#   2. build/windows: the .exe and unit_tests.exe (static, as shipped), and the .exe
#      checked as dist's is (scripts/check-windows-exe.sh: stripped, system DLLs only);
#   3. a Wine prefix in build/wineprefix, made once (wineboot takes seconds: never inside
#      a timed test), and one wineserver kept running for the whole suite;
#   4. ctest: unit_tests.exe under wine64 (CMAKE_CROSSCOMPILING_EMULATOR), then every
#      tests/e2e test against the .exe through tests/windows/wine-run;
#   5. the tests skipped on Windows, each with its reason.
#
# Without mingw-w64 or Wine it prints SKIPPED and why, and exits 0 (scripts/deps.sh
# --windows installs both). Variables: JOBS, TEST_JOBS.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
jobs=${JOBS:-2}
test_jobs=${TEST_JOBS:-1}

skip() {
    echo "test-windows: SKIPPED: $*"
    exit 0
}

cc=x86_64-w64-mingw32-gcc-posix
command -v "$cc" >/dev/null 2>&1 ||
    skip "no mingw-w64 -posix cross compiler ($cc); scripts/deps.sh --windows installs it"
wine=$(command -v wine64 || { [ -x /usr/lib/wine/wine64 ] && echo /usr/lib/wine/wine64; } || true)
[ -n "$wine" ] || skip "Wine (wine64) is not installed; scripts/deps.sh --windows installs it"
wineserver=$(command -v wineserver || { [ -x /usr/lib/wine/wineserver ] && echo /usr/lib/wine/wineserver; } || true)
command -v python3 >/dev/null 2>&1 || skip "python3 is missing (the e2e tests are Python)"

rc=0
scripts/mbedtls.sh windows_amd64 --cc "$cc" --system Windows --processor x86_64 \
    --cflags "-O2 -ffunction-sections -fdata-sections" || rc=$?
[ "$rc" = 3 ] && skip "mbedTLS's source package cannot be fetched (scripts/deps.sh --mbedtls-src)"
[ "$rc" = 0 ] || exit "$rc"

cmake -S . -B build/windows -DCMAKE_TOOLCHAIN_FILE="$top/cmake/mingw-w64-x86_64.cmake" \
    -DCMAKE_BUILD_TYPE=Release -DOP_TESTS=ON -DOP_SANITIZE=OFF -DOP_STATIC=ON -DOP_TLS=mbedtls \
    -DMBEDTLS_ROOT_DIR="$top/build/mbedtls-prefix/windows_amd64" -DCMAKE_CROSSCOMPILING_EMULATOR="$wine" \
    -DOP_STATIC_BINARY=
cmake --build build/windows -j "$jobs"

export WINEPREFIX=$top/build/wineprefix WINEDEBUG=-all OP_WINE=$wine
if [ ! -f "$WINEPREFIX/system.reg" ]; then
    echo "test-windows: creating the Wine prefix $WINEPREFIX (once)"
    start=$(date +%s)
    "$wine" wineboot -i </dev/null >/dev/null 2>&1 || true
    # Until wineboot's wineserver has gone (it lingers a few seconds): it writes the
    # registry (system.reg) as it exits, and the persistent one below must be the one
    # every test talks to.
    [ -z "$wineserver" ] || "$wineserver" -w || true
    [ -f "$WINEPREFIX/system.reg" ] || { echo "test-windows: wineboot -i failed to create $WINEPREFIX" >&2; exit 1; }
    echo "test-windows: prefix made in $(( $(date +%s) - start )) s"
fi
# One wineserver for the whole run (-p: persistent), rather than one started and stopped
# around each proxy; killed at the end whatever happens.
# (wineserver -p fails when one already serves this prefix: that one is used then.)
if [ -n "$wineserver" ]; then
    "$wineserver" -p 2>/dev/null || true
    trap '"$wineserver" -k 2>/dev/null || true' EXIT
fi
# The session's first Wine process starts Wine's services (services.exe, rpcss...), which
# inherit its standard streams and outlive it: started here with /dev/null, so that no
# test reading a program's output through a pipe waits for them.
"$wine" cmd /c exit </dev/null >/dev/null 2>&1 || true

status=0
scripts/check-windows-exe.sh build/windows/openai-proxy.exe || status=$?
# A test that fails is run once more (--repeat until-pass:2), and both runs stay in the
# log. Why: once in the CI runs of 2026-12-03 the Wine process hosting the .exe died of
# SIGSEGV (status -11, nothing on stderr with WINEDEBUG=-all) while stopping on its Ctrl-C
# event at the end of a test_streaming case; 48 further stops of the same tests did not
# repeat it. Whether Wine or the proxy's shutdown is at fault is not known yet: see the
# lines "Test Failed" / "Test Passed" of a test that needed the second run.
ctest --test-dir build/windows --output-on-failure -j "$test_jobs" --repeat until-pass:2 || status=$?

# What was skipped on Windows, and why (harness.main prints "  skipped <test>: <reason>").
log=build/windows/Testing/Temporary/LastTest.log
if [ -f "$log" ]; then
    skipped=$(grep -E '^  skipped ' "$log" || true)
    if [ -n "$skipped" ]; then
        echo "test-windows: tests skipped on the Windows build:"
        echo "$skipped"
    fi
fi
exit "$status"
