// Tests for http_writer.h: the exact bytes of every head, chunk and error answer the
// proxy writes (the end-to-end tests compare wire bytes, and these pin them), the
// fields each head drops, and that what is written parses back.
#include <cstdint>
#include <cstdio>
#include <string>

#include "byte_buffer.h"
#include "doctest/doctest.h"
#include "http_head.h"
#include "http_writer.h"

using op::ByteBuffer;
using op::OutgoingTarget;
using op::ResponseFraming;

namespace {

// Parses `text`, which must stay alive while the head is used (the head views it).
op::RequestHead& request(const std::string& text) {
    static op::RequestHead head;
    op::ParseResult r = op::parse_request_head(text, op::HeadLimits{}, head);
    REQUIRE(r.status == op::ParseStatus::Complete);
    return head;
}

op::ResponseHead& response(const std::string& text) {
    static op::ResponseHead head;
    op::ParseResult r = op::parse_response_head(text, op::HeadLimits{}, head);
    REQUIRE(r.status == op::ParseStatus::Complete);
    return head;
}

std::string request_head(const std::string& text, OutgoingTarget target, std::string_view host) {
    ByteBuffer out;
    op::write_request_head(out, request(text), target, host);
    return std::string(out.view());
}

std::string response_head(const std::string& text, ResponseFraming framing) {
    ByteBuffer out;
    op::write_response_head(out, response(text), framing);
    return std::string(out.view());
}

// The Date the proxy's own answers carry, fixed here (http_date.h formats the clock's).
constexpr std::string_view kDate = "Sun, 06 Nov 1994 08:49:37 GMT";

std::string error_response(const op::ProxyError& e, bool close) {
    ByteBuffer out;
    op::write_error_response(out, e, close, nullptr, kDate);
    return std::string(out.view());
}

}  // namespace

// ---- upstream request head -------------------------------------------------------------

TEST_CASE("request head: request line, Host first, fields in order") {
    const std::string in =
        "GET /release/v1/models?x=1 HTTP/1.1\r\nHost: oa.example.com:9001\r\nAuthorization: Bearer sk-1\r\n"
        "Accept: */*\r\naccept: text/plain\r\n\r\n";
    CHECK(request_head(in, {false, "/v1/models?x=1"}, "api.openai.com") ==
          "GET /v1/models?x=1 HTTP/1.1\r\nHost: api.openai.com\r\nAuthorization: Bearer sk-1\r\n"
          "Accept: */*\r\naccept: text/plain\r\n\r\n");
}

TEST_CASE("request head: the slash before the rest of the target") {
    const std::string in = "GET http://h?q=1 HTTP/1.1\r\nHost: h\r\n\r\n";
    CHECK(request_head(in, {true, "?q=1"}, "h:8443") == "GET /?q=1 HTTP/1.1\r\nHost: h:8443\r\n\r\n");
    CHECK(request_head(in, {true, ""}, "h") == "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    const std::string options = "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n";
    CHECK(request_head(options, {false, "*"}, "h") == "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n");
}

TEST_CASE("request head: drops Host, X-Target-Host, Expect, hop-by-hop and Connection-named fields") {
    const std::string in =
        "POST /v1/x HTTP/1.1\r\nhost: a\r\nX-Target-Host: api.openai.com\r\nExpect: 100-continue\r\n"
        "Connection: X-Private, keep-alive\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\n"
        "TE: trailers\r\nTrailer: X-T\r\nUpgrade: websocket\r\nX-Private: secret\r\nx-private: again\r\n"
        "X-Kept: 1\r\nContent-Length: 2\r\nX-Kept: 2\r\n\r\n";
    CHECK(request_head(in, {false, "/v1/x"}, "up") ==
          "POST /v1/x HTTP/1.1\r\nHost: up\r\nX-Kept: 1\r\nX-Kept: 2\r\nContent-Length: 2\r\n\r\n");
}

TEST_CASE("request head: a WebSocket upgrade keeps Connection: Upgrade and Upgrade, and nothing else hop-by-hop") {
    const std::string text =
        "GET /v1/realtime?model=m HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade, X-Private\r\n"
        "Upgrade: websocket\r\nX-Private: 1\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: realtime\r\n\r\n";
    ByteBuffer out;
    op::write_request_head(out, request(text), {false, "/v1/realtime?model=m"}, "up", "websocket");
    CHECK(out.view() ==
          "GET /v1/realtime?model=m HTTP/1.1\r\nHost: up\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
          "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: realtime\r\nConnection: Upgrade\r\n"
          "Upgrade: websocket\r\n\r\n");
    CHECK(op::is_websocket_upgrade(request(text)));
}

TEST_CASE("request head: what is and is not a WebSocket upgrade") {
    auto upgrade = [](const std::string& text) { return op::is_websocket_upgrade(request(text)); };
    CHECK(upgrade("GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: WebSocket\r\n\r\n"));
    CHECK(upgrade("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nConnection: Upgrade\r\n"
                  "Upgrade: h2c, websocket\r\n\r\n"));
    CHECK_FALSE(upgrade("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n"));  // not in Connection
    CHECK_FALSE(upgrade("GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n"));
    CHECK_FALSE(upgrade("POST / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"));
    CHECK_FALSE(upgrade("GET / HTTP/1.0\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"));
    CHECK_FALSE(upgrade("GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n"
                        "Content-Length: 3\r\n\r\n"));
    CHECK_FALSE(upgrade("GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocketx\r\n\r\n"));
}

TEST_CASE("response head: a 101 that accepts a WebSocket, relayed with its upgrade fields") {
    const std::string text =
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
    CHECK(op::accepts_websocket(response(text)));
    ResponseFraming framing;
    framing.upgrade = "websocket";
    CHECK(response_head(text, framing) ==
          "HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
          "Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
    CHECK_FALSE(op::accepts_websocket(response("HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n"
                                               "Connection: Upgrade\r\n\r\n")));
    CHECK_FALSE(op::accepts_websocket(response("HTTP/1.1 200 OK\r\nUpgrade: websocket\r\n"
                                               "Connection: Upgrade\r\nContent-Length: 0\r\n\r\n")));
}

TEST_CASE("request head: framing, normalised and last") {
    // Content-Length is written once, as a plain number, whatever list the client sent.
    const std::string listed = "PUT /f HTTP/1.1\r\nContent-Length: 5, 5\r\nHost: h\r\nContent-Length: 5\r\nX: y\r\n\r\n";
    CHECK(request_head(listed, {false, "/f"}, "h") == "PUT /f HTTP/1.1\r\nHost: h\r\nX: y\r\nContent-Length: 5\r\n\r\n");
    const std::string zero = "POST /f HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n";
    CHECK(request_head(zero, {false, "/f"}, "h") == "POST /f HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n");
    const std::string big = "POST /f HTTP/1.1\r\nHost: h\r\nContent-Length: 18446744073709551615\r\n\r\n";
    CHECK(request_head(big, {false, "/f"}, "h") ==
          "POST /f HTTP/1.1\r\nHost: h\r\nContent-Length: 18446744073709551615\r\n\r\n");
    // A chunked body is re-chunked by the proxy: the client's own field is dropped.
    const std::string chunked = "POST /f HTTP/1.1\r\nTransfer-Encoding: Chunked\r\nHost: h\r\n\r\n";
    CHECK(request_head(chunked, {false, "/f"}, "h") ==
          "POST /f HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");
    // No body, no framing field; an HTTP/1.0 request goes out as HTTP/1.1.
    const std::string http10 = "GET /f HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    CHECK(request_head(http10, {false, "/f"}, "h") == "GET /f HTTP/1.1\r\nHost: h\r\n\r\n");
}

TEST_CASE("request head: what is written parses back as the same request") {
    const std::string in = "POST /v1/chat HTTP/1.1\nHost: a\nX-A:  spaced \t\nContent-Length: 3\n\n";
    ByteBuffer out;
    out.append("kept");  // writers append: what the buffer holds stays in front
    op::write_request_head(out, request(in), {false, "/v1/chat"}, "api.example.com:8443");
    REQUIRE(out.view().substr(0, 4) == "kept");
    const std::string written(out.view().substr(4));
    op::RequestHead head;
    op::ParseResult r = op::parse_request_head(written, op::HeadLimits{}, head);
    REQUIRE(r.status == op::ParseStatus::Complete);
    CHECK(r.consumed == written.size());
    CHECK(head.method == "POST");
    CHECK(head.target == "/v1/chat");
    CHECK(head.host == "api.example.com:8443");
    CHECK(head.content_length == 3);
    REQUIRE(head.field_count == 3);
    CHECK(head.fields[1].name == "X-A");
    CHECK(head.fields[1].value == "spaced");
}

// ---- CONNECT to an upstream proxy ----------------------------------------------------

TEST_CASE("CONNECT head: host:port twice, IPv6 bracketed, optional Proxy-Authorization") {
    auto connect = [](const char* host, std::uint16_t port, std::string_view auth) {
        op::Target t;
        t.host = host;
        t.port = port;
        ByteBuffer out;
        op::write_connect_head(out, t, auth);
        return std::string(out.view());
    };
    CHECK(connect("api.openai.com", 443, "") ==
          "CONNECT api.openai.com:443 HTTP/1.1\r\nHost: api.openai.com:443\r\n\r\n");
    CHECK(connect("::1", 8443, "") == "CONNECT [::1]:8443 HTTP/1.1\r\nHost: [::1]:8443\r\n\r\n");
    CHECK(connect("10.0.0.5", 80, "Basic dXNlcjpwYXNz") ==
          "CONNECT 10.0.0.5:80 HTTP/1.1\r\nHost: 10.0.0.5:80\r\nProxy-Authorization: Basic dXNlcjpwYXNz\r\n\r\n");
    CHECK(connect("h", 65535, "") == "CONNECT h:65535 HTTP/1.1\r\nHost: h:65535\r\n\r\n");
}

// ---- client response head --------------------------------------------------------------

TEST_CASE("response head: status line, fields in order, hop-by-hop and Content-Length dropped") {
    const std::string in =
        "HTTP/1.0 200 OK\r\nContent-Type: text/event-stream\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\n"
        "Keep-Alive: timeout=5\r\nContent-Length: 5\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nUpgrade: h2c\r\n\r\n";
    CHECK(response_head(in, {}) ==
          "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n");
}

TEST_CASE("response head: reason as received, empty included") {
    CHECK(response_head("HTTP/1.1 204\r\n\r\n", {}) == "HTTP/1.1 204 \r\n\r\n");
    CHECK(response_head("HTTP/1.1 999 Strange \xe2\x9c\x93 reason\r\n\r\n", {}) ==
          "HTTP/1.1 999 Strange \xe2\x9c\x93 reason\r\n\r\n");
    CHECK(response_head("HTTP/1.2 401 Unauthorized\r\n\r\n", {}) == "HTTP/1.1 401 Unauthorized\r\n\r\n");
}

TEST_CASE("response head: what the relay adds, in a fixed order") {
    const std::string in = "HTTP/1.1 200 OK\r\nContent-Length: 0012\r\nX: y\r\n\r\n";
    ResponseFraming length;
    length.content_length = true;
    CHECK(response_head(in, length) == "HTTP/1.1 200 OK\r\nX: y\r\nContent-Length: 12\r\n\r\n");

    const std::string stream = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX: y\r\n\r\n";
    ResponseFraming chunked;
    chunked.chunked = true;
    CHECK(response_head(stream, chunked) == "HTTP/1.1 200 OK\r\nX: y\r\nTransfer-Encoding: chunked\r\n\r\n");
    chunked.close = true;
    CHECK(response_head(stream, chunked) ==
          "HTTP/1.1 200 OK\r\nX: y\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n");

    ResponseFraming keep;
    keep.keep_alive = true;
    CHECK(response_head(in, keep) == "HTTP/1.1 200 OK\r\nX: y\r\nConnection: keep-alive\r\n\r\n");
    keep.close = true;  // close wins
    CHECK(response_head(in, keep) == "HTTP/1.1 200 OK\r\nX: y\r\nConnection: close\r\n\r\n");

    ResponseFraming all;
    all.content_length = all.chunked = all.close = all.keep_alive = true;
    CHECK(response_head(in, all) ==
          "HTTP/1.1 200 OK\r\nX: y\r\nContent-Length: 12\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
}

// ---- CORS and keep-alive heads --------------------------------------------------------

namespace {
constexpr const char* kExpose =
    "Access-Control-Expose-Headers: x-request-id, openai-processing-ms, openai-version, openai-organization, "
    "openai-project, x-ratelimit-limit-requests, x-ratelimit-limit-tokens, x-ratelimit-remaining-requests, "
    "x-ratelimit-remaining-tokens, x-ratelimit-reset-requests, x-ratelimit-reset-tokens, retry-after, "
    "retry-after-ms\r\n";
}  // namespace

TEST_CASE("response head with CORS: the upstream's Access-Control-* replaced, Vary merged") {
    const std::string in =
        "HTTP/1.1 200 OK\r\nVary: Accept-Encoding\r\nAccess-Control-Allow-Origin: *\r\nX: y\r\n"
        "access-control-expose-headers: x\r\nvary: Authorization,  Cookie\r\n\r\n";
    const op::CorsAnswer granted{"https://app.test", true};
    ResponseFraming f;
    f.cors = &granted;
    CHECK(response_head(in, f) == std::string("HTTP/1.1 200 OK\r\nX: y\r\n"
                                              "Vary: Accept-Encoding, Authorization, Cookie, Origin\r\n"
                                              "Access-Control-Allow-Origin: https://app.test\r\n"
                                              "Access-Control-Allow-Credentials: true\r\n") +
                                      kExpose + "\r\n");
    const op::CorsAnswer not_granted{};
    f.cors = &not_granted;
    CHECK(response_head(in, f) == "HTTP/1.1 200 OK\r\nX: y\r\nVary: Accept-Encoding, Authorization, Cookie, Origin\r\n\r\n");
    CHECK(response_head("HTTP/1.1 200 OK\r\n\r\n", f) == "HTTP/1.1 200 OK\r\nVary: Origin\r\n\r\n");
    CHECK(response_head("HTTP/1.1 200 OK\r\nVary: origin\r\n\r\n", f) == "HTTP/1.1 200 OK\r\nVary: origin\r\n\r\n");
    CHECK(response_head("HTTP/1.1 200 OK\r\nVary: *\r\n\r\n", f) == "HTTP/1.1 200 OK\r\nVary: *\r\n\r\n");
    // Without CORS nothing changes.
    CHECK(response_head(in, {}).find("Access-Control-Allow-Origin: *\r\n") != std::string::npos);
}

TEST_CASE("preflight response: the grant, and only allowed request headers") {
    ByteBuffer out;
    const op::CorsAnswer granted{"http://localhost:5173", false};
    op::write_preflight_response(out, granted, "authorization, x-secret,content-type ,X-Stainless-OS", false, kDate);
    CHECK(out.view() == "HTTP/1.1 204 No Content\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
                        "Vary: Origin, Access-Control-Request-Method, Access-Control-Request-Headers\r\n"
                        "Access-Control-Allow-Origin: http://localhost:5173\r\n"
                        "Access-Control-Allow-Methods: GET, POST, PUT, PATCH, DELETE, OPTIONS\r\n"
                        "Access-Control-Allow-Headers: authorization, content-type, X-Stainless-OS\r\n"
                        "Access-Control-Max-Age: 7200\r\n\r\n");
    ByteBuffer none;
    const op::CorsAnswer cred{"https://a.test", true};
    op::write_preflight_response(none, cred, "x-secret", true, kDate);
    CHECK(none.view() == "HTTP/1.1 204 No Content\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
                         "Vary: Origin, Access-Control-Request-Method, Access-Control-Request-Headers\r\n"
                         "Access-Control-Allow-Origin: https://a.test\r\nAccess-Control-Allow-Credentials: true\r\n"
                         "Access-Control-Allow-Methods: GET, POST, PUT, PATCH, DELETE, OPTIONS\r\n"
                         "Access-Control-Max-Age: 7200\r\nConnection: close\r\n\r\n");
}

TEST_CASE("error response with CORS fields; the error as the last chunk of a body") {
    const op::ProxyError e{502, "proxy_error", "upstream_unreachable", "down"};
    const std::string body =
        "{\"error\":{\"message\":\"down\",\"type\":\"proxy_error\",\"code\":\"upstream_unreachable\"}}\n";
    const op::CorsAnswer granted{"https://app.test", false};
    ByteBuffer out;
    op::write_error_response(out, e, false, &granted, kDate);
    CHECK(out.view() == "HTTP/1.1 502 Bad Gateway\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
                        "Content-Type: application/json\r\nContent-Length: " +
                            std::to_string(body.size()) +
                            "\r\nVary: Origin\r\nAccess-Control-Allow-Origin: https://app.test\r\n" + kExpose +
                            "\r\n" + body);
    ByteBuffer chunk;
    op::write_error_chunk(chunk, e);
    char hex[16];
    std::snprintf(hex, sizeof hex, "%zx", body.size());
    CHECK(chunk.view() == std::string(hex) + "\r\n" + body + "\r\n0\r\n\r\n");
}

TEST_CASE("keep-alive head: 200, JSON, chunked, CORS, close") {
    ByteBuffer out;
    op::write_keepalive_head(out, nullptr, false, kDate);
    CHECK(out.view() == "HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
                        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n");
    ByteBuffer with;
    const op::CorsAnswer not_granted{};
    op::write_keepalive_head(with, &not_granted, true, kDate);
    CHECK(with.view() == "HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
                         "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
                         "Vary: Origin\r\nConnection: close\r\n\r\n");
}

TEST_CASE("100 Continue") {
    ByteBuffer out;
    op::write_continue(out);
    CHECK(out.view() == "HTTP/1.1 100 Continue\r\n\r\n");
}

// ---- error answers ---------------------------------------------------------------------

TEST_CASE("error response: exact bytes, with and without Connection: close") {
    const std::string body =
        "{\"error\":{\"message\":\"no target for host \\\"x\\\"\",\"type\":\"invalid_request_error\","
        "\"code\":\"unknown_route\"}}\n";
    const op::ProxyError e{404, "invalid_request_error", "unknown_route", "no target for host \"x\""};
    CHECK(error_response(e, false) == "HTTP/1.1 404 Not Found\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
                                      "Content-Type: application/json\r\nContent-Length: " +
                                          std::to_string(body.size()) + "\r\n\r\n" + body);
    CHECK(error_response(e, true) == "HTTP/1.1 404 Not Found\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
                                     "Content-Type: application/json\r\nContent-Length: " +
                                         std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body);
}

TEST_CASE("error response: Retry-After when the proxy knows when to retry") {
    op::ProxyError e{503, "proxy_error", "upstream_keys_unavailable", "later"};
    e.retry_after_s = 30;
    const std::string text = error_response(e, false);
    CHECK(text.find("\r\nRetry-After: 30\r\n") != std::string::npos);
    CHECK(text.find("\r\n\r\n") > text.find("Retry-After"));  // in the head
    e.retry_after_s = 0;
    CHECK(error_response(e, false).find("Retry-After") == std::string::npos);
}

TEST_CASE("error response: JSON escaping and a Content-Length that matches") {
    // Quote, backslash, control bytes and DEL escaped (lower-case hex); UTF-8 passes.
    const std::string message = std::string("a\"b\\c\x01\x1f\x7f\td\n\xc3\xa9", 13);
    const op::ProxyError e{502, "proxy_error", "upstream_bad_response", message};
    const std::string text = error_response(e, true);
    const std::string expected_body =
        "{\"error\":{\"message\":\"a\\\"b\\\\c\\u0001\\u001f\\u007f\\u0009d\\u000a\xc3\xa9\","
        "\"type\":\"proxy_error\",\"code\":\"upstream_bad_response\"}}\n";
    const std::size_t split = text.find("\r\n\r\n") + 4;
    CHECK(text.substr(split) == expected_body);
    CHECK(text.substr(0, split) == "HTTP/1.1 502 Bad Gateway\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
                                   "Content-Type: application/json\r\nContent-Length: " +
                                       std::to_string(expected_body.size()) + "\r\nConnection: close\r\n\r\n");
    CHECK(op::json_escaped_size(message) == 40);
}

TEST_CASE("error response: every reason phrase, and an unknown status") {
    const struct {
        int status;
        const char* line;
    } cases[] = {
        {400, "HTTP/1.1 400 Bad Request\r\n"},
        {403, "HTTP/1.1 403 Forbidden\r\n"},
        {404, "HTTP/1.1 404 Not Found\r\n"},
        {405, "HTTP/1.1 405 Method Not Allowed\r\n"},
        {408, "HTTP/1.1 408 Request Timeout\r\n"},
        {411, "HTTP/1.1 411 Length Required\r\n"},
        {413, "HTTP/1.1 413 Content Too Large\r\n"},
        {414, "HTTP/1.1 414 URI Too Long\r\n"},
        {431, "HTTP/1.1 431 Request Header Fields Too Large\r\n"},
        {500, "HTTP/1.1 500 Internal Server Error\r\n"},
        {501, "HTTP/1.1 501 Not Implemented\r\n"},
        {502, "HTTP/1.1 502 Bad Gateway\r\n"},
        {503, "HTTP/1.1 503 Service Unavailable\r\n"},
        {504, "HTTP/1.1 504 Gateway Timeout\r\n"},
        {505, "HTTP/1.1 505 HTTP Version Not Supported\r\n"},
        {418, "HTTP/1.1 418 Error\r\n"},
    };
    for (const auto& c : cases) {
        INFO(c.status);
        std::string text = error_response({c.status, "t", "c", "m"}, false);
        CHECK(text.substr(0, std::string_view(c.line).size()) == c.line);
    }
}

// ---- chunks and numbers ----------------------------------------------------------------

TEST_CASE("chunk_header writes lower-case hex and CRLF") {
    char buf[op::kMaxChunkHeader];
    auto header = [&](std::size_t n) { return std::string(buf, op::chunk_header(buf, n)); };
    CHECK(header(1) == "1\r\n");
    CHECK(header(15) == "f\r\n");
    CHECK(header(16) == "10\r\n");
    CHECK(header(0xabcdef) == "abcdef\r\n");
    CHECK(header(~std::size_t{0}) == std::string(sizeof(std::size_t) * 2, 'f') + "\r\n");
    CHECK(header(0) == "0\r\n");
}

TEST_CASE("chunks: framing around the payload, nothing for an empty one, the last chunk") {
    ByteBuffer out;
    op::write_chunk(out, "hello");
    CHECK(out.view() == "5\r\nhello\r\n");
    op::write_chunk(out, "");
    CHECK(out.view() == "5\r\nhello\r\n");  // a "0" chunk here would end the body
    op::write_chunk(out, std::string(26, 'z'));
    CHECK(out.view() == "5\r\nhello\r\n1a\r\n" + std::string(26, 'z') + "\r\n");
    out.clear();
    op::write_last_chunk(out);
    CHECK(out.view() == "0\r\n\r\n");
}

TEST_CASE("append_decimal") {
    auto dec = [](std::uint64_t v) {
        ByteBuffer out;
        op::append_decimal(out, v);
        return std::string(out.view());
    };
    CHECK(dec(0) == "0");
    CHECK(dec(9) == "9");
    CHECK(dec(10) == "10");
    CHECK(dec(1234567890) == "1234567890");
    CHECK(dec(UINT64_MAX) == "18446744073709551615");
}
