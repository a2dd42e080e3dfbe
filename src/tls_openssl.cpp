// The OpenSSL backend of tls.h (OP_TLS=openssl): the only file that includes OpenSSL's
// headers. What does not depend on the library is in tls_common.cpp.
//
// Ciphertext moves through two byte queues owned by the session and exposed to
// OpenSSL as a custom BIO. OpenSSL's own memory BIO keeps its largest-ever buffer for
// the life of the connection; these queues free their storage whenever they drain, so
// together with SSL_MODE_RELEASE_BUFFERS an idle pooled connection holds no I/O
// buffers at all: the target is at most 24 KiB per held upstream connection.
//
// Error queue discipline: every entry point clears OpenSSL's thread-local error queue
// first and drains it before returning, so one session's failure text never shows up
// in another session's error().
#include "tls_internal.h"

#include <cstdint>
#include <mutex>
#include <vector>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

namespace op::tls_internal {
namespace {

// ALPN offer, in wire format: we speak HTTP/1.1 only.
constexpr unsigned char kAlpnHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};

// BIO glue: one BIO per session serves both directions (SSL_set_bio with the same BIO
// twice: a BIO and its lock cost about 200 bytes per connection); its data pointer is
// the session's pair of queues. Writes always take every byte (the queue grows; the
// socket owner bounds it by how much plaintext it writes); reads from an empty queue
// ask OpenSSL to retry, which surfaces as WANT_READ.
struct QueuePair {
    CipherQueue* in;   // ciphertext from the peer
    CipherQueue* out;  // ciphertext for the peer
};

int queue_bio_write(BIO* bio, const char* in, int len) {
    BIO_clear_retry_flags(bio);
    if (len <= 0) return 0;
    static_cast<QueuePair*>(BIO_get_data(bio))->out->emit(in, static_cast<std::size_t>(len));
    return len;
}

int queue_bio_read(BIO* bio, char* out, int cap) {
    BIO_clear_retry_flags(bio);
    auto* queue = static_cast<QueuePair*>(BIO_get_data(bio))->in;
    if (cap <= 0) return 0;
    if (queue->size() == 0) {
        BIO_set_retry_read(bio);
        return -1;
    }
    return static_cast<int>(queue->take(out, static_cast<std::size_t>(cap)));
}

long queue_bio_ctrl(BIO* bio, int cmd, long, void*) {
    switch (cmd) {
        case BIO_CTRL_FLUSH: return 1;  // nothing is held back below the queue
        case BIO_CTRL_PENDING:
            return static_cast<long>(static_cast<QueuePair*>(BIO_get_data(bio))->in->size());
        default: return 0;              // not EOF, no kTLS, no push/pop interest
    }
}

// The method table is process-wide and immutable once built (magic static: thread-safe).
const BIO_METHOD* queue_bio_method() {
    struct Holder {
        BIO_METHOD* method;
        Holder() : method(BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "op cipher queue")) {
            if (!method) return;
            BIO_meth_set_write(method, queue_bio_write);
            BIO_meth_set_read(method, queue_bio_read);
            BIO_meth_set_ctrl(method, queue_bio_ctrl);
        }
        ~Holder() { BIO_meth_free(method); }
    };
    static const Holder holder;
    return holder.method;
}

BIO* new_queue_bio(QueuePair* queues) {
    const BIO_METHOD* method = queue_bio_method();
    if (!method) return nullptr;
    BIO* bio = BIO_new(method);
    if (!bio) return nullptr;
    BIO_set_data(bio, queues);
    BIO_set_init(bio, 1);
    return bio;
}

// The oldest queued OpenSSL error as a bare reason ("wrong version number"), then an
// empty queue. `fallback` when OpenSSL recorded nothing.
// The error queue is per thread and shared by every session of a worker; each failing
// call drains it (take_openssl_error), so it is normally empty. Peeking is much cheaper
// than clearing all sixteen slots before every read and write (bench/results.md).
void clear_stale_errors() {
    if (ERR_peek_error() != 0) ERR_clear_error();
}

std::string take_openssl_error(const char* fallback) {
    unsigned long code = ERR_get_error();
    ERR_clear_error();
    if (code == 0) return fallback;
    if (const char* reason = ERR_reason_error_string(code)) return reason;
    char buf[256];
    ERR_error_string_n(code, buf, sizeof buf);
    return buf;
}

// A PEM CA bundle loaded on demand. OpenSSL 3.0 takes about 0.25 ms to decode one
// certificate (mostly its public key), so a distro bundle of ~140 costs 30-40 ms and
// 0.8 MiB as X509 objects, while a verification needs one or two of them. Here the
// bundle is read once into DER (about 1 KB per certificate) and indexed by the
// subject-name hash OpenSSL uses for hashed directories (X509_NAME_hash: canonical
// form, so names that differ in case or spacing match as in X509_NAME_cmp). When the
// verifier looks for an issuer (X509_STORE's get_issuer), the certificates whose
// subject has that hash are decoded and added to the store first, once; then the
// store's own lookup runs as usual. The trusted set is the bundle, exactly: only its
// certificates ever enter the store, and a certificate that cannot be found or
// decoded is simply not trusted (verification fails, it never passes by default).
class CaBundle {
public:
    // Takes one certificate of the bundle (read_pem_bundle's take): false if its
    // subject name does not decode, which makes the bundle malformed.
    bool add(PemCertificate& cert) {
        Entry entry;
        const auto* name_der = reinterpret_cast<const unsigned char*>(cert.der.data()) + cert.subject_offset;
        X509_NAME* name = d2i_X509_NAME(nullptr, &name_der, static_cast<long>(cert.subject_len));
        if (!name) return false;
        entry.subject_hash = X509_NAME_hash(name);
        X509_NAME_free(name);
        entry.aux = cert.trusted_form;
        entry.der = std::move(cert.der);
        entries_.push_back(std::move(entry));
        return true;
    }

    // Adds to `store` the bundle's certificates that may have issued `cert`.
    void add_issuers_of(X509* cert, X509_STORE* store) {
        // In the middle of a handshake: whatever this adds to the thread's error queue is
        // removed again, and nothing that was there before.
        ERR_set_mark();
        unsigned long hash = X509_NAME_hash(X509_get_issuer_name(cert));
        std::lock_guard<std::mutex> lock(mutex_);
        // A linear scan: a few hundred entries at most, and only on full handshakes.
        for (auto it = entries_.begin(); it != entries_.end(); ++it) {
            if (it->subject_hash != hash || it->added) continue;
            it->added = true;  // decoded once, whatever the outcome
            const auto* p = reinterpret_cast<const unsigned char*>(it->der.data());
            long len = static_cast<long>(it->der.size());
            X509* x = it->aux ? d2i_X509_AUX(nullptr, &p, len) : d2i_X509(nullptr, &p, len);
            if (x) {
                X509_STORE_add_cert(store, x);  // takes its own reference
                X509_free(x);
            }
            it->der = std::string();  // the store has it now (or it is unusable)
        }
        ERR_pop_to_mark();
    }

private:
    struct Entry {
        std::string der;
        unsigned long subject_hash = 0;
        bool aux = false;
        bool added = false;
    };

    std::mutex mutex_;
    std::vector<Entry> entries_;  // in file order
};

// The trust store is chosen and checked when the context is created, but OpenSSL's
// side (library initialisation, which reads openssl.cnf; SSL_CTX_new, which fetches
// every algorithm from the provider; indexing the CA bundle, see CaBundle) is built on
// first use, once: about 3 ms of CPU with a one-certificate -ca-file, 6 ms with a
// distro bundle. A proxy that has not yet talked TLS to anyone has paid for none of it,
// and starts listening in about a millisecond.
//
// The session cache: "host:port" -> the latest resumable session (TLS 1.2 session or
// TLS 1.3 ticket) seen for it; each resumed connection's own new tickets replace it.
// OpenSSL treats a TLS 1.3 ticket as single-use: once a handshake has resumed with a
// session object, that object stops being resumable. Connections opened while one was
// resuming with the cached object then found nothing to resume with until the next
// ticket arrived: with 2,000 streams opened 256 at a time, 509 of 2,001 handshakes were
// full ones, and each full handshake keeps its own parsed copy of the server's chain
// (4-5 KB per certificate with OpenSSL 3.0). So each connection resumes with a copy
// (SSL_SESSION_dup, about 1 KB, freed when its own tickets arrive) and the cached
// object stays resumable until a newer ticket replaces it. Guarded by a mutex because
// a context may be shared by several loops; OpenSSL's own SSL_CTX is already
// thread-safe.
struct SessionFree {
    void operator()(SSL_SESSION* session) const { SSL_SESSION_free(session); }
};
using SessionPtr = std::unique_ptr<SSL_SESSION, SessionFree>;

class OpenSslContext final : public TlsContextBase {
public:
    OpenSslContext(TrustChoice trust, std::string file_label, std::string trust_source)
        : TlsContextBase(std::move(trust), std::move(file_label), std::move(trust_source)) {}

    ~OpenSslContext() override {
        if (ctx_) {
            // Sessions still alive keep the SSL_CTX (refcounted) but must not call back
            // into this object: on_new_session checks for null.
            SSL_CTX_set_app_data(ctx_, nullptr);
            SSL_CTX_free(ctx_);
        }
    }

    std::unique_ptr<TlsSession> new_session(const std::string& host, std::string cache_key) override;

    // Only after ready() returned true.
    SSL_CTX* ssl_ctx() const { return ctx_; }
    CaBundle* bundle() const { return bundle_.get(); }

    // Takes ownership of `session` (one reference), replacing any older one for `key`.
    void store(const std::string& key, SSL_SESSION* session) {
        const std::int64_t expires = static_cast<std::int64_t>(SSL_SESSION_get_time(session)) +
                                     static_cast<std::int64_t>(SSL_SESSION_get_timeout(session));
        cache_.store(key, SessionPtr(session), expires);
    }

    // Offers a copy of the cached session for `key` to `ssl` (see above), dropping the
    // cached one if it has expired or OpenSSL has invalidated it (a connection that
    // stored it ended in a fatal alert).
    void offer(const std::string& key, SSL* ssl) {
        cache_.offer(key, [ssl](SSL_SESSION* session) {
            if (SSL_SESSION_is_resumable(session) != 1) return false;
            if (SSL_SESSION* copy = SSL_SESSION_dup(session)) {
                SSL_set_session(ssl, copy);  // takes its own reference
                SSL_SESSION_free(copy);
            }
            return true;
        });
    }

private:
    std::string build() override;

    std::unique_ptr<CaBundle> bundle_;  // trust().file, when there is one
    SSL_CTX* ctx_ = nullptr;            // set once by build(), when it succeeds
    SessionCache<SessionPtr> cache_;
};

class OpenSslSession final : public QueuedTlsSession {
public:
    explicit OpenSslSession(std::string key) : key_(std::move(key)) {}

    ~OpenSslSession() override {
        // SSL_free on a connection that never exchanged close_notify marks its session
        // not resumable, and that session object is the one in the cache: the pool
        // routinely closes idle connections without close_notify, which would defeat
        // resumption. Connections that ended in a fatal alert were already removed by
        // OpenSSL itself when the alert was sent, so marking the rest closed is safe.
        if (ssl_ && !failed_ && SSL_is_init_finished(ssl_)) {
            SSL_set_shutdown(ssl_, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
        }
        SSL_free(ssl_);  // frees the BIO; the queues it points at are members, still alive
    }

    // Second phase of construction; false leaves the object safe to destroy.
    bool init(OpenSslContext& ctx, const std::string& host) {
        ERR_clear_error();
        if (!attach(ctx.ssl_ctx())) return false;
        SSL_set_app_data(ssl_, this);
        SSL_set_connect_state(ssl_);

        bool ok;
        if (is_ip_literal(host)) {
            // No SNI for addresses (RFC 6066 forbids it); match the certificate's IP SANs.
            ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), host.c_str()) == 1;
        } else {
            SSL_set_hostflags(ssl_, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            ok = SSL_set_tlsext_host_name(ssl_, host.c_str()) == 1 && SSL_set1_host(ssl_, host.c_str()) == 1;
        }
        if (ok) ctx.offer(key_, ssl_);
        ERR_clear_error();
        return ok;
    }

    // The server side's second phase: the session answers a client's hello.
    bool init_server(SSL_CTX* ctx) {
        ERR_clear_error();
        if (!attach(ctx)) return false;
        SSL_set_accept_state(ssl_);
        return true;
    }

    const std::string& key() const { return key_; }

    TlsStatus handshake() override {
        if (failed_) return TlsStatus::Error;
        if (SSL_is_init_finished(ssl_)) return TlsStatus::Ok;
        clear_stale_errors();
        int rc = SSL_do_handshake(ssl_);
        if (rc == 1) {
            release_idle_buffers();
            return TlsStatus::Ok;
        }
        return classify(rc, true);
    }

    bool handshake_done() const override { return SSL_is_init_finished(ssl_) == 1; }
    bool session_reused() const override { return SSL_session_reused(ssl_) == 1; }

    TlsStatus read(char* out, std::size_t cap, std::size_t* n) override {
        *n = 0;
        if (failed_) return TlsStatus::Error;
        if (cap == 0) return TlsStatus::Ok;  // nothing asked for; callers pass cap > 0
        clear_stale_errors();
        int rc = SSL_read_ex(ssl_, out, cap, n);
        if (rc == 1) return TlsStatus::Ok;
        *n = 0;
        TlsStatus st = classify(rc, false);
        if (st == TlsStatus::WantRead) release_idle_buffers();
        return st;
    }

    TlsStatus write(const char* data, std::size_t len, std::size_t* n) override {
        *n = 0;
        if (failed_) return TlsStatus::Error;
        if (len == 0) return TlsStatus::Ok;
        clear_stale_errors();
        // Partial writes are off and the write BIO never refuses bytes, so success
        // means every byte is now ciphertext, sent or in out_: room for it there is made
        // up front unless it goes straight out.
        if (out_.queues_writes()) out_.reserve_more(len + (len / kMaxRecordPlaintext + 1) * kRecordOverhead);
        int rc = SSL_write_ex(ssl_, data, len, n);
        if (rc == 1) return TlsStatus::Ok;
        *n = 0;
        TlsStatus st = classify(rc, false);
        if (st != TlsStatus::Error) {
            // WANT_READ (a renegotiation in flight) or a received close_notify: the
            // bytes cannot go out, which for this caller is a failed exchange.
            failed_ = true;
            error_ = st == TlsStatus::Closed ? "peer closed the TLS session"
                                             : "TLS write blocked by renegotiation";
            st = TlsStatus::Error;
        }
        return st;
    }

    bool has_buffered_input() const override {
        return SSL_pending(ssl_) > 0 || SSL_has_pending(ssl_) == 1 || in_.size() > 0;
    }

    void release_buffers() override { release_idle_buffers(); }

    void close_notify() override {
        if (failed_ || !SSL_is_init_finished(ssl_)) return;
        clear_stale_errors();
        SSL_shutdown(ssl_);  // queues the alert; the peer's own is not waited for
        ERR_clear_error();
    }

private:
    // A new SSL of `ctx`, reading and writing through the session's two queues.
    bool attach(SSL_CTX* ctx) {
        ssl_ = SSL_new(ctx);
        if (!ssl_) return false;
        BIO* bio = new_queue_bio(&queues_);
        if (!bio) {
            ERR_clear_error();
            return false;
        }
        SSL_set_bio(ssl_, bio, bio);  // the same BIO both ways: takes our one reference
        return true;
    }

    // RELEASE_BUFFERS frees a record buffer only on the path that empties it, and a
    // TLS 1.3 post-handshake message (a session ticket, read inside SSL_read) leaves
    // a 16 KiB write buffer behind until the next SSL_write: a pooled connection
    // would hold it for its whole idle life. SSL_free_buffers drops both buffers, but
    // OpenSSL releases before 3.0.14 (CVE-2024-4741) free a buffer that still holds
    // a partial record, so it is only called when none can exist: every byte fed has
    // been taken and those bytes end exactly at a record boundary.
    void release_idle_buffers() {
        if (in_.size() == 0 && in_.taken_whole_records() && SSL_has_pending(ssl_) == 0) {
            SSL_free_buffers(ssl_);
        }
    }

    // Maps a failed SSL_* call to a status; fatal errors become sticky with a one-line
    // reason. In the handshake a failed verification names the X.509 reason.
    TlsStatus classify(int rc, bool in_handshake) {
        int err = SSL_get_error(ssl_, rc);
        switch (err) {
            case SSL_ERROR_WANT_READ:
                clear_stale_errors();
                return TlsStatus::WantRead;
            case SSL_ERROR_ZERO_RETURN:
                clear_stale_errors();
                return TlsStatus::Closed;
            default: break;
        }
        failed_ = true;
        long verify = SSL_get_verify_result(ssl_);
        if (in_handshake && verify != X509_V_OK) {
            ERR_clear_error();
            error_ = verify_failed(X509_verify_cert_error_string(verify));
        } else if (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
            error_ = "unexpected end of TLS stream";
        } else {
            error_ = take_openssl_error("TLS protocol error");
        }
        return TlsStatus::Error;
    }

    std::string key_;   // "host:port", the session-cache key
    QueuePair queues_{&in_, &out_};  // the BIO's view of the queues
    SSL* ssl_ = nullptr;
};

// OpenSSL hands us a reference to every new resumable session, including TLS 1.3
// tickets that arrive after the handshake, inside SSL_read. Returning 1 keeps it.
int on_new_session(SSL* ssl, SSL_SESSION* session) {
    auto* ctx = static_cast<OpenSslContext*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
    auto* owner = static_cast<OpenSslSession*>(SSL_get_app_data(ssl));
    if (!ctx || !owner || SSL_SESSION_is_resumable(session) != 1) return 0;
    ctx->store(owner->key(), session);
    return 1;
}

// X509_STORE's get_issuer, called by the verifier for each certificate whose issuer it
// looks for among the trusted ones: the bundle's candidates go into the store first.
int get_issuer_from_bundle(X509** issuer, X509_STORE_CTX* store_ctx, X509* cert) {
    auto* ssl = static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store_ctx, SSL_get_ex_data_X509_STORE_CTX_idx()));
    auto* ctx = ssl ? static_cast<OpenSslContext*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl))) : nullptr;
    if (ctx && ctx->bundle()) ctx->bundle()->add_issuers_of(cert, X509_STORE_CTX_get0_store(store_ctx));
    return X509_STORE_CTX_get1_issuer(issuer, store_ctx, cert);
}

// The chain's verification (SSL_CTX_set_cert_verify_callback), run as OpenSSL would
// run it, with one flag more for a server certificate that has a subjectAltName:
// X509_check_host falls back to the subject's CN whenever the certificate has no DNS
// name, even when it names the server by address or URI only. RFC 6125 6.4.4 matches
// such a certificate against its subjectAltName alone, as Go and mbedTLS do; the CN
// still counts for a certificate without one (mbedTLS reads it then too).
int verify_chain(X509_STORE_CTX* store_ctx, void*) {
    X509* leaf = X509_STORE_CTX_get0_cert(store_ctx);
    if (leaf && X509_get_ext_by_NID(leaf, NID_subject_alt_name, -1) >= 0) {
        X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(store_ctx);
        X509_VERIFY_PARAM_set_hostflags(param,
                                        X509_VERIFY_PARAM_get_hostflags(param) | X509_CHECK_FLAG_NEVER_CHECK_SUBJECT);
    }
    return X509_verify_cert(store_ctx);
}

}  // namespace

std::string OpenSslContext::build() {
    ERR_clear_error();
    SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) return "cannot create TLS context: " + take_openssl_error("out of memory");
    auto fail = [&](std::string message) {
        SSL_CTX_free(ctx);
        ERR_clear_error();
        return message;
    };

    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
        return fail("cannot require TLS 1.2: " + take_openssl_error("unsupported"));
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    SSL_CTX_set_cert_verify_callback(ctx, verify_chain, nullptr);
    // RELEASE_BUFFERS: record buffers exist only while a record is in flight.
    // Partial writes stay off: SSL_write_ex encrypts everything into the queue.
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_set_alpn_protos(ctx, kAlpnHttp11, sizeof kAlpnHttp11) != 0) {  // 0 is success here
        return fail("cannot set ALPN: " + take_openssl_error("out of memory"));
    }
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, on_new_session);

    // Loaded explicitly, never via SSL_CTX_set_default_verify_paths: a static build's
    // defaults point at its build machine.
    if (!trust().file.empty()) {
        auto bundle = std::make_unique<CaBundle>();
        std::string error;
        if (!read_trust_file([&bundle](PemCertificate& cert) { return bundle->add(cert); }, error)) {
            return fail(error);
        }
        X509_STORE_set_get_issuer(SSL_CTX_get_cert_store(ctx), get_issuer_from_bundle);
        bundle_ = std::move(bundle);
    }
    if (!trust().dir.empty() && SSL_CTX_load_verify_locations(ctx, nullptr, trust().dir.c_str()) != 1) {
        return fail("cannot use CA directory " + trust().dir + ": " + take_openssl_error("unknown error"));
    }
    // The system's own store is Windows', whose builds use the mbedTLS backend (CMake).
    if (trust().os_store) return fail("the system certificate stores need the mbedTLS backend; pass -ca-file");
    ERR_clear_error();
    SSL_CTX_set_app_data(ctx, this);
    ctx_ = ctx;
    return "";
}

std::unique_ptr<TlsSession> OpenSslContext::new_session(const std::string& host, std::string cache_key) {
    auto session = std::make_unique<OpenSslSession>(std::move(cache_key));
    if (!session->init(*this, host)) return nullptr;
    return session;
}

bool trust_file_indexed() { return false; }  // OpenSSL decodes a bundle's certificates as needed

std::unique_ptr<TlsContextBase> new_tls_context(TrustChoice trust, std::string file_label, std::string trust_source) {
    return std::make_unique<OpenSslContext>(std::move(trust), std::move(file_label), std::move(trust_source));
}

namespace {

// The listener's side (tls.h, TlsServerContext). An SSL_CTX is reference-counted and
// each SSL holds one reference, so a session outlives a context that a reload dropped.
class OpenSslServerContext final : public TlsServerContext {
public:
    explicit OpenSslServerContext(SSL_CTX* ctx) : ctx_(ctx) {}
    ~OpenSslServerContext() override { SSL_CTX_free(ctx_); }
    OpenSslServerContext(const OpenSslServerContext&) = delete;
    OpenSslServerContext& operator=(const OpenSslServerContext&) = delete;

    std::unique_ptr<TlsSession> new_session() override {
        auto session = std::make_unique<OpenSslSession>(std::string());
        if (!session->init_server(ctx_)) return nullptr;
        return session;
    }

private:
    SSL_CTX* ctx_;
};

// ALPN (RFC 7301): http/1.1 when the client offers it; a client offering only others
// (h2 alone) is refused with no_application_protocol rather than answered in a protocol
// it did not ask for.
int select_http11(SSL*, const unsigned char** out, unsigned char* out_len, const unsigned char* in,
                  unsigned in_len, void*) {
    unsigned char* chosen = nullptr;
    if (SSL_select_next_proto(&chosen, out_len, kAlpnHttp11, sizeof kAlpnHttp11, in, in_len) !=
        OPENSSL_NPN_NEGOTIATED) {
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
    *out = chosen;
    return SSL_TLSEXT_ERR_OK;
}

// An encrypted key would make OpenSSL prompt on the terminal: no passphrase, a clear error.
int no_passphrase(char*, int, int, void*) { return 0; }

}  // namespace

}  // namespace op::tls_internal

namespace op {

std::shared_ptr<TlsServerContext> TlsServerContext::load(const std::string& cert_file, const std::string& key_file,
                                                         std::string& error) {
    using namespace tls_internal;
    ERR_clear_error();
    SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        error = "cannot create TLS context: " + take_openssl_error("out of memory");
        return nullptr;
    }
    auto fail = [&](std::string message) -> std::shared_ptr<TlsServerContext> {
        SSL_CTX_free(ctx);
        ERR_clear_error();
        error = std::move(message);
        return nullptr;
    };
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
        return fail("cannot require TLS 1.2: " + take_openssl_error("unsupported"));
    }
    // TLS 1.2: ECDHE with AES-GCM or ChaCha20-Poly1305 only; TLS 1.3's suites are all AEAD.
    if (SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20") != 1) {
        return fail("cannot set the TLS 1.2 cipher suites: " + take_openssl_error("unsupported"));
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    // Stateless resumption only (tickets): no per-session memory kept on our side.
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_alpn_select_cb(ctx, select_http11, nullptr);
    SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file.c_str()) != 1) {
        return fail("cannot use -tls-cert " + cert_file + ": " + take_openssl_error("no certificate"));
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
        std::string reason = take_openssl_error("no private key");
        if (reason == "key values mismatch") {  // checked against the certificate already
            return fail("-tls-key " + key_file + " is not the key of -tls-cert " + cert_file);
        }
        return fail("cannot use -tls-key " + key_file + ": " + reason);
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        return fail("-tls-key " + key_file + " is not the key of -tls-cert " + cert_file);
    }
    ERR_clear_error();
    return std::make_shared<OpenSslServerContext>(ctx);
}

}  // namespace op
