// Responses the proxy itself produces. Every one carries an OpenAI-style JSON body,
// {"error":{"message":...,"type":...,"code":...}}, so SDKs show the real cause.
#pragma once

#include <string>
#include <string_view>

namespace op {

struct ProxyError {
    int status;              // 400, 403, 404, 413, 431, 502, 504, ...
    const char* type;        // "invalid_request_error", "proxy_error"
    const char* code;        // machine-readable, e.g. "upstream_unreachable"
    std::string message;     // one line for humans; never internals
};

// The full HTTP/1.1 response (head and body). `close` adds "Connection: close".
std::string render_error_response(const ProxyError& e, bool close);

// JSON string escaping (quotes not included).
void append_json_escaped(std::string& out, std::string_view s);

const char* reason_phrase(int status);

}  // namespace op
