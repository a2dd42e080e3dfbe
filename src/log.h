// Log lines on stderr in the original's format: "[PROXY] 2006/01/02 15:04:05 message".
#pragma once

#include <string_view>

namespace op {

// printf-style; one line, newline added. Thread-safe (one write() per line).
void log_line(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

}  // namespace op
