// How an upstream origin is reached: directly, or through an egress proxy (an HTTP
// proxy's CONNECT tunnel, or SOCKS5). TLS to the origin is end to end either way.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "target.h"

namespace op {

struct Egress {
    enum class Kind : std::uint8_t { Direct, HttpConnect, Socks5, Socks5h };
    Kind kind = Kind::Direct;
    Target proxy;                // the egress proxy's host and port (not Direct); proxy.tls is false
    std::string user, password;  // from user:pass@ (percent-decoded); empty: none
    std::string authorization;   // HttpConnect: "Basic ..." for Proxy-Authorization, or empty
    // Appends what tells two egresses apart, for the idle-pool key:
    // " via socks5h://user@host:port" (never the password); nothing for Direct.
    void append_key(std::string& out) const;
};

// "direct", "http://[user:pass@]host[:port]" (a bare host:port means http), "socks5://...",
// "socks5h://..." (default ports 80 and 1080). false and a one-line `error` on anything else.
bool parse_egress(std::string_view spec, Egress& out, std::string& error);

}  // namespace op
