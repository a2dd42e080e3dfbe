// Tests for request_plan.h: every branch of the routing and policy decision, the order
// of its checks, the rewritten target, the pool key and the reuse of the plan's storage.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "allocation_count.h"
#include "config.h"
#include "doctest/doctest.h"
#include "http_head.h"
#include "request_plan.h"
#include "router.h"
#include "target_spec.h"

using op::BodyKind;
using op::Config;
using op::RequestPlan;
using op::Router;
using op::Target;

namespace {

using test::target;
using test::egress;

// A configuration with -targets oa:api.openai.com,azure:x.openai.azure.com, no default
// target unless given, and the router the server would build from it.
struct Proxy {
    Config config;
    std::unique_ptr<Router> router;

    explicit Proxy(const char* default_target = nullptr) {
        config.routes = test::routes({{"oa", target("api.openai.com")}, {"azure", target("x.openai.azure.com")}});
        if (default_target) config.default_route = *test::default_route(target(default_target));
        config.max_body_bytes = 1000;
        rebuild();
    }
    void rebuild() {
        router = std::make_unique<Router>(config.routes, config.default_route ? &*config.default_route : nullptr);
    }

    // Plans the request `text` (which the caller keeps alive: the plan views it).
    bool plan(const std::string& text, RequestPlan& out) {
        op::RequestHead& head = parsed(text);
        return op::plan_request(head, config, *router, out);
    }
    op::RequestHead& parsed(const std::string& text) {
        op::ParseResult r = op::parse_request_head(text, op::HeadLimits{}, head_);
        REQUIRE(r.status == op::ParseStatus::Complete);
        return head_;
    }

private:
    op::RequestHead head_;
};

std::string get(const char* target, const char* host, const std::string& fields = "") {
    return std::string("GET ") + target + " HTTP/1.1\r\nHost: " + host + "\r\n" + fields + "\r\n";
}

std::string upstream_target(const RequestPlan& plan) {
    return (plan.upstream_target.slash ? "/" : "") + std::string(plan.upstream_target.rest);
}

void check_refused(const RequestPlan& plan, int status, const char* code, const std::string& message) {
    REQUIRE(plan.refusal.has_value());
    CHECK(plan.refusal->status == status);
    CHECK(std::string(plan.refusal->type) == "invalid_request_error");
    CHECK(std::string(plan.refusal->code) == code);
    CHECK(plan.refusal->message == message);
}

}  // namespace

// ---- where the request goes ------------------------------------------------------------

TEST_CASE("plan: the Host key chooses a configured target") {
    Proxy p;
    RequestPlan plan;
    const std::string req = get("/v1/models", "oa.example.com:9001");
    REQUIRE(p.plan(req, plan));
    CHECK_FALSE(plan.refusal.has_value());
    CHECK(plan.target == target("api.openai.com"));
    CHECK(plan.target.authority == "api.openai.com");
    CHECK_FALSE(plan.restricted);
    CHECK(plan.pool_key == "https://api.openai.com");
    CHECK(upstream_target(plan) == "/v1/models");
    CHECK(plan.body == BodyKind::None);
    CHECK_FALSE(plan.send_continue);

    const std::string dashed = get("/v1/models", "azure-eu.example.net");
    REQUIRE(p.plan(dashed, plan));
    CHECK(plan.target == target("x.openai.azure.com"));
    CHECK_FALSE(plan.restricted);
}

TEST_CASE("plan: the default target, and 404 without one") {
    Proxy with_default("http://127.0.0.1:8080");
    RequestPlan plan;
    const std::string req = get("/v1/models", "service-1.apigw.example.com");
    REQUIRE(with_default.plan(req, plan));
    CHECK(plan.target == target("http://127.0.0.1:8080"));
    CHECK_FALSE(plan.restricted);  // configured: trusted, internal address or not
    CHECK(plan.pool_key == "http://127.0.0.1:8080");

    Proxy without;
    CHECK_FALSE(without.plan(req, plan));
    check_refused(plan, 404, "unknown_route",
                  "no target for host \"service-1.apigw.example.com\" (key \"service-1\"); configure -targets or "
                  "-default-target, or send X-Target-Host");
}

TEST_CASE("plan: X-Target-Host chooses any origin, restricted unless -allow-private") {
    Proxy p;
    RequestPlan plan;
    const std::string req = get("/v1/x", "oa.example.com", "X-Target-Host: other.example.com:8443\r\n");
    REQUIRE(p.plan(req, plan));
    CHECK(plan.target == target("https://other.example.com:8443"));
    CHECK(plan.restricted);
    CHECK(plan.pool_key == "https://other.example.com:8443");

    p.config.allow_private = true;
    REQUIRE(p.plan(req, plan));
    CHECK_FALSE(plan.restricted);

    // Plain HTTP when written out.
    const std::string http = get("/v1/x", "oa.example.com", "x-target-host: http://10.0.0.5:8080\r\n");
    REQUIRE(p.plan(http, plan));
    CHECK(plan.pool_key == "http://10.0.0.5:8080");
}

TEST_CASE("plan: an empty X-Target-Host is none; two must agree") {
    Proxy p;
    RequestPlan plan;
    // Empty (as the Go original's Header.Get saw it): routed by Host.
    const std::string empty = get("/v1/x", "oa.example.com", "X-Target-Host: \r\n");
    REQUIRE(p.plan(empty, plan));
    CHECK(plan.target == target("api.openai.com"));
    CHECK_FALSE(plan.restricted);
    // The same value twice (an empty one aside) is that value.
    const std::string twice = get("/v1/x", "oa.example.com",
                                  "X-Target-Host: other.example.com\r\nX-Target-Host:\r\nx-target-host: other.example.com\r\n");
    REQUIRE(p.plan(twice, plan));
    CHECK(plan.target == target("other.example.com"));
    // Two different values: which one counts is anybody's guess, so neither does.
    const std::string differ =
        get("/v1/x", "oa.example.com", "X-Target-Host: other.example.com\r\nX-Target-Host: api.openai.com\r\n");
    CHECK_FALSE(p.plan(differ, plan));
    check_refused(plan, 400, "invalid_target_host", "X-Target-Host is given twice, with different values");
    // Also when one of them would be refused on its own: neither is taken.
    for (const char* fields : {"X-Target-Host: bad/path/\r\nX-Target-Host: b.example.com\r\n",
                               "X-Target-Host: b.example.com\r\nX-Target-Host: bad/path/\r\n"}) {
        const std::string req = get("/v1/x", "oa.example.com", fields);
        CHECK_FALSE(p.plan(req, plan));
        check_refused(plan, 400, "invalid_target_host", "X-Target-Host is given twice, with different values");
    }
}

TEST_CASE("plan: X-Target-Host naming a configured origin is trusted, -allow-hosts or not") {
    Proxy p;
    p.config.allow_hosts = {"nothing.example"};
    RequestPlan plan;
    const std::string req = get("/v1/x", "nomatch.example.com", "X-Target-Host: https://API.openai.com/\r\n");
    REQUIRE(p.plan(req, plan));
    CHECK(plan.target == target("api.openai.com"));
    CHECK_FALSE(plan.restricted);
}

TEST_CASE("plan: a malformed X-Target-Host is 400") {
    Proxy p;
    RequestPlan plan;
    const std::string req = get("/v1/x", "oa.example.com", "X-Target-Host: https://h.example.com/path\r\n");
    CHECK_FALSE(p.plan(req, plan));
    REQUIRE(plan.refusal.has_value());
    CHECK(plan.refusal->status == 400);
    CHECK(std::string(plan.refusal->code) == "invalid_target_host");
    CHECK(plan.refusal->message.rfind("invalid X-Target-Host: ", 0) == 0);
}

TEST_CASE("plan: -disable-target-header refuses the header with 403, a configured origin named in it too") {
    Proxy p;
    p.config.disable_target_header = true;
    RequestPlan plan;
    for (const char* value : {"other.example.com", "https://api.openai.com/"}) {
        INFO(value);
        const std::string req = get("/v1/x", "oa.example.com", std::string("X-Target-Host: ") + value + "\r\n");
        CHECK_FALSE(p.plan(req, plan));
        check_refused(plan, 403, "target_not_allowed", "X-Target-Host is disabled on this proxy");
    }
    // Without the header the same request takes its Host route.
    REQUIRE(p.plan(get("/v1/x", "oa.example.com"), plan));
}

TEST_CASE("plan: -allow-hosts restricts the client-chosen host") {
    Proxy p;
    p.config.allow_hosts = {"api.example.com", "*.openai.azure.com"};
    RequestPlan plan;
    const std::string listed = get("/v1/x", "oa.example.com", "X-Target-Host: a.b.openai.azure.com\r\n");
    REQUIRE(p.plan(listed, plan));
    CHECK(plan.target.host == "a.b.openai.azure.com");
    CHECK(plan.restricted);  // allowed by name; the address rule still applies
    const std::string exact = get("/v1/x", "oa.example.com", "X-Target-Host: http://API.example.com:81\r\n");
    REQUIRE(p.plan(exact, plan));

    const std::string other = get("/v1/x", "oa.example.com", "X-Target-Host: openai.azure.com.evil.example\r\n");
    CHECK_FALSE(p.plan(other, plan));
    check_refused(plan, 403, "target_not_allowed", "X-Target-Host names a host that is not in -allow-hosts");
}

// ---- the order of the checks -----------------------------------------------------------

TEST_CASE("plan: checks run in order 400, 404, 403, 413") {
    Proxy p;
    p.config.max_body_bytes = 10;
    p.config.disable_target_header = true;
    p.config.allow_hosts = {"api.example.com"};
    RequestPlan plan;
    const std::string big = "Content-Length: 11\r\n";
    // A malformed header before the disabled header and the size.
    const std::string bad = get("/", "oa.example.com", "X-Target-Host: a/b/\r\n" + big);
    CHECK_FALSE(p.plan(bad, plan));
    CHECK(plan.refusal->status == 400);
    // No route before the size.
    const std::string unrouted = get("/", "nowhere.example.com", big);
    CHECK_FALSE(p.plan(unrouted, plan));
    CHECK(plan.refusal->status == 404);
    // Disabled before -allow-hosts, and before the size.
    const std::string chosen = get("/", "oa.example.com", "X-Target-Host: other.example.com\r\n" + big);
    CHECK_FALSE(p.plan(chosen, plan));
    check_refused(plan, 403, "target_not_allowed", "X-Target-Host is disabled on this proxy");
    p.config.disable_target_header = false;
    CHECK_FALSE(p.plan(chosen, plan));
    check_refused(plan, 403, "target_not_allowed", "X-Target-Host names a host that is not in -allow-hosts");
}

TEST_CASE("plan: a Content-Length over -max-body-size is 413; at the limit it passes") {
    Proxy p;
    p.config.max_body_bytes = 10;
    RequestPlan plan;
    const std::string over = "POST /v1/x HTTP/1.1\r\nHost: oa.example.com\r\nContent-Length: 11\r\n\r\n";
    CHECK_FALSE(p.plan(over, plan));
    check_refused(plan, 413, "request_too_large", "request body of 11 bytes exceeds the limit of 10 (-max-body-size)");
    const std::string huge =
        "POST /v1/x HTTP/1.1\r\nHost: oa.example.com\r\nContent-Length: 18446744073709551615\r\n\r\n";
    CHECK_FALSE(p.plan(huge, plan));
    CHECK(plan.refusal->message ==
          "request body of 18446744073709551615 bytes exceeds the limit of 10 (-max-body-size)");

    const std::string at = "POST /v1/x HTTP/1.1\r\nHost: oa.example.com\r\nContent-Length: 10\r\n\r\n";
    REQUIRE(p.plan(at, plan));
    CHECK(plan.body == BodyKind::ContentLength);
    // A chunked body has no length yet: the relay counts it as it arrives.
    const std::string chunked = "POST /v1/x HTTP/1.1\r\nHost: oa.example.com\r\nTransfer-Encoding: chunked\r\n\r\n";
    REQUIRE(p.plan(chunked, plan));
    CHECK(plan.body == BodyKind::Chunked);
}

// ---- the upstream request target -------------------------------------------------------

TEST_CASE("plan: absolute-form, its authority wins over Host (RFC 9112 section 3.2.2)") {
    Proxy p;
    RequestPlan plan;
    struct Case {
        const char* target;
        const char* host;  // the origin chosen
        const char* upstream_target;
    } cases[] = {
        {"http://azure.example.com/v1/x?q=1", "x.openai.azure.com", "/v1/x?q=1"},
        {"HTTPS://AZURE.example.com:8443/v1/y", "x.openai.azure.com", "/v1/y"},
        {"https://oa.example.com", "api.openai.com", "/"},
        {"https://oa.example.com?x=1", "api.openai.com", "/?x=1"},
        {"http://oa.example.com/release/v1/models", "api.openai.com", "/v1/models"},
        {"http://oa.example.com/test?x", "api.openai.com", "/?x"},
    };
    for (const Case& c : cases) {
        INFO(c.target);
        const std::string req = get(c.target, "azure.example.com");
        REQUIRE(p.plan(req, plan));
        CHECK(plan.target.host == c.host);
        CHECK(upstream_target(plan) == c.upstream_target);
    }
    // X-Target-Host still wins over both.
    const std::string chosen = get("http://azure.example.com/v1/x", "oa.example.com", "X-Target-Host: c.example.com\r\n");
    REQUIRE(p.plan(chosen, plan));
    CHECK(plan.target.host == "c.example.com");
    CHECK(upstream_target(plan) == "/v1/x");
}

TEST_CASE("plan: one leading API-gateway stage segment is removed") {
    Proxy p;
    RequestPlan plan;
    struct Case {
        const char* target;
        bool slash;
        const char* rest;
    } cases[] = {
        {"/release/v1/models", false, "/v1/models"},
        {"/test/v1/chat/completions?stream=1", false, "/v1/chat/completions?stream=1"},
        {"/prepub/v1/x", false, "/v1/x"},
        {"/release", true, ""},
        {"/prepub?x=1", true, "?x=1"},
        {"/release/release/v1", false, "/release/v1"},  // one segment only
        {"/releases/v1", false, "/releases/v1"},
        {"/Release/v1", false, "/Release/v1"},
        {"/v1/test/x", false, "/v1/test/x"},
        {"/", false, "/"},
    };
    for (const Case& c : cases) {
        INFO(c.target);
        const std::string req = get(c.target, "oa.example.com");
        REQUIRE(p.plan(req, plan));
        CHECK(plan.upstream_target.slash == c.slash);
        CHECK(plan.upstream_target.rest == c.rest);
    }
}

TEST_CASE("plan: OPTIONS * keeps its target") {
    Proxy p;
    RequestPlan plan;
    const std::string req = "OPTIONS * HTTP/1.1\r\nHost: oa.example.com\r\n\r\n";
    REQUIRE(p.plan(req, plan));
    CHECK_FALSE(plan.upstream_target.slash);
    CHECK(plan.upstream_target.rest == "*");
}

TEST_CASE("plan: OPTIONS in absolute-form without a path goes on as * (RFC 9112 section 3.2.4)") {
    Proxy p;
    RequestPlan plan;
    struct Case {
        const char* request;
        const char* upstream_target;
    } cases[] = {
        {"OPTIONS http://oa.example.com HTTP/1.1\r\nHost: oa.example.com\r\n\r\n", "*"},
        {"OPTIONS https://oa.example.com:443 HTTP/1.1\r\nHost: oa.example.com\r\n\r\n", "*"},
        {"OPTIONS http://oa.example.com/ HTTP/1.1\r\nHost: oa.example.com\r\n\r\n", "/"},
        {"OPTIONS http://oa.example.com?x=1 HTTP/1.1\r\nHost: oa.example.com\r\n\r\n", "/?x=1"},
        {"GET http://oa.example.com HTTP/1.1\r\nHost: oa.example.com\r\n\r\n", "/"},
    };
    for (const Case& c : cases) {
        INFO(c.request);
        const std::string req = c.request;  // the plan points into it
        REQUIRE(p.plan(req, plan));
        CHECK(upstream_target(plan) == c.upstream_target);
    }
}

TEST_CASE("plan: the upstream target is a view into the request, not a copy") {
    Proxy p;
    RequestPlan plan;
    const std::string req = get("/release/v1/models?x=1", "oa.example.com");
    REQUIRE(p.plan(req, plan));
    const char* begin = req.data();
    CHECK(plan.upstream_target.rest.data() >= begin);
    CHECK(plan.upstream_target.rest.data() + plan.upstream_target.rest.size() <= begin + req.size());
}

// ---- body and 100 Continue -------------------------------------------------------------

TEST_CASE("plan: 100 Continue only for an HTTP/1.1 request with a body that expects it") {
    Proxy p;
    RequestPlan plan;
    const std::string h = "Host: oa.example.com\r\n";
    auto plan_of = [&](const std::string& req) {
        REQUIRE(p.plan(req, plan));
        return plan.send_continue;
    };
    CHECK(plan_of("POST /x HTTP/1.1\r\n" + h + "Expect: 100-continue\r\nContent-Length: 5\r\n\r\n"));
    CHECK(plan_of("POST /x HTTP/1.1\r\n" + h + "Expect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n"));
    CHECK_FALSE(plan_of("POST /x HTTP/1.1\r\n" + h + "Expect: 100-continue\r\nContent-Length: 0\r\n\r\n"));
    CHECK_FALSE(plan_of("GET /x HTTP/1.1\r\n" + h + "Expect: 100-continue\r\n\r\n"));
    CHECK_FALSE(plan_of("POST /x HTTP/1.1\r\n" + h + "Content-Length: 5\r\n\r\n"));
    CHECK_FALSE(plan_of("POST /x HTTP/1.0\r\n" + h + "Expect: 100-continue\r\nContent-Length: 5\r\n\r\n"));
    CHECK(plan_of("POST /x HTTP/1.2\r\n" + h + "Expect: 100-continue\r\nContent-Length: 5\r\n\r\n"));
}

// ---- the pool key, and reuse of the plan ------------------------------------------------

TEST_CASE("plan: the pool key names the upstream proxy when there is one") {
    Proxy p;
    RequestPlan plan;
    const std::string req = get("/v1/x", "oa.example.com");
    REQUIRE(p.plan(req, plan));
    CHECK(plan.pool_key == "https://api.openai.com");

    p.config.upstream_proxy = egress("http://127.0.0.1:3128");
    REQUIRE(p.plan(req, plan));
    CHECK(plan.pool_key == "https://api.openai.com via http://127.0.0.1:3128");
    const std::string port = get("/v1/x", "oa.example.com", "X-Target-Host: http://h.example.com:8080\r\n");
    REQUIRE(p.plan(port, plan));
    CHECK(plan.pool_key == "http://h.example.com:8080 via http://127.0.0.1:3128");

    // SOCKS egresses: the kind and the user tell pools apart (never the password).
    p.config.upstream_proxy = egress("socks5h://u:secret@127.0.0.1:1080");
    REQUIRE(p.plan(req, plan));
    CHECK(plan.pool_key == "https://api.openai.com via socks5h://u@127.0.0.1:1080");
    REQUIRE(plan.egress != nullptr);
    CHECK(plan.egress->kind == op::Egress::Kind::Socks5h);
    p.config.upstream_proxy = egress("socks5://127.0.0.1");
    REQUIRE(p.plan(req, plan));
    CHECK(plan.pool_key == "https://api.openai.com via socks5://127.0.0.1:1080");
    p.config.upstream_proxy.reset();
    REQUIRE(p.plan(req, plan));
    CHECK(plan.egress == nullptr);
}

TEST_CASE("plan: a reused plan keeps its pool key storage; a refusal leaves the plan alone") {
    Proxy p;
    p.config.upstream_proxy = egress("http://proxy.internal.example:3128");
    RequestPlan plan;
    const std::string azure = get("/v1/x", "azure.example.com");
    REQUIRE(p.plan(azure, plan));
    const std::string first_key = plan.pool_key;
    const char* storage = plan.pool_key.data();
    const std::size_t capacity = plan.pool_key.capacity();

    const std::string oa = get("/v1/y", "oa.example.com");  // a shorter key
    REQUIRE(p.plan(oa, plan));
    CHECK(plan.pool_key == "https://api.openai.com via http://proxy.internal.example:3128");
    CHECK(plan.pool_key.data() == storage);
    CHECK(plan.pool_key.capacity() == capacity);

    const std::string unrouted = get("/v1/z", "nowhere.example.com");
    CHECK_FALSE(p.plan(unrouted, plan));
    CHECK(plan.refusal.has_value());
    CHECK(plan.pool_key == "https://api.openai.com via http://proxy.internal.example:3128");

    REQUIRE(p.plan(azure, plan));  // the refusal is cleared by the next plan
    CHECK_FALSE(plan.refusal.has_value());
    CHECK(plan.pool_key == first_key);
    CHECK(plan.pool_key.data() == storage);
}

TEST_CASE("plan: planning into a reused plan allocates nothing when routing does not") {
    // Names short enough for the strings' inline storage: routing itself allocates
    // nothing, so any allocation would be the plan's (the pool key is the long string).
    Proxy p;
    p.config.upstream_proxy = egress("http://proxy.internal.example:3128");
    RequestPlan plan;
    const std::string first = get("/release/v1/x", "azure.example.com");
    const std::string second = get("/v1/y?z=1", "oa.example.com", "Content-Length: 3\r\n");
    REQUIRE(p.plan(first, plan));
    op::RequestHead& head = p.parsed(second);
    const std::size_t before = test::allocations();
    REQUIRE(op::plan_request(head, p.config, *p.router, plan));
    CHECK(test::allocations() == before);
    CHECK(plan.pool_key == "https://api.openai.com via http://proxy.internal.example:3128");
}

TEST_CASE("plan: an origin's own egress wins over -upstream-proxy; plan_origin moves to another origin") {
    Proxy p;
    p.config.upstream_proxy = egress("http://proxy.internal.example:3128");
    op::Route r;
    r.name = "fo";
    r.origins.push_back(op::Origin{target("https://one.example"), std::nullopt, {}});
    r.origins.push_back(op::Origin{target("https://two.example"), egress("socks5h://127.0.0.1:1080"), {}});
    op::Egress direct;  // Kind::Direct: "direct" in the file
    r.origins.push_back(op::Origin{target("https://three.example"), direct, {}});
    p.config.routes.push_back(r);
    p.rebuild();
    RequestPlan plan;
    const std::string text = get("/v1/x", "fo.example.com");
    REQUIRE(p.plan(text, plan));
    CHECK(plan.origin == 0);
    CHECK(plan.egress == &*p.config.upstream_proxy);
    CHECK(plan.pool_key == "https://one.example via http://proxy.internal.example:3128");
    op::plan_origin(plan, p.config, 1);
    CHECK(plan.origin == 1);
    CHECK(plan.target.host == "two.example");
    CHECK(plan.egress == &*plan.route->origins[1].egress);
    CHECK(plan.pool_key == "https://two.example via socks5h://127.0.0.1:1080");
    op::plan_origin(plan, p.config, 2);
    CHECK(plan.egress == nullptr);
    CHECK(plan.pool_key == "https://three.example");
}
