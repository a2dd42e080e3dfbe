// The listener's TLS (-tls-cert, -tls-key): the server context that new connections
// get, replaced as a whole by reload() (SIGHUP), so that a renewed certificate serves
// new connections while those already open keep theirs. A reload that fails (a file
// missing, half written, a key that does not match) keeps the context in use.
#pragma once

#include <memory>
#include <string>

#include "tls.h"

namespace op {

class ListenerTls {
public:
    ListenerTls(std::string cert_file, std::string key_file)
        : cert_file_(std::move(cert_file)), key_file_(std::move(key_file)) {}

    // The first load, at start: false and `error` when the files cannot be used.
    bool load(std::string& error);
    // Loads both files again; logs the outcome. Any thread; the workers go on meanwhile.
    void reload();
    // A session for a connection just accepted: nullptr when the library cannot make one.
    std::unique_ptr<TlsSession> new_session() const;

private:
    const std::string cert_file_;
    const std::string key_file_;
    std::shared_ptr<TlsServerContext> current_;  // read and replaced with std::atomic_load/store
};

}  // namespace op
