#!/usr/bin/env python3
"""Checks a macOS executable without a Mac: scripts/macho_check.py FILE [options]

  --cpu arm64|x86_64     the CPU it must be built for
  --import SYMBOL        an undefined symbol it must take from a dylib (e.g. _kevent)
  --allow-dylib PATH     a dylib it may load; any other is an error (repeatable)
  --stripped             no local symbols and no debug entries in the symbol table

Always: a 64-bit Mach-O executable, and its code signature, where it has one, matches
the file (the page hashes of the CodeDirectory); arm64 must have one, since macOS on
Apple silicon refuses to run unsigned code (the linker signs ad hoc, and a strip that
does not re-sign breaks it). Prints what it found; exit status 1 on the first failure.
Reads the file itself (the layouts are those of Apple's <mach-o/loader.h>,
<mach-o/nlist.h> and the code-signing blobs), so it runs wherever Python 3 does.
"""
import hashlib
import struct
import sys

CPUS = {"arm64": 0x0100000C, "x86_64": 0x01000007}
LC_SYMTAB = 0x2
LC_CODE_SIGNATURE = 0x1D
LC_BUILD_VERSION = 0x32
DYLIB_COMMANDS = {0xC: "LC_LOAD_DYLIB", 0x80000018: "LC_LOAD_WEAK_DYLIB", 0x8000001F: "LC_REEXPORT_DYLIB",
                  0x20: "LC_LAZY_LOAD_DYLIB", 0x80000023: "LC_LOAD_UPWARD_DYLIB"}
N_STAB, N_TYPE, N_EXT, N_UNDF = 0xE0, 0x0E, 0x01, 0x0
CSMAGIC_EMBEDDED_SIGNATURE, CSMAGIC_CODEDIRECTORY = 0xFADE0CC0, 0xFADE0C02
HASHES = {1: ("sha1", 20), 2: ("sha256", 32), 3: ("sha256", 20), 4: ("sha384", 48)}


def fail(path, why):
    print(f"{path}: FAIL: {why}")
    sys.exit(1)


def cstring(data, off):
    end = data.index(b"\0", off)
    return data[off:end].decode("utf-8", "replace")


def check_signature(path, data, dataoff, datasize):
    blob = data[dataoff:dataoff + datasize]
    magic, _length, count = struct.unpack_from(">III", blob, 0)
    if magic != CSMAGIC_EMBEDDED_SIGNATURE:
        fail(path, f"code signature magic {magic:#x}, not an embedded signature")
    directories = 0
    for i in range(count):
        slot, off = struct.unpack_from(">II", blob, 12 + 8 * i)
        if struct.unpack_from(">I", blob, off)[0] != CSMAGIC_CODEDIRECTORY:
            continue
        (_m, _len, version, flags, hash_off, ident_off, _special, n_code, code_limit, hash_size, hash_type,
         _platform, page_log2) = struct.unpack_from(">IIIIIIIIIBBBB", blob, off)
        if hash_type not in HASHES:
            fail(path, f"CodeDirectory hash type {hash_type} unknown")
        algo, size = HASHES[hash_type]
        if size != hash_size:
            fail(path, f"CodeDirectory hash size {hash_size} for type {hash_type}")
        page = 1 << page_log2 if page_log2 else code_limit
        if code_limit != dataoff:
            fail(path, f"signature covers {code_limit} bytes, the signature starts at {dataoff}")
        if n_code != (code_limit + page - 1) // page:
            fail(path, f"{n_code} page hashes for {code_limit} bytes in pages of {page}")
        for p in range(n_code):
            want = blob[off + hash_off + p * hash_size:off + hash_off + (p + 1) * hash_size]
            got = hashlib.new(algo, data[p * page:min((p + 1) * page, code_limit)]).digest()[:hash_size]
            if want != got:
                fail(path, f"code signature: page {p} does not match its hash (the file changed after signing)")
        ident = cstring(blob, off + ident_off)
        print(f"{path}: code signature: CodeDirectory v{version:#x} flags {flags:#x} '{ident}', "
              f"{n_code} page hashes ({algo}) match")
        directories += 1
    if directories == 0:
        fail(path, "code signature without a CodeDirectory")


def main(argv):
    if not argv or argv[0].startswith("-"):
        print(__doc__)
        return 2
    path, rest = argv[0], argv[1:]
    cpu, imports, allowed, stripped = None, [], [], False
    while rest:
        opt = rest.pop(0)
        if opt == "--stripped":
            stripped = True
            continue
        if not rest:
            fail(path, f"{opt} needs a value")
        val = rest.pop(0)
        if opt == "--cpu":
            cpu = val
        elif opt == "--import":
            imports.append(val)
        elif opt == "--allow-dylib":
            allowed.append(val)
        else:
            fail(path, f"unknown option {opt}")

    with open(path, "rb") as f:
        data = f.read()
    magic, cputype, _sub, filetype, ncmds, _sizeofcmds, _flags, _res = struct.unpack_from("<IiiIIIII", data, 0)
    if magic != 0xFEEDFACF:
        fail(path, f"not a 64-bit Mach-O file (magic {magic:#x})")
    if filetype != 2:
        fail(path, f"Mach-O file type {filetype}, not an executable (2)")
    names = {v: k for k, v in CPUS.items()}
    print(f"{path}: Mach-O executable for {names.get(cputype, hex(cputype))}")
    if cpu is not None and cputype != CPUS[cpu]:
        fail(path, f"built for {names.get(cputype, hex(cputype))}, not {cpu}")

    dylibs, symtab, signature = [], None, None
    off = 32
    for _ in range(ncmds):
        cmd, size = struct.unpack_from("<II", data, off)
        if cmd in DYLIB_COMMANDS:
            name_off = struct.unpack_from("<I", data, off + 8)[0]
            dylibs.append((DYLIB_COMMANDS[cmd], cstring(data, off + name_off)))
        elif cmd == LC_SYMTAB:
            symtab = struct.unpack_from("<IIII", data, off + 8)
        elif cmd == LC_CODE_SIGNATURE:
            signature = struct.unpack_from("<II", data, off + 8)
        elif cmd == LC_BUILD_VERSION:
            platform, minos, sdk = struct.unpack_from("<III", data, off + 8)
            ver = lambda v: f"{v >> 16}.{(v >> 8) & 0xFF}.{v & 0xFF}"
            print(f"{path}: build version: platform {platform} (1: macOS), minimum {ver(minos)}, sdk {ver(sdk)}")
        off += size

    for kind, name in dylibs:
        print(f"{path}: {kind} {name}")
        if name not in allowed:
            fail(path, f"loads {name}, which is not one of the allowed: {', '.join(allowed) or 'none'}")
    if not dylibs:
        fail(path, "loads no dylib at all (every macOS executable loads libSystem)")

    if symtab is None:
        fail(path, "no symbol table (LC_SYMTAB)")
    symoff, nsyms, stroff, _strsize = symtab
    undefined, local, stabs = set(), 0, 0
    for i in range(nsyms):
        strx, ntype, _sect, _desc, _value = struct.unpack_from("<IBBHQ", data, symoff + 16 * i)
        if ntype & N_STAB:
            stabs += 1
        elif (ntype & N_TYPE) == N_UNDF and (ntype & N_EXT):
            undefined.add(cstring(data, stroff + strx))
        elif not ntype & N_EXT:
            local += 1
    print(f"{path}: {nsyms} symbols: {len(undefined)} imported, {local} local, {stabs} debug")
    for sym in imports:
        if sym not in undefined:
            fail(path, f"does not import {sym}")
        print(f"{path}: imports {sym}")
    if stripped and (local or stabs):
        fail(path, f"not stripped: {local} local symbols, {stabs} debug entries")

    if signature is None:
        if cputype == CPUS["arm64"]:
            fail(path, "no code signature: macOS on arm64 runs no unsigned code")
        print(f"{path}: no code signature (x86_64 runs without one)")
    else:
        check_signature(path, data, *signature)
    print(f"{path}: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
