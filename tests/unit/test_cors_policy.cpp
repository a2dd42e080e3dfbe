// Tests for cors_policy.h: parsing and normalising -cors-origins, matching a request's
// Origin, and the request-header allow-set.
#include <string>

#include "cors_policy.h"
#include "doctest/doctest.h"

using op::CorsPolicy;

namespace {

CorsPolicy parsed(const char* text) {
    CorsPolicy p;
    std::string why;
    INFO("origins: ", text);
    REQUIRE(op::parse_cors_origins(text, p, why));
    CHECK(why.empty());
    return p;
}

std::string refused(const char* text) {
    CorsPolicy p;
    std::string why;
    INFO("origins: ", text);
    CHECK_FALSE(op::parse_cors_origins(text, p, why));
    CHECK_FALSE(p.enabled);  // left untouched
    CHECK_FALSE(why.empty());
    return why;
}

std::string normal(const char* text) {
    std::string out, why;
    INFO("origin: ", text);
    REQUIRE(op::normalize_origin(text, out, why));
    return out;
}

}  // namespace

TEST_CASE("cors: origins are normalised as browsers serialise them") {
    CHECK(normal("https://app.example.com") == "https://app.example.com");
    CHECK(normal("HTTPS://App.Example.COM") == "https://app.example.com");
    CHECK(normal("https://app.example.com:443") == "https://app.example.com");
    CHECK(normal("http://app.example.com:80") == "http://app.example.com");
    CHECK(normal("http://app.example.com:443") == "http://app.example.com:443");
    CHECK(normal("https://app.example.com:8443") == "https://app.example.com:8443");
    CHECK(normal("http://127.0.0.1:5173") == "http://127.0.0.1:5173");
    CHECK(normal("http://[::1]:3000") == "http://[::1]:3000");
    CHECK(normal("http://[::1]") == "http://[::1]");
    CHECK(normal("tauri://localhost") == "tauri://localhost");
    CHECK(normal("chrome-extension://abcdefghijklmnop") == "chrome-extension://abcdefghijklmnop");
}

TEST_CASE("cors: a list, or * alone") {
    CorsPolicy p = parsed(" https://a.example.com ,http://localhost:5173");
    CHECK(p.enabled);
    CHECK_FALSE(p.any_origin);
    CHECK(p.credentials());
    REQUIRE(p.origins.size() == 2);
    CHECK(p.origins[1] == "http://localhost:5173");
    CorsPolicy star = parsed("*");
    CHECK(star.any_origin);
    CHECK_FALSE(star.credentials());
    CHECK(star.origins.empty());
    CHECK_FALSE(CorsPolicy{}.credentials());
}

TEST_CASE("cors: bad entries are refused with a reason") {
    CHECK(refused("").find("empty") != std::string::npos);
    CHECK(refused("https://a.test,,https://b.test").find("empty") != std::string::npos);
    CHECK(refused("*,https://a.test").find("alone") != std::string::npos);
    CHECK(refused("https://a.test,*").find("alone") != std::string::npos);
    CHECK(refused("null").find("null") != std::string::npos);
    CHECK(refused("a.example.com").find("scheme://host") != std::string::npos);
    CHECK(refused("://a.test").find("scheme://host") != std::string::npos);
    CHECK(refused("https://").find("no host") != std::string::npos);
    CHECK(refused("https://a.test/").find("no path") != std::string::npos);
    CHECK(refused("https://a.test/app").find("no path") != std::string::npos);
    CHECK(refused("https://a.test?x").find("no path") != std::string::npos);
    CHECK(refused("https://user@a.test").find("user") != std::string::npos);
    CHECK(refused("https://a.test:").find("port") != std::string::npos);
    CHECK(refused("https://a.test:0").find("port") != std::string::npos);
    CHECK(refused("https://a.test:65536").find("port") != std::string::npos);
    CHECK(refused("https://a.test:12x").find("port") != std::string::npos);
    CHECK(refused("https://*.a.test").find("wildcard") != std::string::npos);
    CHECK(refused("https://a b.test").find("bad character") != std::string::npos);
    CHECK(refused("1http://a.test").find("scheme") != std::string::npos);
    CHECK(refused("http://[::1").find("[") != std::string::npos);
    CHECK(refused("http://[zz]").find("IPv6") != std::string::npos);
    // The reason names the entry.
    CHECK(refused("https://ok.test,https://bad.test/").find("https://bad.test/") != std::string::npos);
}

TEST_CASE("cors: matching a request's Origin") {
    CorsPolicy p = parsed("https://app.example.com,http://localhost:5173");
    CHECK(p.allows("https://app.example.com"));
    CHECK(p.allows("HTTPS://APP.EXAMPLE.COM"));
    CHECK(p.allows("http://localhost:5173"));
    CHECK_FALSE(p.allows("http://app.example.com"));        // another scheme
    CHECK_FALSE(p.allows("https://app.example.com:8443"));  // another port
    CHECK_FALSE(p.allows("https://app.example.com.evil.test"));
    CHECK_FALSE(p.allows("https://evil.test"));
    CHECK_FALSE(p.allows("null"));
    CHECK_FALSE(p.allows(""));
    CorsPolicy star = parsed("*");
    CHECK(star.allows("https://anything.test"));
    CHECK(star.allows("null"));  // echoed, never with credentials
    CHECK_FALSE(star.allows(""));
    CHECK_FALSE(CorsPolicy{}.allows("https://app.example.com"));  // off
}

TEST_CASE("cors: the request-header allow-set") {
    for (const char* h : {"authorization", "Authorization", "content-type", "OpenAI-Organization", "openai-project",
                          "OpenAI-Beta", "api-key", "x-stainless-os", "X-Stainless-Retry-Count", "x-stainless-timeout",
                          "accept", "idempotency-key", "x-target-host"}) {
        INFO("header: ", h);
        CHECK(op::cors_header_allowed(h));
    }
    for (const char* h : {"cookie", "x-secret", "x-stainless-", "x-stainless", "x-api-key", "", "authorization2",
                          "openai-organization-x", "host"}) {
        INFO("header: ", h);
        CHECK_FALSE(op::cors_header_allowed(h));
    }
}
