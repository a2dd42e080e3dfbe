// Tests for http_head.h: every valid head is parsed whole, from every prefix (grown one
// byte at a time) and from an exact-size heap copy so AddressSanitizer sees any read
// past the end; every invalid head is checked for its status code.
#include <cstring>
#include <memory>
#include <utility>
#include <string>
#include <vector>

#include "doctest/doctest.h"
#include "http_chars.h"
#include "http_head.h"

using op::BodyKind;
using op::HeadLimits;
using op::ParseResult;
using op::ParseStatus;
using op::RequestHead;
using op::ResponseHead;

namespace {

// A heap copy of exactly text.size() bytes: reading one byte past it is an ASan error.
class ExactCopy {
public:
    explicit ExactCopy(std::string_view text) : bytes_(new char[text.size() == 0 ? 1 : text.size()]), size_(text.size()) {
        if (size_ != 0) std::memcpy(bytes_.get(), text.data(), size_);
    }
    std::string_view view() const { return {bytes_.get(), size_}; }

private:
    std::unique_ptr<char[]> bytes_;
    std::size_t size_;
};

ParseResult parse_req(std::string_view text, RequestHead& head, const HeadLimits& limits = HeadLimits{}) {
    return op::parse_request_head(text, limits, head);
}

ParseResult parse_resp(std::string_view text, ResponseHead& head, const HeadLimits& limits = HeadLimits{}) {
    return op::parse_response_head(text, limits, head);
}

bool inside(std::string_view part, std::string_view whole) {
    return part.empty() || (part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size());
}

// Every prefix shorter than the head is Incomplete (never Invalid, never Complete
// early); every longer one is Complete with the same length. Each prefix is parsed from
// its own exact-size copy, which is also "the input grown one byte at a time".
template <typename Head, typename Parse>
void check_every_prefix(const std::string& text, std::size_t head_len, Parse parse) {
    for (std::size_t k = 0; k <= text.size(); ++k) {
        ExactCopy copy(std::string_view(text).substr(0, k));
        Head head;
        ParseResult r = parse(copy.view(), head, HeadLimits{});
        if (k < head_len) {
            INFO("prefix length ", k);
            REQUIRE(r.status == ParseStatus::Incomplete);
        } else {
            INFO("prefix length ", k);
            REQUIRE(r.status == ParseStatus::Complete);
            REQUIRE(r.consumed == head_len);
            for (std::size_t i = 0; i < head.field_count; ++i) {
                CHECK(inside(head.fields[i].name, copy.view().substr(0, head_len)));
                CHECK(inside(head.fields[i].value, copy.view().substr(0, head_len)));
            }
        }
    }
}

struct ValidRequest {
    const char* name;
    std::string text;
    std::size_t head_len;  // bytes after it are body
    const char* method;
    const char* target;
    const char* host;
    int version_minor;
    std::size_t field_count;
    BodyKind body;
    std::uint64_t content_length;
    bool keep_alive;
    bool expect_continue;
};

std::vector<ValidRequest> valid_requests() {
    const std::string simple = "GET /v1/models HTTP/1.1\r\nHost: oa.example.com\r\n\r\n";
    const std::string post =
        "POST /v1/chat/completions?x=1 HTTP/1.1\r\nHost: oa.example.com:9001\r\n"
        "Content-Type: application/json\r\nContent-Length: 11\r\n\r\n";
    const std::string chunked = "POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n";
    const std::string bare_lf = "GET / HTTP/1.1\nHost: h\nX-A:  spaced value \t\n\n";
    const std::string leading = "\r\n\nGET / HTTP/1.1\r\nHost: h\r\n\r\n";
    const std::string http10 = "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n";
    const std::string absolute = "GET HTTPS://api.openai.com/v1/x HTTP/1.1\r\nHost: api.openai.com\r\n\r\n";
    const std::string options = "OPTIONS * HTTP/1.1\r\nHost: h\r\nConnection: foo, close\r\n\r\n";
    const std::string expect =
        "PUT /f HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 5, 5\r\nContent-Length: 5\r\n\r\n";
    const std::string obs_text = "GET / HTTP/1.1\r\nHost: h\r\nX-Name: caf\xc3\xa9\x80\xff\r\nX-Empty:\r\n\r\n";
    const std::string mixed = "DELETE /a HTTP/1.1\nHost: [::1]:8080\r\nContent-Length: 0\n\r\n";
    // RFC 9112 section 2.3: a higher minor version of HTTP/1 is processed as HTTP/1.1:
    // keep-alive by default, Transfer-Encoding allowed, Expect honoured.
    const std::string http12 = "GET /v1/models HTTP/1.2\r\nHost: h\r\n\r\n";
    const std::string http19 =
        "POST /up HTTP/1.9\r\nHost: h\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n";
    return {
        {"simple GET", simple, simple.size(), "GET", "/v1/models", "oa.example.com", 1, 1, BodyKind::None, 0, true,
         false},
        {"POST with body bytes after the head", post + "{\"a\":\"bcd\"}", post.size(), "POST",
         "/v1/chat/completions?x=1", "oa.example.com:9001", 1, 3, BodyKind::ContentLength, 11, true, false},
        {"chunked request", chunked + "5\r\nhello\r\n0\r\n\r\n", chunked.size(), "POST", "/up", "h", 1, 2,
         BodyKind::Chunked, 0, true, false},
        {"bare LF line endings", bare_lf, bare_lf.size(), "GET", "/", "h", 1, 2, BodyKind::None, 0, true, false},
        {"empty lines before the request line", leading, leading.size(), "GET", "/", "h", 1, 1, BodyKind::None, 0,
         true, false},
        {"HTTP/1.0 keep-alive without Host", http10, http10.size(), "GET", "/", "", 0, 1, BodyKind::None, 0, true,
         false},
        {"absolute-form target", absolute, absolute.size(), "GET", "HTTPS://api.openai.com/v1/x", "api.openai.com", 1,
         1, BodyKind::None, 0, true, false},
        {"OPTIONS asterisk with Connection list", options, options.size(), "OPTIONS", "*", "h", 1, 2, BodyKind::None, 0,
         false, false},
        {"Expect and identical Content-Length values", expect + "abcde", expect.size(), "PUT", "/f", "h", 1, 4,
         BodyKind::ContentLength, 5, true, true},
        {"obs-text and empty values", obs_text, obs_text.size(), "GET", "/", "h", 1, 3, BodyKind::None, 0, true, false},
        {"mixed line endings, IPv6 Host, zero length", mixed, mixed.size(), "DELETE", "/a", "[::1]:8080", 1, 2,
         BodyKind::None, 0, true, false},
        {"HTTP/1.2 is taken as HTTP/1.1", http12, http12.size(), "GET", "/v1/models", "h", 1, 1, BodyKind::None, 0,
         true, false},
        {"HTTP/1.9 is taken as HTTP/1.1: chunked, Expect", http19 + "0\r\n\r\n", http19.size(), "POST", "/up", "h", 1,
         3, BodyKind::Chunked, 0, true, true},
    };
}

}  // namespace

TEST_CASE("request head: valid heads, whole and from every prefix") {
    for (const ValidRequest& c : valid_requests()) {
        INFO(c.name);
        ExactCopy copy(c.text);
        RequestHead head;
        ParseResult r = parse_req(copy.view(), head);
        REQUIRE(r.status == ParseStatus::Complete);
        CHECK(r.consumed == c.head_len);
        CHECK(head.method == c.method);
        CHECK(head.target == c.target);
        CHECK(head.host == c.host);
        CHECK(head.has_host == (std::string_view(c.host) != "" || c.version_minor == 1));
        CHECK(head.version_minor == c.version_minor);
        CHECK(head.field_count == c.field_count);
        CHECK(head.body_kind() == c.body);
        CHECK(head.content_length == c.content_length);
        CHECK(head.keep_alive() == c.keep_alive);
        CHECK(head.expect_continue == c.expect_continue);
        check_every_prefix<RequestHead>(c.text, c.head_len, parse_req);
    }
}

TEST_CASE("request head: field names and values are views with whitespace trimmed") {
    std::string text = "GET / HTTP/1.1\r\nHost:h\r\nX-A: \t one two \t\r\nx-b:\r\n\r\n";
    RequestHead head;
    REQUIRE(parse_req(text, head).status == ParseStatus::Complete);
    REQUIRE(head.field_count == 3);
    CHECK(head.fields[0].name == "Host");
    CHECK(head.fields[0].value == "h");
    CHECK(head.fields[1].name == "X-A");
    CHECK(head.fields[1].value == "one two");
    CHECK(head.fields[2].name == "x-b");
    CHECK(head.fields[2].value == "");
    CHECK(head.fields[1].value.data() == text.data() + text.find("one"));
}

TEST_CASE("request head: a parse resets what an earlier parse into the same head set") {
    RequestHead head;
    REQUIRE(parse_req("POST / HTTP/1.0\r\nContent-Length: 3\r\nConnection: close\r\nExpect: 100-continue\r\n\r\n", head)
                .status == ParseStatus::Complete);
    REQUIRE(parse_req("GET /x HTTP/1.1\r\nHost: h\r\n\r\n", head).status == ParseStatus::Complete);
    CHECK(head.version_minor == 1);
    CHECK(head.field_count == 1);
    CHECK_FALSE(head.has_content_length);
    CHECK_FALSE(head.connection_close);
    CHECK_FALSE(head.expect_continue);
    CHECK(head.body_kind() == BodyKind::None);
}

TEST_CASE("request head: Expect is honoured in HTTP/1.1 only") {
    RequestHead head;
    REQUIRE(parse_req("POST / HTTP/1.1\r\nHost: h\r\nexpect:  100-CONTINUE \r\nContent-Length: 1\r\n\r\n", head).status ==
            ParseStatus::Complete);
    CHECK(head.expect_continue);
    REQUIRE(parse_req("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n", head).status ==
            ParseStatus::Complete);
    CHECK_FALSE(head.expect_continue);
    REQUIRE(parse_req("POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue-ish\r\n\r\n", head).status ==
            ParseStatus::Complete);
    CHECK_FALSE(head.expect_continue);
}

TEST_CASE("request head: every byte value at every position of a long field value") {
    // Values are checked eight bytes at a time; this walks one odd byte across two words
    // and the tail. LF is left out: it ends the line, which other tests cover.
    for (int b = 0; b < 256; ++b) {
        if (b == '\n') continue;
        const bool allowed = b == '\t' || (b >= 0x20 && b != 0x7f);
        for (std::size_t at = 0; at < 19; ++at) {
            std::string value(19, 'v');
            value[at] = static_cast<char>(b);
            std::string text = "GET / HTTP/1.1\r\nHost: h\r\nX-Key: " + value + "\r\n\r\n";
            ExactCopy copy(text);
            RequestHead head;
            ParseResult r = parse_req(copy.view(), head);
            INFO("byte ", b, " at ", at);
            if (allowed) {
                REQUIRE(r.status == ParseStatus::Complete);
            } else {
                REQUIRE(r.status == ParseStatus::Invalid);
                CHECK(r.error_status == 400);
            }
        }
    }
}

TEST_CASE("request head: connection tokens and keep-alive rules") {
    RequestHead head;
    REQUIRE(parse_req("GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade,\tX-Foo \r\nConnection: CLOSE\r\n\r\n", head)
                .status == ParseStatus::Complete);
    CHECK(head.connection_close);
    CHECK(head.connection_fields == 2);
    CHECK(head.connection_other_tokens == 2);
    CHECK_FALSE(head.keep_alive());
    CHECK(op::named_by_connection(head, "x-foo"));
    CHECK(op::named_by_connection(head, "upgrade"));
    CHECK(op::named_by_connection(head, "Close"));
    CHECK_FALSE(op::named_by_connection(head, "X-Fo"));
    CHECK_FALSE(op::named_by_connection(head, "Host"));

    REQUIRE(parse_req("GET / HTTP/1.0\r\n\r\n", head).status == ParseStatus::Complete);
    CHECK_FALSE(head.keep_alive());
    REQUIRE(parse_req("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", head).status ==
            ParseStatus::Complete);
    CHECK_FALSE(head.keep_alive());
}

namespace {

struct InvalidCase {
    const char* name;
    std::string text;
    int status;
};

std::vector<InvalidCase> invalid_requests() {
    const std::string h = "Host: h\r\n";
    return {
        // framing
        {"Content-Length with Transfer-Encoding", "POST / HTTP/1.1\r\n" + h + "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
        {"Transfer-Encoding then Content-Length", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 400},
        {"Content-Length with sign", "POST / HTTP/1.1\r\n" + h + "Content-Length: +3\r\n\r\n", 400},
        {"Content-Length negative", "POST / HTTP/1.1\r\n" + h + "Content-Length: -1\r\n\r\n", 400},
        {"Content-Length hex", "POST / HTTP/1.1\r\n" + h + "Content-Length: 0x10\r\n\r\n", 400},
        {"Content-Length inner space", "POST / HTTP/1.1\r\n" + h + "Content-Length: 1 2\r\n\r\n", 400},
        {"Content-Length empty", "POST / HTTP/1.1\r\n" + h + "Content-Length: \r\n\r\n", 400},
        {"Content-Length differing list", "POST / HTTP/1.1\r\n" + h + "Content-Length: 5, 6\r\n\r\n", 400},
        {"Content-Length empty list element", "POST / HTTP/1.1\r\n" + h + "Content-Length: 5,\r\n\r\n", 400},
        {"Content-Length differing fields", "POST / HTTP/1.1\r\n" + h + "Content-Length: 5\r\nContent-Length: 6\r\n\r\n", 400},
        {"Content-Length 2^64", "POST / HTTP/1.1\r\n" + h + "Content-Length: 18446744073709551616\r\n\r\n", 400},
        {"Content-Length 2^64 + 9", "POST / HTTP/1.1\r\n" + h + "Content-Length: 18446744073709551625\r\n\r\n", 400},
        // RFC 9112 section 6.3 rule 4: chunked not the final coding is a 400; an unknown
        // coding before a final chunked is a 501.
        {"Transfer-Encoding identity", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: identity\r\n\r\n", 400},
        {"Transfer-Encoding xchunked", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: xchunked\r\n\r\n", 400},
        {"Transfer-Encoding gzip, chunked", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: gzip, chunked\r\n\r\n", 501},
        {"Transfer-Encoding chunked, gzip", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked, gzip\r\n\r\n", 400},
        {"Transfer-Encoding chunked then gzip in two fields",
         "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n", 400},
        {"Transfer-Encoding gzip then chunked in two fields",
         "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n", 501},
        {"Transfer-Encoding with parameter", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked;x=1\r\n\r\n", 400},
        {"Transfer-Encoding chunked twice", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked, chunked\r\n\r\n", 400},
        {"Transfer-Encoding chunked in two fields", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
        {"Transfer-Encoding empty", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: \r\n\r\n", 400},
        {"Transfer-Encoding empty element", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: , chunked\r\n\r\n", 400},
        {"Transfer-Encoding in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
        // request line
        {"method with a non-token byte", "GE(T / HTTP/1.1\r\n" + h + "\r\n", 400},
        {"empty method", " / HTTP/1.1\r\n" + h + "\r\n", 400},
        {"two spaces after method", "GET  / HTTP/1.1\r\n" + h + "\r\n", 400},
        {"two spaces before version", "GET /  HTTP/1.1\r\n" + h + "\r\n", 400},
        {"tab separator", "GET\t/ HTTP/1.1\r\n" + h + "\r\n", 400},
        {"trailing space after version", "GET / HTTP/1.1 \r\n" + h + "\r\n", 400},
        {"HTTP/0.9 request line", "GET /\r\n\r\n", 400},
        {"method only", "GET\r\n\r\n", 400},
        {"lowercase version", "GET / http/1.1\r\n" + h + "\r\n", 400},
        {"version with two digits", "GET / HTTP/1.10\r\n" + h + "\r\n", 400},
        {"HTTP/2.0", "GET / HTTP/2.0\r\n" + h + "\r\n", 505},
        {"HTTP/3.0", "GET / HTTP/3.0\r\n" + h + "\r\n", 505},
        {"HTTP/0.9 spelled out", "GET / HTTP/0.9\r\n" + h + "\r\n", 505},
        {"HTTP/9.1", "GET / HTTP/9.1\r\n" + h + "\r\n", 505},
        {"HTTP/1.2 without Host (as HTTP/1.1)", "GET / HTTP/1.2\r\nX-A: 1\r\n\r\n", 400},
        {"HTTP/1.3 with Transfer-Encoding and Content-Length", "POST / HTTP/1.3\r\n" + h +
             "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
        {"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505},
        {"authority-form", "GET example.com:443 HTTP/1.1\r\n" + h + "\r\n", 400},
        {"CONNECT", "CONNECT example.com:443 HTTP/1.1\r\n" + h + "\r\n", 400},
        {"asterisk outside OPTIONS", "GET * HTTP/1.1\r\n" + h + "\r\n", 400},
        {"relative target", "GET v1/models HTTP/1.1\r\n" + h + "\r\n", 400},
        {"other scheme", "GET ftp://x/ HTTP/1.1\r\n" + h + "\r\n", 400},
        {"absolute-form without host", "GET http:///x HTTP/1.1\r\n" + h + "\r\n", 400},
        {"absolute-form scheme only", "GET https:// HTTP/1.1\r\n" + h + "\r\n", 400},
        {"non-ASCII byte in target", "GET /caf\xc3\xa9 HTTP/1.1\r\n" + h + "\r\n", 400},
        {"DEL in target", "GET /a\x7f HTTP/1.1\r\n" + h + "\r\n", 400},
        {"NUL in target", std::string("GET /a\0b HTTP/1.1\r\n", 19) + h + "\r\n", 400},
        {"fragment in target", "GET /v1/models#x HTTP/1.1\r\n" + h + "\r\n", 400},
        {"quote in target", "GET /v1/a\"b HTTP/1.1\r\n" + h + "\r\n", 400},
        {"angle brackets in target", "GET /v1/<script> HTTP/1.1\r\n" + h + "\r\n", 400},
        {"backslash in target", "GET /v1/..\\x HTTP/1.1\r\n" + h + "\r\n", 400},
        {"bare CR in request line", "GET / HTTP/1.1\rHost: h\r\n\r\n", 400},
        {"bare CR before request line", "\rGET / HTTP/1.1\r\n" + h + "\r\n", 400},
        // field lines
        {"space before colon", "GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400},
        {"tab before colon", "GET / HTTP/1.1\r\n" + h + "X-A\t: 1\r\n\r\n", 400},
        {"no colon", "GET / HTTP/1.1\r\n" + h + "X-A 1\r\n\r\n", 400},
        {"obs-fold", "GET / HTTP/1.1\r\n" + h + "X-A: 1\r\n 2\r\n\r\n", 400},
        {"obs-fold with tab", "GET / HTTP/1.1\r\n" + h + "X-A: 1\r\n\t2\r\n\r\n", 400},
        {"empty field name", "GET / HTTP/1.1\r\n" + h + ": 1\r\n\r\n", 400},
        {"non-token in name", "GET / HTTP/1.1\r\n" + h + "X[A]: 1\r\n\r\n", 400},
        {"non-ASCII in name", "GET / HTTP/1.1\r\n" + h + "X-\xc3\xa9: 1\r\n\r\n", 400},
        {"bare CR in value", "GET / HTTP/1.1\r\n" + h + "X-A: 1\r2\r\n\r\n", 400},
        {"CR CR LF", "GET / HTTP/1.1\r\n" + h + "X-A: 1\r\r\n\r\n", 400},
        {"NUL in value", std::string("GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\0002\r\n\r\n", 37), 400},
        {"control byte in value", "GET / HTTP/1.1\r\n" + h + "X-A: 1\x01\r\n\r\n", 400},
        {"DEL in value", "GET / HTTP/1.1\r\n" + h + "X-A: 1\x7f\r\n\r\n", 400},
        {"NUL in name", std::string("GET / HTTP/1.1\r\nHost: h\r\nX\0A: 1\r\n\r\n", 35), 400},
        {"bare CR line in the head", "GET / HTTP/1.1\r\n" + h + "\r\r\n\r\n", 400},
        // Host
        {"missing Host in HTTP/1.1", "GET / HTTP/1.1\r\nX-A: 1\r\n\r\n", 400},
        {"two Host fields", "GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", 400},
        {"Host with a space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400},
        {"Host with a slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400},
    };
}

}  // namespace

TEST_CASE("request head: invalid heads get the right status, and no prefix is Complete") {
    for (const InvalidCase& c : invalid_requests()) {
        INFO(c.name);
        ExactCopy copy(c.text);
        RequestHead head;
        ParseResult r = parse_req(copy.view(), head);
        REQUIRE(r.status == ParseStatus::Invalid);
        CHECK(r.error_status == c.status);
        REQUIRE(r.error != nullptr);
        CHECK(std::strlen(r.error) > 0);
        for (std::size_t k = 0; k < c.text.size(); ++k) {
            ExactCopy prefix(std::string_view(c.text).substr(0, k));
            CHECK(parse_req(prefix.view(), head).status != ParseStatus::Complete);
        }
    }
}

// The shortest prefix of `text` that parses as Invalid (text.size() + 1 if none does);
// every shorter one must be Incomplete.
template <typename Head, typename Parse>
std::size_t first_invalid_prefix(const std::string& text, Parse parse, int& status) {
    Head head;
    for (std::size_t k = 1; k <= text.size(); ++k) {
        ExactCopy prefix(std::string_view(text).substr(0, k));
        ParseResult r = parse(prefix.view(), head, HeadLimits{});
        if (r.status == ParseStatus::Invalid) {
            status = r.error_status;
            return k;
        }
        REQUIRE(r.status == ParseStatus::Incomplete);
    }
    return text.size() + 1;
}

TEST_CASE("request head: a start line that cannot become valid is refused before the head ends") {
    const std::string tail = "Host: h\r\nX-A: 1\r\n\r\n";
    struct Case {
        std::string name;
        std::string text;
        std::size_t refused_at;  // prefix length at which it is Invalid
        int status;
    };
    const std::string hello("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11);
    const std::vector<Case> cases = {
        {"TLS ClientHello on the plain port", hello, 1, 400},
        {"non-token byte in the method", "G\x84T / HTTP/1.1\r\n" + tail, 2, 400},
        {"leading space", " GET / HTTP/1.1\r\n" + tail, 1, 400},
        {"two spaces after the method", "GET  / HTTP/1.1\r\n" + tail, 5, 400},
        {"control byte in the target", "GET /a\x01 HTTP/1.1\r\n" + tail, 7, 400},
        {"bare CR in the target", "GET /a\rb HTTP/1.1\r\n" + tail, 7, 400},  // CRLF would leave no version
        {"lower-case version", "GET / http/1.1\r\n" + tail, 7, 400},
        {"version with letters", "GET / HTTP/x.1\r\n" + tail, 12, 400},
        {"bytes after the version", "GET / HTTP/1.1x\r\n" + tail, 15, 400},
        {"no version (HTTP/0.9), complete line", "GET /\r\n" + tail, 6, 400},
        {"HTTP/2.0 request line", "GET / HTTP/2.0\r\n" + tail, 16, 505},
        {"HTTP/3.0 request line", "GET / HTTP/3.0\r\n" + tail, 16, 505},
        {"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 16, 505},
        {"CONNECT", "CONNECT a:443 HTTP/1.1\r\n" + tail, 24, 400},
    };
    for (const Case& c : cases) {
        INFO(c.name);
        int status = 0;
        CHECK(first_invalid_prefix<RequestHead>(c.text, parse_req, status) == c.refused_at);
        CHECK(status == c.status);
    }

    // Never early for a line that can still become valid: every token byte in the
    // method, every visible byte the target allows, leading empty lines split inside CRLF.
    std::string target = "/";
    for (int b = 0x21; b <= 0x7e; ++b)
        if (op::http_chars::is_target_char(static_cast<char>(b))) target += static_cast<char>(b);
    const std::string odd = "\r\n\r\n!#$%&'*+-.^_`|~09azAZ " + target + " HTTP/1.0\r\n" + tail;
    check_every_prefix<RequestHead>(odd, odd.size(), parse_req);
}

TEST_CASE("request head: request line limit, complete and still incomplete") {
    HeadLimits limits;
    limits.max_request_line = 32;
    std::string line = "GET /" + std::string(32 - 14, 'a') + " HTTP/1.1";  // exactly 32 bytes
    REQUIRE(line.size() == 32);
    RequestHead head;
    CHECK(parse_req(line + "\r\nHost: h\r\n\r\n", head, limits).status == ParseStatus::Complete);
    CHECK(parse_req(line + "\r", head, limits).status == ParseStatus::Incomplete);
    std::string longer = "GET /" + std::string(32 - 13, 'a') + " HTTP/1.1";
    ParseResult r = parse_req(longer + "\r\nHost: h\r\n\r\n", head, limits);
    CHECK(r.status == ParseStatus::Invalid);
    CHECK(r.error_status == 414);
    r = parse_req("GET /" + std::string(40, 'a'), head, limits);  // no line end yet
    CHECK(r.status == ParseStatus::Invalid);
    CHECK(r.error_status == 414);
    r = parse_req("\r\n\r\nGET /" + std::string(27, 'a'), head, limits);  // 32 bytes after the skipped lines
    CHECK(r.status == ParseStatus::Incomplete);
    r = parse_req("\r\n\r\nGET /" + std::string(28, 'a'), head, limits);
    CHECK(r.error_status == 414);
}

TEST_CASE("request head: whole-head limit counts an incomplete prefix") {
    HeadLimits limits;
    limits.max_head_bytes = 64;
    std::string head_text = "GET / HTTP/1.1\r\nHost: h\r\nX-Pad: ";
    std::string exact = head_text + std::string(64 - head_text.size() - 4, 'p') + "\r\n\r\n";
    REQUIRE(exact.size() == 64);
    RequestHead head;
    ParseResult r = parse_req(exact + "body bytes beyond the limit", head, limits);
    CHECK(r.status == ParseStatus::Complete);
    CHECK(r.consumed == 64);
    std::string over = head_text + std::string(64 - head_text.size() - 3, 'p') + "\r\n\r\n";
    r = parse_req(over, head, limits);
    CHECK(r.status == ParseStatus::Invalid);
    CHECK(r.error_status == 431);
    r = parse_req(head_text + std::string(100, 'p'), head, limits);  // slowloris: never ends
    CHECK(r.status == ParseStatus::Invalid);
    CHECK(r.error_status == 431);
    r = parse_req(std::string(65, '\n'), head, limits);  // empty lines count too
    CHECK(r.error_status == 431);
    CHECK(parse_req(std::string(64, '\n'), head, limits).status == ParseStatus::Incomplete);
}

TEST_CASE("request head: field count and field line limits") {
    HeadLimits limits;
    limits.max_fields = 3;
    limits.max_field_line = 16;
    RequestHead head;
    std::string base = "GET / HTTP/1.1\r\nHost: h\r\n";
    CHECK(parse_req(base + "A: 1\r\nB: 2\r\n\r\n", head, limits).status == ParseStatus::Complete);
    ParseResult r = parse_req(base + "A: 1\r\nB: 2\r\nC: 3\r\n\r\n", head, limits);
    CHECK(r.status == ParseStatus::Invalid);
    CHECK(r.error_status == 431);
    r = parse_req(base + "A: 1\r\nB: 2\r\nC: 3\r\n", head, limits);  // already too many, head incomplete
    CHECK(r.error_status == 431);
    CHECK(parse_req(base + "X: 0123456789abc\r\n\r\n", head, limits).status == ParseStatus::Complete);  // 16
    r = parse_req(base + "X: 0123456789abcd\r\n\r\n", head, limits);  // 17
    CHECK(r.status == ParseStatus::Invalid);
    CHECK(r.error_status == 431);
    r = parse_req(base + "X: 0123456789abcd", head, limits);  // incomplete but already too long
    CHECK(r.error_status == 431);
    CHECK(parse_req(base + "X: 0123456789abc\r", head, limits).status == ParseStatus::Incomplete);

    HeadLimits defaults;
    std::string many = base;
    for (std::size_t i = 0; i < op::kMaxHeaderFields - 1; ++i) many += "X: " + std::to_string(i) + "\r\n";
    r = parse_req(many + "\r\n", head, defaults);
    CHECK(r.status == ParseStatus::Complete);
    CHECK(head.field_count == op::kMaxHeaderFields);
    r = parse_req(many + "Y: 1\r\n\r\n", head, defaults);
    CHECK(r.status == ParseStatus::Invalid);
    CHECK(r.error_status == 431);
    defaults.max_fields = 1000;  // never beyond the fields[] array
    r = parse_req(many + "Y: 1\r\n\r\n", head, defaults);
    CHECK(r.error_status == 431);
}

TEST_CASE("request head: an input ending exactly at an allocation boundary") {
    // Each of these ends where a reader might peek one byte further.
    for (const char* text : {"GET / HTTP/1.1\r\nHost: h\r\n\r", "GET / HTTP/1.1\r\nHost: h\r\n\r\n", "\r", "\r\n",
                             "GET / HTTP/1.1\r\nHost: h\n\n", "GET / HTTP/1.1\r\nHost: h\r\nX: ", "G"}) {
        ExactCopy copy(text);
        RequestHead head;
        ParseResult r = parse_req(copy.view(), head);
        CHECK(r.status != ParseStatus::Invalid);
    }
}

// ---- responses ---------------------------------------------------------------------

TEST_CASE("response head: valid heads, whole and from every prefix") {
    struct Case {
        const char* name;
        std::string text;
        std::size_t head_len;
        int status;
        const char* reason;
        int version_minor;
        BodyKind body;
    };
    const std::string ok = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
    const std::string len = "HTTP/1.1 401 Unauthorized\r\nContent-Length: 2\r\n\r\n";
    const std::string no_reason = "HTTP/1.1 204\r\n\r\n";
    const std::string empty_reason = "HTTP/1.0 200 \nServer: x\n\n";
    const std::string interim = "HTTP/1.1 100 Continue\r\n\r\n";
    const std::string odd = "HTTP/1.1 999 Strange \xe2\x9c\x93 reason\r\nX: 1\r\n\r\n";
    const std::string http12 = "HTTP/1.2 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    const std::string http19 = "HTTP/1.9 204\r\n\r\n";
    std::vector<Case> cases = {
        {"chunked 200", ok + "5\r\nhello\r\n0\r\n\r\n", ok.size(), 200, "OK", 1, BodyKind::Chunked},
        {"401 with a body", len + "{}", len.size(), 401, "Unauthorized", 1, BodyKind::ContentLength},
        {"no reason, no SP", no_reason, no_reason.size(), 204, "", 1, BodyKind::None},
        {"empty reason, bare LF, HTTP/1.0", empty_reason + "until close", empty_reason.size(), 200, "", 0,
         BodyKind::UntilClose},
        {"interim 100 followed by the final head", interim + len, interim.size(), 100, "Continue", 1, BodyKind::None},
        {"status 999 with obs-text reason", odd, odd.size(), 999, "Strange \xe2\x9c\x93 reason", 1,
         BodyKind::UntilClose},
        {"HTTP/1.2 taken as HTTP/1.1, chunked", http12 + "0\r\n\r\n", http12.size(), 200, "OK", 1, BodyKind::Chunked},
        {"HTTP/1.9 taken as HTTP/1.1, no reason", http19, http19.size(), 204, "", 1, BodyKind::None},
    };
    for (const Case& c : cases) {
        INFO(c.name);
        ExactCopy copy(c.text);
        ResponseHead head;
        ParseResult r = parse_resp(copy.view(), head);
        REQUIRE(r.status == ParseStatus::Complete);
        CHECK(r.consumed == c.head_len);
        CHECK(head.status == c.status);
        CHECK(head.reason == c.reason);
        CHECK(head.version_minor == c.version_minor);
        CHECK(head.body_kind(false) == c.body);
        CHECK(head.body_kind(true) == BodyKind::None);
        check_every_prefix<ResponseHead>(c.text, c.head_len, parse_resp);
    }
}

TEST_CASE("response head: a status line that cannot become valid is refused before the head ends") {
    struct Case {
        std::string name;
        std::string text;
        std::size_t refused_at;  // prefix length at which it is Invalid (502)
    };
    const std::vector<Case> cases = {
        {"an SSH server", "SSH-2.0-OpenSSH_9.2p1\r\n", 1},
        {"an SMTP server", "220 smtp.example.test ESMTP\r\n", 1},
        {"an HTTP/2 SETTINGS frame", std::string("\x00\x00\x12\x04\x00\x00\x00\x00\x00", 9), 1},
        {"HTTP/2 status line", "HTTP/2 200\r\n", 6},
        {"HTTP/3.0", "HTTP/3.0 200 OK\r\n", 6},
        {"HTTP/0.9", "HTTP/0.9 200 OK\r\n", 6},
        {"status below 100", "HTTP/1.1 099 Odd\r\n", 10},
        {"letter in the status", "HTTP/1.1 20x OK\r\n", 12},
        {"no space after the status", "HTTP/1.1 200OK\r\n", 13},
        {"control byte in the reason", "HTTP/1.1 200 O\x01K\r\n", 15},
        {"bare CR in the reason", "HTTP/1.1 200 O\rK\r\n", 16},
        {"CR before the status", "HTTP/1.1 20\r\n", 12},
    };
    for (const Case& c : cases) {
        INFO(c.name);
        int status = 0;
        CHECK(first_invalid_prefix<ResponseHead>(c.text + "Content-Length: 0\r\n\r\n", parse_resp, status) ==
              c.refused_at);
        CHECK(status == 502);
    }
    // Never early for a line that can still become valid.
    const std::string odd = "HTTP/1.0 999 \t odd\x80\xff reason\r\nContent-Length: 0\r\n\r\n";
    check_every_prefix<ResponseHead>(odd, odd.size(), parse_resp);
    const std::string bare = "HTTP/1.1 204\r\n\r\n";
    check_every_prefix<ResponseHead>(bare, bare.size(), parse_resp);
}

TEST_CASE("response head: body kind follows RFC 9112 section 6.3") {
    auto kind = [](const std::string& text, bool head_request) {
        ResponseHead head;
        REQUIRE(parse_resp(text, head).status == ParseStatus::Complete);
        return head.body_kind(head_request);
    };
    CHECK(kind("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", false) == BodyKind::ContentLength);
    CHECK(kind("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", true) == BodyKind::None);
    CHECK(kind("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false) == BodyKind::None);
    CHECK(kind("HTTP/1.1 200 OK\r\n\r\n", false) == BodyKind::UntilClose);
    CHECK(kind("HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n", false) == BodyKind::None);
    CHECK(kind("HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n", false) == BodyKind::None);
    CHECK(kind("HTTP/1.1 103 Early Hints\r\n\r\n", false) == BodyKind::None);
    CHECK(kind("HTTP/1.1 199 x\r\n\r\n", false) == BodyKind::None);
    CHECK(kind("HTTP/1.1 205 Reset\r\nTransfer-Encoding: chunked\r\n\r\n", false) == BodyKind::Chunked);
    CHECK(kind("HTTP/1.1 500 x\r\nContent-Length: 7\r\n\r\n", false) == BodyKind::ContentLength);
}

TEST_CASE("response head: keep-alive by version and Connection") {
    ResponseHead head;
    REQUIRE(parse_resp("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", head).status == ParseStatus::Complete);
    CHECK_FALSE(head.keep_alive());
    REQUIRE(parse_resp("HTTP/1.1 200 OK\r\n\r\n", head).status == ParseStatus::Complete);
    CHECK(head.keep_alive());
    REQUIRE(parse_resp("HTTP/1.0 200 OK\r\n\r\n", head).status == ParseStatus::Complete);
    CHECK_FALSE(head.keep_alive());
    REQUIRE(parse_resp("HTTP/1.0 200 OK\r\nconnection: Keep-Alive\r\n\r\n", head).status == ParseStatus::Complete);
    CHECK(head.keep_alive());
    REQUIRE(parse_resp("HTTP/1.2 200 OK\r\n\r\n", head).status == ParseStatus::Complete);  // as HTTP/1.1
    CHECK(head.keep_alive());
}

TEST_CASE("response head: whitespace before a field's colon is removed, the field kept") {
    // RFC 9112 section 5.1: a proxy MUST remove it from a response before forwarding (a
    // request with it is refused: 400 above).
    ResponseHead head;
    REQUIRE(parse_resp("HTTP/1.1 200 OK\r\nX-Id : 7\r\nContent-Length\t: 3\r\n\r\n", head).status ==
            ParseStatus::Complete);
    REQUIRE(head.field_count == 2);
    CHECK(head.fields[0].name == "X-Id");
    CHECK(head.fields[0].value == "7");
    CHECK(head.fields[1].name == "Content-Length");
    CHECK(head.has_content_length);
    CHECK(head.content_length == 3);
}

TEST_CASE("response head: every invalid head is 502") {
    std::vector<std::string> cases = {
        "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: -3\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
        "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/2.0 200 OK\r\n\r\n",
        "HTTP/3.0 200 OK\r\n\r\n",
        "HTTP/1.a 200 OK\r\n\r\n",
        "http/1.1 200 OK\r\n\r\n",
        "HTTP/1.1 099 Low\r\n\r\n",
        "HTTP/1.1 20 Short\r\n\r\n",
        "HTTP/1.1 2000 Long\r\n\r\n",
        "HTTP/1.1 20x OK\r\n\r\n",
        "HTTP/1.1  200 OK\r\n\r\n",
        "HTTP/1.1 200 O\x01K\r\n\r\n",
        "HTTP/1.1 200 OK\rX: 1\r\n\r\n",
        "HTTP/1.1\r\n\r\n",
        "\r\nHTTP/1.1 200 OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\n : 1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX: 1\r\n folded\r\n\r\n",
        "HTTP/1.1 200 OK\r\nNo colon\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX: a\x7f\r\n\r\n",
    };
    for (const std::string& text : cases) {
        INFO(text);
        ExactCopy copy(text);
        ResponseHead head;
        ParseResult r = parse_resp(copy.view(), head);
        REQUIRE(r.status == ParseStatus::Invalid);
        CHECK(r.error_status == 502);
        CHECK(std::strlen(r.error) > 0);
    }
    HeadLimits limits;
    limits.max_head_bytes = 32;
    ResponseHead head;
    ParseResult r = parse_resp("HTTP/1.1 200 OK\r\nX: " + std::string(40, 'x'), head, limits);
    CHECK(r.status == ParseStatus::Invalid);
    CHECK(r.error_status == 502);
}

// ---- helpers -------------------------------------------------------------------------

TEST_CASE("iequals and is_hop_by_hop") {
    CHECK(op::iequals("Content-Length", "content-LENGTH"));
    CHECK(op::iequals("", ""));
    CHECK_FALSE(op::iequals("Host", "Hos"));
    CHECK_FALSE(op::iequals("Host", "Hosu"));
    CHECK_FALSE(op::iequals("[", "{"));  // differ only in bit 0x20, but are not letters
    for (const char* name : {"connection", "Keep-Alive", "PROXY-CONNECTION", "te", "Trailer", "transfer-encoding",
                             "Upgrade"}) {
        CHECK(op::is_hop_by_hop(name));
    }
    for (const char* name : {"Host", "Content-Length", "Authorization", "TEE", "Trailers", "X-Target-Host"}) {
        CHECK_FALSE(op::is_hop_by_hop(name));
    }
}

TEST_CASE("classify_field: every special name in any case, and near misses of the same length") {
    using op::FieldKind;
    const std::pair<const char*, FieldKind> cases[] = {
        {"content-length", FieldKind::ContentLength}, {"CONTENT-LENGTH", FieldKind::ContentLength},
        {"Transfer-Encoding", FieldKind::TransferEncoding}, {"cOnNeCtIoN", FieldKind::Connection},
        {"keep-alive", FieldKind::OtherHopByHop}, {"Proxy-Connection", FieldKind::OtherHopByHop},
        {"te", FieldKind::OtherHopByHop}, {"TRAILER", FieldKind::OtherHopByHop}, {"upgrade", FieldKind::OtherHopByHop},
        {"HOST", FieldKind::Host}, {"expect", FieldKind::Expect}, {"x-target-host", FieldKind::XTargetHost},
        // same lengths, other names
        {"Content-Lengtx", FieldKind::Other}, {"Transfer-Encodinx", FieldKind::Other}, {"Connectiox", FieldKind::Other},
        {"Keep-Alivx", FieldKind::Other}, {"Proxy-Connectiox", FieldKind::Other}, {"TF", FieldKind::Other},
        {"Trailex", FieldKind::Other}, {"Upgradx", FieldKind::Other}, {"Hosu", FieldKind::Other},
        {"Expecu", FieldKind::Other}, {"X-Target-Hosu", FieldKind::Other}, {"Authorization", FieldKind::Other},
        {"", FieldKind::Other}, {"Content-Type", FieldKind::Other},
    };
    for (const auto& c : cases) {
        CAPTURE(c.first);
        CHECK(op::classify_field(c.first) == c.second);
    }
    RequestHead head;
    REQUIRE(parse_req("POST / HTTP/1.1\r\nhost: h\r\nX-TARGET-HOST: a.b\r\ncontent-length: 1\r\nX-A: 1\r\n\r\nx",
                      head).status == ParseStatus::Complete);
    REQUIRE(head.field_count == 4);
    CHECK(head.fields[0].kind == FieldKind::Host);
    CHECK(head.fields[1].kind == FieldKind::XTargetHost);
    CHECK(head.fields[2].kind == FieldKind::ContentLength);
    CHECK(head.fields[3].kind == FieldKind::Other);
    CHECK(head.connection_fields == 0);
    CHECK_FALSE(op::named_by_connection(head, "X-A"));

    // Only the connection options themselves: answered without walking the fields.
    REQUIRE(parse_req("GET / HTTP/1.1\r\nHost: h\r\nConnection: Keep-Alive, \r\nX-A: 1\r\n\r\n", head).status ==
            ParseStatus::Complete);
    CHECK(head.connection_fields == 1);
    CHECK(head.connection_other_tokens == 0);
    CHECK(op::named_by_connection(head, "keep-alive"));
    CHECK_FALSE(op::named_by_connection(head, "close"));
    CHECK_FALSE(op::named_by_connection(head, "X-A"));
    REQUIRE(parse_req("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\nConnection: x-a\r\nX-A: 1\r\n\r\n", head)
                .status == ParseStatus::Complete);
    CHECK(head.connection_other_tokens == 1);
    CHECK(op::named_by_connection(head, "CLOSE"));
    CHECK(op::named_by_connection(head, "X-A"));
    CHECK_FALSE(op::named_by_connection(head, "keep-alive"));
}
