#!/bin/bash
# scripts/check-windows-exe.sh FILE.exe: what dist/windows_amd64/openai-proxy.exe
# promises. A PE32+ x86-64 console program; stripped; importing only DLLs that every
# Windows (7 and later) has, so that it runs from a download with nothing installed (a
# mingw runtime DLL such as libstdc++-6.dll, libwinpthread-1.dll or libgcc_s_seh-1.dll
# in the list would mean the static link failed); and `FILE -version` answers under
# Wine when Wine is installed. Used by scripts/dist-windows.sh and scripts/test-windows.sh.
set -euo pipefail
out=${1:?usage: scripts/check-windows-exe.sh FILE.exe}
cd "$(dirname "$0")/.."
fail() { echo "$out: verification failed: $*" >&2; exit 1; }

desc=$(file -b "$out")
echo "$out: $desc"
case "$desc" in *"PE32+ executable (console) x86-64"*) ;; *) fail "not a PE32+ x86-64 console program";; esac
# No COFF symbol table left (-s at link time): objdump -t lists no symbol.
syms=$(x86_64-w64-mingw32-objdump -t "$out" 2>/dev/null | grep -c '^\[' || true)
[ "$syms" = 0 ] || fail "not stripped ($syms symbols)"

allowed="kernel32.dll ws2_32.dll advapi32.dll crypt32.dll ntdll.dll msvcrt.dll user32.dll bcrypt.dll"
dlls=$(x86_64-w64-mingw32-objdump -p "$out" | sed -n 's/^[[:space:]]*DLL Name: //p' | tr 'A-Z' 'a-z' | sort -u)
[ -n "$dlls" ] || fail "objdump -p lists no imported DLL"
for d in $dlls; do
    case " $allowed " in *" $d "*) ;; *) fail "imports $d, which Windows does not ship";; esac
done
echo "$out imports only: $(echo $dlls)"

wine=${OP_WINE:-$(command -v wine64 || { [ -x /usr/lib/wine/wine64 ] && echo /usr/lib/wine/wine64; } || true)}
if [ -n "$wine" ]; then
    export WINEPREFIX=${WINEPREFIX:-$PWD/build/wineprefix} WINEDEBUG=-all
    [ -f "$WINEPREFIX/system.reg" ] || "$wine" wineboot -i >/dev/null 2>&1 || true
    # Through a file, not a pipe: the first Wine process of a session starts Wine's
    # services (services.exe, rpcss...), which inherit its standard output and keep a
    # pipe open long after the program has exited.
    tmp=$(mktemp)
    rc=0
    "$wine" "$out" -version </dev/null >"$tmp" 2>&1 || rc=$?
    ver=$(tr -d '\r' <"$tmp")
    rm -f "$tmp"
    [ "$rc" = 0 ] || fail "wine $out -version (status $rc): $ver"
    case "$ver" in "openai-proxy "*) ;; *) fail "wine $out -version printed: $ver";; esac
    echo "wine $out -version: $ver"
else
    echo "note: Wine not installed, $out not run (scripts/deps.sh --windows)"
fi
