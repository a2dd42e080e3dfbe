// Process-level facilities: signals, the descriptor limit, the allocator, clocks, local
// time and the file system checks the trust-store choice needs.
#pragma once

#include <cstdint>
#include <string>

namespace op {
namespace sys {

// SIGPIPE ignored for the whole process: a write to a connection the peer has closed is
// then an Error value (EPIPE), not the end of the process, on every socket path.
void ignore_sigpipe();
// Calls handler(signal_number) from signal context on SIGINT/SIGTERM; the handler must
// be async-signal-safe (e.g. Poller::wake).
void on_terminate_signal(void (*handler)(int));
void raise_fd_limit();
// Fixes the C library allocator's thresholds for giving memory back to the system (see
// the definition); a no-op where there is nothing to tune.
void tune_allocator();
std::int64_t monotonic_ms();
// "YYYY/MM/DD HH:MM:SS" in local time.
void format_local_time(char out[20]);
bool file_exists(const std::string& path);
bool dir_exists(const std::string& path);

}  // namespace sys
}  // namespace op
