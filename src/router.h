// Chooses the upstream for a request (see README "Routing").
//
// Priority: the X-Target-Host field, then the Host key, then the default target.
// Host key: the first DNS label of Host (port ignored), e.g. "oa" for
// "oa.example.com:9001"; if that label is not configured, the part of it before its
// first '-' ("oa" for "oa-foo.example.net").
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config.h"
#include "target.h"

namespace op {

enum class RouteOutcome {
    Configured,      // a -targets entry (by Host key, or the header naming one of them)
    HeaderChosen,    // X-Target-Host naming some other origin
    Default,         // the default target
    BadHeader,       // X-Target-Host present but malformed (400)
    NoRoute,         // nothing matched and no default (404)
};

struct RouteResult {
    RouteOutcome outcome = RouteOutcome::NoRoute;
    Target target;       // valid for Configured / HeaderChosen / Default
    // Configured / Default: the route (its origins, keys, failover) and the origin the
    // target is (0 unless X-Target-Host named a later one). Null for HeaderChosen.
    const Route* route = nullptr;
    unsigned origin = 0;
    std::string error;   // message for BadHeader / NoRoute
    std::string key;     // the Host key looked up (for messages)
};

class Router {
public:
    // `routes` and `default_route` must outlive the router (they are the configuration's).
    Router(const std::vector<Route>& routes, const Route* default_route);

    // x_target_host: value of X-Target-Host, or nullptr-equivalent when `has_header` is false.
    RouteResult route(bool has_header, std::string_view x_target_host, std::string_view host) const;

    // The Host key as described above, e.g. "oa" for "oa.example.com:9001" (first label).
    static std::string_view host_label(std::string_view host);

private:
    std::vector<std::pair<std::string, const Route*>> routes_;  // key -> route, keys lower-case
    const Route* default_ = nullptr;
};

// Removes one leading API-gateway stage segment ("/release", "/test", "/prepub") from
// an origin-form target and returns the rest, a view into `path`:
// "/release/v1/x?q" -> "/v1/x?q", "/release" -> "", "/release?q" -> "?q";
// "/releases/x", "/v1/test" and "/Release/x" are returned unchanged. When the result
// does not start with '/', the caller writes "/" before it.
std::string_view strip_stage_prefix(std::string_view path);

}  // namespace op
