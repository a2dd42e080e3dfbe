#!/bin/sh
# Builds the libFuzzer targets (clang++-14, libFuzzer + ASan + UBSan) into $1
# (default /tmp/op-fuzz). The parsers are compiled in directly, with the writer (the
# chunked fuzzer checks chunk_header) and the two files it needs.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
out=${1:-/tmp/op-fuzz}
cxx=${CXX_FUZZ:-clang++-14}
mkdir -p "$out"
flags="-std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -Wall -Wextra -Werror -I$root/src -I$root/platform"
for target in fuzz_request_head fuzz_response_head fuzz_chunked fuzz_body_scanners fuzz_socks5_reply; do
    # shellcheck disable=SC2086
    "$cxx" $flags "$here/$target.cpp" "$root/src/http_head.cpp" "$root/src/chunked_decoder.cpp" \
        "$root/src/http_writer.cpp" "$root/src/byte_buffer.cpp" "$root/src/error_response.cpp" \
        "$root/src/cors_policy.cpp" "$root/src/usage_scanner.cpp" "$root/src/stream_flag_scan.cpp" \
        "$root/src/socks5.cpp" \
        -o "$out/$target"
    echo "built $out/$target"
done
