// openai-proxy: entry point. Parses the configuration (every error at once, exit 2
// before anything binds), builds the TLS context, binds, and runs the loop.
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <thread>
#include <vector>

#include "access_log.h"
#include "config.h"
#include "config_snapshot.h"
#include "listener_tls.h"
#include "log.h"
#include "metrics.h"
#include "signal_targets.h"
#include "sys.h"
#include "tls.h"
#include "worker.h"

namespace {

// Only for the signal handlers, which must reach every loop.
constexpr unsigned kMaxWorkers = 256;
op::SignalTargets<op::Worker, kMaxWorkers> g_workers;
op::SignalTargets<op::AccessLog, 1> g_access_log;
volatile std::sig_atomic_t g_signals = 0;

void on_terminate(int) {
    // First signal: graceful stop. Second: exit at once.
    if (++g_signals >= 2) std::_Exit(1);
    g_workers.for_each([](op::Worker& w) { w.request_stop(); });
}

// SIGHUP: the access log is reopened (logrotate), and the first worker re-reads the
// listener's certificate and the configuration (Reloader), for all of them.
void on_hangup(int) {
    g_access_log.for_each([](op::AccessLog& log) { log.request_reopen(); });
    g_workers.with_first([](op::Worker& w) { w.request_reload(); });
}

const char* env_lookup(const char* name) { return std::getenv(name); }

// The SIGHUP configuration reload, run in the first worker's loop thread: the same
// command line and environment, the -config file and the files it names read again. A
// configuration with any error is refused whole (each error logged) and the running one
// stays; otherwise every worker is given the new snapshot. What the process set up at
// start (sockets, threads, the TLS contexts, the access log) cannot change: a new value
// of those settings is logged and left for a restart.
class Reloader {
public:
    Reloader(int argc, char** argv, op::SnapshotPtr current, op::MetricsRegistry& registry,
             std::vector<std::unique_ptr<op::Worker>>& workers)
        : argc_(argc), argv_(argv), current_(std::move(current)), registry_(registry), workers_(workers) {}

    void reload() {
        op::ConfigResult parsed = op::parse_config(argc_, argv_, env_lookup);
        if (!parsed.errors.empty()) {
            for (const auto& e : parsed.errors) op::log_line("config reload refused: %s", e.c_str());
            return;
        }
        op::Config next = std::move(parsed.config);
        const op::Config& old = current_->config;
        auto keep = [](bool changed, const char* flag) {
            if (changed) op::log_line("reload: -%s changed; restart to apply", flag);
            return changed;
        };
        if (keep(next.listen.text != old.listen.text, "listen")) next.listen = old.listen;
        if (keep(next.workers != old.workers, "workers")) next.workers = old.workers;
        if (keep(next.admin_listen.has_value() != old.admin_listen.has_value() ||
                     (next.admin_listen && next.admin_listen->text != old.admin_listen->text),
                 "admin-listen"))
            next.admin_listen = old.admin_listen;
        if (keep(next.access_log != old.access_log, "access-log")) next.access_log = old.access_log;
        if (keep(next.tls_cert != old.tls_cert, "tls-cert")) next.tls_cert = old.tls_cert;
        if (keep(next.tls_key != old.tls_key, "tls-key")) next.tls_key = old.tls_key;
        if (keep(next.ca_file != old.ca_file, "ca-file")) next.ca_file = old.ca_file;
        if (keep(next.buffer_size != old.buffer_size, "buffer-size")) next.buffer_size = old.buffer_size;
        // A connection being made reads the proxy at each step (upstreams.h).
        if (keep(egress_text(next.upstream_proxy) != egress_text(old.upstream_proxy), "upstream-proxy"))
            next.upstream_proxy = old.upstream_proxy;
        // The safe default, against the address actually listened on.
        if (std::string e = op::safe_default_error(next); !e.empty()) {
            op::log_line("config reload refused: %s", e.c_str());
            return;
        }
        for (const op::Route& route : next.routes)
            for (const op::Origin& origin : route.origins) registry_.labels.find_or_add(origin.target.origin());
        if (next.default_route)
            for (const op::Origin& origin : next.default_route->origins)
                registry_.labels.find_or_add(origin.target.origin());
        current_ = std::make_shared<const op::ConfigSnapshot>(std::move(next));
        for (auto& w : workers_) w->publish(current_);
        op::log_line("%s", op::config_summary(current_->config, "configuration reloaded").c_str());
    }

private:
    static std::string egress_text(const std::optional<op::Egress>& e) {
        std::string s;
        if (e) {
            e->append_key(s);
            s += '\n' + e->password;
        }
        return s;
    }

    int argc_;
    char** argv_;
    op::SnapshotPtr current_;
    op::MetricsRegistry& registry_;
    std::vector<std::unique_ptr<op::Worker>>& workers_;
};

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
    // Immutable from here; a SIGHUP reload makes a new one (Reloader).
    auto snapshot = std::make_shared<const op::ConfigSnapshot>(std::move(parsed.config));
    const op::Config& config = snapshot->config;

    op::TrustSettings trust;
    trust.ca_file = config.ca_file;
    if (const char* f = std::getenv("SSL_CERT_FILE")) trust.env_cert_file = f;
    if (const char* d = std::getenv("SSL_CERT_DIR")) trust.env_cert_dir = d;
    trust.os_store = op::sys::has_os_trust_store();
    std::string error;
    auto tls = op::TlsClientContext::create(trust, error);
    if (!tls) {
        std::fprintf(stderr, "openai-proxy: %s\n", error.c_str());
        return config.ca_file.empty() && !parsed.check_only ? 1 : 2;
    }

    // HTTPS on the listener: both files are checked now, so that a bad one is an error
    // at start (exit 2), not at the first client.
    std::unique_ptr<op::ListenerTls> listener_tls;
    if (!config.tls_cert.empty()) {
        listener_tls = std::make_unique<op::ListenerTls>(config.tls_cert, config.tls_key);
        if (!listener_tls->load(error)) {
            std::fprintf(stderr, "openai-proxy: %s\n", error.c_str());
            return 2;
        }
    }
    if (parsed.check_only) {  // -check-config: nothing is bound, resolved or started
        std::printf("%s\n", op::config_summary(config).c_str());
        return 0;
    }

    // Installed before binding: a signal that arrives once the port accepts must not
    // find the default action (seen under ASan's slower start-up). SIGHUP too, which
    // would otherwise end the process.
    op::sys::on_terminate_signal(on_terminate);
    op::sys::on_reload_signal(on_hangup);
    op::sys::raise_fd_limit();
    op::sys::tune_allocator();
    // One event loop per worker, each with its own idle pool and resolver: nothing
    // shared on the hot path but the TLS context (thread-safe, and its session cache lets
    // a handshake made by one worker be resumed by another) and, where the kernel does
    // not spread connections over SO_REUSEPORT sockets, one listening socket that every
    // loop polls (an accept that loses the race gets WouldBlock). Where it does, each
    // worker binds its own, so that connections are balanced without a thundering herd.
    unsigned workers = config.workers ? config.workers : std::thread::hardware_concurrency();
    if (workers == 0) workers = 1;
    if (workers > kMaxWorkers) workers = kMaxWorkers;
    const bool socket_per_worker = workers == 1 || op::net::reuseport_balances();
    // The counters' registry and the access log outlive the workers, which use them.
    op::MetricsRegistry registry;
    for (const op::Route& route : config.routes)
        for (const op::Origin& origin : route.origins) registry.labels.find_or_add(origin.target.origin());
    if (config.default_route)
        for (const op::Origin& origin : config.default_route->origins) registry.labels.find_or_add(origin.target.origin());
    std::unique_ptr<op::AccessLog> access_log;
    if (!config.access_log.empty()) {
        access_log = op::AccessLog::open(config.access_log, error);
        if (!access_log) {
            std::fprintf(stderr, "openai-proxy: %s\n", error.c_str());
            return 1;
        }
        registry.access_log_on = true;
    }
    struct StopLog {
        ~StopLog() { g_access_log.withdraw(); }
    } stop_log;
    std::vector<std::unique_ptr<op::Worker>> worker_list;
    // Destroyed before worker_list, on every return: from then on no signal handler
    // reaches a worker, and none is still inside a call on one.
    struct Unpublish {
        ~Unpublish() { g_workers.withdraw(); }
    } unpublish;
    std::atomic<std::size_t> open_clients{0};
    for (unsigned i = 0; i < workers; ++i) {
        worker_list.push_back(op::Worker::create(snapshot, *tls, open_clients, registry, access_log.get(), error));
        if (!worker_list.back()) {
            op::log_line("Error: cannot listen on %s: %s", config.listen.text.c_str(), error.c_str());
            return 1;
        }
    }
    for (auto& w : worker_list) w->serve_tls(listener_tls.get());
    Reloader reloader(argc, argv, snapshot, registry, worker_list);
    worker_list[0]->on_reload([&reloader] { reloader.reload(); });
    std::vector<op::Worker*> published;
    for (auto& w : worker_list) published.push_back(w.get());
    g_workers.publish(published.data(), workers);
    if (g_signals > 0)  // arrived before the loops existed: stop them now
        for (auto& w : worker_list) w->request_stop();
    std::uint16_t port = config.listen.port;
    std::shared_ptr<op::ListenSocket> socket;
    for (auto& w : worker_list) {
        if (!socket || socket_per_worker) {
            const op::net::PortShare share = workers == 1 || !socket_per_worker ? op::net::PortShare::Alone
                                             : socket                        ? op::net::PortShare::Join
                                                                             : op::net::PortShare::First;
            op::SocketHandle fd = op::net::listen_tcp(config.listen.host, port, 1024, share, error);
            if (fd == op::kInvalidSocket) {
                op::log_line("Error: cannot listen on %s: %s", config.listen.text.c_str(), error.c_str());
                return 1;
            }
            socket = std::make_shared<op::ListenSocket>(fd);
            port = op::net::local_port(fd);  // an ephemeral port (0) is chosen once
        }
        if (!w->listen(socket, error)) {
            op::log_line("Error: cannot listen on %s: %s", config.listen.text.c_str(), error.c_str());
            return 1;
        }
    }
    socket.reset();  // the workers hold it now
    if (config.admin_listen) {
        const op::ListenAddress& a = *config.admin_listen;
        op::SocketHandle fd = op::net::listen_tcp(a.host, a.port, 64, op::net::PortShare::Alone, error);
        if (fd == op::kInvalidSocket || !worker_list[0]->listen_admin(fd, error)) {
            op::log_line("Error: cannot listen on %s (-admin-listen): %s", a.text.c_str(), error.c_str());
            return 1;
        }
        op::log_line("Serving /healthz and /metrics on %s", a.text.c_str());
    }
    if (access_log) {
        access_log->start();
        op::AccessLog* log = access_log.get();
        g_access_log.publish(&log, 1);
    }
    op::log_line("Starting proxy server on %s", config.listen.text.c_str());
    // A loop whose backend fails returns 1; the others are then stopped as by a signal,
    // and the process exits with that status.
    std::vector<int> status(workers, 0);
    auto run_worker = [&worker_list, &status](unsigned i) {
        status[i] = worker_list[i]->run();
        if (status[i] != 0)
            for (auto& w : worker_list) w->request_stop();
    };
    std::vector<std::thread> threads;
    for (unsigned i = 1; i < workers; ++i) threads.emplace_back(run_worker, i);
    run_worker(0);
    for (auto& t : threads) t.join();
    for (int s : status)
        if (s != 0) return s;
    return 0;
}
