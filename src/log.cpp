#include "log.h"

#include <cstdarg>
#include <cstdio>

#include "sys.h"

namespace op {

void log_line(const char* fmt, ...) {
    char line[2048];
    char stamp[20];
    sys::format_local_time(stamp);
    int n = std::snprintf(line, sizeof line, "[PROXY] %s ", stamp);
    va_list ap;
    va_start(ap, fmt);
    int m = std::vsnprintf(line + n, sizeof line - static_cast<std::size_t>(n) - 1, fmt, ap);
    va_end(ap);
    std::size_t len = static_cast<std::size_t>(n) + (m < 0 ? 0 : static_cast<std::size_t>(m));
    if (len > sizeof line - 2) len = sizeof line - 2;
    line[len++] = '\n';
    std::fwrite(line, 1, len, stderr);
    std::fflush(stderr);
}

}  // namespace op
