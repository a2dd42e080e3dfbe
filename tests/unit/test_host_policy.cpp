#include "doctest/doctest.h"
#include "host_policy.h"

using op::host_allowed;

TEST_CASE("host policy: exact names match case-insensitively, nothing else") {
    std::vector<std::string> p{"api.openai.com"};
    CHECK(host_allowed(p, "api.openai.com"));
    CHECK(host_allowed(p, "API.OpenAI.com"));
    CHECK(host_allowed(p, "api.openai.com."));
    CHECK_FALSE(host_allowed(p, "openai.com"));
    CHECK_FALSE(host_allowed(p, "x.api.openai.com"));
    CHECK_FALSE(host_allowed(p, "api.openai.com.evil.net"));
}

TEST_CASE("host policy: *.suffix matches names below the suffix only") {
    std::vector<std::string> p{"*.openai.azure.com"};
    CHECK(host_allowed(p, "mine.openai.azure.com"));
    CHECK(host_allowed(p, "a.b.openai.azure.com"));
    CHECK_FALSE(host_allowed(p, "openai.azure.com"));
    CHECK_FALSE(host_allowed(p, "evilopenai.azure.com"));
    CHECK_FALSE(host_allowed(p, "mine.openai.azure.com.evil.net"));
}

TEST_CASE("host policy: an empty list allows nothing") {
    CHECK_FALSE(host_allowed({}, "api.openai.com"));
}
