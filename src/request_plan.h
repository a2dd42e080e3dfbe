// What the proxy does with one parsed request: the routing and policy decision of
// README "Routing" and "No open relay", as a pure function of the request head and the
// configuration. No I/O, no logging, no clock: everything it decides is in the plan.
//
// Either the request is refused (the error to answer, nothing forwarded) or it is
// forwarded, and the plan says where (origin, pool key, whether the client chose it)
// and what the upstream request line carries. The checks run in this order, the first
// that fails deciding the answer:
//   400 invalid_target_host  X-Target-Host present but not a valid target
//   404 unknown_route        no X-Target-Host, no Host key configured, no default
//   403 target_not_allowed   X-Target-Host naming an unconfigured origin while
//                            -disable-target-header is set, or a host not in -allow-hosts
//   413 request_too_large    Content-Length above -max-body-size (a chunked body is
//                            counted as it arrives, by the relay)
// The origin comes from X-Target-Host, else from the authority of an absolute-form
// target (RFC 9112 section 3.2.2: it wins over Host), else from Host.
#pragma once

#include <optional>
#include <string>

#include "config.h"
#include "error_response.h"
#include "http_head.h"
#include "http_writer.h"
#include "router.h"
#include "target.h"

namespace op {

struct RequestPlan {
    // Set when the request is refused: answer this, forward nothing. The fields below
    // are then left as they were (the previous request's plan) and mean nothing.
    std::optional<ProxyError> refusal;

    Target target;            // the upstream origin
    // The configured route it belongs to (its other origins, keys, failover; the
    // configuration's, valid while it is) and which of its origins `target` is; null
    // when the client chose an unconfigured origin with X-Target-Host.
    const Route* route = nullptr;
    unsigned origin = 0;
    bool restricted = false;  // chosen by the client (X-Target-Host): internal addresses
                              // are refused at connect time unless -allow-private
    // How the origin is reached: nullptr or Direct connects directly. Points into the
    // configuration (valid while it is); a connection copies what it needs.
    const Egress* egress = nullptr;
    // The idle-pool key: the origin ("https://host:port"), plus what names the egress
    // (Egress::append_key: " via socks5h://user@host:port") when there is one. Rebuilt in place, so a plan reused from one
    // request to the next keeps its storage.
    std::string pool_key;
    // The upstream request target, origin-form: a view into the request head's target
    // (valid while the head's bytes are). The path of an absolute-form target, without
    // one leading API-gateway stage segment ("/release", "/test", "/prepub"), with a "/"
    // in front when what is left does not start with one; "*" (OPTIONS) as it is.
    OutgoingTarget upstream_target;
    BodyKind body = BodyKind::None;  // how the request body is delimited
    bool send_continue = false;      // answer "100 Continue" now (Expect, a body, HTTP/1.1)
};

// Plans `head` into `plan`, reusing its storage (pool_key's capacity; target is
// move-assigned from the route). Returns true to forward, false when plan.refusal
// holds the error to answer. A forwarded request allocates no more than routing itself
// does (Router::route); a refusal also allocates its message.
bool plan_request(const RequestHead& head, const Config& config, const Router& router, RequestPlan& plan);

// Points a forwarded plan at origin `origin` of its route (failover): target, origin
// and pool key. plan.route must be set and `origin` one of its origins.
void plan_origin(RequestPlan& plan, const Config& config, unsigned origin);

}  // namespace op
