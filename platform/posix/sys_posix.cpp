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
void (*g_reload_handler)(int) = nullptr;

extern "C" void on_signal(int sig) {
    void (*handler)(int) = sig == SIGHUP ? g_reload_handler : g_terminate_handler;
    if (handler) handler(sig);
}

// `sig` goes to on_signal from now on; interrupted system calls restart.
void catch_signal(int sig) {
    struct sigaction act {};
    act.sa_handler = on_signal;
    sigemptyset(&act.sa_mask);
    act.sa_flags = SA_RESTART;
    sigaction(sig, &act, nullptr);
}
}  // namespace

void on_terminate_signal(void (*handler)(int)) {
    g_terminate_handler = handler;
    catch_signal(SIGINT);
    catch_signal(SIGTERM);
}

void on_reload_signal(void (*handler)(int)) {
    g_reload_handler = handler;
    catch_signal(SIGHUP);
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
