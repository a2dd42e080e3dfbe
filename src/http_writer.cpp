// HTTP/1.1 wire bytes; the contract is in http_writer.h.
//
// Everything is appended piece by piece straight into the caller's buffer (each append
// is an inlined memcpy once the buffer has room): no temporary strings, no printf.
#include "http_writer.h"

#include <cassert>

namespace op {
namespace {

constexpr std::string_view kCrlf = "\r\n";

void append_field(ByteBuffer& out, std::string_view name, std::string_view value) {
    out.append(name);
    out.append(": ", 2);
    out.append(value);
    out.append(kCrlf);
}

// "<host>:<port>", an IPv6 literal in brackets (RFC 9112 section 3.2.3, authority-form).
void append_host_port(ByteBuffer& out, const Target& target) {
    const bool ipv6 = target.host.find(':') != std::string_view::npos;
    if (ipv6) out.append("[", 1);
    out.append(target.host);
    if (ipv6) out.append("]", 1);
    out.append(":", 1);
    append_decimal(out, target.port);
}

// The fields of a head the proxy relays: never the hop-by-hop ones (RFC 9110 section
// 7.6.1), nor those a Connection field names.
bool relayed(const HeadCommon& head, const HeaderField& f) {
    return !is_hop_by_hop(f.kind) && !named_by_connection(head, f.name);
}

bool starts_with_ci(std::string_view s, std::string_view prefix) {
    return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

// Calls fn(token) for each comma-separated token of `list`, trimmed of spaces and tabs.
template <typename Fn>
void for_each_token(std::string_view list, Fn fn) {
    while (!list.empty()) {
        std::size_t comma = list.find(',');
        std::string_view t = list.substr(0, comma);
        while (!t.empty() && (t.front() == ' ' || t.front() == '\t')) t.remove_prefix(1);
        while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) t.remove_suffix(1);
        if (!t.empty()) fn(t);
        if (comma == std::string_view::npos) break;
        list.remove_prefix(comma + 1);
    }
}

// Fields the proxy's CORS policy replaces in a relayed head.
bool replaced_by_cors(const HeaderField& f) {
    return iequals(f.name, "vary") || starts_with_ci(f.name, "access-control-");
}

void write_cors_grant(ByteBuffer& out, const CorsAnswer& cors) {
    if (cors.allow_origin.empty()) return;
    append_field(out, "Access-Control-Allow-Origin", cors.allow_origin);
    if (cors.credentials) out.append("Access-Control-Allow-Credentials: true\r\n");
    append_field(out, "Access-Control-Expose-Headers", kCorsExposeHeaders);
}

// One Vary field: the upstream's Vary values in order, then "Origin" unless one of them
// names it already or is "*".
void write_merged_vary(ByteBuffer& out, const ResponseHead& head) {
    out.append("Vary: ");
    bool any = false, has_origin = false;
    for (std::size_t i = 0; i < head.field_count; ++i) {
        const HeaderField& f = head.fields[i];
        if (!iequals(f.name, "vary")) continue;
        for_each_token(f.value, [&](std::string_view t) {
            if (any) out.append(", ", 2);
            out.append(t);
            any = true;
            if (t == "*" || iequals(t, "origin")) has_origin = true;
        });
    }
    if (!has_origin) out.append(any ? ", Origin" : "Origin");
    out.append(kCrlf);
}

}  // namespace

void append_decimal(ByteBuffer& out, std::uint64_t v) {
    char digits[20];  // 2^64 - 1 has 20
    char* end = digits + sizeof digits;
    char* p = end;
    do {
        *--p = static_cast<char>('0' + v % 10);
        v /= 10;
    } while (v != 0);
    out.append(p, static_cast<std::size_t>(end - p));
}

void write_credential_line(ByteBuffer& out, const CredentialEdit& c) {
    if (c.name.empty()) return;
    out.append(c.name);
    out.append(": ", 2);
    out.append(c.prefix);
    out.append(c.secret);
    out.append(kCrlf);
}

void write_protocols_without_key(ByteBuffer& out, std::string_view name, std::string_view value) {
    constexpr std::string_view kKeyPrefix = "openai-insecure-api-key.";
    std::string_view v = value;
    bool first = true;
    while (!v.empty()) {
        std::size_t comma = v.find(',');
        std::string_view item = v.substr(0, comma);
        while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
        while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
        if (!item.empty() && !(item.size() >= kKeyPrefix.size() && item.substr(0, kKeyPrefix.size()) == kKeyPrefix)) {
            if (first) {
                out.append(name);
                out.append(": ", 2);
                first = false;
            } else {
                out.append(", ", 2);
            }
            out.append(item);
        }
        if (comma == std::string_view::npos) break;
        v.remove_prefix(comma + 1);
    }
    if (!first) out.append(kCrlf);
}

bool is_credential_field(std::string_view name) { return iequals(name, "authorization") || iequals(name, "api-key"); }

bool is_protocols_field(std::string_view name) { return iequals(name, "sec-websocket-protocol"); }

void write_request_head(ByteBuffer& out, const RequestHead& head, const OutgoingTarget& target, std::string_view host,
                        std::string_view upgrade, const CredentialEdit* credentials) {
    out.append(head.method);
    out.append(" ", 1);
    if (target.slash) out.append("/", 1);
    out.append(target.rest);
    out.append(" HTTP/1.1\r\n");
    append_field(out, "Host", host);
    const bool strip = credentials && credentials->strip;
    if (credentials) write_credential_line(out, *credentials);
    for (std::size_t i = 0; i < head.field_count; ++i) {
        const HeaderField& f = head.fields[i];
        switch (f.kind) {
            case FieldKind::Host:         // replaced by the upstream's
            case FieldKind::XTargetHost:  // addressed to this proxy
            case FieldKind::ContentLength:  // written below, once, normalised
            case FieldKind::Expect: continue;  // answered by this proxy
            default: break;
        }
        if (strip && f.kind == FieldKind::Other) {
            if (is_credential_field(f.name)) continue;
            if (is_protocols_field(f.name)) {
                write_protocols_without_key(out, f.name, f.value);
                continue;
            }
        }
        if (relayed(head, f)) append_field(out, f.name, f.value);
    }
    if (head.chunked) {
        out.append("Transfer-Encoding: chunked\r\n");
    } else if (head.has_content_length) {
        out.append("Content-Length: ");
        append_decimal(out, head.content_length);
        out.append(kCrlf);
    }
    if (!upgrade.empty()) {
        out.append("Connection: Upgrade\r\n");
        append_field(out, "Upgrade", upgrade);
    }
    out.append(kCrlf);
}

void write_connect_head(ByteBuffer& out, const Target& target, std::string_view proxy_authorization) {
    out.append("CONNECT ");
    append_host_port(out, target);
    out.append(" HTTP/1.1\r\nHost: ");
    append_host_port(out, target);
    out.append(kCrlf);
    if (!proxy_authorization.empty()) append_field(out, "Proxy-Authorization", proxy_authorization);
    out.append(kCrlf);
}

void write_response_head(ByteBuffer& out, const ResponseHead& head, const ResponseFraming& framing) {
    assert(head.status >= 100 && head.status <= 999);  // the parser's range
    out.append("HTTP/1.1 ");
    append_decimal(out, static_cast<std::uint64_t>(head.status));
    out.append(" ", 1);
    out.append(head.reason);
    out.append(kCrlf);
    for (std::size_t i = 0; i < head.field_count; ++i) {
        const HeaderField& f = head.fields[i];
        if (f.kind != FieldKind::ContentLength && relayed(head, f) && !(framing.cors && replaced_by_cors(f)))
            append_field(out, f.name, f.value);
    }
    if (framing.cors) {
        write_merged_vary(out, head);
        write_cors_grant(out, *framing.cors);
    }
    if (framing.content_length) {
        out.append("Content-Length: ");
        append_decimal(out, head.content_length);
        out.append(kCrlf);
    }
    if (framing.chunked) out.append("Transfer-Encoding: chunked\r\n");
    if (!framing.upgrade.empty()) {
        out.append("Connection: Upgrade\r\n");
        append_field(out, "Upgrade", framing.upgrade);
    } else if (framing.close) {
        out.append("Connection: close\r\n");
    } else if (framing.keep_alive) {
        out.append("Connection: keep-alive\r\n");
    }
    out.append(kCrlf);
}

void write_continue(ByteBuffer& out) { out.append("HTTP/1.1 100 Continue\r\n\r\n"); }

void write_cors_fields(ByteBuffer& out, const CorsAnswer* cors) {
    if (!cors) return;
    out.append("Vary: Origin\r\n");
    write_cors_grant(out, *cors);
}

void write_preflight_response(ByteBuffer& out, const CorsAnswer& cors, std::string_view request_headers, bool close,
                              std::string_view date) {
    out.append("HTTP/1.1 204 No Content\r\n");
    append_field(out, "Date", date);
    out.append("Vary: Origin, Access-Control-Request-Method, Access-Control-Request-Headers\r\n");
    append_field(out, "Access-Control-Allow-Origin", cors.allow_origin);
    if (cors.credentials) out.append("Access-Control-Allow-Credentials: true\r\n");
    append_field(out, "Access-Control-Allow-Methods", kCorsAllowMethods);
    bool any = false;
    for_each_token(request_headers, [&](std::string_view t) {
        if (!cors_header_allowed(t)) return;
        out.append(any ? ", " : "Access-Control-Allow-Headers: ");
        out.append(t);
        any = true;
    });
    if (any) out.append(kCrlf);
    append_field(out, "Access-Control-Max-Age", kCorsMaxAge);
    if (close) out.append("Connection: close\r\n");
    out.append(kCrlf);
}

void write_keepalive_head(ByteBuffer& out, const CorsAnswer* cors, bool close, std::string_view date) {
    out.append("HTTP/1.1 200 OK\r\n");
    append_field(out, "Date", date);
    out.append("Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n");
    write_cors_fields(out, cors);
    if (close) out.append("Connection: close\r\n");
    out.append(kCrlf);
}

namespace {

constexpr std::string_view kOpen = "{\"error\":{\"message\":\"";
constexpr std::string_view kType = "\",\"type\":\"";
constexpr std::string_view kCode = "\",\"code\":\"";
constexpr std::string_view kClose = "\"}}\n";

std::size_t error_body_size(const ProxyError& e) {
    return kOpen.size() + json_escaped_size(e.message) + kType.size() + json_escaped_size(e.type) + kCode.size() +
           json_escaped_size(e.code) + kClose.size();
}

void write_error_body(ByteBuffer& out, const ProxyError& e) {
    out.append(kOpen);
    append_json_escaped(out, e.message);
    out.append(kType);
    append_json_escaped(out, e.type);
    out.append(kCode);
    append_json_escaped(out, e.code);
    out.append(kClose);
}

}  // namespace

void write_error_response(ByteBuffer& out, const ProxyError& e, bool close, const CorsAnswer* cors,
                          std::string_view date) {
    assert(e.status >= 100 && e.status <= 999);
    out.append("HTTP/1.1 ");
    append_decimal(out, static_cast<std::uint64_t>(e.status));
    out.append(" ", 1);
    out.append(reason_phrase(e.status));
    out.append(kCrlf);
    append_field(out, "Date", date);
    out.append("Content-Type: application/json\r\nContent-Length: ");
    append_decimal(out, error_body_size(e));
    out.append(kCrlf);
    if (e.retry_after_s > 0) {
        out.append("Retry-After: ");
        append_decimal(out, e.retry_after_s);
        out.append(kCrlf);
    }
    write_cors_fields(out, cors);
    if (close) out.append("Connection: close\r\n");
    out.append(kCrlf);
    write_error_body(out, e);
}

void write_error_chunk(ByteBuffer& out, const ProxyError& e) {
    char line[kMaxChunkHeader];
    out.append(line, chunk_header(line, error_body_size(e)));
    write_error_body(out, e);
    out.append(kChunkTrailerCrlf);
    write_last_chunk(out);
}

std::size_t chunk_header(char* out, std::size_t payload_len) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::size_t digits = 1;
    for (std::size_t v = payload_len >> 4; v != 0; v >>= 4) ++digits;
    for (std::size_t i = digits; i-- > 0; payload_len >>= 4) out[i] = kHex[payload_len & 0xf];
    out[digits] = '\r';
    out[digits + 1] = '\n';
    return digits + 2;
}

void write_chunk(ByteBuffer& out, std::string_view payload) {
    if (payload.empty()) return;
    char line[kMaxChunkHeader];
    out.append(line, chunk_header(line, payload.size()));
    out.append(payload);
    out.append(kChunkTrailerCrlf);
}

void write_last_chunk(ByteBuffer& out) { out.append(kLastChunk); }

}  // namespace op
