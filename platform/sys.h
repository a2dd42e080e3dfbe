// Process-level facilities: signals, the descriptor limit, the allocator, clocks, local
// time and the file system checks the trust-store choice needs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace op {
namespace sys {

// SIGPIPE ignored for the whole process: a write to a connection the peer has closed is
// then an Error value (EPIPE), not the end of the process, on every socket path.
void ignore_sigpipe();
// Calls handler(signal_number) from signal context on SIGINT/SIGTERM; the handler must
// be async-signal-safe (e.g. Poller::wake). On Windows: on Ctrl-C, Ctrl-Break and the
// console's close (and log-off, shut-down), from the thread the system starts for them.
void on_terminate_signal(void (*handler)(int));
// Calls handler(signal_number) from signal context on SIGHUP (the same rules): the
// listener's certificate re-read, logrotate's "reopen your files". Windows has no such
// signal: there it does nothing.
void on_reload_signal(void (*handler)(int));
void raise_fd_limit();
// Fixes the C library allocator's thresholds for giving memory back to the system (see
// the definition); a no-op where there is nothing to tune.
void tune_allocator();
// Hands the allocator's free memory back to the system, wherever it lies in the heap
// (not only at its top, which the allocator trims by itself): for after a burst of
// connections has ended. It walks the free lists, so it is for rare calls. A no-op where
// the allocator gives memory back by itself or has no such call.
void release_free_memory();
std::int64_t monotonic_ms();
// "YYYY/MM/DD HH:MM:SS" in local time.
void format_local_time(char out[20]);
bool file_exists(const std::string& path);
bool dir_exists(const std::string& path);

// The system's own trust store where it is not a file of PEM certificates: on Windows
// the ROOT and CA system stores, read through CryptoAPI. has_os_trust_store() says
// whether this system has one (false on POSIX, whose trust store is one of the files
// choose_trust_store() knows); os_trust_store() appends the DER of each trust anchor
// (ROOT) to `roots` and of each intermediate CA certificate the system knows (CA) to
// `intermediates`; false and `error` when the stores cannot be opened.
bool has_os_trust_store();
bool os_trust_store(std::vector<std::string>& roots, std::vector<std::string>& intermediates, std::string& error);

}  // namespace sys
}  // namespace op
