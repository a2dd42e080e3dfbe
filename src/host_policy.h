// Which upstream hosts a client may choose with X-Target-Host (-allow-hosts).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace op {

// True if `host` matches one of `patterns`: an exact name (case-insensitive), or
// "*.suffix", which matches any name below suffix ("*.example.com" matches
// "api.example.com" and "a.b.example.com", not "example.com" nor "badexample.com").
bool host_allowed(const std::vector<std::string>& patterns, std::string_view host);

}  // namespace op
