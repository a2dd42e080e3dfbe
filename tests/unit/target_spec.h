// Test helper: the Target a valid specification parses to ("api.openai.com",
// "http://127.0.0.1:8080", ...); the test fails if it does not parse.
#pragma once

#include <string>

#include "doctest/doctest.h"
#include "target.h"

namespace test {

inline op::Target target(const char* spec) {
    op::Target t;
    std::string error;
    REQUIRE(op::parse_target(spec, t, error));
    return t;
}

}  // namespace test
