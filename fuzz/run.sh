#!/bin/sh
# Usage: fuzz/run.sh SECONDS [BUILD_DIR]
# Builds the fuzz targets, then runs each for SECONDS seconds over a scratch copy of its
# seed corpus (fuzz/corpus/<target>/ is never modified). Exits non-zero if any target
# crashes, leaks or breaks an invariant; the crashing input is left in the scratch
# directory (printed) as crash-*, and printed in base64 in the log, to be turned into a
# named regression test (fuzz/corpus/<target>/regress-*, and a unit test).
set -eu
seconds=${1:?usage: fuzz/run.sh SECONDS [BUILD_DIR]}
here=$(cd "$(dirname "$0")" && pwd)
out=${2:-/tmp/op-fuzz}
"$here/build.sh" "$out"
work=$(mktemp -d "${TMPDIR:-/tmp}/op-fuzz-run.XXXXXX")
status=0
for target in fuzz_request_head fuzz_response_head fuzz_chunked fuzz_body_scanners fuzz_socks5_reply; do
    mkdir -p "$work/$target/corpus" "$work/$target/artifacts"
    cp "$here/corpus/$target/"* "$work/$target/corpus/"
    echo "== $target for ${seconds}s"
    if "$out/$target" -max_total_time="$seconds" -max_len=4096 -timeout=10 -print_final_stats=1 \
        -dict="$here/http.dict" -artifact_prefix="$work/$target/artifacts/" "$work/$target/corpus" \
        >"$work/$target/log" 2>&1; then
        tail -n 12 "$work/$target/log" | grep -E 'stat::number_of_executed_units|Done [0-9]+ runs' || true
    else
        status=1
        echo "!! $target FAILED; log: $work/$target/log; artifacts:"
        ls -l "$work/$target/artifacts/"
        tail -n 40 "$work/$target/log"
        # The input itself, so that a failure on a machine since gone (CI) can be replayed:
        # base64 -d > crash && build/fuzz/TARGET crash
        for a in "$work/$target/artifacts/"*; do
            if [ -f "$a" ]; then
                printf 'input %s (base64): %s\n' "$(basename "$a")" "$(head -c 4096 "$a" | base64 -w0)"
            fi
        done
    fi
done
if [ "$status" -eq 0 ]; then
    rm -rf "$work"
    echo "all fuzz targets ran ${seconds}s without a failure"
fi
exit "$status"
