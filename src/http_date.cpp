#include "http_date.h"

#include <ctime>

namespace op {

namespace {

void two_digits(char* out, unsigned v) {
    out[0] = static_cast<char>('0' + v / 10);
    out[1] = static_cast<char>('0' + v % 10);
}

}  // namespace

void format_http_date(std::int64_t unix_seconds, char* out) {
    static constexpr char kDays[] = "ThuFriSatSunMonTueWed";  // 1970-01-01 was a Thursday
    static constexpr char kMonths[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    if (unix_seconds < 0) unix_seconds = 0;
    const std::int64_t days = unix_seconds / 86400;
    const unsigned secs = static_cast<unsigned>(unix_seconds % 86400);

    // Whole years, then whole months, off the day count: formatted once a second at most.
    auto leap = [](std::int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; };
    std::int64_t year = 1970, left = days;
    while (left >= (leap(year) ? 366 : 365)) left -= leap(year++) ? 366 : 365;
    static constexpr unsigned char kMonthDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    unsigned month = 1;
    for (;; ++month) {
        const unsigned len = kMonthDays[month - 1] + (month == 2 && leap(year) ? 1 : 0);
        if (left < len) break;
        left -= len;
    }
    const unsigned day = static_cast<unsigned>(left) + 1;

    const char* wd = kDays + 3 * (days % 7);
    out[0] = wd[0], out[1] = wd[1], out[2] = wd[2], out[3] = ',', out[4] = ' ';
    two_digits(out + 5, day);
    out[7] = ' ';
    const char* mo = kMonths + 3 * (month - 1);
    out[8] = mo[0], out[9] = mo[1], out[10] = mo[2], out[11] = ' ';
    const unsigned y = static_cast<unsigned>(year % 10000);  // four digits until the year 9999
    two_digits(out + 12, y / 100);
    two_digits(out + 14, y % 100);
    out[16] = ' ';
    two_digits(out + 17, secs / 3600);
    out[19] = ':';
    two_digits(out + 20, secs / 60 % 60);
    out[22] = ':';
    two_digits(out + 23, secs % 60);
    out[25] = ' ', out[26] = 'G', out[27] = 'M', out[28] = 'T';
}

std::string_view HttpDateClock::now() {
    const std::int64_t s = static_cast<std::int64_t>(std::time(nullptr));
    if (s != second_) {
        second_ = s;
        format_http_date(s, text_);
    }
    return {text_, kHttpDateSize};
}

}  // namespace op
