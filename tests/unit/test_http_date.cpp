// Tests for http_date.h: IMF-fixdate (RFC 9110 section 5.6.7) from a second count.
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <string>

#include "http_date.h"
#include "doctest/doctest.h"

namespace {

std::string date(std::int64_t s) {
    char out[op::kHttpDateSize];
    op::format_http_date(s, out);
    return std::string(out, sizeof out);
}

}  // namespace

TEST_CASE("http date: RFC 9110's example, the epoch, leap days, year ends") {
    CHECK(date(784111777) == "Sun, 06 Nov 1994 08:49:37 GMT");  // RFC 9110 5.6.7
    CHECK(date(0) == "Thu, 01 Jan 1970 00:00:00 GMT");
    CHECK(date(-5) == "Thu, 01 Jan 1970 00:00:00 GMT");          // no clock before 1970
    CHECK(date(951782400) == "Tue, 29 Feb 2000 00:00:00 GMT");   // 2000 is a leap year
    CHECK(date(951868800) == "Wed, 01 Mar 2000 00:00:00 GMT");
    CHECK(date(4107542399) == "Sun, 28 Feb 2100 23:59:59 GMT");  // 2100 is not
    CHECK(date(4107542400) == "Mon, 01 Mar 2100 00:00:00 GMT");
    CHECK(date(1704067199) == "Sun, 31 Dec 2023 23:59:59 GMT");
    CHECK(date(1709164800) == "Thu, 29 Feb 2024 00:00:00 GMT");
    CHECK(date(2147483647) == "Tue, 19 Jan 2038 03:14:07 GMT");  // past 32-bit time_t
    CHECK(date(253402300799) == "Fri, 31 Dec 9999 23:59:59 GMT");
}

TEST_CASE("http date: every day of 1970-2100 agrees with gmtime") {
    // Noon of each day: the calendar arithmetic against the C library's (UTC, no zone).
    static const char* const kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char* const kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    int checked = 0;
    for (std::int64_t day = 0; day < 47847; ++day) {  // 1970-01-01 .. 2100-12-31
        const std::int64_t s = day * 86400 + 43200 + day % 3600;
        const std::time_t t = static_cast<std::time_t>(s);
        const std::tm* tm = std::gmtime(&t);
        REQUIRE(tm != nullptr);
        char want[64];
        std::snprintf(want, sizeof want, "%s, %02d %s %04d %02d:%02d:%02d GMT", kDays[tm->tm_wday], tm->tm_mday,
                      kMonths[tm->tm_mon], tm->tm_year + 1900, tm->tm_hour, tm->tm_min, tm->tm_sec);
        if (date(s) != want) {
            CHECK(date(s) == want);
            break;
        }
        ++checked;
    }
    CHECK(checked == 47847);
}

TEST_CASE("http date clock: the current second, 29 bytes, the same text within a second") {
    op::HttpDateClock clock;
    const std::int64_t before = static_cast<std::int64_t>(std::time(nullptr));
    const std::string a(clock.now());
    const std::int64_t after = static_cast<std::int64_t>(std::time(nullptr));
    REQUIRE(a.size() == op::kHttpDateSize);
    CHECK((a == date(before) || a == date(after)));
    CHECK(a.substr(25) == " GMT");
}
