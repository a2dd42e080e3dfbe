#!/bin/sh
# Installs the Debian/Ubuntu packages that building and testing openai-proxy need.
#
#   scripts/deps.sh            build + `make test` (+ `make test-asan`, `make test-mbedtls`,
#                              `make dist/linux_amd64/...`)
#   scripts/deps.sh --fuzz     also clang and its fuzzer runtime, for `make fuzz`
#   scripts/deps.sh --bench    also nginx, haproxy and wrk, for the benchmarks
#   scripts/deps.sh --all      all of the above
#   scripts/deps.sh --cross    also cross compilers, qemu-user-static and the targets'
#                              OpenSSL (multiarch libssl-dev:arm64, :armhf) for `make dist`
#   scripts/deps.sh --small    the cross compilers (mipsel, mips, armhf, arm64), qemu-user-static
#                              and the mbedtls source entry: `make test-small`, the -small builds
#   scripts/deps.sh --mbedtls-src  a deb-src entry of its own, for Debian's mbedtls source
#                              package (scripts/mbedtls.sh builds it for other targets)
#
# Safe to run again: when every package is already installed it changes nothing and
# needs no network. Runs as root, or through sudo when not root.
set -eu

cross_archs=""
want_src=0
packages="build-essential cmake pkg-config libssl-dev libmbedtls-dev doctest-dev python3 openssl zip unzip file ca-certificates"
for arg in "$@"; do
    case "$arg" in
        --fuzz)  packages="$packages clang-14 libclang-rt-14-dev" ;;
        --bench) packages="$packages nginx haproxy wrk" ;;
        --all)   packages="$packages clang-14 libclang-rt-14-dev nginx haproxy wrk" ;;
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
        -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
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
if [ -z "$missing" ] && [ "$need_update" = 0 ]; then
    echo "deps.sh: all packages already installed"
    exit 0
fi
echo "deps.sh: installing:$missing"

if ! command -v apt-get >/dev/null 2>&1; then
    echo "deps.sh: apt-get not found; install by hand: $packages" >&2
    exit 1
fi

if [ "$(id -u)" -eq 0 ]; then
    as_root=""
elif command -v sudo >/dev/null 2>&1; then
    as_root="sudo"
else
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
