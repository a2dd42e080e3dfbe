#include "config.h"
#include "config_file.h"
#include "http_head.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>

namespace op {

namespace {

// What -targets and -default-target make: one origin, reached as -upstream-proxy says, no keys.
Route single_origin_route(std::string name, Target target) {
    Route r;
    r.name = std::move(name);
    r.origins.push_back(Origin{std::move(target), std::nullopt, {}});
    return r;
}

enum class Kind { Text, Bool };

// One command-line option. `apply` parses a value into the config and returns false
// with a reason (without the flag's name) when the value is bad.
struct Option {
    const char* name;
    const char* env;          // nullptr: flag only
    Kind kind;
    const char* placeholder;  // for -h: "-name placeholder"
    const char* default_text; // for -h; nullptr: no default shown
    const char* help;
    bool (*apply)(Config&, std::string_view value, std::string& why);
};

}  // namespace

bool parse_uint(std::string_view s, std::uint64_t max, std::uint64_t& out) {
    if (s.empty() || s.size() > 20) return false;
    std::uint64_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return false;
        std::uint64_t d = static_cast<std::uint64_t>(c - '0');
        if (v > (max - d) / 10) return false;
        v = v * 10 + d;
    }
    out = v;
    return true;
}

// "1048576", "64KiB", "100MiB", "1GiB" (K/KB/KiB all mean 1024).
bool parse_size(std::string_view s, std::uint64_t max, std::uint64_t& out) {
    std::size_t digits = 0;
    while (digits < s.size() && s[digits] >= '0' && s[digits] <= '9') ++digits;
    std::uint64_t v = 0;
    if (!parse_uint(s.substr(0, digits), max, v)) return false;
    std::string unit;
    for (char c : s.substr(digits)) unit += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::uint64_t mult = 1;
    if (unit.empty() || unit == "b") mult = 1;
    else if (unit == "k" || unit == "kb" || unit == "kib") mult = 1ull << 10;
    else if (unit == "m" || unit == "mb" || unit == "mib") mult = 1ull << 20;
    else if (unit == "g" || unit == "gb" || unit == "gib") mult = 1ull << 30;
    else return false;
    if (v > max / mult) return false;
    out = v * mult;
    return true;
}

// Go durations ("90s", "1m30s", "1h", "500ms") or plain seconds ("90"), in milliseconds.
bool parse_duration_ms(std::string_view s, std::int64_t& out) {
    std::uint64_t plain = 0;
    if (parse_uint(s, 100'000'000, plain)) {
        out = static_cast<std::int64_t>(plain) * 1000;
        return true;
    }
    if (s.empty()) return false;
    double total_ms = 0;
    std::size_t i = 0;
    while (i < s.size()) {
        std::size_t start = i;
        while (i < s.size() && ((s[i] >= '0' && s[i] <= '9') || s[i] == '.')) ++i;
        std::string number(s.substr(start, i - start));
        char* number_end = nullptr;
        double v = std::strtod(number.c_str(), &number_end);
        if (i == start || number_end != number.c_str() + number.size()) return false;  // "", ".", "1.5.5"
        std::size_t ustart = i;
        while (i < s.size() && std::isalpha(static_cast<unsigned char>(s[i]))) ++i;
        std::string_view unit = s.substr(ustart, i - ustart);
        if (unit == "h") total_ms += v * 3'600'000;
        else if (unit == "m") total_ms += v * 60'000;
        else if (unit == "s") total_ms += v * 1000;
        else if (unit == "ms") total_ms += v;
        else return false;
    }
    if (total_ms > 1e11) return false;
    out = static_cast<std::int64_t>(total_ms + 0.999);
    return true;
}

namespace {

// The same, rounded up to whole seconds.
bool parse_seconds(std::string_view s, std::chrono::seconds& out) {
    std::int64_t ms = 0;
    if (!parse_duration_ms(s, ms)) return false;
    out = std::chrono::seconds((ms + 999) / 1000);
    return true;
}

bool parse_bool(std::string_view s, bool& out) {
    if (s == "1" || s == "t" || s == "T" || s == "true" || s == "TRUE" || s == "True") out = true;
    else if (s == "0" || s == "f" || s == "F" || s == "false" || s == "FALSE" || s == "False") out = false;
    else return false;
    return true;
}

template <typename T, std::uint64_t Min, std::uint64_t Max>
bool set_number(T& field, std::string_view v, std::string& why) {
    std::uint64_t n = 0;
    if (!parse_size(v, Max, n) || n < Min) {
        why = "must be a whole number from " + std::to_string(Min) + " to " + std::to_string(Max);
        return false;
    }
    field = static_cast<T>(n);
    return true;
}

bool set_duration(std::chrono::seconds& field, std::string_view v, std::string& why, bool allow_zero) {
    std::chrono::seconds s{};
    if (!parse_seconds(v, s) || (!allow_zero && s.count() == 0)) {
        why = allow_zero ? "must be a duration such as 90s, 2m or 1h30m"
                         : "must be a positive duration such as 90s, 2m or 1h30m";
        return false;
    }
    field = s;
    return true;
}

// A period that 0 turns off; at least 10 ms otherwise (a shorter one is a typo, and
// would busy the loop).
bool set_period(std::chrono::milliseconds& field, std::string_view v, std::string& why) {
    std::int64_t ms = 0;
    if (!parse_duration_ms(v, ms) || (ms != 0 && ms < 10)) {
        why = "must be a duration such as 30s or 500ms (0 = off; at least 10ms)";
        return false;
    }
    field = std::chrono::milliseconds(ms);
    return true;
}

const Option kOptions[] = {
    {"listen", "OPENAI_PROXY_LISTEN", Kind::Text, "address", ":9001",
     "listen address: :port, host:port or [ipv6]:port",
     [](Config& c, std::string_view v, std::string& why) { return parse_listen_address(v, c.listen, why); }},
    {"config", "OPENAI_PROXY_CONFIG", Kind::Text, "file", "none",
     "read settings, targets with their origins, keys and egress, and access keys from this file "
     "(README \"Configuration file\"); flags and environment override it; re-read on SIGHUP",
     [](Config& c, std::string_view v, std::string&) {
         c.config_file = std::string(v);
         return true;
     }},
    {"check-config", nullptr, Kind::Bool, nullptr, "false",
     "only check the configuration (flags, environment, -config file, key files, access keys, -tls-cert), "
     "print a summary and exit: 0 if it is valid, else 2",
     nullptr},  // handled specially: not a setting
    {"targets", "OPENAI_PROXY_TARGETS", Kind::Text, "key:domain,...", nullptr,
     "target map, e.g. oa:api.openai.com,azure:x.openai.azure.com (flag and env are merged)",
     nullptr},  // handled specially: merged
    {"default-target", "OPENAI_PROXY_DEFAULT_TARGET", Kind::Text, "target", "api.openai.com when no -targets",
     "upstream for requests that match no target",
     [](Config& c, std::string_view v, std::string& why) {
         Target t;
         if (!parse_target(v, t, why)) return false;
         c.default_route = single_origin_route("", std::move(t));
         return true;
     }},
    {"access-keys", "OPENAI_PROXY_ACCESS_KEYS", Kind::Text, "file", "none",
     "client access keys, \"label = key\" per line: every request must present one (Authorization: Bearer, "
     "or api-key); re-read on SIGHUP",
     [](Config& c, std::string_view v, std::string&) {
         c.access_keys_file = std::string(v);
         return true;
     }},
    {"allow-anonymous", nullptr, Kind::Bool, nullptr, "false",
     "serve targets with server-side keys without -access-keys on a non-loopback address "
     "(anyone who reaches the proxy can then spend the keys)",
     [](Config& c, std::string_view v, std::string& why) {
         if (!parse_bool(v, c.allow_anonymous)) return why = "must be true or false", false;
         return true;
     }},
    {"ca-file", "OPENAI_PROXY_CA_FILE", Kind::Text, "path", "SSL_CERT_FILE/SSL_CERT_DIR, then the system bundle",
     "PEM file of trusted CA certificates for upstream TLS",
     [](Config& c, std::string_view v, std::string&) {
         c.ca_file = std::string(v);
         return true;
     }},
    {"tls-cert", "OPENAI_PROXY_TLS_CERT", Kind::Text, "path", "none (plain HTTP)",
     "serve HTTPS: PEM certificate chain, server certificate first (with -tls-key; re-read on SIGHUP)",
     [](Config& c, std::string_view v, std::string&) {
         c.tls_cert = std::string(v);
         return true;
     }},
    {"tls-key", "OPENAI_PROXY_TLS_KEY", Kind::Text, "path", "none",
     "PEM private key of -tls-cert (not encrypted)",
     [](Config& c, std::string_view v, std::string&) {
         c.tls_key = std::string(v);
         return true;
     }},
    {"upstream-proxy", "OPENAI_PROXY_UPSTREAM_PROXY", Kind::Text, "url", "none (ENV=local: HTTP_PROXY)",
     "reach upstreams through this proxy: http://[user:pass@]host[:port] (CONNECT tunnel), "
     "socks5://... (name resolved here) or socks5h://... (name resolved by the SOCKS server), "
     "or direct; TLS is still verified end to end",
     [](Config& c, std::string_view v, std::string& why) {
         Egress e;
         if (!parse_egress(v, e, why)) return false;
         if (e.direct()) c.upstream_proxy.reset();
         else c.upstream_proxy = std::move(e);
         return true;
     }},
    {"workers", "OPENAI_PROXY_WORKERS", Kind::Text, "n", "0 (one per CPU core)",
     "event-loop threads",
     [](Config& c, std::string_view v, std::string& why) { return set_number<unsigned, 0, 256>(c.workers, v, why); }},
    {"buffer-size", nullptr, Kind::Text, "bytes", "1024",
     "bytes per first read when relaying bodies (reads grow to 64 KiB while more is waiting)",
     [](Config& c, std::string_view v, std::string& why) {
         return set_number<std::size_t, 1, 1048576>(c.buffer_size, v, why);
     }},
    {"pool-max-idle", nullptr, Kind::Text, "n", "1024", "idle upstream connections kept in total, per worker",
     [](Config& c, std::string_view v, std::string& why) {
         return set_number<std::size_t, 0, 1000000>(c.pool_max_idle, v, why);
     }},
    {"pool-max-idle-per-host", nullptr, Kind::Text, "n", "512",
     "idle upstream connections kept per upstream, per worker",
     [](Config& c, std::string_view v, std::string& why) {
         return set_number<std::size_t, 0, 1000000>(c.pool_max_idle_per_host, v, why);
     }},
    {"pool-idle-timeout", nullptr, Kind::Text, "duration", "90s", "close idle upstream connections after this",
     [](Config& c, std::string_view v, std::string& why) { return set_duration(c.pool_idle_timeout, v, why, false); }},
    {"connect-timeout", nullptr, Kind::Text, "duration", "10s", "upstream TCP connect (and the upstream proxy's tunnel: CONNECT, SOCKS5); 504 after",
     [](Config& c, std::string_view v, std::string& why) { return set_duration(c.connect_timeout, v, why, false); }},
    {"tls-timeout", nullptr, Kind::Text, "duration", "10s", "upstream TLS handshake; 504 after",
     [](Config& c, std::string_view v, std::string& why) { return set_duration(c.tls_timeout, v, why, false); }},
    {"response-timeout", nullptr, Kind::Text, "duration", "10m", "wait for the upstream's response head; 504 after",
     [](Config& c, std::string_view v, std::string& why) { return set_duration(c.response_timeout, v, why, false); }},
    {"idle-timeout", nullptr, Kind::Text, "duration", "10m",
     "end an exchange after this long without a byte in either direction",
     [](Config& c, std::string_view v, std::string& why) { return set_duration(c.idle_timeout, v, why, false); }},
    {"header-timeout", nullptr, Kind::Text, "duration", "30s", "time for a client to send a request head; 408 after",
     [](Config& c, std::string_view v, std::string& why) { return set_duration(c.header_timeout, v, why, false); }},
    {"keepalive-timeout", nullptr, Kind::Text, "duration", "75s", "close idle client connections after this",
     [](Config& c, std::string_view v, std::string& why) { return set_duration(c.keepalive_timeout, v, why, false); }},
    {"shutdown-grace", nullptr, Kind::Text, "duration", "30s",
     "on SIGTERM/SIGINT, time for requests in flight to finish",
     [](Config& c, std::string_view v, std::string& why) { return set_duration(c.shutdown_grace, v, why, true); }},
    {"max-connections", nullptr, Kind::Text, "n", "10000", "client connections served at once",
     [](Config& c, std::string_view v, std::string& why) {
         return set_number<std::size_t, 1, 10000000>(c.max_connections, v, why);
     }},
    {"max-body-size", nullptr, Kind::Text, "bytes", "512MiB", "largest request body; 413 beyond",
     [](Config& c, std::string_view v, std::string& why) {
         return set_number<std::uint64_t, 0, (1ull << 50)>(c.max_body_bytes, v, why);
     }},
    {"max-header-size", nullptr, Kind::Text, "bytes", "64KiB", "largest request head; 431 beyond",
     [](Config& c, std::string_view v, std::string& why) {
         return set_number<std::size_t, 1024, 1048576>(c.max_header_bytes, v, why);
     }},
    {"max-request-line", nullptr, Kind::Text, "bytes", "8KiB", "longest request line; 414 beyond",
     [](Config& c, std::string_view v, std::string& why) {
         return set_number<std::size_t, 64, 1048576>(c.max_request_line, v, why);
     }},
    {"max-header-count", nullptr, Kind::Text, "n", "100", "most request header fields; 431 beyond",
     [](Config& c, std::string_view v, std::string& why) {
         return set_number<std::size_t, 1, kMaxHeaderFields>(c.max_header_count, v, why);
     }},
    {"max-header-line", nullptr, Kind::Text, "bytes", "16KiB", "longest single request header field line; 431 beyond",
     [](Config& c, std::string_view v, std::string& why) {
         return set_number<std::size_t, 64, 1048576>(c.max_header_line, v, why);
     }},
    {"allow-hosts", nullptr, Kind::Text, "name,*.suffix,...", "any",
     "only these hosts may be chosen with X-Target-Host",
     [](Config& c, std::string_view v, std::string& why) {
         c.allow_hosts.clear();
         while (!v.empty()) {
             std::size_t comma = v.find(',');
             std::string_view item = v.substr(0, comma);
             while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
             while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
             if (!item.empty()) {
                 std::string_view name = item.substr(0, 2) == "*." ? item.substr(2) : item;
                 Target t;
                 if (name.empty() || name.find_first_of("*:/") != std::string_view::npos || !parse_target(name, t, why)) {
                     why = "\"" + std::string(item) + "\" is not a host name or *.suffix pattern";
                     return false;
                 }
                 c.allow_hosts.emplace_back(item);
             }
             if (comma == std::string_view::npos) break;
             v.remove_prefix(comma + 1);
         }
         return true;
     }},
    {"allow-private", nullptr, Kind::Bool, nullptr, "false",
     "let X-Target-Host reach loopback, private, link-local and other internal addresses",
     [](Config& c, std::string_view v, std::string& why) {
         if (!parse_bool(v, c.allow_private)) return why = "must be true or false", false;
         return true;
     }},
    {"disable-target-header", nullptr, Kind::Bool, nullptr, "false",
     "refuse X-Target-Host (403); route by Host and -default-target only",
     [](Config& c, std::string_view v, std::string& why) {
         if (!parse_bool(v, c.disable_target_header)) return why = "must be true or false", false;
         return true;
     }},
    // Browsers and CDNs (README "CORS", "Keep-alive through CDNs").
    {"cors-origins", "OPENAI_PROXY_CORS_ORIGINS", Kind::Text, "*|origin,...", "off",
     "browser origins allowed to call the proxy (scheme://host[:port], or * for any); "
     "the proxy answers CORS preflights itself",
     [](Config& c, std::string_view v, std::string& why) { return parse_cors_origins(v, c.cors, why); }},
    {"sse-keepalive", nullptr, Kind::Text, "duration", "0",
     "send \": keep-alive\" between the events of a text/event-stream answer silent this long; 0 = off",
     [](Config& c, std::string_view v, std::string& why) { return set_period(c.sse_keepalive, v, why); }},
    {"json-keepalive", nullptr, Kind::Text, "duration", "0",
     "no response head this long for a non-streamed JSON POST: answer 200 at once, a whitespace byte each "
     "period, then the upstream's body, whatever its status; 0 = off",
     [](Config& c, std::string_view v, std::string& why) { return set_period(c.json_keepalive, v, why); }},
    // Observability: a separate listener for health and metrics, and the access log.
    {"admin-listen", "OPENAI_PROXY_ADMIN_LISTEN", Kind::Text, "address", "off",
     "serve GET /healthz and GET /metrics (Prometheus) on this address, e.g. 127.0.0.1:9002",
     [](Config& c, std::string_view v, std::string& why) {
         ListenAddress a;
         if (!parse_listen_address(v, a, why)) return false;
         c.admin_listen = a;
         return true;
     }},
    {"access-log", "OPENAI_PROXY_ACCESS_LOG", Kind::Text, "path", "off",
     "write one JSON line per request to this file (- for standard output); reopened on SIGHUP",
     [](Config& c, std::string_view v, std::string& why) {
         if (v.empty()) return why = "must be a path or -", false;
         c.access_log = std::string(v);
         return true;
     }},
};

const Option* find_option(std::string_view name) {
    for (const Option& o : kOptions)
        if (name == o.name) return &o;
    return nullptr;
}

// "key:domain,key2:domain2" into `out` (later keys replace earlier ones).
void parse_targets(std::string_view list, const char* source, std::map<std::string, Target>& out,
                   std::vector<std::string>& order, std::vector<std::string>& errors) {
    while (true) {
        std::size_t comma = list.find(',');
        std::string_view entry = list.substr(0, comma);
        while (!entry.empty() && entry.front() == ' ') entry.remove_prefix(1);
        while (!entry.empty() && entry.back() == ' ') entry.remove_suffix(1);
        if (!entry.empty()) {
            std::size_t colon = entry.find(':');
            std::string key(entry.substr(0, colon == std::string_view::npos ? 0 : colon));
            bool key_ok = !key.empty();
            for (char& ch : key) {
                ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
                if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '_') key_ok = false;
            }
            std::string why;
            Target t;
            if (colon == std::string_view::npos) {
                errors.push_back(std::string("malformed target \"") + std::string(entry) + "\" in " + source +
                                 ": expected key:domain");
            } else if (!key_ok) {
                errors.push_back(std::string("malformed target \"") + std::string(entry) + "\" in " + source +
                                 ": the key must be letters, digits, '-' or '_'");
            } else if (!parse_target(entry.substr(colon + 1), t, why)) {
                errors.push_back(std::string("malformed target \"") + std::string(entry) + "\" in " + source + ": " +
                                 why);
            } else {
                if (!out.count(key)) order.push_back(key);
                out[key] = t;
            }
        }
        if (comma == std::string_view::npos) break;
        list.remove_prefix(comma + 1);
    }
}

}  // namespace

bool parse_listen_address(std::string_view text, ListenAddress& out, std::string& error) {
    ListenAddress a;
    a.text = std::string(text);
    std::string_view host, port;
    if (!text.empty() && text.front() == '[') {
        std::size_t close = text.find(']');
        if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
            error = "invalid listen address \"" + std::string(text) + "\": expected [ipv6]:port";
            return false;
        }
        host = text.substr(1, close - 1);
        port = text.substr(close + 2);
        if (host.find(':') == std::string_view::npos) {
            error = "invalid listen address \"" + std::string(text) + "\": not an IPv6 literal";
            return false;
        }
    } else {
        std::size_t colon = text.rfind(':');
        if (colon == std::string_view::npos) {
            error = "invalid listen address \"" + std::string(text) + "\": expected host:port or :port";
            return false;
        }
        host = text.substr(0, colon);
        port = text.substr(colon + 1);
        if (host.find(':') != std::string_view::npos) {
            error = "invalid listen address \"" + std::string(text) + "\": write IPv6 addresses as [addr]:port";
            return false;
        }
    }
    std::uint64_t p = 0;
    if (!parse_uint(port, 65535, p)) {
        error = "invalid listen address \"" + std::string(text) + "\": port must be 0-65535";
        return false;
    }
    for (char c : host) {
        bool ok = std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == ':' || c == '_';
        if (!ok) {
            error = "invalid listen address \"" + std::string(text) + "\": bad host";
            return false;
        }
    }
    a.host = std::string(host);
    a.port = static_cast<std::uint16_t>(p);
    out = a;
    return true;
}

bool read_file_text(const std::string& path, std::string& text, std::string& error) {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) {
        error = std::strerror(errno);
        return false;
    }
    text.clear();
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) {
        text.append(buf, n);
        if (text.size() > (16u << 20)) {
            std::fclose(f);
            error = "larger than 16 MiB";
            return false;
        }
    }
    bool failed = std::ferror(f) != 0;
    int saved = errno;
    std::fclose(f);
    if (failed) {
        error = std::strerror(saved);
        return false;
    }
    return true;
}

bool listen_is_loopback(const ListenAddress& a) {
    std::string host;
    for (char ch : a.host) host += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (host == "localhost" || host == "::1" || host == "0:0:0:0:0:0:0:1") return true;
    // 127.0.0.0/8, dotted decimal
    if (host.rfind("127.", 0) != 0) return false;
    int parts = 0;
    std::size_t i = 0;
    while (i <= host.size()) {
        std::size_t dot = host.find('.', i);
        std::string_view part = std::string_view(host).substr(i, dot == std::string::npos ? std::string::npos : dot - i);
        std::uint64_t v = 0;
        if (!parse_uint(part, 255, v) || part.size() > 3) return false;
        ++parts;
        if (dot == std::string::npos) break;
        i = dot + 1;
    }
    return parts == 4;
}

std::string safe_default_error(const Config& c) {
    // Server-side keys, no access keys, reachable beyond loopback: a free key for whoever
    // finds the port, unless the operator says so.
    bool injects = false;
    auto has_keys = [](const Route& route) {
        for (const Origin& o : route.origins)
            if (!o.keys.empty()) return true;
        return false;
    };
    for (const Route& route : c.routes) injects = injects || has_keys(route);
    if (c.default_route) injects = injects || has_keys(*c.default_route);
    if (!injects || !c.access_keys_file.empty() || c.allow_anonymous || listen_is_loopback(c.listen)) return "";
    return "server-side keys are configured, no access keys are, and the listen address \"" + c.listen.text +
           "\" is not loopback only: anyone who reaches the proxy could spend the keys. "
           "Give clients keys of their own (-access-keys FILE), listen on loopback "
           "(-listen 127.0.0.1:PORT), or pass -allow-anonymous if that is what you mean";
}

std::string config_summary(const Config& c, const char* lead) {
    std::size_t targets = c.routes.size() + (c.default_route ? 1 : 0), origins = 0, keys = 0;
    auto count = [&](const Route& r) {
        origins += r.origins.size();
        for (const Origin& o : r.origins) keys += o.keys.size();
    };
    for (const Route& r : c.routes) count(r);
    if (c.default_route) count(*c.default_route);
    auto n = [](std::size_t v, const char* one, const char* many) {
        return std::to_string(v) + " " + (v == 1 ? one : many);
    };
    return std::string(lead) + ": " + n(targets, "target", "targets") + ", " + n(origins, "origin", "origins") +
           ", " + n(keys, "key", "keys") + ", " + n(c.access_keys.size(), "access key", "access keys");
}

ConfigResult parse_config(int argc, const char* const* argv, const EnvLookup& env) {
    return parse_config(argc, argv, env, read_file_text);
}

ConfigResult parse_config(int argc, const char* const* argv, const EnvLookup& env, const ReadFile& read) {
    ConfigResult r;
    Config& c = r.config;
    std::string why;
    parse_listen_address(":9001", c.listen, why);

    // Flags are collected first, so that each may override its environment variable.
    std::map<std::string, std::string> flags;
    std::string flag_targets;
    bool have_flag_targets = false;
    for (int i = 1; i < argc; ++i) {
        std::string_view arg = argv[i];
        if (arg == "--") {
            if (i + 1 < argc) r.errors.push_back("unexpected argument: " + std::string(argv[i + 1]));
            break;
        }
        if (arg.size() < 2 || arg[0] != '-') {
            r.errors.push_back("unexpected argument: " + std::string(arg) + " (options start with -)");
            continue;
        }
        std::string_view name = arg.substr(arg[1] == '-' ? 2 : 1);
        std::string_view value;
        bool has_value = false;
        if (std::size_t eq = name.find('='); eq != std::string_view::npos) {
            value = name.substr(eq + 1);
            name = name.substr(0, eq);
            has_value = true;
        }
        if (name == "h" || name == "help") {
            r.show_help = true;
            continue;
        }
        if (name == "version" || name == "v") {
            r.show_version = true;
            continue;
        }
        const Option* opt = find_option(name);
        if (!opt) {
            r.errors.push_back("unknown flag: -" + std::string(name));
            continue;
        }
        if (!has_value) {
            if (opt->kind == Kind::Bool) {
                value = "true";
            } else if (i + 1 < argc) {
                value = argv[++i];
            } else {
                r.errors.push_back("flag needs an argument: -" + std::string(name));
                continue;
            }
        }
        if (name == "targets") {
            flag_targets += (have_flag_targets ? "," : "") + std::string(value);
            have_flag_targets = true;
        } else if (name == "check-config") {
            if (!parse_bool(value, r.check_only))
                r.errors.push_back("invalid value \"" + std::string(value) + "\" for flag -check-config: must be true or false");
        } else {
            flags[std::string(name)] = std::string(value);
        }
    }

    // The -config file first: the environment and the flags override what it says.
    std::string config_path;
    if (auto f = flags.find("config"); f != flags.end()) config_path = f->second;
    else if (const char* e = env("OPENAI_PROXY_CONFIG"); e && *e) config_path = e;
    std::string access_keys_where;  // "file:line: " when the file names the access keys
    bool file_upstream_proxy = false;
    std::vector<Route> file_routes;
    const std::size_t file_errors_from = r.errors.size();
    if (!config_path.empty()) {
        std::string text;
        if (!read(config_path, text, why)) {
            r.errors.push_back("cannot read configuration file \"" + config_path + "\": " + why);
        } else {
            ConfigFileText file = split_config_file(text, config_path, r.errors);
            std::map<std::string, int> seen;  // top-level setting -> line
            std::map<std::string, Target> file_targets;
            std::vector<std::string> file_order;
            int default_target_line = 0;
            for (const ConfigSetting& s : file.top) {
                const std::string where = config_path + ":" + std::to_string(s.line) + ": ";
                if (s.name == "config" || s.name == "check-config") {
                    r.errors.push_back(where + s.name + " cannot be set in the configuration file");
                    continue;
                }
                const Option* opt = find_option(s.name);
                if (!opt) {
                    static const char* const kSectionOnly[] = {"origin",   "key",      "key-env",  "key-file",
                                                               "egress",   "key-header", "attempts", "retry-on",
                                                               "retry-body-limit", "head-timeout"};
                    bool section_only = false;
                    for (const char* n : kSectionOnly) section_only = section_only || s.name == n;
                    r.errors.push_back(where + (section_only ? s.name + " belongs in a [target NAME] or [default] section"
                                                             : "unknown setting \"" + s.name + "\""));
                    continue;
                }
                if (auto [it, fresh] = seen.emplace(s.name, s.line); !fresh) {
                    r.errors.push_back(where + s.name + " is already set at line " + std::to_string(it->second));
                    continue;
                }
                if (s.name == "targets") {
                    std::vector<std::string> errors;
                    parse_targets(s.value, "targets", file_targets, file_order, errors);
                    for (auto& e : errors) r.errors.push_back(where + e);
                    continue;
                }
                std::string reason;
                if (!opt->apply(c, s.value, reason)) {
                    // A proxy URL's password is a secret: never echoed.
                    std::string shown = s.name == "upstream-proxy" ? without_password(s.value) : s.value;
                    r.errors.push_back(where + "invalid value \"" + shown + "\" for " + s.name + ": " + reason);
                    continue;
                }
                if (s.name == "access-keys") access_keys_where = where;
                if (s.name == "upstream-proxy") file_upstream_proxy = true;
                if (s.name == "default-target") default_target_line = s.line;
            }
            for (const auto& key : file_order) file_routes.push_back(single_origin_route(key, file_targets[key]));
            for (const ConfigSection& section : file.sections) {
                Route route;
                const std::string where = config_path + ":" + std::to_string(section.line) + ": ";
                if (section.is_default && default_target_line) {
                    r.errors.push_back(where + "[default] and default-target (line " +
                                       std::to_string(default_target_line) + ") both set the default target");
                    continue;
                }
                if (!section.is_default && file_targets.count(section.name)) {
                    r.errors.push_back(where + "target \"" + section.name + "\" is also in targets =");
                    continue;
                }
                if (!build_route(section, config_path, env, read, route, r.errors)) continue;
                if (section.is_default) c.default_route = std::move(route);
                else file_routes.push_back(std::move(route));
            }
        }
        // In the order of the file's lines (a key file's errors follow the line naming it).
        // (line, position found, message); the position keeps the sort stable.
        std::vector<std::pair<std::pair<long, std::size_t>, std::string>> keyed;
        long last = 0;
        const std::string prefix = config_path + ":";
        for (std::size_t i = file_errors_from; i < r.errors.size(); ++i) {
            const std::string& e = r.errors[i];
            if (e.compare(0, prefix.size(), prefix) == 0) last = std::strtol(e.c_str() + prefix.size(), nullptr, 10);
            keyed.emplace_back(std::make_pair(last, i), std::move(r.errors[i]));
        }
        std::sort(keyed.begin(), keyed.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
        for (std::size_t i = 0; i < keyed.size(); ++i) r.errors[file_errors_from + i] = std::move(keyed[i].second);
    }

    for (const Option& o : kOptions) {
        if (!o.apply) continue;
        auto f = flags.find(o.name);
        const char* env_value = o.env ? env(o.env) : nullptr;
        std::string source;
        std::string value;
        if (f != flags.end()) {
            value = f->second;
            source = std::string("flag -") + o.name;
        } else if (env_value && *env_value) {
            value = env_value;
            source = o.env;
        } else {
            continue;
        }
        std::string reason;
        if (!o.apply(c, value, reason)) {
            // A proxy URL's password is a secret: never echoed.
            if (std::string_view(o.name) == "upstream-proxy") value = without_password(value);
            r.errors.push_back("invalid value \"" + value + "\" for " + source + ": " + reason);
        } else if (std::string_view(o.name) == "access-keys") {
            access_keys_where = "";
        }
    }

    // Targets: the file's, then environment entries, then flag entries; an entry whose
    // name is already there replaces it (a flag wins over the environment, which wins
    // over the file).
    c.routes = std::move(file_routes);
    std::map<std::string, Target> targets;
    std::vector<std::string> order;
    if (const char* e = env("OPENAI_PROXY_TARGETS"); e && *e)
        parse_targets(e, "OPENAI_PROXY_TARGETS", targets, order, r.errors);
    if (have_flag_targets) parse_targets(flag_targets, "-targets", targets, order, r.errors);
    for (const auto& key : order) {
        Route route = single_origin_route(key, targets[key]);
        bool replaced = false;
        for (Route& existing : c.routes) {
            if (existing.name == key) {
                existing = std::move(route);
                replaced = true;
                break;
            }
        }
        if (!replaced) c.routes.push_back(std::move(route));
    }
    if (c.routes.empty() && !c.default_route) {
        Target t;
        parse_target("api.openai.com", t, why);
        c.default_route = single_origin_route("", std::move(t));
    }

    if (c.tls_cert.empty() != c.tls_key.empty())
        r.errors.push_back(c.tls_cert.empty() ? "-tls-key needs -tls-cert" : "-tls-cert needs -tls-key");

    // Local mode (as the original): upstream connections through HTTP_PROXY.
    if (const char* mode = env("ENV"); mode && std::string_view(mode) == "local") {
        c.local_mode = true;
        // An -upstream-proxy that was given but refused is already reported; falling
        // back to HTTP_PROXY then would only add a second, confusing line.
        const char* own = env("OPENAI_PROXY_UPSTREAM_PROXY");
        bool given = flags.count("upstream-proxy") != 0 || (own && *own) || file_upstream_proxy;
        if (!given) {
            const char* source = "HTTP_PROXY";
            const char* p = env(source);
            if (!p || !*p) p = env(source = "http_proxy");
            std::string spec = p && *p ? p : "http://127.0.0.1:10809";
            Egress e;
            std::string reason;
            // HTTP_PROXY is an HTTP proxy by its name (and other programs read it too).
            if (parse_egress(spec, e, reason) && e.kind != Egress::Kind::HttpConnect)
                reason = "only http:// proxies are supported in " + std::string(source) + " (use -upstream-proxy)";
            if (reason.empty()) c.upstream_proxy = std::move(e);
            else r.errors.push_back("invalid value \"" + without_password(spec) + "\" for " + source + ": " + reason);
        }
    }

    // Client access keys.
    if (!c.access_keys_file.empty()) {
        std::string text;
        const std::string& path = c.access_keys_file;
        if (!read(path, text, why)) {
            r.errors.push_back(access_keys_where + "cannot read access keys file \"" + path + "\": " + why);
        } else {
            std::size_t before = r.errors.size();
            parse_access_keys(text, path, c.access_keys, r.errors);
            if (c.access_keys.empty() && r.errors.size() == before)
                r.errors.push_back(access_keys_where + "access keys file \"" + path + "\" holds no key");
        }
    }

    if (std::string e = safe_default_error(c); !e.empty()) r.errors.push_back(std::move(e));
    return r;
}

std::string usage_text(const char* program_name) {
    std::string out = std::string("Usage of ") + program_name + ":\n";
    for (const Option& o : kOptions) {
        out += "  -";
        out += o.name;
        if (o.placeholder) {
            out += ' ';
            out += o.placeholder;
        }
        out += "\n    \t";
        out += o.help;
        if (o.default_text) out += std::string(" (default ") + o.default_text + ")";
        if (o.env) out += std::string(" (env ") + o.env + ")";
        out += '\n';
    }
    out +=
        "  -h, --help\n    \tshow this help\n"
        "  --version\n    \tprint the version\n"
        "Environment:\n"
        "  ENV=local\n    \tlocal mode: reach upstreams through HTTP_PROXY, log each request\n"
        "  HTTP_PROXY, http_proxy\n    \tthe proxy for local mode (default http://127.0.0.1:10809)\n"
        "  SSL_CERT_FILE, SSL_CERT_DIR\n    \ttrust store when -ca-file is not given\n";
    return out;
}

const char* version_text() {
#ifndef OP_VERSION
#define OP_VERSION "dev"
#endif
    return "openai-proxy " OP_VERSION;
}

}  // namespace op
