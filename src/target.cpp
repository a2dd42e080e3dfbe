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

bool is_digit(char c) { return c >= '0' && c <= '9'; }

bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// A canonical dotted quad: four decimal parts 0-255 without leading zeros ("010" would
// be octal to inet_aton, so it is refused rather than guessed).
bool valid_ipv4(std::string_view h) {
    int parts = 0;
    while (true) {
        std::size_t dot = h.find('.');
        std::string_view part = h.substr(0, dot);
        if (part.empty() || part.size() > 3 || (part.size() > 1 && part[0] == '0')) return false;
        unsigned v = 0;
        for (char c : part) {
            if (!is_digit(c)) return false;
            v = v * 10 + static_cast<unsigned>(c - '0');
        }
        if (v > 255 || ++parts > 4) return false;
        if (dot == std::string_view::npos) break;
        h.remove_prefix(dot + 1);
    }
    return parts == 4;
}

// A DNS name (letters, digits, '-', '_'; labels of 1-63 bytes, none starting with '-';
// one trailing dot allowed) or an IPv4 literal. A name whose last label is all digits
// ("1.2.3", "0x7f.1", "999.1.1.1") is not a DNS name (RFC 3696 section 2) but what
// inet_aton would turn into some address, so it must be a canonical dotted quad.
bool valid_name(std::string_view h) {
    if (h.empty() || h.size() > 254) return false;
    if (h.back() == '.') h.remove_suffix(1);
    std::string_view last;
    std::string_view rest = h;
    while (true) {
        std::size_t dot = rest.find('.');
        std::string_view label = rest.substr(0, dot);
        if (label.empty() || label.size() > 63 || label.front() == '-') return false;
        for (char c : label) {
            bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '-' || c == '_';
            if (!ok) return false;
        }
        last = label;
        if (dot == std::string_view::npos) break;
        rest.remove_prefix(dot + 1);
    }
    bool numeric_tail = true;
    for (char c : last) numeric_tail = numeric_tail && is_digit(c);
    return !numeric_tail || valid_ipv4(h);
}

// An IPv6 address in RFC 4291 text form: eight groups of 1-4 hex digits, at most one
// "::" standing for one or more zero groups, and optionally a dotted quad as the last
// two groups. Zone identifiers ("%eth0") are not accepted.
bool valid_ipv6(std::string_view h) {
    if (h.size() < 2 || h.size() > 45) return false;
    int groups = 0;
    bool compressed = false;
    if (h.substr(0, 2) == "::") {
        compressed = true;
        h.remove_prefix(2);
    } else if (h.front() == ':') {
        return false;  // ":1::" - a single leading colon
    }
    while (!h.empty()) {
        std::size_t colon = h.find(':');
        std::string_view group = h.substr(0, colon);
        if (colon == std::string_view::npos && group.find('.') != std::string_view::npos) {
            if (!valid_ipv4(group)) return false;
            groups += 2;
            break;
        }
        if (group.empty() || group.size() > 4) return false;
        for (char c : group)
            if (!is_hex(c)) return false;
        ++groups;
        if (colon == std::string_view::npos) break;
        h.remove_prefix(colon + 1);
        if (!h.empty() && h.front() == ':') {
            if (compressed) return false;  // a second "::"
            compressed = true;
            h.remove_prefix(1);
        } else if (h.empty()) {
            return false;  // "1:" - a single trailing colon
        }
    }
    return compressed ? groups <= 7 : groups == 8;
}

}  // namespace

std::string Target::origin() const {
    std::string s;
    append_origin(s);
    return s;
}

void Target::append_origin(std::string& out) const {
    out += tls ? "https://" : "http://";
    out += authority;
}

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
