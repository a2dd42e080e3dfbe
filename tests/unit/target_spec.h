// Test helper: the Target a valid specification parses to ("api.openai.com",
// "http://127.0.0.1:8080", ...); the test fails if it does not parse.
#pragma once

#include <string>

#include "doctest/doctest.h"
#include "egress.h"
#include "target.h"

namespace test {

inline op::Target target(const char* spec) {
    op::Target t;
    std::string error;
    REQUIRE(op::parse_target(spec, t, error));
    return t;
}

// The Egress a valid egress specification parses to ("socks5h://u:p@127.0.0.1:1080", ...).
inline op::Egress egress(const char* spec) {
    op::Egress e;
    std::string error;
    REQUIRE(op::parse_egress(spec, e, error));
    return e;
}

}  // namespace test
