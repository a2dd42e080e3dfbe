// openai-proxy: entry point. Parses the configuration (every error at once, exit 2
// before anything binds), builds the TLS context, binds, and runs the loop.
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <thread>
#include <vector>

#include "config.h"
#include "log.h"
#include "server.h"
#include "sys.h"
#include "tls.h"

namespace {

// Only for the signal handler, which must reach every loop.
constexpr unsigned kMaxWorkers = 256;
op::Server* g_servers[kMaxWorkers];
std::atomic<unsigned> g_server_count{0};
volatile std::sig_atomic_t g_signals = 0;

void on_terminate(int) {
    // First signal: graceful stop. Second: exit at once.
    if (++g_signals >= 2) std::_Exit(1);
    unsigned n = g_server_count.load();
    for (unsigned i = 0; i < n; ++i) g_servers[i]->request_stop();
}

const char* env_lookup(const char* name) { return std::getenv(name); }

}  // namespace

int main(int argc, char** argv) {
    op::sys::ignore_sigpipe();
    op::ConfigResult parsed = op::parse_config(argc, argv, env_lookup);
    if (parsed.show_help) {
        std::fputs(op::usage_text("openai-proxy").c_str(), stdout);
        return 0;
    }
    if (parsed.show_version) {
        std::printf("%s\n", op::version_text());
        return 0;
    }
    if (!parsed.errors.empty()) {
        for (const auto& e : parsed.errors) std::fprintf(stderr, "openai-proxy: %s\n", e.c_str());
        std::fprintf(stderr, "Run 'openai-proxy -h' for usage.\n");
        return 2;
    }
    const op::Config& config = parsed.config;

    op::TrustSettings trust;
    trust.ca_file = config.ca_file;
    if (const char* f = std::getenv("SSL_CERT_FILE")) trust.env_cert_file = f;
    if (const char* d = std::getenv("SSL_CERT_DIR")) trust.env_cert_dir = d;
    std::string error;
    auto tls = op::TlsClientContext::create(trust, error);
    if (!tls) {
        std::fprintf(stderr, "openai-proxy: %s\n", error.c_str());
        return config.ca_file.empty() ? 1 : 2;
    }

    // Installed before binding: a signal that arrives once the port accepts must not
    // find the default action (seen under ASan's slower start-up).
    op::sys::on_terminate_signal(on_terminate);
    op::sys::raise_fd_limit();
    op::sys::tune_allocator();
    // One event loop per worker, each with its own listener on the same port
    // (SO_REUSEPORT), idle pool and resolver: nothing shared on the hot path but the
    // TLS context (thread-safe, and its session cache lets a handshake made by one
    // worker be resumed by another).
    unsigned workers = config.workers ? config.workers : std::thread::hardware_concurrency();
    if (workers == 0) workers = 1;
    if (workers > kMaxWorkers) workers = kMaxWorkers;
    std::vector<std::unique_ptr<op::Server>> servers;
    std::atomic<std::size_t> open_clients{0};
    std::uint16_t port = config.listen.port;
    for (unsigned i = 0; i < workers; ++i) {
        servers.push_back(std::make_unique<op::Server>(config, *tls, open_clients));
        if (!servers.back()->listen(port, workers > 1, error)) {
            op::log_line("Error: cannot listen on %s: %s", config.listen.text.c_str(), error.c_str());
            return 1;
        }
        port = servers.back()->port();  // an ephemeral port (0) is chosen once
    }
    for (unsigned i = 0; i < workers; ++i) g_servers[i] = servers[i].get();
    g_server_count.store(workers);
    if (g_signals > 0)  // arrived before the loops existed: stop them now
        for (auto& s : servers) s->request_stop();
    op::log_line("Starting proxy server on %s", config.listen.text.c_str());
    // A loop whose backend fails returns 1; the others are then stopped as by a signal,
    // and the process exits with that status.
    std::vector<int> status(workers, 0);
    auto run_worker = [&servers, &status](unsigned i) {
        status[i] = servers[i]->run();
        if (status[i] != 0)
            for (auto& s : servers) s->request_stop();
    };
    std::vector<std::thread> threads;
    for (unsigned i = 1; i < workers; ++i) threads.emplace_back(run_worker, i);
    run_worker(0);
    for (auto& t : threads) t.join();
    for (int s : status)
        if (s != 0) return s;
    return 0;
}
