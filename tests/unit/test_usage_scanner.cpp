// Tests for usage_scanner.h: each sample body (request JSON, response JSON, SSE streams
// of Chat Completions and the Responses API) is fed whole, split at every offset into
// two pieces, split at every pair of offsets into three, and one byte at a time (each
// piece in an exact-size heap copy, so ASan sees any read past its end); every way
// must give the same answer.
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "usage_scanner.h"
#include "doctest/doctest.h"

using op::UsageScanner;

namespace {

struct Found {
    bool has_model = false;
    std::string model;
    bool truncated = false;
    long long prompt = -1;
    long long completion = -1;
    bool operator==(const Found& o) const {
        return has_model == o.has_model && model == o.model && truncated == o.truncated && prompt == o.prompt &&
               completion == o.completion;
    }
};

doctest::String toString(const Found& f) {
    std::string s = "{model " + (f.has_model ? "\"" + f.model + "\"" : std::string("none")) +
                    (f.truncated ? " (cut)" : "") + ", prompt " + std::to_string(f.prompt) + ", completion " +
                    std::to_string(f.completion) + "}";
    return doctest::String(s.c_str());
}

Found scan(UsageScanner::Mode mode, bool sse, const std::vector<std::string>& pieces) {
    UsageScanner s;
    s.reset(mode, sse);
    for (const std::string& p : pieces) {
        std::unique_ptr<char[]> copy(new char[p.size() ? p.size() : 1]);
        std::memcpy(copy.get(), p.data(), p.size());
        s.feed(copy.get(), p.size());
    }
    Found f;
    f.has_model = s.has_model();
    f.model = std::string(s.model());
    f.truncated = s.model_truncated();
    f.prompt = s.prompt_tokens();
    f.completion = s.completion_tokens();
    return f;
}

// Checks `body` whole, at every split, every pair of splits (bodies up to 300 bytes),
// and byte by byte.
void check_every_split(UsageScanner::Mode mode, bool sse, const std::string& body, const Found& want) {
    CHECK(scan(mode, sse, {body}) == want);
    for (std::size_t i = 0; i <= body.size(); ++i) {
        INFO("split at " << i);
        CHECK(scan(mode, sse, {body.substr(0, i), body.substr(i)}) == want);
    }
    if (body.size() <= 300) {
        for (std::size_t i = 0; i <= body.size(); ++i)
            for (std::size_t j = i; j <= body.size(); ++j) {
                Found got = scan(mode, sse, {body.substr(0, i), body.substr(i, j - i), body.substr(j)});
                if (!(got == want)) {
                    INFO("splits at " << i << " and " << j);
                    CHECK(got == want);
                    return;
                }
            }
    }
    std::vector<std::string> bytes;
    for (char c : body) bytes.emplace_back(1, c);
    CHECK(scan(mode, sse, bytes) == want);
}

Found model(const std::string& m, bool truncated = false) {
    Found f;
    f.has_model = true;
    f.model = m;
    f.truncated = truncated;
    return f;
}

Found tokens(long long p, long long c) {
    Found f;
    f.prompt = p;
    f.completion = c;
    return f;
}

}  // namespace

TEST_CASE("request: the top-level model, wherever it comes") {
    check_every_split(UsageScanner::Mode::Request, false, R"({"model":"gpt-4o-mini","messages":[]})",
                      model("gpt-4o-mini"));
    // After a long messages array holding "model" keys and look-alike strings.
    check_every_split(UsageScanner::Mode::Request, false,
                      "{\n  \"messages\": [{\"role\": \"user\", \"content\": \"say \\\"model\\\": \\\"x\\\"\","
                      " \"model\": \"nested\"}],\n  \"metadata\": {\"model\": \"deeper\"},\n  \"model\" : "
                      "\"o3\" ,\n  \"stream\": true\n}",
                      model("o3"));
}

TEST_CASE("request: escapes in the model are decoded") {
    check_every_split(UsageScanner::Mode::Request, false, R"({"model":"a\"b\\c\/d\u00e9\u0001\n"})",
                      model("a\"b\\c/d\xC3\xA9\x01\n"));
    check_every_split(UsageScanner::Mode::Request, false, R"({"model":"\u20ac\ud83d"})",
                      model("\xE2\x82\xAC\xEF\xBF\xBD"));
}

TEST_CASE("request: a surrogate pair is one code point beyond U+FFFF; an unpaired half is U+FFFD") {
    // U+1F680 (rocket), as JSON writers escape it (RFC 8259 section 7).
    check_every_split(UsageScanner::Mode::Request, false, R"({"model":"m-\ud83d\ude80-x"})",
                      model("m-\xF0\x9F\x9A\x80-x"));
    // A high half followed by something else, a low half alone, two highs in a row.
    check_every_split(UsageScanner::Mode::Request, false, R"({"model":"\ud83dx\ude80\ud83d\ud83d\ude80"})",
                      model("\xEF\xBF\xBDx\xEF\xBF\xBD\xEF\xBF\xBD\xF0\x9F\x9A\x80"));
    check_every_split(UsageScanner::Mode::Request, false, R"({"model":"\ud83d\n"})", model("\xEF\xBF\xBD\n"));
    // A raw newline abandons a string (it cannot be in one); its high half goes with it
    // and reaches neither the next key nor the model (found by fuzz_body_scanners).
    check_every_split(UsageScanner::Mode::Request, false, "{\"\\udaaa\n,\"model\":\"gpt\"}", model("gpt"));
}

TEST_CASE("request: no model, a model that is not a string, a long model") {
    check_every_split(UsageScanner::Mode::Request, false, R"({"messages":[{"model":"x"}]})", Found{});
    check_every_split(UsageScanner::Mode::Request, false, R"({"model":42,"x":"model"})", Found{});
    std::string long_model(150, 'm');
    check_every_split(UsageScanner::Mode::Request, false, "{\"model\":\"" + long_model + "\"}",
                      model(std::string(UsageScanner::kMaxModel, 'm'), true));
    // Not JSON at all (a multipart upload): nothing found, nothing breaks.
    check_every_split(UsageScanner::Mode::Request, false,
                      "--b\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n--b--\r\n", Found{});
}

TEST_CASE("response JSON: Chat Completions usage") {
    check_every_split(UsageScanner::Mode::Response, false,
                      R"({"id":"c","model":"m","choices":[{"message":{"content":"\"usage\":{\"prompt_tokens\":99}"}}],)"
                      R"("usage":{"prompt_tokens":12,"completion_tokens":345,"total_tokens":357,)"
                      R"("prompt_tokens_details":{"cached_tokens":4}}})",
                      tokens(12, 345));
}

TEST_CASE("response JSON: Responses API usage, nested details ignored") {
    check_every_split(UsageScanner::Mode::Response, false,
                      "{\n \"object\": \"response\",\n \"usage\": {\n  \"input_tokens\": 36,\n"
                      "  \"input_tokens_details\": {\"cached_tokens\": 1000},\n  \"output_tokens\": 87,\n"
                      "  \"output_tokens_details\": {\"reasoning_tokens\": 500},\n  \"total_tokens\": 123\n }\n}",
                      tokens(36, 87));
}

TEST_CASE("SSE: the usage event at the end of a Chat Completions stream") {
    std::string stream =
        "data: {\"id\":\"1\",\"choices\":[{\"delta\":{\"content\":\"He\"}}],\"usage\":null}\n\n"
        "data: {\"id\":\"1\",\"choices\":[{\"delta\":{\"content\":\"llo \\\"usage\\\":{\"}}],\"usage\":null}\n\n"
        ": keep-alive\n\n"
        "data: {\"id\":\"1\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2,"
        "\"total_tokens\":11}}\n\n"
        "data: [DONE]\n\n";
    check_every_split(UsageScanner::Mode::Response, true, stream, tokens(9, 2));
}

TEST_CASE("SSE: Responses API events, usage in response.completed") {
    std::string stream =
        "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"usage\":null}}\n\n"
        "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"}}}\"}\n\n"
        "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"r\","
        "\"usage\":{\"input_tokens\":5,\"output_tokens\":7,\"output_tokens_details\":{\"reasoning_tokens\":3}}}}\n\n";
    check_every_split(UsageScanner::Mode::Response, true, stream, tokens(5, 7));
}

TEST_CASE("SSE: a malformed event does not hide the usage after it") {
    std::string stream =
        "data: {\"broken\":\"no end\n\n"
        "data: {{{{[[[\n\n"
        "data: {\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2}}\n\n";
    check_every_split(UsageScanner::Mode::Response, true, stream, tokens(1, 2));
}

TEST_CASE("response: the last usage wins; negative and huge numbers are bounded") {
    check_every_split(UsageScanner::Mode::Response, false,
                      R"([{"usage":{"prompt_tokens":1,"completion_tokens":1}},{"usage":{"prompt_tokens":2}}])",
                      tokens(2, 1));
    check_every_split(UsageScanner::Mode::Response, false, R"({"usage":{"prompt_tokens":-5,"completion_tokens":1e3}})",
                      tokens(-1, 1));
    Found f = scan(UsageScanner::Mode::Response, false, {R"({"usage":{"prompt_tokens":123456789012345678901234}})"});
    CHECK(f.prompt == 123456789012345678LL);  // the first 18 digits: never an overflow
}

TEST_CASE("deep nesting beyond the tracked depth") {
    std::string deep = "{\"a\":" + std::string(100, '[') + std::string(100, ']') +
                       ",\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":6}}";
    check_every_split(UsageScanner::Mode::Response, false, deep, tokens(4, 6));
}

TEST_CASE("response: the name \"usage\" only counts with an unescaped opening quote") {
    // A member name ending in "usage (its quote escaped), then the real one.
    check_every_split(UsageScanner::Mode::Response, false,
                      R"({"say \"usage":{"prompt_tokens":99},"usage":{"prompt_tokens":1,"completion_tokens":2}})",
                      tokens(1, 2));
    // Two backslashes: an escaped backslash, so the quote after them is real.
    check_every_split(UsageScanner::Mode::Response, false,
                      R"({"a":"x\\","usage":{"prompt_tokens":3,"completion_tokens":4}})", tokens(3, 4));
    // The name followed by something other than an object.
    check_every_split(UsageScanner::Mode::Response, false, R"({"usage":null,"x":"usage","usage" : {"prompt_tokens":5}})",
                      tokens(5, -1));
}

TEST_CASE("fast paths: nested values below the names that matter, brackets and quotes in their strings") {
    // The usage object's nested details hold strings with brackets, escaped quotes and
    // backslashes, arrays, and a look-alike "prompt_tokens" member: skipped, not counted.
    check_every_split(UsageScanner::Mode::Response, false,
                      R"({"usage":{"prompt_tokens":7,"details":{"s":"}]\"{[","t":"\\","u":[1,{"v":"]}"},[[]]],)"
                      R"("prompt_tokens":99,"w":{}},"x":[],"completion_tokens":8,"y":{"z":"\"}"}},"after":1})",
                      tokens(7, 8));
    // The same below the request's top level: only the top-level model counts.
    check_every_split(UsageScanner::Mode::Request, false,
                      R"({"messages":[{"role":"user","content":"} ] \" { [ \\","model":"inner"}],)"
                      R"("metadata":{"a":[1,{"b":"]"}],"model":"meta"},"model":"top","tools":[{"model":"x"}]})",
                      model("top"));
    // Nested deeper than the tracked depth inside the usage object, then its own members.
    std::string deep = R"({"usage":{"n":)" + std::string(80, '[') + R"("]]")" + std::string(80, ']') +
                       R"(,"prompt_tokens":4,"completion_tokens":6}})";
    check_every_split(UsageScanner::Mode::Response, false, deep, tokens(4, 6));
}

TEST_CASE("fast paths: names and values taken whole, or byte by byte when they hold escapes") {
    // Escapes in the names that matter are decoded (a name with an escape takes the slow
    // path); a plain model is copied whole, a long one cut at the bound.
    check_every_split(UsageScanner::Mode::Response, false,
                      R"({"usage":{"prompt\u005ftokens":11,"completion_tokens":12,"output\u005Ftokens":13}})",
                      tokens(11, 13));
    check_every_split(UsageScanner::Mode::Request, false, R"({"mod\u0065l":"a\u0062c"})", model("abc"));
    std::string long_model(130, 'q');
    check_every_split(UsageScanner::Mode::Request, false, R"({"stream":true,"model":")" + long_model + R"("})",
                      model(std::string(UsageScanner::kMaxModel, 'q'), true));
    // A raw newline inside a nested string (not valid JSON) resynchronises as before: the
    // string ends there and the bytes after it are structure again.
    check_every_split(UsageScanner::Mode::Response, false,
                      "{\"usage\":{\"d\":{\"a\":\"cut\n\"},\"prompt_tokens\":3,\"completion_tokens\":4}}", tokens(-1, -1));
    check_every_split(UsageScanner::Mode::Response, false,
                      "{\"usage\":{\"d\":{\"a\":\"cut\n},\"prompt_tokens\":3,\"completion_tokens\":4}}", tokens(3, 4));
}

TEST_CASE("fast paths: SSE newline inside a nested value ends the event") {
    std::string stream =
        "data: {\"usage\":{\"d\":{\"x\":[1,\"}\n\n"
        "data: {\"usage\":{\"d\":{\"x\":[1,{\n\n"
        "data: {\"choices\":[],\"usage\":{\"d\":[\"{\"],\"prompt_tokens\":4,\"completion_tokens\":5}}\n\n"
        "data: [DONE]\n\n";
    check_every_split(UsageScanner::Mode::Response, true, stream, tokens(4, 5));
}

TEST_CASE("fast paths: the search for the name \"usage\" among look-alikes") {
    // Many 'g's, names that only start or end like it, the name inside a string (its
    // quotes escaped), with an escaped and with an escaped-backslash quote before it, and
    // the name last with nothing after it.
    std::string body =
        R"({"gg":"ggg","usag":1,"usage_x":{"prompt_tokens":1},"xusage":{"prompt_tokens":2},"s":"\"usage\":{\"prompt_tokens\":3}",)"
        R"("t":"\\","usage":{"prompt_tokens":20,"completion_tokens":21},"logprobs":"gggg g g","usage")";
    check_every_split(UsageScanner::Mode::Response, false, body, tokens(20, 21));
    // The name at the very start of the body, and one that begins a long body (more than
    // one 8-byte word of text after it before the object).
    check_every_split(UsageScanner::Mode::Response, false, R"("usage":{"prompt_tokens":1,"completion_tokens":2})",
                      tokens(1, 2));
    std::string text(400, 'g');
    check_every_split(UsageScanner::Mode::Response, false,
                      R"({"content":")" + text + R"(","usage"  :  {"input_tokens":5,"output_tokens":6}})", tokens(5, 6));
}

TEST_CASE("reset: a scanner reused for the next exchange starts afresh") {
    UsageScanner s;
    s.reset(UsageScanner::Mode::Request);
    s.feed(R"({"model":"first","messages":[)");
    CHECK(s.done());
    CHECK(s.model() == "first");
    s.reset(UsageScanner::Mode::Response, true);
    CHECK_FALSE(s.has_model());
    CHECK_FALSE(s.done());
    s.feed("data: {\"usage\":{\"prompt_tokens\":1,\"comp");  // cut mid-name
    s.reset(UsageScanner::Mode::Response);
    s.feed(R"(letion_tokens":9}})");  // the rest, to a fresh scanner: nothing
    CHECK(s.prompt_tokens() == -1);
    CHECK(s.completion_tokens() == -1);
    s.feed(R"({"usage":{"completion_tokens":2}})");
    CHECK(s.completion_tokens() == 2);
    s.reset(UsageScanner::Mode::Request);
    s.feed(R"({"messages":[],"model":"second"})");
    CHECK(s.model() == "second");
    CHECK(s.prompt_tokens() == -1);
}
