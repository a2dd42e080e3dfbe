// Every HTTP/1.1 byte the proxy writes itself: heads, chunk framing and its own error
// answers, for both sides (the upstream request, the client response, the CONNECT
// request to an upstream proxy).
//
// Contract: each function appends to a ByteBuffer owned by the caller and does nothing
// else; none keeps state, allocates beyond the buffer's growth, or formats with printf.
// Heads are re-serialised from parsed fields, never copied raw, so nothing malformed
// passes through: field lines are "name: value\r\n" with the parser's trimmed views.
// The caller decides what to send (routing, framing, keep-alive); these functions only
// decide how the bytes look. A ByteBuffer that refuses to grow (kMaxCapacity) drops
// the append, as ByteBuffer::append does; every caller bounds its buffers far below.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "byte_buffer.h"
#include "cors_policy.h"
#include "error_response.h"
#include "http_head.h"
#include "target.h"

namespace op {

// ---- requests to the upstream ----------------------------------------------------------

// An origin-form request target as forwarded: "/" when `slash`, then `rest` (usually a
// view into the client's request head), written without building a string.
struct OutgoingTarget {
    bool slash = false;
    std::string_view rest;
};

// The upstream request head:
//   <method> SP <target> SP "HTTP/1.1" CRLF
//   "Host: " <host> CRLF
//   the fields of `head` in arrival order, except Host, X-Target-Host, Content-Length,
//   Expect, the hop-by-hop fields and those named by Connection
//   "Transfer-Encoding: chunked" when the body is chunked (the proxy re-chunks it),
//   else "Content-Length: <n>" when the request had one
//   CRLF
//   "Connection: Upgrade" and "Upgrade: " <upgrade> when `upgrade` is not empty (the one
//   exception to dropping hop-by-hop fields: a WebSocket handshake, RFC 9110 7.8)
//
// With `credentials` (keys and access keys, failover.h), the client's credentials are
// edited: when `strip`, its Authorization and api-key fields are dropped and the
// "openai-insecure-api-key.*" subprotocol is taken out of Sec-WebSocket-Protocol (the
// field dropped when nothing else is left); when `name` is set, "<name>: <prefix><secret>"
// CRLF is written right after the Host line (where a retry finds it: see ClientConn).
struct CredentialEdit {
    bool strip = false;
    std::string_view name;    // "Authorization" or "api-key"; empty: nothing injected
    std::string_view prefix;  // "Bearer " or ""
    std::string_view secret;
};
void write_request_head(ByteBuffer& out, const RequestHead& head, const OutgoingTarget& target, std::string_view host,
                        std::string_view upgrade = {}, const CredentialEdit* credentials = nullptr);
// A field that carries a client's credential: Authorization or api-key, in any case.
bool is_credential_field(std::string_view name);
// Sec-WebSocket-Protocol, in any case: a browser's Realtime key travels in it.
bool is_protocols_field(std::string_view name);
// The field "<name>: <value>" CRLF without its "openai-insecure-api-key.*" elements (as
// write_request_head strips it); nothing when no element is left.
void write_protocols_without_key(ByteBuffer& out, std::string_view name, std::string_view value);
// The injected credential line alone, as write_request_head writes it.
void write_credential_line(ByteBuffer& out, const CredentialEdit& credentials);

// The CONNECT request that opens a tunnel through an upstream proxy (RFC 9110 9.3.6):
//   "CONNECT " <host>:<port> " HTTP/1.1" CRLF "Host: " <host>:<port> CRLF
//   ["Proxy-Authorization: " <proxy_authorization> CRLF] CRLF
// with an IPv6 literal host bracketed and the port always written.
void write_connect_head(ByteBuffer& out, const Target& target, std::string_view proxy_authorization);

// ---- responses to the client ---------------------------------------------------------

// What the relay adds to a response head it passes on; it decides, this writes.
struct ResponseFraming {
    bool content_length = false;  // "Content-Length: <head.content_length>"
    bool chunked = false;         // "Transfer-Encoding: chunked": the body is re-chunked
    bool close = false;           // "Connection: close"
    bool keep_alive = false;      // "Connection: keep-alive" (an HTTP/1.0 client), unless close
    std::string_view upgrade;     // a 101: "Connection: Upgrade" and "Upgrade: <upgrade>"
    // CORS on (cors_policy.h): the upstream's Access-Control-* fields are dropped, its Vary
    // fields become one with "Origin" added, and the allow fields follow when granted.
    const CorsAnswer* cors = nullptr;
};

// The client response head:
//   "HTTP/1.1 " <head.status> SP <head.reason> CRLF
//   the fields of `head` in arrival order, except Content-Length, the hop-by-hop fields
//   and those named by Connection (and with `framing.cors`, Vary and Access-Control-*);
//   with `framing.cors`, the CORS fields of write_cors_fields() (Vary merged with the
//   upstream's); then what `framing` adds, in the order above; CRLF.
void write_response_head(ByteBuffer& out, const ResponseHead& head, const ResponseFraming& framing);

// The CORS fields of an answer of the proxy's own (nothing when `cors` is null):
//   "Vary: Origin" CRLF, and when granted: "Access-Control-Allow-Origin: " <origin> CRLF,
//   ["Access-Control-Allow-Credentials: true" CRLF],
//   "Access-Control-Expose-Headers: " kCorsExposeHeaders CRLF
// A relayed head (write_response_head) writes the same, with the upstream's Vary values
// in one field before "Origin" ("Vary: Accept-Encoding, Origin"; no "Origin" added when
// they name it already, or are "*").
void write_cors_fields(ByteBuffer& out, const CorsAnswer* cors);

// The proxy's own answers below carry "Date: " <date> CRLF right after the status line:
// `date` is the current IMF-fixdate (http_date.h; RFC 9110 6.6.1).
//
// The proxy's own answer to a CORS preflight (an OPTIONS with Origin and
// Access-Control-Request-Method) from a granted origin:
//   "HTTP/1.1 204 No Content" CRLF "Date: " <date> CRLF
//   "Vary: Origin, Access-Control-Request-Method, Access-Control-Request-Headers" CRLF
//   "Access-Control-Allow-Origin: " <origin> CRLF [credentials CRLF]
//   "Access-Control-Allow-Methods: " kCorsAllowMethods CRLF
//   ["Access-Control-Allow-Headers: " <the tokens of `request_headers` (the
//     Access-Control-Request-Headers value) that cors_header_allowed() grants, ", "-joined> CRLF]
//   "Access-Control-Max-Age: " kCorsMaxAge CRLF ["Connection: close" CRLF] CRLF
void write_preflight_response(ByteBuffer& out, const CorsAnswer& cors, std::string_view request_headers, bool close,
                              std::string_view date);

// The head -json-keepalive sends before the upstream's answer has a head:
//   "HTTP/1.1 200 OK" CRLF "Date: " <date> CRLF "Content-Type: application/json" CRLF
//   "Transfer-Encoding: chunked" CRLF, the CORS fields (write_cors_fields),
//   ["Connection: close" CRLF] CRLF
void write_keepalive_head(ByteBuffer& out, const CorsAnswer* cors, bool close, std::string_view date);

// The interim answer to "Expect: 100-continue": "HTTP/1.1 100 Continue\r\n\r\n".
void write_continue(ByteBuffer& out);

// An error answer of the proxy's own: head (status, Date, Content-Type: application/json,
// Content-Length, Retry-After when e.retry_after_s, the CORS fields of write_cors_fields(), "Connection: close" when
// `close`) and the JSON body of error_response.h.
void write_error_response(ByteBuffer& out, const ProxyError& e, bool close, const CorsAnswer* cors,
                          std::string_view date);

// The same JSON body as one chunk, then the last chunk: the end of an answer whose
// head already went out (-json-keepalive's 200).
void write_error_chunk(ByteBuffer& out, const ProxyError& e);

// ---- chunked transfer coding (RFC 9112 section 7.1) -----------------------------------

// One chunk: "<hex size>\r\n" <payload> "\r\n". An empty payload writes nothing (a
// zero-size chunk would end the body).
void write_chunk(ByteBuffer& out, std::string_view payload);
// The last chunk and an empty trailer section: "0\r\n\r\n".
void write_last_chunk(ByteBuffer& out);

// The chunk-size line of a chunk of `payload_len` bytes, lower-case hex without
// leading zeros: writes "<hex>\r\n" into `out` (room for kMaxChunkHeader bytes) and
// returns its length. For callers that frame payload they write themselves.
inline constexpr std::size_t kMaxChunkHeader = 18;  // 16 hex digits and CRLF
std::size_t chunk_header(char* out, std::size_t payload_len);
inline constexpr std::string_view kChunkTrailerCrlf = "\r\n";  // after a chunk's payload
inline constexpr std::string_view kLastChunk = "0\r\n\r\n";

// The decimal digits of `v` (no sign, no padding).
void append_decimal(ByteBuffer& out, std::uint64_t v);

}  // namespace op
