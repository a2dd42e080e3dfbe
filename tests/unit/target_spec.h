// Test helper: the Target a valid specification parses to ("api.openai.com",
// "http://127.0.0.1:8080", ...); the test fails if it does not parse.
#pragma once

#include <deque>
#include <string>
#include <utility>
#include <vector>

#include "doctest/doctest.h"
#include "config.h"
#include "egress.h"
#include "target.h"

namespace test {

inline op::Target target(const char* spec) {
    op::Target t;
    std::string error;
    REQUIRE(op::parse_target(spec, t, error));
    return t;
}

// Routes of one origin each, from (name, target) pairs, kept for the whole test run: a
// Router holds pointers into the configuration's routes.
inline const std::vector<op::Route>& routes(std::vector<std::pair<std::string, op::Target>> pairs) {
    static std::deque<std::vector<op::Route>> kept;
    std::vector<op::Route> out;
    for (auto& [name, t] : pairs) {
        op::Route r;
        r.name = name;
        r.origins.push_back(op::Origin{std::move(t), std::nullopt, {}});
        out.push_back(std::move(r));
    }
    kept.push_back(std::move(out));
    return kept.back();
}

// The default route for `t`, kept likewise.
inline const op::Route* default_route(const op::Target& t) { return &routes({{"", t}}).front(); }

// The Egress a valid egress specification parses to ("socks5h://u:p@127.0.0.1:1080", ...).
inline op::Egress egress(const char* spec) {
    op::Egress e;
    std::string error;
    REQUIRE(op::parse_egress(spec, e, error));
    return e;
}

}  // namespace test
