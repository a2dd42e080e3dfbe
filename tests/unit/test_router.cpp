#include "doctest/doctest.h"
#include "router.h"
#include "target_spec.h"

#include <string>
#include <utility>
#include <vector>

using op::RouteOutcome;
using op::RouteResult;
using op::Router;
using op::strip_stage_prefix;
using op::Target;

namespace {
using test::target;

const std::vector<op::Route>& two_targets() {
    return test::routes({{"oa", target("api.openai.com")}, {"azure", target("x.openai.azure.com")}});
}

RouteResult by_host(const Router& r, const char* host) { return r.route(false, {}, host); }
}  // namespace

TEST_CASE("router: the first label of Host is the key") {
    Router r(two_targets(), nullptr);
    RouteResult res = by_host(r, "oa.mydomain.com");
    CHECK(res.outcome == RouteOutcome::Configured);
    CHECK(res.target.host == "api.openai.com");
    CHECK(res.target.authority == "api.openai.com");
    CHECK(res.target.tls);
    CHECK(res.key == "oa");
    CHECK(res.error.empty());

    RouteResult az = by_host(r, "azure.example.com");
    CHECK(az.outcome == RouteOutcome::Configured);
    CHECK(az.target.host == "x.openai.azure.com");
}

TEST_CASE("router: the part of the label before '-' is the key too; the port is ignored") {
    Router r(two_targets(), nullptr);
    RouteResult res = by_host(r, "oa-foo.mydomain.net:9001");
    CHECK(res.outcome == RouteOutcome::Configured);
    CHECK(res.target.host == "api.openai.com");
    CHECK(res.key == "oa");

    RouteResult bare = by_host(r, "oa:9001");
    CHECK(bare.outcome == RouteOutcome::Configured);
    CHECK(bare.target.host == "api.openai.com");
}

TEST_CASE("router: a whole label that is a key wins over its part before '-'") {
    Router r(test::routes({{"oa", target("api.openai.com")}, {"oa-eu", target("eu.example.com")}}), nullptr);
    RouteResult res = by_host(r, "oa-eu.mydomain.com");
    CHECK(res.outcome == RouteOutcome::Configured);
    CHECK(res.target.host == "eu.example.com");
    CHECK(res.key == "oa-eu");
}

TEST_CASE("router: keys and Host compare case-insensitively") {
    Router r(two_targets(), nullptr);
    RouteResult res = by_host(r, "AZURE.example.com");
    CHECK(res.outcome == RouteOutcome::Configured);
    CHECK(res.target.host == "x.openai.azure.com");

    Router upper(test::routes({{"OA", target("api.openai.com")}}), nullptr);
    CHECK(by_host(upper, "oa.example.com").outcome == RouteOutcome::Configured);
}

TEST_CASE("router: no key and no default is NoRoute, naming the key") {
    Router r(two_targets(), nullptr);
    RouteResult res = by_host(r, "nokey.example.com");
    CHECK(res.outcome == RouteOutcome::NoRoute);
    CHECK(res.error.find("nokey") != std::string::npos);
    CHECK(res.key == "nokey");

    CHECK(by_host(r, "").outcome == RouteOutcome::NoRoute);
    CHECK(by_host(r, "o.example.com").outcome == RouteOutcome::NoRoute);   // not a prefix match
    CHECK(by_host(r, "oax.example.com").outcome == RouteOutcome::NoRoute);
    CHECK(by_host(r, "x-oa.example.com").outcome == RouteOutcome::NoRoute);  // the part before '-' only
    CHECK(by_host(r, "example.oa.com").outcome == RouteOutcome::NoRoute);    // the first label only
}

TEST_CASE("router: IP literals in Host are not names") {
    // "127" or "::1" must not be taken as a key, even when such a key exists.
    Router r(test::routes({{"127", target("a.example.com")}, {"oa", target("api.openai.com")}}), nullptr);
    CHECK(by_host(r, "127.0.0.1:9001").outcome == RouteOutcome::NoRoute);
    CHECK(by_host(r, "127.0.0.1").outcome == RouteOutcome::NoRoute);
    CHECK(by_host(r, "[::1]:9001").outcome == RouteOutcome::NoRoute);
    CHECK(by_host(r, "[::1]").outcome == RouteOutcome::NoRoute);
    CHECK(Router::host_label("127.0.0.1:9001").empty());
    CHECK(Router::host_label("[::1]:9001").empty());
    CHECK(Router::host_label("oa.example.com:9001") == "oa");
    CHECK(Router::host_label("oa-foo.example.com") == "oa-foo");
    CHECK(Router::host_label("localhost") == "localhost");
}

TEST_CASE("router: the default target serves whatever matches no key") {
    Target def = target("api.openai.com");
    Router r(test::routes({{"azure", target("x.openai.azure.com")}}), test::default_route(def));
    RouteResult res = by_host(r, "nokey.example.com");
    CHECK(res.outcome == RouteOutcome::Default);
    CHECK(res.target == def);
    CHECK(res.error.empty());
    CHECK(by_host(r, "127.0.0.1:9001").outcome == RouteOutcome::Default);
    CHECK(by_host(r, "service-abc.gz.apigw.tencentcs.com").outcome == RouteOutcome::Default);
    // A key still wins over the default.
    RouteResult az = by_host(r, "azure.example.com");
    CHECK(az.outcome == RouteOutcome::Configured);
    CHECK(az.target.host == "x.openai.azure.com");

    Router only_default(test::routes({}), test::default_route(def));
    CHECK(by_host(only_default, "oa.example.com").outcome == RouteOutcome::Default);
}

TEST_CASE("router: X-Target-Host naming a configured origin is Configured") {
    Router r(two_targets(), nullptr);
    RouteResult res = r.route(true, "api.openai.com", "nokey.example.com");
    CHECK(res.outcome == RouteOutcome::Configured);
    CHECK(res.target.host == "api.openai.com");
    CHECK(r.route(true, "https://API.openai.com:443/", "x").outcome == RouteOutcome::Configured);
    // Same host, other scheme or port: another origin.
    CHECK(r.route(true, "http://api.openai.com", "x").outcome == RouteOutcome::HeaderChosen);
    CHECK(r.route(true, "api.openai.com:8443", "x").outcome == RouteOutcome::HeaderChosen);
}

TEST_CASE("router: X-Target-Host naming the -default-target origin is Configured, with its route") {
    // Trusted as -targets' origins are (README "No open relay"), whatever the pool holds.
    const op::Route* fallback = test::default_route(target("fallback.example"));
    Router r(two_targets(), fallback);
    RouteResult res = r.route(true, "fallback.example", "x");
    CHECK(res.outcome == RouteOutcome::Configured);
    CHECK(res.route == fallback);
    CHECK(res.origin == 0);
    CHECK(r.route(true, "https://fallback.example:8443", "x").outcome == RouteOutcome::HeaderChosen);
}

TEST_CASE("router: X-Target-Host naming another origin is HeaderChosen") {
    Router r(two_targets(), nullptr);
    RouteResult res = r.route(true, "https://other.example:8443", "oa.example.com");
    CHECK(res.outcome == RouteOutcome::HeaderChosen);
    CHECK(res.target.tls);
    CHECK(res.target.host == "other.example");
    CHECK(res.target.port == 8443);
    CHECK(res.target.authority == "other.example:8443");

    RouteResult plain = r.route(true, "http://127.0.0.1:8080", "");
    CHECK(plain.outcome == RouteOutcome::HeaderChosen);
    CHECK_FALSE(plain.target.tls);
    CHECK(plain.target.host == "127.0.0.1");
    CHECK(plain.target.port == 8080);

    RouteResult bare = r.route(true, "other.example", "");
    CHECK(bare.outcome == RouteOutcome::HeaderChosen);
    CHECK(bare.target.tls);
    CHECK(bare.target.port == 443);
}

TEST_CASE("router: a malformed X-Target-Host is BadHeader, even with a default") {
    Target def = target("api.openai.com");
    Router r(two_targets(), test::default_route(def));
    for (const char* bad : {"a b", "", "ftp://x", "https://h/v1", "h:0", "u@h"}) {
        INFO("header: \"", bad, "\"");
        RouteResult res = r.route(true, bad, "oa.example.com");
        CHECK(res.outcome == RouteOutcome::BadHeader);
        CHECK_FALSE(res.error.empty());
        CHECK(res.error.find("X-Target-Host") != std::string::npos);
    }
}

TEST_CASE("router: X-Target-Host wins over Host") {
    Router r(two_targets(), nullptr);
    RouteResult res = r.route(true, "x.openai.azure.com", "oa.mydomain.com");
    CHECK(res.outcome == RouteOutcome::Configured);
    CHECK(res.target.host == "x.openai.azure.com");

    RouteResult other = r.route(true, "other.example", "oa.mydomain.com");
    CHECK(other.outcome == RouteOutcome::HeaderChosen);
    CHECK(other.target.host == "other.example");
}

TEST_CASE("router: strip_stage_prefix removes one whole leading stage segment") {
    CHECK(strip_stage_prefix("/release/v1/x?q") == "/v1/x?q");
    CHECK(strip_stage_prefix("/release") == "");
    CHECK(strip_stage_prefix("/release?q") == "?q");
    CHECK(strip_stage_prefix("/test?x") == "?x");
    CHECK(strip_stage_prefix("/test/v1/chat/completions") == "/v1/chat/completions");
    CHECK(strip_stage_prefix("/prepub/") == "/");
    CHECK(strip_stage_prefix("/prepub/v1/models") == "/v1/models");
    // Only one segment.
    CHECK(strip_stage_prefix("/release/test/x") == "/test/x");
}

TEST_CASE("router: strip_stage_prefix leaves everything else unchanged") {
    for (const char* p : {"/releases/x", "/v1/test", "/Release/x", "/v1/tests/x", "/v1/release/x", "/testing",
                          "/prepublish", "/", "", "/v1/chat/completions?stream=true", "release/x"}) {
        INFO("path: \"", p, "\"");
        CHECK(strip_stage_prefix(p) == p);
    }
}

TEST_CASE("router: an unbracketed IPv6 Host is not a name either") {
    CHECK(Router::host_label("::1").empty());
    CHECK(Router::host_label("fe80::1:9001").empty());
    Router r(test::routes({{"fe80", target("a.example.com")}}), nullptr);
    CHECK(by_host(r, "fe80::1").outcome == RouteOutcome::NoRoute);
}

TEST_CASE("router: X-Target-Host naming a later origin of a route gives that route and origin") {
    std::vector<op::Route> rs = test::routes({{"oa", target("api.openai.com")}, {"az", target("x.openai.azure.com")}});
    rs[0].origins.push_back(op::Origin{target("backup.example.com:8443"), std::nullopt, {}});
    Router r(rs, nullptr);
    RouteResult by_header = r.route(true, "backup.example.com:8443", "whatever");
    CHECK(by_header.outcome == RouteOutcome::Configured);
    CHECK(by_header.route == &rs[0]);
    CHECK(by_header.origin == 1);
    RouteResult by_key = by_host(r, "oa.example.com");
    CHECK(by_key.route == &rs[0]);
    CHECK(by_key.origin == 0);
    CHECK(by_key.target.host == "api.openai.com");
    RouteResult other = r.route(true, "backup.example.com", "whatever");  // port 443: another origin
    CHECK(other.outcome == RouteOutcome::HeaderChosen);
    CHECK(other.route == nullptr);
}
