#include "listener_tls.h"

#include <atomic>

#include "log.h"

namespace op {

bool ListenerTls::load(std::string& error) {
    std::shared_ptr<TlsServerContext> ctx = TlsServerContext::load(cert_file_, key_file_, error);
    if (!ctx) return false;
    std::atomic_store(&current_, std::move(ctx));
    return true;
}

void ListenerTls::reload() {
    std::string error;
    if (load(error)) log_line("Reloaded the TLS certificate from %s", cert_file_.c_str());
    else log_line("Error: cannot reload the TLS certificate (the one in use stays): %s", error.c_str());
}

std::unique_ptr<TlsSession> ListenerTls::new_session() const {
    std::shared_ptr<TlsServerContext> ctx = std::atomic_load(&current_);
    return ctx ? ctx->new_session() : nullptr;
}

}  // namespace op
