#!/bin/bash
# Runs tests/small/sdk_checks.py against each small (mbedTLS) binary named, under its
# qemu-<cpu>-static when it is not this machine's CPU (binfmt need not be registered: a
# wrapper script runs `qemu-<cpu>-static <binary> "$@"`, which is what OP_BINARY names).
#
#   tests/small/run.sh [--full PLATFORM] linux_mipsle-small linux_mips-small ...
#                                            (each runs dist/<platform>/openai-proxy)
#
# --full PLATFORM: for that one, every tests/e2e/test_*.py too, one after the other, through
# the same wrapper (the chroot test skips: it would need qemu inside the chroot).
# A platform whose binary is missing fails; one whose qemu is missing is named as skipped.
set -uo pipefail
cd "$(dirname "$0")/../.."
top=$PWD
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
case "$(uname -m)" in x86_64) host=amd64 ;; aarch64) host=arm64 ;; *) host=other ;; esac

full=""
if [ "${1:-}" = --full ]; then
    full=${2:?--full needs a platform}
    shift 2
fi

# Every e2e test file against OP_BINARY=$1; prints one line per file.
run_e2e() {
    local binary=$1 t rc start bad=0
    for t in tests/e2e/test_*.py; do
        start=$SECONDS
        OP_BINARY=$binary OP_TLS=mbedtls timeout 900 python3 "$t" >"$tmp/e2e.log" 2>&1
        rc=$?
        case $rc in
            0) echo "    $(basename "$t"): passed ($((SECONDS - start)) s)" ;;
            77) echo "    $(basename "$t"): skipped: $(grep -m1 -i 'skip' "$tmp/e2e.log")" ;;
            *)
                echo "    $(basename "$t"): FAILED (status $rc)"; tail -40 "$tmp/e2e.log"
                if [ "${OP_E2E_RETRY:-0}" = 1 ]; then
                    # CI's setting: a file that fails once runs again; both runs are logged.
                    OP_BINARY=$binary OP_TLS=mbedtls timeout 900 python3 "$t" >"$tmp/e2e.log" 2>&1
                    rc=$?
                    case $rc in
                        0|77) echo "    $(basename "$t"): passed on its second run" ;;
                        *) echo "    $(basename "$t"): FAILED again (status $rc)"; tail -40 "$tmp/e2e.log"; bad=1 ;;
                    esac
                else
                    bad=1
                fi ;;
        esac
    done
    return $bad
}

passed=() failed=() skipped=()
for platform in "$@"; do
    arch=${platform#linux_}
    arch=${arch%-small}
    bin=$top/dist/$platform/openai-proxy
    case "$arch" in
        amd64) qemu=x86_64 ;; arm64) qemu=aarch64 ;; armv7) qemu=arm ;;
        mipsle) qemu=mipsel ;; mips) qemu=mips ;;
        *) echo "run.sh: unknown platform $platform" >&2; failed+=("$platform"); continue ;;
    esac
    if [ ! -x "$bin" ]; then
        echo "=== $platform: FAIL: no $bin (make dist/$platform/openai-proxy)"
        failed+=("$platform")
        continue
    fi
    op_binary=$bin
    how="natively"
    if [ "$arch" != "$host" ]; then
        if ! command -v "qemu-$qemu-static" >/dev/null 2>&1; then
            echo "=== $platform: SKIP: qemu-$qemu-static is not installed (scripts/deps.sh --small)"
            skipped+=("$platform")
            continue
        fi
        op_binary=$tmp/$platform
        printf '#!/bin/sh\nexec %s %s "$@"\n' "$(command -v "qemu-$qemu-static")" "$bin" >"$op_binary"
        chmod +x "$op_binary"
        how="under qemu-$qemu-static"
    fi
    echo "=== $platform ($(wc -c <"$bin") bytes), $how"
    start=$SECONDS
    ok=1
    OP_BINARY=$op_binary python3 tests/small/sdk_checks.py 2>&1 | tail -12 || ok=0
    if [ "$platform" = "$full" ]; then
        echo "=== $platform: every e2e test, $how"
        run_e2e "$op_binary" || ok=0
    fi
    if [ "$ok" = 1 ]; then passed+=("$platform"); else failed+=("$platform"); fi
    echo "=== $platform: $((SECONDS - start)) s"
done

case " $* " in
    *" $full "*|"  ") ;;
    *) [ -z "$full" ] || { echo "=== $full: SKIP: not built here, so no run of every e2e test under qemu"; skipped+=("$full (e2e)"); } ;;
esac

echo
echo "tests/small: passed: ${passed[*]:-none}"
[ ${#skipped[@]} -eq 0 ] || echo "tests/small: skipped: ${skipped[*]}"
[ ${#failed[@]} -eq 0 ] || { echo "tests/small: FAILED: ${failed[*]}"; exit 1; }
