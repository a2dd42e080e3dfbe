// POSIX part of platform/sys.h (everything but the allocator, which is per C library).
#include "sys.h"

#include <csignal>
#include <ctime>
#include <sys/resource.h>
#include <sys/stat.h>

namespace op {
namespace sys {

void ignore_sigpipe() { std::signal(SIGPIPE, SIG_IGN); }

namespace {
void (*g_terminate_handler)(int) = nullptr;
extern "C" void on_signal(int sig) {
    if (g_terminate_handler) g_terminate_handler(sig);
}
}  // namespace

void on_terminate_signal(void (*handler)(int)) {
    g_terminate_handler = handler;
    struct sigaction act {};
    act.sa_handler = on_signal;
    sigemptyset(&act.sa_mask);
    act.sa_flags = SA_RESTART;
    sigaction(SIGINT, &act, nullptr);
    sigaction(SIGTERM, &act, nullptr);
}

namespace {
void (*g_reopen_handler)(int) = nullptr;
extern "C" void on_hangup(int sig) {
    if (g_reopen_handler) g_reopen_handler(sig);
}
}  // namespace

void on_reopen_signal(void (*handler)(int)) {
    g_reopen_handler = handler;
    struct sigaction act {};
    act.sa_handler = on_hangup;
    sigemptyset(&act.sa_mask);
    act.sa_flags = SA_RESTART;
    sigaction(SIGHUP, &act, nullptr);
}

void raise_fd_limit() {
    rlimit lim{};
    if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
        lim.rlim_cur = lim.rlim_max;
        setrlimit(RLIMIT_NOFILE, &lim);
    }
}

std::int64_t monotonic_ms() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

void format_local_time(char out[20]) {
    std::time_t now = std::time(nullptr);
    std::tm tm{};
    localtime_r(&now, &tm);
    std::strftime(out, 20, "%Y/%m/%d %H:%M:%S", &tm);
}

bool file_exists(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool dir_exists(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// The trust store is a file or a directory of PEM certificates (trust_store.cpp).
bool has_os_trust_store() { return false; }
bool os_trust_store(std::vector<std::string>&, std::vector<std::string>&, std::string& error) {
    error = "this system keeps its trust store in files";
    return false;
}

}  // namespace sys
}  // namespace op
