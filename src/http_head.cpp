// HTTP/1.x head parsing; the contract is in http_head.h.
//
// Two passes over the caller's bytes, neither of which allocates:
//   1. locate_head() finds where the head ends ("\n\n" or "\n\r\n") with memchr and
//      enforces the size limits on whatever is buffered, so an incomplete head that
//      is already too big (slowloris) is refused instead of buffered further.
//   2. Only once the head is complete are its lines parsed and validated. The one
//      exception is the start line: while the head is incomplete, a start line that can
//      no longer become valid (a complete but invalid one, or a prefix with a byte no
//      start line may hold there) is refused at once. A TLS ClientHello sent to this
//      plain-HTTP port gets its 400 now, not a 408 after -header-timeout; an upstream
//      that is not an HTTP server gets its client a 502 now, not after
//      -response-timeout.
// Calling it on every read is therefore cheap while the head is incomplete (the early
// check reads one start line at most, which the limits bound).
//
// What is Invalid, and with which status (responses: every Invalid is 502, because
// the proxy answers its client with 502 whatever the upstream did wrong):
//   400  start line: method not a token; not exactly one SP between the parts; no
//        version (HTTP/0.9); version not "HTTP/" DIGIT "." DIGIT; target bytes outside
//        0x21-0x7E; target other than origin-form ("/..."), absolute-form
//        ("http://..." or "https://...", scheme case-insensitive) or "*" with OPTIONS.
//        CONNECT and its authority-form are refused with 400 (the proxy tunnels
//        nothing; 405 would oblige an Allow field).
//        fields: obs-fold, whitespace before the colon (in a request; a response's is
//        removed, RFC 9112 section 5.1), no colon, empty or non-token
//        name, control bytes other than HTAB in a value (this includes NUL, DEL and a
//        bare CR), a bare CR anywhere.
//        framing: Content-Length not 1*DIGIT, a comma list or repeated fields with
//        differing values, a value above 2^64-1; Content-Length together with
//        Transfer-Encoding; Transfer-Encoding in an HTTP/1.0 message; a
//        Transfer-Encoding list that is not exactly one "chunked" but has no other
//        coding in it ("chunked, chunked", an empty list element, an empty value).
//        Host: missing in an HTTP/1.1 request, repeated, or holding a byte that
//        cannot appear in uri-host [":" port].
//   414  request line longer than max_request_line (checked on incomplete lines too).
//   431  head longer than max_head_bytes (incomplete prefix included), more than
//        max_fields fields, one field line longer than max_field_line.
//   501  request Transfer-Encoding naming any coding other than chunked (gzip,
//        identity, "chunked;ext", ...): a coding we do not implement.
//   505  request version "HTTP/x.y" with a major version other than 1 (HTTP/2.0,
//        HTTP/3.0, the HTTP/2 preface "PRI * HTTP/2.0" included).
// Versions: "HTTP/1.2" to "HTTP/1.9" (requests and responses) are taken as HTTP/1.1
// (version_minor 1), as RFC 9112 section 2.3 asks of a recipient that implements 1.1.
// Ignored: "Expect: 100-continue" in an HTTP/1.0 request (RFC 9110 section 10.1.1).
// Accepted leniently: bare LF line endings; empty lines before a request line (RFC
// 9112 section 2.2; they count in `consumed` and in max_head_bytes); identical
// repeated Content-Length values ("5, 5"); bytes 0x80-0xFF in values (obs-text); a
// status line without a reason ("HTTP/1.1 200"); status codes 100-999.
//
// On Incomplete or Invalid the contents of `out` are unspecified.
#include "http_head.h"

#include <cstring>

#include "http_chars.h"

namespace op {
namespace {

using http_chars::is_digit;
using http_chars::is_host_char;
using http_chars::is_ows;
using http_chars::is_target_char;
using http_chars::is_tchar;
using http_chars::is_value_char;

// True if every byte of v is a field value byte. Eight bytes at a time: a word with
// no byte below 0x20 and none equal to 0x7f is fine as it is; only a word that has
// one (usually an HTAB) is looked at byte by byte. Values such as API keys are long,
// and this is the parser's hottest loop.
bool all_value_chars(std::string_view v) {
    constexpr std::uint64_t kOnes = 0x0101010101010101ULL;
    constexpr std::uint64_t kHigh = 0x8080808080808080ULL;
    std::size_t i = 0;
    for (; i + 8 <= v.size(); i += 8) {
        std::uint64_t w;
        std::memcpy(&w, v.data() + i, 8);
        // (x - k) & ~x & high flags (at least) every byte below k, for k <= 0x80,
        // and never a byte that is not: the classic "has a byte less than" test.
        std::uint64_t below_space = (w - kOnes * 0x20) & ~w & kHigh;
        std::uint64_t x = w ^ (kOnes * 0x7f);
        std::uint64_t is_del = (x - kOnes) & ~x & kHigh;
        if ((below_space | is_del) == 0) continue;
        for (std::size_t j = i; j < i + 8; ++j) {
            if (!is_value_char(v[j])) return false;
        }
    }
    for (; i < v.size(); ++i) {
        if (!is_value_char(v[i])) return false;
    }
    return true;
}

// iequals(), visible to the inliner: the parser compares every field name with a few
// constants, and most comparisons end at the length check.
inline bool same_ci(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (http_chars::to_lower(a[i]) != http_chars::to_lower(b[i])) return false;
    }
    return true;
}

std::string_view trim_ows(std::string_view v) {
    while (!v.empty() && is_ows(v.front())) v.remove_prefix(1);
    while (!v.empty() && is_ows(v.back())) v.remove_suffix(1);
    return v;
}

// Calls f(element) for each OWS-trimmed element of a comma-separated list (RFC 9110
// section 5.6.1), empty elements included; stops early when f returns false.
template <typename F>
void for_each_element(std::string_view list, F f) {
    for (;;) {
        std::size_t comma = list.find(',');
        if (!f(trim_ows(list.substr(0, comma)))) return;
        if (comma == std::string_view::npos) return;
        list.remove_prefix(comma + 1);
    }
}

bool starts_with_ci(std::string_view s, std::string_view prefix) {
    return s.size() >= prefix.size() && same_ci(s.substr(0, prefix.size()), prefix);
}

// The minor version of "HTTP/1.<digit>" as the proxy treats it: 0, or 1 for 1 and above.
// RFC 9112 section 2.3: a higher minor version within major version 1 is processed as
// the highest one the recipient implements, HTTP/1.1.
int minor_version(char digit) { return digit == '0' ? 0 : 1; }

ParseResult invalid(int status, const char* why) {
    ParseResult r;
    r.status = ParseStatus::Invalid;
    r.error_status = status;
    r.error = why;
    return r;
}

ParseResult incomplete() { return ParseResult{}; }

// A Content-Length value: 1*DIGIT, or a comma list of identical such values.
bool parse_content_length(std::string_view v, std::uint64_t& out) {
    bool ok = true, have = false;
    std::uint64_t first = 0;
    for_each_element(v, [&](std::string_view e) {
        std::uint64_t n = 0;
        ok = !e.empty();
        for (std::size_t i = 0; ok && i < e.size(); ++i) {
            if (!is_digit(e[i])) {
                ok = false;
                break;
            }
            unsigned d = static_cast<unsigned>(e[i] - '0');
            if (n > (UINT64_MAX - d) / 10) {
                ok = false;
                break;
            }
            n = n * 10 + d;
        }
        if (ok && have && n != first) ok = false;
        first = n;
        have = true;
        return ok;
    });
    out = first;
    return ok;
}

// Facts gathered across all field lines, judged once the head is complete.
struct Framing {
    bool te_seen = false;
    std::size_t te_chunked = 0;  // "chunked" list elements over all Transfer-Encoding fields
    std::size_t te_other = 0;    // other codings
    bool te_last_chunked = false;  // the final coding of them all is "chunked"
    bool te_empty_element = false;
};

// Where the head lies in the input: [begin, end), end just past the empty line.
struct Extent {
    std::size_t begin = 0;
    std::size_t end = 0;
    // Where each line before the blank one ends (its LF), start line first: pass 2
    // walks these instead of searching for every line end again.
    std::size_t lines = 0;
    std::size_t line_end[kMaxHeaderFields + 1];
};

// Pass 1 (see the file comment). `first_line_max`/`first_line_status` bound the start
// line; field lines are bounded by limits.max_field_line (431).
ParseResult locate_head(std::string_view in, const HeadLimits& limits, bool is_request,
                        std::size_t first_line_max, int first_line_status, Extent& ext) {
    const char* p = in.data();
    const std::size_t window = in.size() < limits.max_head_bytes ? in.size() : limits.max_head_bytes;
    const std::size_t max_fields = limits.max_fields < kMaxHeaderFields ? limits.max_fields : kMaxHeaderFields;
    std::size_t pos = 0;
    if (is_request) {
        // RFC 9112 section 2.2: a server SHOULD ignore empty lines before a request line.
        while (pos < window) {
            if (p[pos] == '\n') {
                ++pos;
            } else if (p[pos] == '\r' && pos + 1 < window) {
                if (p[pos + 1] != '\n') return invalid(400, "bare CR in request");
                pos += 2;
            } else {
                break;  // start of the request line, or a CR that may yet become CRLF
            }
        }
    }
    ext.begin = pos;
    std::size_t lines = 0;  // complete lines seen, start line included
    for (;;) {
        const void* hit = pos < window ? std::memchr(p + pos, '\n', window - pos) : nullptr;
        const std::size_t line_end = hit ? static_cast<std::size_t>(static_cast<const char*>(hit) - p) : window;
        std::size_t len = line_end - pos;
        if (len > 0 && p[line_end - 1] == '\r') --len;  // the CR of CRLF (or a bare CR, refused later)
        if (lines == 0 ? len > first_line_max : len > limits.max_field_line) {
            return lines == 0 ? invalid(first_line_status, first_line_status == 414 ? "request line too long"
                                                                                    : "start line too long")
                              : invalid(431, "header field line too long");
        }
        if (!hit) {
            if (in.size() > limits.max_head_bytes) return invalid(431, "header section too large");
            return incomplete();
        }
        if (len == 0) {
            if (lines == 0) return invalid(400, "empty start line");
            ext.end = line_end + 1;
            ParseResult r;
            r.status = ParseStatus::Complete;
            r.consumed = ext.end;
            return r;
        }
        ++lines;
        if (lines - 1 > max_fields) return invalid(431, "too many header fields");
        ext.line_end[lines - 1] = line_end;  // lines <= max_fields + 1 <= kMaxHeaderFields + 1
        ext.lines = lines;
        pos = line_end + 1;
    }
}

// Request line (RFC 9112 section 3): method SP request-target SP HTTP-version.
ParseResult parse_request_line(std::string_view line, RequestHead& out) {
    std::size_t i = 0;
    while (i < line.size() && is_tchar(line[i])) ++i;
    if (i == 0) return invalid(400, "invalid method");
    if (i == line.size()) return invalid(400, "request line without target");
    if (line[i] != ' ') return invalid(400, "invalid method");
    out.method = line.substr(0, i);
    const std::size_t target_begin = ++i;
    while (i < line.size() && line[i] != ' ') {
        if (!is_target_char(line[i])) return invalid(400, "invalid byte in request target");
        ++i;
    }
    if (i == target_begin) return invalid(400, "empty request target");
    if (i == line.size()) return invalid(400, "request line without HTTP version");
    out.target = line.substr(target_begin, i - target_begin);
    std::string_view version = line.substr(i + 1);
    if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || !is_digit(version[5]) || version[6] != '.' ||
        !is_digit(version[7])) {
        return invalid(400, "invalid HTTP version");
    }
    if (version[5] != '1') return invalid(505, "HTTP version not supported");
    out.version_minor = minor_version(version[7]);

    std::string_view t = out.target;
    if (t[0] == '/') return ParseResult{};
    std::size_t scheme = starts_with_ci(t, "http://") ? 7 : starts_with_ci(t, "https://") ? 8 : 0;
    if (scheme != 0) {
        if (t.size() == scheme || t[scheme] == '/') return invalid(400, "absolute-form target without host");
        return ParseResult{};
    }
    if (t == "*") {
        if (out.method == "OPTIONS") return ParseResult{};
        return invalid(400, "asterisk-form target outside OPTIONS");
    }
    if (out.method == "CONNECT") return invalid(400, "CONNECT is not supported");
    return invalid(400, "invalid request target form");
}

// Whether `part`, the start of a request line whose end has not arrived, can still
// become a valid one (method SP target SP "HTTP/" DIGIT "." DIGIT). A CR is allowed only
// as its last byte, after a whole version (CRLF to come) or alone (an empty line before
// the request line, RFC 9112 section 2.2); parse_request_line judges the rest (version
// numbers, target forms) once the line is complete.
bool request_line_may_continue(std::string_view part) {
    static constexpr std::string_view kVersion = "HTTP/0.0";
    enum { Method, Target, Version } at = Method;
    std::size_t start = 0;  // where the current part began
    for (std::size_t i = 0; i < part.size(); ++i) {
        const char c = part[i];
        if (c == '\r' && i + 1 == part.size()) return i == 0 || (at == Version && i - start == kVersion.size());
        if (at == Method) {
            if (c == ' ' && i > start) {
                at = Target;
                start = i + 1;
            } else if (!is_tchar(c)) {
                return false;
            }
        } else if (at == Target) {
            if (c == ' ' && i > start) {
                at = Version;
                start = i + 1;
            } else if (!is_target_char(c)) {
                return false;
            }
        } else {
            const std::size_t k = i - start;
            if (k >= kVersion.size()) return false;
            if (kVersion[k] == '0' ? !is_digit(c) : c != kVersion[k]) return false;
        }
    }
    return true;
}

// The same for a status line, as parse_status_line accepts it: "HTTP/1." DIGIT SP
// ("1"-"9") DIGIT DIGIT, then nothing or SP and a reason of field-value bytes.
bool status_line_may_continue(std::string_view part) {
    static constexpr std::string_view kStart = "HTTP/1.";
    for (std::size_t i = 0; i < part.size(); ++i) {
        const char c = part[i];
        if (c == '\r' && i + 1 == part.size()) return i >= 12;
        bool ok = i < kStart.size() ? c == kStart[i]
                  : i == 7          ? is_digit(c)
                  : i == 8 || i == 12 ? c == ' '
                  : i == 9          ? c >= '1' && c <= '9'
                  : i <= 11         ? is_digit(c)
                                    : is_value_char(c);
        if (!ok) return false;
    }
    return true;
}

// Status line (RFC 9112 section 4): HTTP-version SP 3DIGIT SP [reason].
ParseResult parse_status_line(std::string_view line, ResponseHead& out) {
    if (line.size() < 12 || line.substr(0, 7) != "HTTP/1." || !is_digit(line[7]) || line[8] != ' ') {
        return invalid(502, "invalid status line");
    }
    out.version_minor = minor_version(line[7]);
    if (line[9] < '1' || line[9] > '9' || !is_digit(line[10]) || !is_digit(line[11])) {
        return invalid(502, "invalid status code");
    }
    out.status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
    if (line.size() == 12) return ParseResult{};  // "HTTP/1.1 200": no SP, no reason
    if (line[12] != ' ') return invalid(502, "invalid status code");
    std::string_view reason = line.substr(13);
    if (!all_value_chars(reason)) return invalid(502, "control byte in reason phrase");
    out.reason = reason;
    return ParseResult{};
}

// One field line (RFC 9112 section 5): stores it and derives the framing facts.
// `request` is null for responses.
ParseResult parse_field(std::string_view line, HeadCommon& head, RequestHead* request, Framing& framing) {
    std::size_t i = 0;
    while (i < line.size() && is_tchar(line[i])) ++i;
    const std::size_t name_end = i;
    // Whitespace before the colon: a request is refused (RFC 9112 section 5.1: it is how
    // requests are smuggled past a lenient parser), a response's is removed, as a proxy
    // must, and the field passed on under its name.
    if (!request && i > 0)
        while (i < line.size() && is_ows(line[i])) ++i;
    if (i == line.size() || line[i] != ':') {
        if (i == 0 && is_ows(line[0])) return invalid(400, "obsolete line folding");
        return invalid(400, i < line.size() && is_ows(line[i]) ? "whitespace before colon" : "invalid field name");
    }
    if (i == 0) return invalid(400, "empty field name");
    std::string_view name = line.substr(0, name_end);
    std::string_view value = trim_ows(line.substr(i + 1));
    if (!all_value_chars(value)) return invalid(400, "control byte in field value");
    // locate_head() already bounded the count, and fields[] holds kMaxHeaderFields.
    const FieldKind kind = classify_field(name);
    head.fields[head.field_count++] = HeaderField{name, value, kind};

    if (kind == FieldKind::ContentLength) {
        std::uint64_t n = 0;
        if (!parse_content_length(value, n)) return invalid(400, "invalid Content-Length");
        if (head.has_content_length && n != head.content_length) return invalid(400, "conflicting Content-Length");
        head.has_content_length = true;
        head.content_length = n;
    } else if (kind == FieldKind::TransferEncoding) {
        framing.te_seen = true;
        for_each_element(value, [&](std::string_view e) {
            if (e.empty()) {
                framing.te_empty_element = true;
            } else if (same_ci(e, "chunked")) {
                ++framing.te_chunked;
                framing.te_last_chunked = true;
            } else {
                ++framing.te_other;
                framing.te_last_chunked = false;
            }
            return true;
        });
    } else if (kind == FieldKind::Connection) {
        ++head.connection_fields;
        for_each_element(value, [&](std::string_view e) {
            if (same_ci(e, "close")) head.connection_close = true;
            else if (same_ci(e, "keep-alive")) head.connection_keep_alive = true;
            else if (!e.empty()) ++head.connection_other_tokens;
            return true;
        });
    } else if (request != nullptr && kind == FieldKind::Host) {
        if (request->has_host) return invalid(400, "more than one Host field");
        for (char c : value) {
            if (!is_host_char(c)) return invalid(400, "invalid Host");
        }
        request->has_host = true;
        request->host = value;
    } else if (request != nullptr && kind == FieldKind::Expect) {
        if (same_ci(value, "100-continue")) request->expect_continue = true;
    }
    return ParseResult{};
}

// The message framing rules of RFC 9112 section 6 that need all fields.
ParseResult judge_framing(HeadCommon& head, const Framing& framing, bool is_request) {
    if (!framing.te_seen) return ParseResult{};
    if (head.has_content_length) return invalid(400, "both Content-Length and Transfer-Encoding");
    if (head.version_minor == 0) return invalid(400, "Transfer-Encoding in an HTTP/1.0 message");
    // A request whose final coding is not chunked has no length that can be known: 400
    // (RFC 9112 section 6.3, rule 4). Only with chunked last is an unknown coding
    // before it (gzip, chunked) a 501. A response is a 502 either way.
    if (is_request && !framing.te_last_chunked) return invalid(400, "chunked is not the final transfer coding");
    if (framing.te_other > 0) {
        return invalid(is_request ? 501 : 502, "unsupported transfer coding");
    }
    if (framing.te_chunked != 1 || framing.te_empty_element) return invalid(400, "invalid Transfer-Encoding");
    head.chunked = true;
    return ParseResult{};
}

void reset_common(HeadCommon& h) {
    // fields[] beyond field_count is never read, so it is left as it is (no 3 KB clear per call).
    h.version_minor = 1;
    h.field_count = 0;
    h.has_content_length = false;
    h.content_length = 0;
    h.chunked = false;
    h.connection_close = false;
    h.connection_keep_alive = false;
    h.connection_fields = 0;
    h.connection_other_tokens = 0;
}

// Pass 2: walks the complete head [ext.begin, ext.end) line by line.
template <typename Head, typename StartLine>
ParseResult parse_lines(std::string_view in, const Extent& ext, Head& out, RequestHead* request,
                        StartLine start_line) {
    Framing framing;
    std::size_t pos = ext.begin;
    for (std::size_t i = 0; i < ext.lines; ++i) {
        std::size_t nl = ext.line_end[i];
        std::string_view line = in.substr(pos, nl - pos);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);  // not empty: only the last line is
        pos = nl + 1;
        ParseResult r = i == 0 ? start_line(line, out) : parse_field(line, out, request, framing);
        if (r.status == ParseStatus::Invalid) return r;
    }
    return judge_framing(out, framing, request != nullptr);
}

// An incomplete head whose start line is already wrong: Invalid now (see the file
// comment), else Incomplete. `start_line` parses a complete start line; `may_continue`
// judges an unfinished one, which is refused with `status` and `why`.
template <typename Head, typename StartLine>
ParseResult judge_early_start_line(std::string_view in, const Extent& ext, Head& out, StartLine start_line,
                                   bool (*may_continue)(std::string_view), int status, const char* why) {
    if (ext.lines > 0) {  // the start line is complete
        std::string_view line = in.substr(ext.begin, ext.line_end[0] - ext.begin);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        ParseResult r = start_line(line, out);
        return r.status == ParseStatus::Invalid ? r : incomplete();
    }
    if (ext.begin < in.size() && !may_continue(in.substr(ext.begin))) return invalid(status, why);
    return incomplete();
}

}  // namespace

ParseResult parse_request_head(std::string_view in, const HeadLimits& limits, RequestHead& out) {
    Extent ext;
    ParseResult found = locate_head(in, limits, true, limits.max_request_line, 414, ext);
    if (found.status == ParseStatus::Incomplete) {
        return judge_early_start_line(in, ext, out, parse_request_line, request_line_may_continue, 400,
                                      "invalid request line");
    }
    if (found.status != ParseStatus::Complete) return found;
    reset_common(out);
    out.method = out.target = out.host = std::string_view();
    out.has_host = false;
    out.expect_continue = false;
    ParseResult r = parse_lines(in, ext, out, &out, parse_request_line);
    if (r.status == ParseStatus::Invalid) return r;
    if (out.version_minor == 1 && !out.has_host) return invalid(400, "missing Host");
    if (out.version_minor == 0) out.expect_continue = false;  // RFC 9110 section 10.1.1: ignored in HTTP/1.0
    return found;
}

ParseResult parse_response_head(std::string_view in, const HeadLimits& limits, ResponseHead& out) {
    Extent ext;
    ParseResult r = locate_head(in, limits, false, limits.max_field_line, 502, ext);
    if (r.status == ParseStatus::Complete) {
        reset_common(out);
        out.status = 0;
        out.reason = std::string_view();
        ParseResult lines = parse_lines(in, ext, out, nullptr, parse_status_line);
        if (lines.status == ParseStatus::Invalid) r = lines;
    } else if (r.status == ParseStatus::Incomplete) {
        r = judge_early_start_line(in, ext, out, parse_status_line, status_line_may_continue, 502,
                                   "invalid status line");
    }
    if (r.status == ParseStatus::Invalid) r.error_status = 502;
    return r;
}

BodyKind ResponseHead::body_kind(bool request_was_head) const {
    if (request_was_head || status < 200 || status == 204 || status == 304) return BodyKind::None;
    if (chunked) return BodyKind::Chunked;
    if (has_content_length) return content_length > 0 ? BodyKind::ContentLength : BodyKind::None;
    return BodyKind::UntilClose;
}

bool iequals(std::string_view a, std::string_view b) { return same_ci(a, b); }

FieldKind classify_field(std::string_view name) {
    // By length first: nearly every name is settled by one comparison, or none.
    switch (name.size()) {
        case 2: return same_ci(name, "TE") ? FieldKind::OtherHopByHop : FieldKind::Other;
        case 4: return same_ci(name, "Host") ? FieldKind::Host : FieldKind::Other;
        case 6: return same_ci(name, "Expect") ? FieldKind::Expect : FieldKind::Other;
        case 7:
            return same_ci(name, "Trailer") || same_ci(name, "Upgrade") ? FieldKind::OtherHopByHop : FieldKind::Other;
        case 10:
            if (same_ci(name, "Connection")) return FieldKind::Connection;
            return same_ci(name, "Keep-Alive") ? FieldKind::OtherHopByHop : FieldKind::Other;
        case 13: return same_ci(name, "X-Target-Host") ? FieldKind::XTargetHost : FieldKind::Other;
        case 14: return same_ci(name, "Content-Length") ? FieldKind::ContentLength : FieldKind::Other;
        case 16: return same_ci(name, "Proxy-Connection") ? FieldKind::OtherHopByHop : FieldKind::Other;
        case 17: return same_ci(name, "Transfer-Encoding") ? FieldKind::TransferEncoding : FieldKind::Other;
        default: return FieldKind::Other;
    }
}

bool is_hop_by_hop(std::string_view name) { return is_hop_by_hop(classify_field(name)); }

bool find_field(const HeadCommon& head, std::string_view name, std::string_view& value) {
    for (std::size_t i = 0; i < head.field_count; ++i) {
        if (head.fields[i].kind == FieldKind::Other && iequals(head.fields[i].name, name)) {
            value = head.fields[i].value;
            return true;
        }
    }
    return false;
}

namespace {

// Whether a field for which is_field(field) holds lists `element` in its comma-separated value.
template <class IsField>
bool some_field_lists(const HeadCommon& head, IsField is_field, std::string_view element) {
    bool found = false;
    for (std::size_t i = 0; i < head.field_count && !found; ++i) {
        if (!is_field(head.fields[i])) continue;
        for_each_element(head.fields[i].value, [&](std::string_view e) {
            found = iequals(e, element);
            return !found;
        });
    }
    return found;
}

}  // namespace

bool field_lists(const HeadCommon& head, std::string_view name, std::string_view element) {
    return some_field_lists(head, [name](const HeaderField& f) { return iequals(f.name, name); }, element);
}

bool is_websocket_upgrade(const RequestHead& head) {
    return head.method == "GET" && head.version_minor >= 1 && head.body_kind() == BodyKind::None &&
           named_by_connection(head, "upgrade") && field_lists(head, "Upgrade", "websocket");
}

bool accepts_websocket(const ResponseHead& head) {
    return head.status == 101 && named_by_connection(head, "upgrade") && field_lists(head, "Upgrade", "websocket");
}

bool named_by_connection_slow(const HeadCommon& head, std::string_view name) {
    return some_field_lists(head, [](const HeaderField& f) { return f.kind == FieldKind::Connection; }, name);
}

}  // namespace op
