// Tests for stream_flag_scan.h: "stream": true found in a JSON body fed whole, split at
// every offset and one byte at a time; text that only mentions it is not.
#include <string>

#include "doctest/doctest.h"
#include "stream_flag_scan.h"

namespace {

// The verdict for `body` fed whole, split at every offset, and byte by byte; all must agree.
bool scan(const std::string& body) {
    op::StreamFlagScan whole;
    whole.feed(body.data(), body.size());
    for (std::size_t cut = 0; cut <= body.size(); ++cut) {
        op::StreamFlagScan s;
        s.feed(body.data(), cut);
        s.feed(body.data() + cut, body.size() - cut);
        INFO("body: ", body, " split at ", cut);
        CHECK(s.found() == whole.found());
    }
    op::StreamFlagScan bytes;
    for (char c : body) bytes.feed(&c, 1);
    CHECK(bytes.found() == whole.found());
    return whole.found();
}

}  // namespace

TEST_CASE("stream flag: found") {
    CHECK(scan(R"({"model":"gpt-4o","stream":true,"messages":[]})"));
    CHECK(scan(R"({"stream" : true})"));
    CHECK(scan("{\"stream\"\n:\r\n\ttrue}"));
    CHECK(scan(R"({"messages":[],"stream":true})"));
    CHECK(scan(R"({"""stream":true})"));             // a quote before the key
    CHECK(scan(R"({"x":"stream","stream":true})"));  // the word as a value first
    CHECK(scan(R"({"a":{"stream":true}})"));         // any depth: the safe side
}

TEST_CASE("stream flag: not found") {
    CHECK_FALSE(scan(R"({"model":"gpt-4o","messages":[]})"));
    CHECK_FALSE(scan(R"({"stream":false})"));
    CHECK_FALSE(scan(R"({"stream":null})"));
    CHECK_FALSE(scan(R"({"stream":"true"})"));
    CHECK_FALSE(scan(R"({"streams":true})"));
    CHECK_FALSE(scan(R"({"xstream":1,"stream_options":{"include_usage":true}})"));
    CHECK_FALSE(scan(R"({"content":"set \"stream\": true in the body"})"));  // escaped quotes
    CHECK_FALSE(scan(R"({"stream":tru})"));
    CHECK_FALSE(scan(""));
}

TEST_CASE("stream flag: reset") {
    op::StreamFlagScan s;
    std::string a = R"({"stream":true})";
    s.feed(a.data(), a.size());
    CHECK(s.found());
    s.reset();
    CHECK_FALSE(s.found());
    std::string b = R"({"stream":)";
    s.feed(b.data(), b.size());
    s.reset();
    std::string c = "true}";
    s.feed(c.data(), c.size());
    CHECK_FALSE(s.found());  // no state carried over
}
