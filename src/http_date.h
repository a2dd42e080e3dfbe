// The Date field of the proxy's own answers (RFC 9110 section 6.6.1: an origin server
// with a clock sends it in every 2xx-4xx response; the proxy is the origin of its errors,
// preflights and -json-keepalive heads), in IMF-fixdate form (section 5.6.7):
//   "Sun, 06 Nov 1994 08:49:37 GMT"
// Relayed answers keep the upstream's own Date, untouched.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace op {

constexpr std::size_t kHttpDateSize = 29;

// Seconds since 1970-01-01 00:00:00 UTC (0 and later) as IMF-fixdate, into out[0..29).
void format_http_date(std::int64_t unix_seconds, char* out);

// The current second as IMF-fixdate, formatted again only when the second changes: one
// per event loop (not shared between threads).
class HttpDateClock {
public:
    std::string_view now();

private:
    std::int64_t second_ = -1;
    char text_[kHttpDateSize] = {};
};

}  // namespace op
