#include "host_policy.h"

#include "http_head.h"

namespace op {

bool host_allowed(const std::vector<std::string>& patterns, std::string_view host) {
    while (!host.empty() && host.back() == '.') host.remove_suffix(1);  // "name." is "name"
    for (const std::string& p : patterns) {
        std::string_view pat = p;
        if (pat.size() > 2 && pat.substr(0, 2) == "*.") {
            std::string_view suffix = pat.substr(1);  // ".example.com"
            if (host.size() > suffix.size() && iequals(host.substr(host.size() - suffix.size()), suffix)) return true;
        } else if (iequals(pat, host)) {
            return true;
        }
    }
    return false;
}

}  // namespace op
