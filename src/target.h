// An upstream origin: scheme, host and port, parsed from a target specification.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace op {

struct Target {
    bool tls = true;           // https (default) or explicit http://
    std::string host;          // DNS name or IP literal, without brackets
    std::uint16_t port = 443;  // explicit port, else 443 / 80 by scheme
    std::string authority;     // value for the Host field: host[:port], port only if not default
                               // (IPv6 literals bracketed)

    // "https://host:port" / "http://host:port": the pool key and for logs.
    std::string origin() const;
    // The same, appended to `out` (no temporary string).
    void append_origin(std::string& out) const;
    bool operator==(const Target& o) const {
        return tls == o.tls && host == o.host && port == o.port;
    }
};

// Parses "api.openai.com", "host:8443", "https://host", "http://127.0.0.1:8080",
// "[::1]:8443", "https://host/" (a lone trailing slash is allowed; any other path,
// query, fragment or userinfo is an error). `https://` is assumed unless the value
// starts with "https://" or "http://" (case-insensitive). Returns false and sets
// `error` to a one-line reason on malformed input.
bool parse_target(std::string_view spec, Target& out, std::string& error);

}  // namespace op
