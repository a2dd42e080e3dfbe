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

void write_request_head(ByteBuffer& out, const RequestHead& head, const OutgoingTarget& target, std::string_view host,
                        std::string_view upgrade) {
    out.append(head.method);
    out.append(" ", 1);
    if (target.slash) out.append("/", 1);
    out.append(target.rest);
    out.append(" HTTP/1.1\r\n");
    append_field(out, "Host", host);
    for (std::size_t i = 0; i < head.field_count; ++i) {
        const HeaderField& f = head.fields[i];
        switch (f.kind) {
            case FieldKind::Host:         // replaced by the upstream's
            case FieldKind::XTargetHost:  // addressed to this proxy
            case FieldKind::ContentLength:  // written below, once, normalised
            case FieldKind::Expect: continue;  // answered by this proxy
            default: break;
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
        if (f.kind != FieldKind::ContentLength && relayed(head, f)) append_field(out, f.name, f.value);
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

void write_error_response(ByteBuffer& out, const ProxyError& e, bool close) {
    assert(e.status >= 100 && e.status <= 999);
    static constexpr std::string_view kOpen = "{\"error\":{\"message\":\"";
    static constexpr std::string_view kType = "\",\"type\":\"";
    static constexpr std::string_view kCode = "\",\"code\":\"";
    static constexpr std::string_view kClose = "\"}}\n";
    const std::size_t body_len = kOpen.size() + json_escaped_size(e.message) + kType.size() +
                                 json_escaped_size(e.type) + kCode.size() + json_escaped_size(e.code) +
                                 kClose.size();
    out.append("HTTP/1.1 ");
    append_decimal(out, static_cast<std::uint64_t>(e.status));
    out.append(" ", 1);
    out.append(reason_phrase(e.status));
    out.append("\r\nContent-Type: application/json\r\nContent-Length: ");
    append_decimal(out, body_len);
    out.append(kCrlf);
    if (close) out.append("Connection: close\r\n");
    out.append(kCrlf);
    out.append(kOpen);
    append_json_escaped(out, e.message);
    out.append(kType);
    append_json_escaped(out, e.type);
    out.append(kCode);
    append_json_escaped(out, e.code);
    out.append(kClose);
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
