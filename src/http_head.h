// HTTP/1.x message-head parsing (RFC 9112 sections 2-6), requests and responses.
//
// Contract: a pure function over a byte span. The parser allocates nothing, owns
// nothing and keeps no state between calls: every view it fills points into the
// caller's input, which must outlive the filled head. Feed it everything buffered so
// far; it answers Complete (with the number of bytes the head occupies, final empty
// line included), Incomplete (call again with more bytes) or Invalid (with the HTTP
// status the proxy should answer and a short static reason). Bytes from the network
// never trigger an assert.
//
// Strictness (what is Invalid): see http_head.cpp. In short: token characters in the
// method and field names, no whitespace before a colon, no obs-fold, no control bytes
// (NUL, bare CR, ...) in names or values, a sane Content-Length / Transfer-Encoding
// combination, and hard size limits. Bare LF line endings are accepted, but since the
// proxy re-serialises every head it forwards, they are never passed on.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace op {

// The fields the proxy treats specially, recognised once by the parser so the relay
// does not compare every name against a list again (RFC 9110 section 7.6.1 for the
// hop-by-hop ones).
enum class FieldKind : unsigned char {
    Other,
    ContentLength,
    TransferEncoding,  // hop-by-hop
    Connection,        // hop-by-hop
    OtherHopByHop,     // Keep-Alive, Proxy-Connection, TE, Trailer, Upgrade
    Host,
    Expect,
    XTargetHost,
};

struct HeaderField {
    std::string_view name;
    std::string_view value;  // leading/trailing whitespace already trimmed
    FieldKind kind = FieldKind::Other;
};

// The kind of a field name (case-insensitive).
FieldKind classify_field(std::string_view name);

// Upper bound on fields kept for one head; more is 431 (requests) or 502 (responses).
inline constexpr std::size_t kMaxHeaderFields = 100;

struct HeadLimits {
    std::size_t max_head_bytes = 64 * 1024;     // whole head; beyond: 431
    std::size_t max_request_line = 8 * 1024;    // request line; beyond: 414
    std::size_t max_field_line = 16 * 1024;     // one "name: value" line; beyond: 431
    std::size_t max_fields = kMaxHeaderFields;  // field count; beyond: 431 (<= kMaxHeaderFields)
};

enum class ParseStatus { Complete, Incomplete, Invalid };

struct ParseResult {
    ParseStatus status = ParseStatus::Incomplete;
    std::size_t consumed = 0;     // head length in bytes when Complete
    int error_status = 0;         // when Invalid: 400, 414, 431, 501, 505 (502 for responses)
    const char* error = "";       // when Invalid: short static description, never null
};

// How the body after a head is delimited (RFC 9112 section 6.3).
enum class BodyKind {
    None,           // no body at all
    ContentLength,  // exactly content_length bytes
    Chunked,        // chunked transfer coding
    UntilClose,     // response only: body runs until the connection closes
};

// Fields shared by requests and responses, derived while parsing.
struct HeadCommon {
    int version_minor = 1;                 // 0 for HTTP/1.0, 1 for HTTP/1.1 and 1.2-1.9 (RFC 9112 2.3)
    HeaderField fields[kMaxHeaderFields];  // in arrival order
    std::size_t field_count = 0;
    bool has_content_length = false;
    std::uint64_t content_length = 0;
    bool chunked = false;                  // Transfer-Encoding ends in (and is only) chunked
    bool connection_close = false;         // "Connection: close" seen
    bool connection_keep_alive = false;    // "Connection: keep-alive" seen
    std::size_t connection_fields = 0;     // Connection fields (their tokens name more hop-by-hop fields)
    std::size_t connection_other_tokens = 0;  // their tokens other than close and keep-alive
};

struct RequestHead : HeadCommon {
    std::string_view method;
    std::string_view target;  // as sent: origin-form "/p?q", or absolute-form
    std::string_view host;    // Host field value (empty view if absent)
    bool has_host = false;
    bool expect_continue = false;  // "Expect: 100-continue"
    bool is_head() const { return method == "HEAD"; }
    bool keep_alive() const {
        return version_minor >= 1 ? !connection_close : connection_keep_alive && !connection_close;
    }
    BodyKind body_kind() const {
        return chunked ? BodyKind::Chunked
                       : (has_content_length && content_length > 0 ? BodyKind::ContentLength
                                                                   : BodyKind::None);
    }
};

struct ResponseHead : HeadCommon {
    int status = 0;           // 100..999
    std::string_view reason;  // may be empty
    bool keep_alive() const {
        return version_minor >= 1 ? !connection_close : connection_keep_alive && !connection_close;
    }
    // RFC 9112 section 6.3, given the request method that produced this response.
    BodyKind body_kind(bool request_was_head) const;
};

ParseResult parse_request_head(std::string_view in, const HeadLimits& limits, RequestHead& out);
ParseResult parse_response_head(std::string_view in, const HeadLimits& limits, ResponseHead& out);

// Case-insensitive ASCII comparison for field names and tokens.
bool iequals(std::string_view a, std::string_view b);

// True for the hop-by-hop fields of RFC 9110 section 7.6.1 that are always dropped
// (Connection, Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade).
bool is_hop_by_hop(std::string_view name);
inline bool is_hop_by_hop(FieldKind kind) {
    return kind == FieldKind::Connection || kind == FieldKind::TransferEncoding || kind == FieldKind::OtherHopByHop;
}

// The first end-to-end field (FieldKind::Other) named `name` (case-insensitive): its value
// in `value`, or false when there is none.
bool find_field(const HeadCommon& head, std::string_view name, std::string_view& value);

// True if some field named `name` lists `element` (case-insensitive) in its
// comma-separated value, e.g. field_lists(head, "Upgrade", "websocket").
bool field_lists(const HeadCommon& head, std::string_view name, std::string_view element);

// A WebSocket opening handshake (RFC 6455 section 4.1, RFC 9110 section 7.8): a GET
// without a body, HTTP/1.1, "Connection: upgrade" and "Upgrade: websocket".
bool is_websocket_upgrade(const RequestHead& head);
// The upstream's acceptance of it: 101 with "Upgrade: websocket" and "Connection: upgrade".
bool accepts_websocket(const ResponseHead& head);

// True if `name` is listed as a token of any Connection field of `head`.
bool named_by_connection_slow(const HeadCommon& head, std::string_view name);
inline bool named_by_connection(const HeadCommon& head, std::string_view name) {
    if (head.connection_fields == 0) return false;  // mostly none
    if (head.connection_other_tokens == 0) {        // or just "keep-alive" / "close"
        return (head.connection_close && iequals(name, "close")) ||
               (head.connection_keep_alive && iequals(name, "keep-alive"));
    }
    return named_by_connection_slow(head, name);
}

}  // namespace op
