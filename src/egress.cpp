// Egress proxy specifications; the contract is in egress.h.
#include "egress.h"

#include <cctype>

#include "http_chars.h"

namespace op {

using http_chars::lower_copy;
namespace {

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// RFC 3986 section 2.1: "%XX" is the byte XX; a '%' not followed by two hex digits is an error.
bool percent_decode(std::string_view in, std::string& out) {
    out.clear();
    for (std::size_t i = 0; i < in.size(); ++i) {
        if (in[i] != '%') {
            out += in[i];
            continue;
        }
        int hi = i + 1 < in.size() ? hex_value(in[i + 1]) : -1;
        int lo = i + 2 < in.size() ? hex_value(in[i + 2]) : -1;
        if (hi < 0 || lo < 0) return false;
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
    }
    return true;
}

// The host[:port] part has an explicit port: "h:1", "[::1]:1" (not "[::1]").
bool has_port(std::string_view hostport) {
    if (!hostport.empty() && hostport.front() == '[') {
        std::size_t close = hostport.find(']');
        return close != std::string_view::npos && close + 1 < hostport.size() && hostport[close + 1] == ':';
    }
    return hostport.find(':') != std::string_view::npos;
}

}  // namespace

const char* egress_scheme(Egress::Kind kind) {
    switch (kind) {
        case Egress::Kind::Direct: return "direct";
        case Egress::Kind::HttpConnect: return "http";
        case Egress::Kind::Socks5: return "socks5";
        case Egress::Kind::Socks5h: return "socks5h";
    }
    return "direct";
}

void Egress::append_key(std::string& out) const {
    if (kind == Kind::Direct) return;
    out += " via ";
    out += egress_scheme(kind);
    out += "://";
    if (!user.empty()) {
        out += user;
        out += '@';
    }
    if (proxy.host.find(':') != std::string::npos) {
        out += '[';
        out += proxy.host;
        out += ']';
    } else {
        out += proxy.host;
    }
    out += ':';
    char digits[5];
    int n = 0;
    for (unsigned p = proxy.port; n == 0 || p != 0; p /= 10) digits[n++] = static_cast<char>('0' + p % 10);
    while (n > 0) out += digits[--n];  // no temporary string: planning allocates nothing more
}

std::string Egress::describe() const {
    if (kind == Kind::Direct) return "direct";
    std::string s;
    Egress shown = *this;
    shown.user.clear();
    shown.append_key(s);
    return s.substr(5);  // without " via "
}

bool parse_egress(std::string_view spec, Egress& out, std::string& error) {
    std::string quoted = "\"" + without_password(spec) + "\"";  // never the password
    if (lower_copy(spec) == "direct") {
        out = Egress{};
        return true;
    }
    Egress e;
    std::string_view rest = spec;
    std::size_t sep = spec.find("://");
    if (sep == std::string_view::npos) {
        e.kind = Egress::Kind::HttpConnect;  // "host:port" means an HTTP proxy
    } else {
        std::string scheme = lower_copy(spec.substr(0, sep));
        if (scheme == "http") e.kind = Egress::Kind::HttpConnect;
        else if (scheme == "socks5") e.kind = Egress::Kind::Socks5;
        else if (scheme == "socks5h") e.kind = Egress::Kind::Socks5h;
        else {
            error = "unsupported proxy scheme \"" + scheme + "://\" in " + quoted +
                    " (use http://, socks5://, socks5h:// or direct)";
            return false;
        }
        rest.remove_prefix(sep + 3);
    }
    std::size_t at = rest.rfind('@');
    if (at != std::string_view::npos) {
        std::string_view userinfo = rest.substr(0, at);
        if (userinfo.find_first_of("/?#") != std::string_view::npos) {
            error = "malformed proxy URL " + quoted;
            return false;
        }
        std::size_t colon = userinfo.find(':');
        std::string_view user = userinfo.substr(0, colon);
        std::string_view pass = colon == std::string_view::npos ? std::string_view() : userinfo.substr(colon + 1);
        if (!percent_decode(user, e.user) || !percent_decode(pass, e.password)) {
            error = "malformed percent-encoding in the proxy's user or password";
            return false;
        }
        rest.remove_prefix(at + 1);
    }
    bool socks = e.socks();
    if (socks && e.has_credentials()) {
        // RFC 1929: UNAME 1-255 bytes, PASSWD up to 255.
        if (e.user.empty() || e.user.size() > 255 || e.password.size() > 255) {
            error = "SOCKS5 user name must be 1-255 bytes and password at most 255 (RFC 1929)";
            return false;
        }
    }
    std::string_view hostport = rest;
    if (!hostport.empty() && hostport.back() == '/') hostport.remove_suffix(1);
    std::string target_spec = "http://" + std::string(hostport);
    if (socks && !has_port(hostport)) target_spec += ":1080";
    std::string why;
    if (!parse_target(target_spec, e.proxy, why)) {
        // parse_target's message quotes what it was given (credentials removed, scheme
        // normalised); name the value as written instead, without its credentials.
        error = "invalid proxy " + std::string(egress_scheme(e.kind)) + "://" + std::string(hostport) + ": " + why;
        return false;
    }
    if (e.kind == Egress::Kind::HttpConnect && at != std::string_view::npos)
        e.authorization = "Basic " + base64(e.user + ":" + e.password);
    out = std::move(e);
    return true;
}

std::string without_password(std::string_view spec) {
    std::size_t sep = spec.find("://");
    std::size_t start = sep == std::string_view::npos ? 0 : sep + 3;
    std::size_t at = spec.rfind('@');
    if (at == std::string_view::npos || at < start) return std::string(spec);
    std::size_t colon = spec.find(':', start);
    if (colon == std::string_view::npos || colon > at) return std::string(spec);
    return std::string(spec.substr(0, colon + 1)) + "***" + std::string(spec.substr(at));
}

std::string base64(std::string_view in) {
    static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    out.reserve((in.size() + 2) / 3 * 4);
    std::size_t i = 0;
    for (; i + 2 < in.size(); i += 3) {
        unsigned v = static_cast<unsigned char>(in[i]) << 16 | static_cast<unsigned char>(in[i + 1]) << 8 |
                     static_cast<unsigned char>(in[i + 2]);
        for (int shift = 18; shift >= 0; shift -= 6) out += kAlphabet[(v >> shift) & 63];
    }
    if (i < in.size()) {
        unsigned v = static_cast<unsigned char>(in[i]) << 16;
        if (i + 1 < in.size()) v |= static_cast<unsigned char>(in[i + 1]) << 8;
        out += kAlphabet[(v >> 18) & 63];
        out += kAlphabet[(v >> 12) & 63];
        out += i + 1 < in.size() ? kAlphabet[(v >> 6) & 63] : '=';
        out += '=';
    }
    return out;
}

}  // namespace op
