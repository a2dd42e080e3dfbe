// TLS over memory buffers, for upstream connections (and for the listener: see
// TlsServerContext at the end). The engine never owns a socket, so the same code serves
// every event-loop backend. The owner moves ciphertext between the socket
// and the engine: bytes read from the socket go in with feed_ciphertext(); bytes to
// send are sent straight from the engine's queue (peek_ciphertext/drop_ciphertext).
// Plaintext goes through read()/write().
//
// Verification is always on: certificate chain against the trust store, and the
// peer's name (DNS name or IP address) against `server_name`, which is also sent as
// SNI when it is a DNS name; an absolute name's trailing dot is left out of both.
// Sessions are resumed per "host:port" from a cache in the TlsClientContext (TLS 1.2
// sessions and TLS 1.3 tickets alike).
//
// Two implementations, one per build, picked by CMake's OP_TLS: tls_openssl.cpp
// (OpenSSL, the default on desktop and server builds) and tls_mbedtls.cpp (mbed TLS
// 2.28, TLS 1.2 only, for small builds). Each is one file and the only one to include
// its library's headers; what does not depend on the library (choosing and checking the
// trust store, host names, PEM and DER reading, the session cache) is shared in
// tls_common.cpp behind tls_internal.h. Both backends behave alike and word failures
// alike, in OpenSSL's terms ("certificate verify failed: hostname mismatch").
#pragma once

#include <cstddef>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

namespace op {

// Bytes per send, to clients and upstreams alike, and so plaintext per TLS write: one
// full record. Larger sends (four records in one) cost more CPU on Linux loopback with
// BBR's pacing, not less: the send then goes out partly from a timer and softirq
// (bench/results.md, issue 17). Only what is already buffered is written: a small answer
// or an SSE event leaves at once.
inline constexpr std::size_t kSendChunk = 16 * 1024;

enum class TlsStatus {
    Ok,          // progress made (bytes moved, or handshake finished)
    WantRead,    // needs more ciphertext from the peer (feed_ciphertext)
    Closed,      // peer sent close_notify (clean end of stream)
    Error,       // fatal: verification failure, protocol error; see error()
};

struct TrustSettings {
    std::string ca_file;        // -ca-file; wins over everything when non-empty
    std::string env_cert_file;  // SSL_CERT_FILE (may be empty)
    std::string env_cert_dir;   // SSL_CERT_DIR (may be empty)
    bool os_store = false;      // the system has a trust store outside files (sys::has_os_trust_store)
};

class TlsClientContext {
public:
    // A context with the trust store chosen by `choose_trust_store`. Only the cheap
    // checks run here: something was found; a file can be read and holds a PEM
    // certificate (its BEGIN line); a directory exists. Returns nullptr and sets
    // `error` otherwise. The TLS library and the certificates are loaded by ready().
    static std::unique_ptr<TlsClientContext> create(const TrustSettings& trust, std::string& error);
    virtual ~TlsClientContext() = default;
    // Which file or directory (or the system's store) the trust store comes from.
    virtual const std::string& trust_source() const = 0;
    // Initialises the TLS library and loads the trust store, on the first call only (a
    // few milliseconds), from whichever thread makes it; concurrent callers wait for it.
    // false and `error` if that failed, for good: e.g. "-ca-file x.pem holds no usable
    // PEM certificates (...)". TlsSession::create calls it; calling it earlier takes
    // the cost off the first handshake.
    virtual bool ready(std::string& error) = 0;
};

// First match wins: ca_file; SSL_CERT_FILE / SSL_CERT_DIR; the system's own store where
// it has one outside files (os_store: Windows' ROOT and CA stores); else the first existing bundle
// among the usual distro paths (Debian/Ubuntu, RHEL/Fedora, Alpine, OpenWrt, SUSE,
// Android), else the first existing directory of hashed certificates. ca_file is taken
// as given (create() fails naming it if unusable); SSL_CERT_FILE and SSL_CERT_DIR
// count only when they exist, and may both be used. SSL_CERT_DIR may list several
// directories, as OpenSSL and Go read it (kCertDirSeparator between them); those that
// exist are kept. The existence checks are injectable for tests. Returns an empty file
// and dir when nothing is found.
#ifdef _WIN32
inline constexpr char kCertDirSeparator = ';';
#else
inline constexpr char kCertDirSeparator = ':';
#endif
// The directories of such a list, in order, empty parts left out.
template <class F>
void for_each_cert_dir(std::string_view list, F&& f) {
    while (!list.empty()) {
        std::size_t end = list.find(kCertDirSeparator);
        std::string_view dir = list.substr(0, end);
        list = end == std::string_view::npos ? std::string_view() : list.substr(end + 1);
        if (!dir.empty()) f(std::string(dir));
    }
}
struct TrustChoice {
    std::string file;
    std::string dir;  // one directory, or several joined by kCertDirSeparator
    bool os_store = false;  // the system's store (sys::os_trust_store), and nothing else
};
TrustChoice choose_trust_store(const TrustSettings& trust,
                               bool (*file_exists)(const std::string&),
                               bool (*dir_exists)(const std::string&));

class TlsSession {
public:
    // nullptr when ctx.ready() fails (ask it for the reason), when `server_name` is
    // empty, or when the library cannot allocate the session.
    static std::unique_ptr<TlsSession> create(TlsClientContext& ctx, std::string_view server_name,
                                              unsigned short port);
    virtual ~TlsSession() = default;

    // Ciphertext side.
    virtual void feed_ciphertext(const char* data, std::size_t len) = 0;
    // The same without a copy: room for up to `cap` bytes at the end of the engine's
    // input (nullptr if it cannot grow), filled by the caller (a socket read), then
    // commit_ciphertext() with the count filled, 0 included. Nothing else in between.
    virtual char* ciphertext_space(std::size_t cap) = 0;
    virtual void commit_ciphertext(std::size_t n) = 0;
    virtual std::size_t pending_ciphertext() const = 0;  // bytes waiting to be sent
    // Every byte waiting to be sent, contiguous, to hand to send() as it is; then
    // drop_ciphertext() what was sent. The view is valid until the next call.
    virtual std::string_view peek_ciphertext() const = 0;
    virtual void drop_ciphertext(std::size_t n) = 0;
    // While set, ciphertext goes to send(ctx, bytes, n) as the engine makes it, record by
    // record, whenever nothing waits in the queue before it; what send does not take (n
    // minus its return) is queued as before. For an owner whose socket takes the engine's
    // bytes as they come (nothing of its own to send first): it spares copying every
    // record into the queue (bench/results.md, issue 17). send returns 0 for EAGAIN and
    // errors alike; the queued bytes meet the error on the owner's next send. nullptr: off.
    using DirectSend = std::size_t (*)(void* ctx, const char* data, std::size_t len);
    virtual void set_direct_send(DirectSend send, void* ctx) = 0;
    // Copies up to cap waiting bytes to `out` and drops them.
    std::size_t take_ciphertext(char* out, std::size_t cap) {
        std::string_view c = peek_ciphertext();
        std::size_t n = c.size() < cap ? c.size() : cap;
        if (n > 0) std::memcpy(out, c.data(), n);
        drop_ciphertext(n);
        return n;
    }

    // Drives the handshake; Ok once it has completed (then call no more).
    virtual TlsStatus handshake() = 0;
    virtual bool handshake_done() const = 0;
    virtual bool session_reused() const = 0;

    // Plaintext side. read(): Ok with *n > 0, WantRead, Closed or Error.
    // write(): Ok with *n == len (the engine buffers ciphertext), or Error.
    virtual TlsStatus read(char* out, std::size_t cap, std::size_t* n) = 0;
    virtual TlsStatus write(const char* data, std::size_t len, std::size_t* n) = 0;
    // Bytes of plaintext already decrypted or ciphertext buffered and not yet read.
    virtual bool has_buffered_input() const = 0;
    // Gives the engine's record buffers back if no partial record needs them (for a
    // connection about to sit idle). Both backends also do it by themselves whenever a
    // read runs dry.
    virtual void release_buffers() = 0;

    // Queues a close_notify alert (the clean end of the stream, RFC 8446 section 6.1)
    // once the handshake is done and nothing failed; the owner sends it like any other
    // ciphertext. No-op otherwise.
    virtual void close_notify() = 0;

    // The last error as one line, without library internals beyond the reason.
    virtual const std::string& error() const = 0;
};

// Server-side TLS, for the listening socket (-tls-cert / -tls-key): TLS 1.2 and, where
// the library has it, 1.3; forward-secret AEAD suites only; ALPN "http/1.1" (a client
// that offers ALPN without it is refused with no_application_protocol, RFC 7301); no
// renegotiation; resumption through session tickets, whose key lives and dies with the
// context. Client certificates are not asked for. Sessions come from new_session() and
// behave as in tls.h above, with handshake() answering the client's hello.
class TlsServerContext {
public:
    // Reads the certificate chain (PEM: the server's certificate first, then the
    // intermediates a client needs) and its private key (PEM, not encrypted). nullptr and
    // `error`, one line naming the file, when either cannot be read or used, when they do
    // not belong together, or when this build's TLS library has no server side.
    static std::shared_ptr<TlsServerContext> load(const std::string& cert_file, const std::string& key_file,
                                                  std::string& error);
    virtual ~TlsServerContext() = default;
    // A session for one accepted connection, keeping what it needs of this context alive
    // (a reload may drop the context first); nullptr when the library cannot allocate one.
    virtual std::unique_ptr<TlsSession> new_session() = 0;
};

}  // namespace op
