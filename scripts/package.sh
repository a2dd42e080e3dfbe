#!/bin/bash
# Packs a built binary for a platform that takes a package rather than a bare binary.
#
#   scripts/package.sh ipk --cpu CPU --arch OPENWRT_ARCH --version VERSION BINARY OUT.ipk
#       OpenWrt package, laid out as OpenWrt's own scripts/ipkg-build lays it out: a
#       gzip'd tar of ./debian-binary ("2.0"), ./data.tar.gz and ./control.tar.gz (opkg
#       reads this outer tar.gz; Debian's .deb uses an ar archive instead). data holds
#       /usr/bin/openai-proxy, the procd init script and the UCI config from
#       packaging/openwrt/files; control holds control, conffiles, postinst and prerm.
#       CPU (amd64, arm64, armv7, mips, mipsle) is checked against the binary's ELF
#       header; OPENWRT_ARCH is what opkg matches against `opkg print-architecture`.
#
#   scripts/package.sh fc BINARY OUT.zip
#       Aliyun Function Compute custom-runtime code package: `bootstrap` (the start file
#       FC runs when no start command is set, packaging/fc/bootstrap) and the binary as
#       `openai-proxy`, both stored executable.
#
# Archives are reproducible: owner root (0:0), sorted names, mtime of the last commit
# (SOURCE_DATE_EPOCH if set). Needs GNU tar, gzip, zip and file.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
die() { echo "package.sh: $*" >&2; exit 1; }

epoch=${SOURCE_DATE_EPOCH:-$(git -C "$root" log -1 --format=%ct 2>/dev/null || echo 0)}
# The tar options of OpenWrt's ipkg-build, with owner and group forced to root.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tar_opts=(--format=gnu --numeric-owner --owner=0 --group=0 --sort=name --mtime="@$epoch")

ipk() {
    local cpu="" arch="" version=""
    while [ $# -gt 2 ]; do
        case "$1" in
            --cpu) cpu=$2; shift 2 ;;
            --arch) arch=$2; shift 2 ;;
            --version) version=$2; shift 2 ;;
            *) die "ipk: unknown option $1" ;;
        esac
    done
    if [ $# -ne 2 ] || [ -z "$cpu" ] || [ -z "$arch" ] || [ -z "$version" ]; then
        die "usage: package.sh ipk --cpu CPU --arch OPENWRT_ARCH --version VERSION BINARY OUT.ipk"
    fi
    local binary=$1 out=$2
    [ -f "$binary" ] || die "ipk: $binary does not exist (build it first)"

    # The binary must be for the CPU the package claims: opkg only compares names.
    local desc want
    desc=$(file -b "$binary")
    case "$cpu" in
        amd64) want="ELF 64-bit LSB*x86-64" ;;
        arm64) want="ELF 64-bit LSB*ARM aarch64" ;;
        armv7) want="ELF 32-bit LSB*ARM, EABI5" ;;
        mips) want="ELF 32-bit MSB*MIPS" ;;
        mipsle) want="ELF 32-bit LSB*MIPS" ;;
        *) die "ipk: unknown cpu '$cpu' (amd64, arm64, armv7, mips, mipsle)" ;;
    esac
    # shellcheck disable=SC2254
    case "$desc" in *$want*) ;; *) die "ipk: $binary is not a binary for CPU $cpu ($desc)" ;; esac

    local data=$work/data control=$work/control
    install -D -m 755 "$binary" "$data/usr/bin/openai-proxy"
    install -D -m 755 "$root/packaging/openwrt/files/openai-proxy.init" "$data/etc/init.d/openai-proxy"
    install -D -m 644 "$root/packaging/openwrt/files/openai-proxy.config" "$data/etc/config/openai-proxy"
    mkdir -p "$control"
    (cd "$data" && tar "${tar_opts[@]}" -cf - .) | gzip -9n >"$work/data.tar.gz"
    # As ipkg-build: Installed-Size is the size of the uncompressed data tar, in bytes.
    local size
    size=$(gzip -dc "$work/data.tar.gz" | wc -c)

    cat >"$control/control" <<CONTROL
Package: openai-proxy
Version: $version
Depends: ca-bundle
License: ${PKG_LICENSE:-MIT}
Section: net
Maintainer: ${PKG_MAINTAINER:-openai-proxy maintainers}
Architecture: $arch
Installed-Size: $size
Description: Reverse proxy for the OpenAI API and OpenAI-compatible APIs.
 Streams (SSE) pass through at once; upstream TLS is always verified. Static
 binary (mbedTLS), a procd service and a UCI config (/etc/config/openai-proxy).
CONTROL
    echo /etc/config/openai-proxy >"$control/conffiles"
    # The maintainer scripts every package built by the OpenWrt SDK carries: /lib/
    # functions.sh's default_postinst enables and starts the package's init scripts,
    # default_prerm stops and disables them.
    cat >"$control/postinst" <<'SCRIPT'
#!/bin/sh
[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0
[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. ${IPKG_INSTROOT}/lib/functions.sh
default_postinst $0 $@
SCRIPT
    cat >"$control/prerm" <<'SCRIPT'
#!/bin/sh
[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. ${IPKG_INSTROOT}/lib/functions.sh
default_prerm $0 $@
SCRIPT
    chmod 644 "$control/control" "$control/conffiles"
    chmod 755 "$control/postinst" "$control/prerm"
    (cd "$control" && tar "${tar_opts[@]}" -cf - .) | gzip -9n >"$work/control.tar.gz"
    echo 2.0 >"$work/debian-binary"

    mkdir -p "$(dirname "$out")"
    (cd "$work" && tar "${tar_opts[@]}" -cf - ./debian-binary ./data.tar.gz ./control.tar.gz) |
        gzip -9n >"$out.tmp"
    mv -f "$out.tmp" "$out"
    echo "$out: $(wc -c <"$out") bytes, Architecture: $arch, Installed-Size: $size"
}

fc() {
    [ $# -eq 2 ] || die "usage: package.sh fc BINARY OUT.zip"
    local binary=$1 out=$2
    [ -f "$binary" ] || die "fc: $binary does not exist (build it first)"
    install -m 755 "$binary" "$work/openai-proxy"
    install -m 755 "$root/packaging/fc/bootstrap" "$work/bootstrap"
    touch -d "@$epoch" "$work/openai-proxy" "$work/bootstrap"
    mkdir -p "$(dirname "$out")"
    out=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")
    rm -f "$out.tmp"
    (cd "$work" && zip -q -X "$out.tmp" bootstrap openai-proxy)
    mv -f "$out.tmp" "$out"
    zipinfo "$out"
    [ "$(zipinfo "$out" | grep -cE '^-rwxr-xr-x .* (bootstrap|openai-proxy)$')" = 2 ] ||
        die "$out: bootstrap and openai-proxy must both be stored executable"
}

case "${1:-}" in
    ipk) shift; ipk "$@" ;;
    fc) shift; fc "$@" ;;
    *) die "usage: package.sh ipk|fc ... (see the comment at the top)" ;;
esac
