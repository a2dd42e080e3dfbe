// How an origin is reached: directly, or through an egress proxy (README "Upstream
// proxy"). Parsed once from the configuration; a connection keeps its own copy, so a
// pooled connection outlives the configuration it was made with.
//
//   http://    CONNECT tunnel (RFC 9110 9.3.6); the proxy resolves the origin's name;
//              credentials go as "Proxy-Authorization: Basic ...".
//   socks5://  RFC 1928 CONNECT with an address: the name is resolved here, and for a
//              client-chosen origin the internal-address check applies to what it gives.
//   socks5h:// RFC 1928 CONNECT with the name (ATYP 3): the SOCKS server resolves it.
//   Credentials of a SOCKS egress are sent with RFC 1929 username/password.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "target.h"

namespace op {

// How an origin is reached: directly, or through an egress proxy.
struct Egress {
    enum class Kind : std::uint8_t { Direct, HttpConnect, Socks5, Socks5h };
    Kind kind = Kind::Direct;
    Target proxy;               // the egress proxy's host and port (not Direct); proxy.tls is false
    std::string user, password; // from user:pass@ (percent-decoded); empty: none
    std::string authorization;  // HttpConnect: "Basic ..." for Proxy-Authorization, or empty
    // Appends what tells two egresses apart, for the idle-pool key: " via socks5h://user@host:port"
    // (never the password); nothing for Direct.
    void append_key(std::string& out) const;

    bool direct() const { return kind == Kind::Direct; }
    bool socks() const { return kind == Kind::Socks5 || kind == Kind::Socks5h; }
    bool has_credentials() const { return !user.empty() || !password.empty(); }
    // "socks5h://host:port" (no credentials): for logs and error messages; "direct".
    std::string describe() const;
};

// "direct", "http", "socks5", "socks5h".
const char* egress_scheme(Egress::Kind kind);

// "direct", "http://[user:pass@]host[:port]" (a bare host:port means http), "socks5://...", "socks5h://..."
// (default ports 80 and 1080). false + a one-line `error` on anything else.
bool parse_egress(std::string_view spec, Egress& out, std::string& error);

// Standard base64 (RFC 4648 section 4, with padding).
std::string base64(std::string_view in);

}  // namespace op
