#include "target.h"

#include <cctype>

namespace op {

namespace {

bool istarts_with(std::string_view s, std::string_view prefix) {
    if (s.size() < prefix.size()) return false;
    for (std::size_t i = 0; i < prefix.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(s[i])) != prefix[i]) return false;
    return true;
}

bool parse_port(std::string_view s, std::uint16_t& port) {
    if (s.empty() || s.size() > 5) return false;
    unsigned v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return false;
        v = v * 10 + static_cast<unsigned>(c - '0');
    }
    if (v == 0 || v > 65535) return false;
    port = static_cast<std::uint16_t>(v);
    return true;
}

bool valid_name(std::string_view h) {
    if (h.empty() || h.size() > 253) return false;
    for (char c : h) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                  c == '.' || c == '_';
        if (!ok) return false;
    }
    return h.front() != '.' && h.front() != '-';
}

bool valid_ipv6(std::string_view h) {
    if (h.empty()) return false;
    for (char c : h) {
        bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' ||
                  c == '.';
        if (!ok) return false;
    }
    return h.find(':') != std::string_view::npos;
}

}  // namespace

std::string Target::origin() const { return (tls ? "https://" : "http://") + authority; }

bool parse_target(std::string_view spec, Target& out, std::string& error) {
    std::string_view s = spec;
    Target t;
    if (istarts_with(s, "https://")) {
        s.remove_prefix(8);
    } else if (istarts_with(s, "http://")) {
        t.tls = false;
        s.remove_prefix(7);
    } else if (s.find("://") != std::string_view::npos) {
        error = "unsupported scheme in \"" + std::string(spec) + "\" (use https:// or http://)";
        return false;
    }
    if (!s.empty() && s.back() == '/') s.remove_suffix(1);  // "https://host/" is fine
    if (s.find_first_of("/?#") != std::string_view::npos) {
        error = "target \"" + std::string(spec) + "\" has a path, query or fragment; give only host[:port]";
        return false;
    }
    if (s.find('@') != std::string_view::npos) {
        error = "target \"" + std::string(spec) + "\" must not contain user information";
        return false;
    }
    t.port = t.tls ? 443 : 80;
    std::string_view host = s, port;
    if (!s.empty() && s.front() == '[') {
        std::size_t close = s.find(']');
        if (close == std::string_view::npos) {
            error = "unterminated IPv6 literal in \"" + std::string(spec) + "\"";
            return false;
        }
        host = s.substr(1, close - 1);
        std::string_view rest = s.substr(close + 1);
        if (!rest.empty()) {
            if (rest.front() != ':') {
                error = "unexpected text after IPv6 literal in \"" + std::string(spec) + "\"";
                return false;
            }
            port = rest.substr(1);
            if (port.empty()) {
                error = "empty port in \"" + std::string(spec) + "\"";
                return false;
            }
        }
        if (!valid_ipv6(host)) {
            error = "invalid IPv6 address in \"" + std::string(spec) + "\"";
            return false;
        }
    } else {
        std::size_t colon = s.rfind(':');
        if (colon != std::string_view::npos) {
            host = s.substr(0, colon);
            port = s.substr(colon + 1);
            if (port.empty()) {
                error = "empty port in \"" + std::string(spec) + "\"";
                return false;
            }
        }
        if (host.empty()) {
            error = "empty host in \"" + std::string(spec) + "\"";
            return false;
        }
        if (!valid_name(host)) {
            error = "invalid host \"" + std::string(host) + "\" in \"" + std::string(spec) + "\"";
            return false;
        }
    }
    if (!port.empty() && !parse_port(port, t.port)) {
        error = "invalid port \"" + std::string(port) + "\" in \"" + std::string(spec) + "\" (1-65535)";
        return false;
    }
    t.host.assign(host.data(), host.size());
    for (char& c : t.host) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    bool v6 = t.host.find(':') != std::string::npos;
    t.authority = v6 ? "[" + t.host + "]" : t.host;
    if (t.port != (t.tls ? 443 : 80)) t.authority += ":" + std::to_string(t.port);
    out = std::move(t);
    return true;
}

}  // namespace op
