// The routing and policy decision for one request; the contract is in request_plan.h.
#include "request_plan.h"

#include <utility>

#include "host_policy.h"

namespace op {
namespace {

// The parser admits three target forms: origin-form ("/..."), asterisk-form ("*", with
// OPTIONS) and absolute-form ("http://..." / "https://...").
bool is_absolute_form(std::string_view t) { return !t.empty() && t[0] != '/' && t != "*"; }

// "http://host:port/path?q" -> authority "host:port", path "/path?q" ("/" when the
// target has none; "?q" when it has a query only). An OPTIONS request whose target has
// neither path nor query asks about the server as a whole: "*" (RFC 9112 section 3.2.4).
void split_absolute(std::string_view t, bool options, std::string_view& authority, std::string_view& path) {
    std::size_t s = t.find("://");
    std::string_view rest = s == std::string_view::npos ? t : t.substr(s + 3);
    std::size_t end = rest.find_first_of("/?");
    authority = rest.substr(0, end);
    if (end != std::string_view::npos) path = rest.substr(end);
    else path = options ? std::string_view("*") : std::string_view("/");
}

bool refuse(RequestPlan& plan, int status, const char* code, std::string message) {
    plan.refusal = ProxyError{status, "invalid_request_error", code, std::move(message)};
    return false;
}

// The egress (an origin's own, else -upstream-proxy; "direct": none) and the pool key.
void build_pool_key(RequestPlan& plan, const Config& config) {
    plan.pool_key.clear();  // keeps its capacity
    plan.target.append_origin(plan.pool_key);
    const std::optional<Egress>* own =
        plan.route && plan.origin < plan.route->origins.size() ? &plan.route->origins[plan.origin].egress : nullptr;
    if (own && own->has_value()) plan.egress = (*own)->kind == Egress::Kind::Direct ? nullptr : &**own;
    else plan.egress = config.upstream_proxy ? &*config.upstream_proxy : nullptr;
    if (plan.egress) plan.egress->append_key(plan.pool_key);
}

}  // namespace

void plan_origin(RequestPlan& plan, const Config& config, unsigned origin) {
    plan.origin = origin;
    plan.target = plan.route->origins[origin].target;
    build_pool_key(plan, config);
}

bool plan_request(const RequestHead& head, const Config& config, const Router& router, RequestPlan& plan) {
    // An empty X-Target-Host is no header (the Go original read it with Header.Get, for
    // which empty and absent are one). Given twice, the values must agree: which one a
    // proxy in front of this one took is unknowable, so two different ones are refused.
    std::string_view x_target;
    bool has_x_target = false;
    for (std::size_t i = 0; i < head.field_count; ++i) {
        if (head.fields[i].kind != FieldKind::XTargetHost || head.fields[i].value.empty()) continue;
        if (has_x_target && head.fields[i].value != x_target)
            return refuse(plan, 400, "invalid_target_host", "X-Target-Host is given twice, with different values");
        x_target = head.fields[i].value;
        has_x_target = true;
    }
    std::string_view host = head.host;
    std::string_view path = head.target;
    if (is_absolute_form(head.target)) split_absolute(head.target, head.method == "OPTIONS", host, path);

    RouteResult route = router.route(has_x_target, x_target, host);
    if (route.outcome == RouteOutcome::BadHeader) return refuse(plan, 400, "invalid_target_host", std::move(route.error));
    // Off means off: a header naming a configured origin would also move the request away
    // from the route its Host chose (and to that origin's keys).
    if (has_x_target && config.disable_target_header)
        return refuse(plan, 403, "target_not_allowed", "X-Target-Host is disabled on this proxy");
    if (route.outcome == RouteOutcome::NoRoute) return refuse(plan, 404, "unknown_route", std::move(route.error));
    bool restricted = false;
    if (route.outcome == RouteOutcome::HeaderChosen) {
        if (!config.allow_hosts.empty() && !host_allowed(config.allow_hosts, route.target.host))
            return refuse(plan, 403, "target_not_allowed", "X-Target-Host names a host that is not in -allow-hosts");
        restricted = !config.allow_private;
    }
    if (head.has_content_length && head.content_length > config.max_body_bytes) {
        return refuse(plan, 413, "request_too_large",
                      "request body of " + std::to_string(head.content_length) + " bytes exceeds the limit of " +
                          std::to_string(config.max_body_bytes) + " (-max-body-size)");
    }

    plan.refusal.reset();
    plan.target = std::move(route.target);
    plan.route = route.route;
    plan.origin = route.origin;
    plan.restricted = restricted;
    build_pool_key(plan, config);
    if (path == "*") {  // asterisk-form, or OPTIONS in absolute-form without a path
        plan.upstream_target = OutgoingTarget{false, path};
    } else {
        std::string_view rest = strip_stage_prefix(path);
        plan.upstream_target = OutgoingTarget{rest.empty() || rest[0] != '/', rest};
    }
    plan.body = head.body_kind();
    plan.send_continue = head.expect_continue && plan.body != BodyKind::None && head.version_minor >= 1;
    return true;
}

}  // namespace op
