// Responses the proxy itself produces. Every one carries an OpenAI-style JSON body,
// {"error":{"message":...,"type":...,"code":...}}, so SDKs show the real cause.
// The bytes are written by write_error_response() (http_writer.h); this file holds what
// they are made of: the error, its reason phrase and JSON string escaping.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace op {

class ByteBuffer;

struct ProxyError {
    int status;              // 400, 403, 404, 413, 431, 502, 504, ...
    const char* type;        // "invalid_request_error", "proxy_error"
    const char* code;        // machine-readable, e.g. "upstream_unreachable"
    std::string message;     // one line for humans; never internals
    unsigned retry_after_s = 0;  // > 0: "Retry-After: N" (when the proxy knows; SDKs wait that long)
};

// JSON string escaping (quotes not included): '"' and '\' get a backslash, control
// bytes and DEL become \u00XX (lower-case hex); every other byte passes unchanged.
void append_json_escaped(ByteBuffer& out, std::string_view s);
// The length append_json_escaped() writes for `s`.
std::size_t json_escaped_size(std::string_view s);

const char* reason_phrase(int status);

}  // namespace op
