// openai-proxy: entry point. Parses the configuration (every error at once, exit 2
// before anything binds), builds the TLS context, binds, and runs the loop.
#include <csignal>
#include <cstdio>
#include <cstdlib>

#include "config.h"
#include "log.h"
#include "server.h"
#include "socket.h"
#include "tls.h"

namespace {

op::Server* g_server = nullptr;  // only for the signal handler
volatile std::sig_atomic_t g_signals = 0;

void on_terminate(int) {
    // First signal: graceful stop. Second: exit at once.
    if (++g_signals >= 2) std::_Exit(1);
    if (g_server) g_server->request_stop();
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

    op::sys::raise_fd_limit();
    op::Server server(config, *tls);
    if (!server.listen(error)) {
        op::log_line("Error: cannot listen on %s: %s", config.listen.text.c_str(), error.c_str());
        return 1;
    }
    g_server = &server;
    op::sys::on_terminate_signal(on_terminate);
    op::log_line("Starting proxy server on %s", config.listen.text.c_str());
    int status = server.run();
    g_server = nullptr;
    return status;
}
