// CORS policy; the contract is in cors_policy.h.
#include "cors_policy.h"

#include <cctype>
#include <utility>

#include "http_head.h"

namespace op {
namespace {

char lower(char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); }

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

bool starts_with_ci(std::string_view s, std::string_view prefix) {
    return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

}  // namespace

bool normalize_origin(std::string_view text, std::string& out, std::string& why) {
    std::size_t sep = text.find("://");
    if (sep == std::string_view::npos || sep == 0) {
        why = "expected scheme://host[:port], e.g. https://app.example.com";
        return false;
    }
    std::string scheme;
    for (std::size_t i = 0; i < sep; ++i) {
        char c = text[i];
        bool ok = std::isalpha(static_cast<unsigned char>(c)) ||
                  (i > 0 && (std::isdigit(static_cast<unsigned char>(c)) || c == '+' || c == '-' || c == '.'));
        if (!ok) {
            why = "bad scheme";
            return false;
        }
        scheme += lower(c);
    }
    std::string_view rest = text.substr(sep + 3);
    if (rest.find_first_of("/?#") != std::string_view::npos) {
        why = "an origin has no path, query or trailing slash";
        return false;
    }
    if (rest.find('@') != std::string_view::npos) {
        why = "an origin has no user name or password";
        return false;
    }
    std::string_view host = rest, port;
    if (!rest.empty() && rest.front() == '[') {
        std::size_t close = rest.find(']');
        if (close == std::string_view::npos) {
            why = "unclosed [ in the host";
            return false;
        }
        host = rest.substr(0, close + 1);
        std::string_view after = rest.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':') {
                why = "bad host";
                return false;
            }
            port = after.substr(1);
            if (port.empty()) {
                why = "empty port";
                return false;
            }
        }
        for (char c : host.substr(1, host.size() - 2)) {
            if (!std::isxdigit(static_cast<unsigned char>(c)) && c != ':' && c != '.') {
                why = "bad IPv6 literal";
                return false;
            }
        }
    } else if (std::size_t colon = rest.rfind(':'); colon != std::string_view::npos) {
        host = rest.substr(0, colon);
        port = rest.substr(colon + 1);
        if (port.empty()) {
            why = "empty port";
            return false;
        }
    }
    if (host.empty() || host == "[]") {
        why = "no host";
        return false;
    }
    if (host.front() != '[') {
        for (char c : host) {
            if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.' && c != '_') {
                why = c == '*' ? "wildcards are not supported: list each origin, or give * alone"
                               : "bad character in the host";
                return false;
            }
        }
    }
    unsigned long port_number = 0;
    if (!port.empty()) {
        if (port.size() > 5) {
            why = "port must be 1-65535";
            return false;
        }
        for (char c : port) {
            if (c < '0' || c > '9') {
                why = "port must be 1-65535";
                return false;
            }
            port_number = port_number * 10 + static_cast<unsigned long>(c - '0');
        }
        if (port_number == 0 || port_number > 65535) {
            why = "port must be 1-65535";
            return false;
        }
    }
    out = scheme + "://";
    for (char c : host) out += lower(c);
    bool default_port = (scheme == "http" && port_number == 80) || (scheme == "https" && port_number == 443);
    if (!port.empty() && !default_port) out += ":" + std::to_string(port_number);
    return true;
}

bool parse_cors_origins(std::string_view text, CorsPolicy& out, std::string& why) {
    CorsPolicy p;
    p.enabled = true;
    bool star = false;
    std::string_view list = text;
    for (;;) {
        std::size_t comma = list.find(',');
        std::string_view entry = trim(list.substr(0, comma));
        if (entry == "*") {
            star = true;
        } else if (entry.empty()) {
            why = "empty entry (expected * or scheme://host[:port],...)";
            return false;
        } else if (iequals(entry, "null")) {
            why = "\"null\" is the origin of sandboxed and file pages, which any page can produce: not allowed";
            return false;
        } else {
            std::string normal, reason;
            if (!normalize_origin(entry, normal, reason)) {
                why = "bad origin \"" + std::string(entry) + "\": " + reason;
                return false;
            }
            p.origins.push_back(normal);
        }
        if (comma == std::string_view::npos) break;
        list.remove_prefix(comma + 1);
    }
    if (star && !p.origins.empty()) {
        why = "* allows every origin: give it alone, or a list of origins";
        return false;
    }
    p.any_origin = star;
    out = std::move(p);
    return true;
}

bool CorsPolicy::allows(std::string_view origin) const {
    if (!enabled || origin.empty()) return false;
    if (any_origin) return true;
    for (const std::string& o : origins) {
        if (iequals(o, origin)) return true;
    }
    return false;
}

bool cors_header_allowed(std::string_view name) {
    static constexpr std::string_view kAllowed[] = {
        "authorization",  "content-type",        "accept",          "accept-language", "content-language",
        "openai-organization", "openai-project", "openai-beta",     "api-key",         "idempotency-key",
        "x-target-host",
    };
    for (std::string_view a : kAllowed) {
        if (iequals(a, name)) return true;
    }
    return name.size() > 12 && starts_with_ci(name, "x-stainless-");
}

}  // namespace op
