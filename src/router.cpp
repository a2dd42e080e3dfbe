#include "router.h"

#include <cctype>

#include "http_chars.h"

namespace op {

using http_chars::lower_copy;

namespace {
bool is_ipv4_literal(std::string_view h) {
    if (h.empty()) return false;
    for (char c : h)
        if (!((c >= '0' && c <= '9') || c == '.')) return false;
    return true;
}
}  // namespace

Router::Router(const std::vector<Route>& routes, const Route* default_route) : default_(default_route) {
    for (const Route& r : routes) routes_.emplace_back(lower_copy(r.name), &r);
}

std::string_view Router::host_label(std::string_view host) {
    if (!host.empty() && host.front() == '[') return {};  // IPv6 literal: not a name
    std::size_t colon = host.rfind(':');
    if (colon != std::string_view::npos) host = host.substr(0, colon);
    // An IPv4 literal, or an unbracketed IPv6 one ("::1" loses its last group to the
    // port cut above and still has a colon): not a name either.
    if (is_ipv4_literal(host) || host.find(':') != std::string_view::npos) return {};
    return host.substr(0, host.find('.'));
}

RouteResult Router::route(bool has_header, std::string_view x_target_host, std::string_view host) const {
    RouteResult r;
    if (has_header) {
        std::string error;
        if (!parse_target(x_target_host, r.target, error)) {
            r.outcome = RouteOutcome::BadHeader;
            r.error = "invalid X-Target-Host: " + error;
            return r;
        }
        r.outcome = RouteOutcome::HeaderChosen;
        auto names_origin_of = [&](const Route* route) {
            const std::vector<Origin>& origins = route->origins;
            for (unsigned i = 0; i < origins.size(); ++i) {
                if (origins[i].target == r.target) {
                    r.outcome = RouteOutcome::Configured;  // names a trusted, configured origin
                    r.route = route;
                    r.origin = i;
                    return true;
                }
            }
            return false;
        };
        for (const auto& kv : routes_)
            if (names_origin_of(kv.second)) return r;
        if (default_) names_origin_of(default_);  // -default-target's origins are as trusted
        return r;
    }
    std::string label = lower_copy(host_label(host));
    r.key = label;
    if (!label.empty()) {
        std::string before_dash = label.substr(0, label.find('-'));
        for (const std::string* key : {&label, &before_dash}) {
            for (const auto& kv : routes_) {
                if (kv.first == *key) {
                    r.outcome = RouteOutcome::Configured;
                    r.route = kv.second;
                    r.target = kv.second->origins.front().target;
                    r.key = *key;
                    return r;
                }
            }
        }
    }
    if (default_) {
        r.outcome = RouteOutcome::Default;
        r.route = default_;
        r.target = default_->origins.front().target;
        return r;
    }
    r.outcome = RouteOutcome::NoRoute;
    r.error = "no target for host \"" + std::string(host) + "\" (key \"" + label +
              "\"); configure -targets or -default-target, or send X-Target-Host";
    return r;
}

std::string_view strip_stage_prefix(std::string_view path) {
    for (std::string_view stage : {std::string_view("/release"), std::string_view("/test"), std::string_view("/prepub")}) {
        if (path.size() >= stage.size() && path.substr(0, stage.size()) == stage &&
            (path.size() == stage.size() || path[stage.size()] == '/' || path[stage.size()] == '?'))
            return path.substr(stage.size());
    }
    return path;
}

}  // namespace op
