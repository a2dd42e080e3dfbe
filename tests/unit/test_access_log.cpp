// Tests for access_log.h: JSON string escaping (quotes, backslashes, control bytes,
// invalid UTF-8), the RFC 3339 time, a whole line, and the ring's bound (a line that
// does not fit is dropped and counted, never half written).
#include <cstdint>
#include <cstdio>
#include <string>

#include "access_log.h"
#include "doctest/doctest.h"

using op::append_json_string;

namespace {
std::string json(std::string_view s) {
    std::string out;
    append_json_string(out, s);
    return out;
}
}  // namespace

TEST_CASE("JSON strings: quotes, backslashes and control bytes are escaped") {
    CHECK(json("") == "\"\"");
    CHECK(json("/v1/chat/completions") == "\"/v1/chat/completions\"");
    CHECK(json("a\"b\\c") == "\"a\\\"b\\\\c\"");
    CHECK(json("\n\r\t") == "\"\\n\\r\\t\"");
    CHECK(json(std::string("\x01\x1f\x7f", 3)) == "\"\\u0001\\u001f\\u007f\"");
    CHECK(json(std::string("a\0b", 3)) == "\"a\\u0000b\"");
}

TEST_CASE("JSON strings: valid UTF-8 kept, invalid bytes replaced") {
    CHECK(json("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80") == "\"caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80\"");
    CHECK(json("\xC3") == "\"\xEF\xBF\xBD\"");                   // cut sequence
    CHECK(json("\xC0\xAF") == "\"\xEF\xBF\xBD\xEF\xBF\xBD\"");   // overlong
    CHECK(json("\xED\xA0\x80") == "\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\"");  // a surrogate
    CHECK(json("\xFF" "a") == "\"\xEF\xBF\xBD" "a\"");
}

TEST_CASE("RFC 3339 UTC time with milliseconds") {
    char out[32];
    op::format_utc_ms(0, out);
    CHECK(std::string(out) == "1970-01-01T00:00:00.000Z");
    op::format_utc_ms(1764766800123, out);  // 2025-12-03 13:00:00.123 UTC
    CHECK(std::string(out) == "2025-12-03T13:00:00.123Z");
    op::format_utc_ms(951782400000 + 86399999, out);  // 2000-02-29, a leap day, its last ms
    CHECK(std::string(out) == "2000-02-29T23:59:59.999Z");
}

TEST_CASE("a whole line") {
    op::AccessRecord r;
    r.unix_ms = 1764766800123;
    r.client = "127.0.0.1:5000";
    r.method = "POST";
    r.path = "/v1/chat/\"x\"";
    r.target = "https://api.openai.com";
    r.status = 200;
    r.bytes_in = 10;
    r.bytes_out = 20;
    r.head_ms = 5;
    r.duration_ms = 7;
    r.has_model = true;
    r.model = "gpt\n";
    r.prompt_tokens = 1;
    r.completion_tokens = -1;
    std::string line;
    op::format_access_line(line, r);
    CHECK(line ==
          "{\"time\":\"2025-12-03T13:00:00.123Z\",\"client\":\"127.0.0.1:5000\",\"key\":null,\"method\":\"POST\","
          "\"path\":\"/v1/chat/\\\"x\\\"\",\"target\":\"https://api.openai.com\",\"status\":200,"
          "\"source\":\"upstream\",\"bytes_in\":10,\"bytes_out\":20,\"head_ms\":5,\"duration_ms\":7,"
          "\"model\":\"gpt\\n\",\"prompt_tokens\":1,\"completion_tokens\":null,\"attempts\":1}\n");
    op::AccessRecord malformed;
    malformed.status = 400;
    malformed.source = op::StatusSource::Proxy;
    line.clear();
    op::format_access_line(line, malformed);
    CHECK(line.find("\"method\":null,\"path\":null,\"target\":null,\"status\":400,\"source\":\"proxy\"") !=
          std::string::npos);
    CHECK(line.find("\"head_ms\":null") != std::string::npos);
}

TEST_CASE("lines: the time cached per second stays right across seconds, days and before 1970") {
    op::AccessRecord r;
    r.client = "c";
    // Back and forth between seconds: each line shows its own time, never the cached one's.
    const std::int64_t times[] = {1764766800123, 1764766800999, 1764766801000, 1764766800500,
                                  951782400000 + 86399999, 951782400000 + 86400000, 0, -1, -1000, -1001};
    const char* want[] = {"2025-12-03T13:00:00.123Z", "2025-12-03T13:00:00.999Z", "2025-12-03T13:00:01.000Z",
                          "2025-12-03T13:00:00.500Z", "2000-02-29T23:59:59.999Z", "2000-03-01T00:00:00.000Z",
                          "1970-01-01T00:00:00.000Z", "1969-12-31T23:59:59.999Z", "1969-12-31T23:59:59.000Z",
                          "1969-12-31T23:59:58.999Z"};
    for (std::size_t i = 0; i < sizeof times / sizeof *times; ++i) {
        r.unix_ms = times[i];
        std::string line;
        op::format_access_line(line, r);
        char direct[32];
        op::format_utc_ms(times[i], direct);
        INFO("unix ms " << times[i]);
        CHECK(std::string(direct) == want[i]);
        CHECK(line.compare(0, 35, std::string("{\"time\":\"") + want[i] + "\",") == 0);
    }
}

TEST_CASE("lines: the longest fields (every byte escaped to six) fit, and lines append to what is there") {
    std::string worst;
    for (int i = 0; i < 2048; ++i) worst += static_cast<char>(i % 2 ? 0x01 : 0x7f);  // "\u0001", "\u007f"
    op::AccessRecord r;
    r.unix_ms = 1764766800123;
    r.client = worst;
    r.method = worst;
    r.path = worst;
    r.target = worst;
    r.has_model = true;
    r.model = worst;
    r.status = 599;
    r.bytes_in = UINT64_MAX;
    r.bytes_out = UINT64_MAX;
    r.head_ms = INT64_MAX;
    r.duration_ms = INT64_MAX;
    r.prompt_tokens = INT64_MAX;
    r.completion_tokens = INT64_MAX;
    r.attempts = 2147483647;
    std::string line = "before\n";
    op::format_access_line(line, r);
    std::string field = json(worst);
    CHECK(field.size() == 6 * worst.size() + 2);
    CHECK(line.compare(0, 7, "before\n") == 0);
    CHECK(line.find("\"client\":" + field + ",\"key\":null,\"method\":" + field + ",\"path\":" + field +
                    ",\"target\":" + field + ",\"status\":599,") != std::string::npos);
    CHECK(line.find("\"bytes_in\":18446744073709551615,\"bytes_out\":18446744073709551615,"
                    "\"head_ms\":9223372036854775807,\"duration_ms\":9223372036854775807,\"model\":" +
                    field + ",\"prompt_tokens\":9223372036854775807,\"completion_tokens\":9223372036854775807,"
                    "\"attempts\":2147483647}\n") != std::string::npos);
    CHECK(line.back() == '\n');
    CHECK(line.find('\n', 7) == line.size() - 1);
    // A string appended after other text keeps it.
    std::string out = "x";
    append_json_string(out, "a\"");
    CHECK(out == "x\"a\\\"\"");
}

TEST_CASE("the ring drops whole lines when full, and counts them") {
    op::Counter lines, dropped;
    op::AccessLogRing ring(lines, dropped);
    std::string line(1000, 'x');
    line.back() = '\n';
    std::size_t fits = op::AccessLogRing::kCapacity / line.size();
    for (std::size_t i = 0; i < fits; ++i) CHECK(ring.push(line));
    CHECK_FALSE(ring.push(line));
    CHECK(lines.get() == fits);
    CHECK(dropped.get() == 1);
    std::FILE* sink = std::tmpfile();
    REQUIRE(sink);
    CHECK(ring.drain(sink) == fits * line.size());
    // Room again, and a line now wraps around the end of the buffer.
    for (int i = 0; i < 3; ++i) CHECK(ring.push(line));
    CHECK(ring.drain(sink) == 3 * line.size());
    CHECK(std::ftell(sink) == static_cast<long>((fits + 3) * line.size()));
    std::fclose(sink);
}
