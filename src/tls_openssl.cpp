// The OpenSSL implementation of tls.h: the only file that includes OpenSSL's headers.
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
#include "tls.h"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <iterator>
#include <map>
#include <mutex>
#include <vector>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "sys.h"

namespace op {
namespace {

// Resumable sessions kept per context, one per "host:port"; the least recently
// stored one is dropped beyond this. A proxy talks to a handful of upstreams.
constexpr std::size_t kMaxCachedSessions = 256;

// TLS records carry at most 16 KiB of plaintext; what a record adds to it (header,
// explicit nonce, tag, CBC padding) stays well under 64 bytes for the AEAD suites of
// TLS 1.2 and 1.3. Only used to size the outgoing queue ahead of a write.
constexpr std::size_t kMaxRecordPlaintext = 16 * 1024;
constexpr std::size_t kRecordOverhead = 64;

// ALPN offer, in wire format: we speak HTTP/1.1 only.
constexpr unsigned char kAlpnHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};

// Follows TLS record framing (5-byte header: type, version, 16-bit length) over the
// bytes OpenSSL has taken, so we know when it cannot be holding part of a record.
class RecordTracker {
public:
    void consumed(const char* p, std::size_t n) {
        while (n > 0) {
            if (body_left_ > 0) {
                std::size_t k = std::min(n, body_left_);
                body_left_ -= k;
                p += k;
                n -= k;
                continue;
            }
            header_[header_len_++] = static_cast<unsigned char>(*p++);
            --n;
            if (header_len_ == sizeof header_) {
                body_left_ = (static_cast<std::size_t>(header_[3]) << 8) | header_[4];
                header_len_ = 0;
            }
        }
    }
    bool at_boundary() const { return header_len_ == 0 && body_left_ == 0; }

private:
    unsigned char header_[5] = {};
    std::size_t header_len_ = 0;
    std::size_t body_left_ = 0;
};

// A FIFO of ciphertext bytes. `head_` marks the first unread byte:
//
//   data_:  [ consumed | unread ............ ]
//           0          head_                size()
//
// Storage is released as soon as everything has been read (an idle connection holds
// nothing); a consumed prefix is compacted away before appending once it is at least
// half of the buffer, so a queue that never drains still stays bounded by its content.
class CipherQueue {
public:
    std::size_t size() const { return data_.size() - head_; }

    void append(const char* p, std::size_t n) {
        if (n == 0) return;
        if (head_ > 0 && head_ * 2 >= data_.size()) {
            data_.erase(data_.begin(), data_.begin() + static_cast<std::ptrdiff_t>(head_));
            head_ = 0;
        }
        data_.insert(data_.end(), p, p + n);
    }

    // Makes room for n more bytes at once, so that a large write appends into one
    // allocation instead of doubling (and copying) its way up record by record.
    void reserve_more(std::size_t n) {
        if (data_.capacity() - data_.size() >= n) return;
        if (head_ > 0) {
            data_.erase(data_.begin(), data_.begin() + static_cast<std::ptrdiff_t>(head_));
            head_ = 0;
        }
        data_.reserve(data_.size() + n);
    }

    // Read side used by OpenSSL (the incoming queue): tracks record boundaries.
    std::size_t take(char* out, std::size_t cap) {
        std::size_t n = std::min(cap, size());
        if (n == 0) return 0;
        std::memcpy(out, data_.data() + head_, n);
        records_.consumed(out, n);
        drop(n);
        return n;
    }

    // Read side used by the socket owner (the outgoing queue): no copy.
    std::string_view peek() const { return {data_.data() + head_, size()}; }
    void drop(std::size_t n) {
        head_ += std::min(n, size());
        if (head_ == data_.size()) {
            std::vector<char>().swap(data_);
            head_ = 0;
        }
    }

    // Whether everything taken so far ends exactly at a record boundary.
    bool taken_whole_records() const { return records_.at_boundary(); }

private:
    std::vector<char> data_;
    std::size_t head_ = 0;
    RecordTracker records_;
};

// BIO glue: the BIO's data pointer is the CipherQueue. Writes always take every byte
// (the queue grows; the socket owner bounds it by how much plaintext it writes);
// reads from an empty queue ask OpenSSL to retry, which surfaces as WANT_READ.
int queue_bio_write(BIO* bio, const char* in, int len) {
    BIO_clear_retry_flags(bio);
    if (len <= 0) return 0;
    static_cast<CipherQueue*>(BIO_get_data(bio))->append(in, static_cast<std::size_t>(len));
    return len;
}

int queue_bio_read(BIO* bio, char* out, int cap) {
    BIO_clear_retry_flags(bio);
    auto* queue = static_cast<CipherQueue*>(BIO_get_data(bio));
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
            return static_cast<long>(static_cast<CipherQueue*>(BIO_get_data(bio))->size());
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

BIO* new_queue_bio(CipherQueue* queue) {
    const BIO_METHOD* method = queue_bio_method();
    if (!method) return nullptr;
    BIO* bio = BIO_new(method);
    if (!bio) return nullptr;
    BIO_set_data(bio, queue);
    BIO_set_init(bio, 1);
    return bio;
}

// The oldest queued OpenSSL error as a bare reason ("wrong version number"), then an
// empty queue. `fallback` when OpenSSL recorded nothing.
// The error queue is per thread and shared by every session of a worker; each failing
// call drains it (take_openssl_error), so it is normally empty. Peeking is much cheaper
// than clearing all sixteen slots before every read and write (about 4k instructions
// per proxied request, measured with callgrind).
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

// How a trust file is named in errors: by the setting that chose it.
std::string describe_trust_file(const TrustSettings& trust, const std::string& file) {
    if (file == trust.ca_file) return "-ca-file " + file;
    if (file == trust.env_cert_file) return "SSL_CERT_FILE " + file;
    return "CA bundle " + file;
}

// Brackets are URL syntax, and a zone id ("%eth0") names a local interface, not
// anything a certificate can carry: neither takes part in verification.
std::string bare_host(std::string_view name) {
    if (name.size() >= 2 && name.front() == '[' && name.back() == ']') {
        name = name.substr(1, name.size() - 2);
    }
    std::string host(name);
    if (host.find(':') != std::string::npos) {
        std::size_t zone = host.find('%');
        if (zone != std::string::npos) host.resize(zone);
    }
    return host;
}

bool is_ip_literal(const std::string& host) {
    ASN1_OCTET_STRING* ip = a2i_IPADDRESS(host.c_str());
    if (!ip) return false;
    ASN1_OCTET_STRING_free(ip);
    return true;
}

// Whether the file holds a PEM block that OpenSSL's bundle loader takes (a certificate,
// or a CRL): the BEGIN line only, read in chunks until one is found. The cheap start-up
// check that keeps a wrong file (a key, a DER certificate, a text file) a start-up
// error, without parsing what it holds.
bool has_pem_begin_line(std::FILE* f) {
    static const char* const kBeginLines[] = {
        "-----BEGIN CERTIFICATE-----", "-----BEGIN TRUSTED CERTIFICATE-----",
        "-----BEGIN X509 CERTIFICATE-----", "-----BEGIN X509 CRL-----",
    };
    constexpr std::size_t kOverlap = 40;  // longer than any of them: a line split by a chunk
    char buf[8192];
    std::size_t have = 0;
    for (;;) {
        std::size_t n = std::fread(buf + have, 1, sizeof buf - have, f);
        if (n == 0) return false;
        have += n;
        std::string_view text(buf, have);
        for (const char* line : kBeginLines) {
            if (text.find(line) != std::string_view::npos) return true;
        }
        if (have > kOverlap) {
            std::memmove(buf, buf + have - kOverlap, kOverlap);
            have = kOverlap;
        }
    }
}

// One element of DER: its tag, and where its contents start and end.
struct DerElement {
    unsigned char tag;
    const unsigned char* body;
    const unsigned char* next;
};

bool der_element(const unsigned char* p, const unsigned char* end, DerElement& out) {
    if (end - p < 2 || (p[0] & 0x1f) == 0x1f) return false;  // no multi-byte tags in a Certificate
    out.tag = p[0];
    std::size_t len = p[1];
    const unsigned char* q = p + 2;
    if (len & 0x80) {
        std::size_t n = len & 0x7f;
        if (n == 0 || n > 4 || static_cast<std::size_t>(end - q) < n) return false;
        len = 0;
        for (std::size_t i = 0; i < n; ++i) len = (len << 8) | q[i];
        q += n;
    }
    if (static_cast<std::size_t>(end - q) < len) return false;
    out.body = q;
    out.next = q + len;
    return true;
}

// The subject Name of a DER Certificate (RFC 5280: tbsCertificate = [0] version,
// serialNumber, signature, issuer, validity, subject, ...), without decoding the rest.
bool der_subject(const std::string& der, const unsigned char** name, std::size_t* name_len) {
    const auto* p = reinterpret_cast<const unsigned char*>(der.data());
    DerElement cert, tbs, e;
    if (!der_element(p, p + der.size(), cert) || cert.tag != 0x30) return false;
    if (!der_element(cert.body, cert.next, tbs) || tbs.tag != 0x30) return false;
    const unsigned char* q = tbs.body;
    if (!der_element(q, tbs.next, e)) return false;
    if (e.tag == 0xa0) {  // explicit version
        q = e.next;
        if (!der_element(q, tbs.next, e)) return false;
    }
    if (e.tag != 0x02) return false;  // serialNumber
    q = e.next;
    for (int i = 0; i < 4; ++i) {  // signature, issuer, validity, subject: SEQUENCEs
        if (!der_element(q, tbs.next, e) || e.tag != 0x30) return false;
        if (i < 3) q = e.next;
    }
    *name = q;
    *name_len = static_cast<std::size_t>(e.next - q);
    return true;
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
    // The whole file; false (errno set) if it cannot be read.
    static bool read_file(const std::string& path, std::string& out) {
        std::FILE* f = std::fopen(path.c_str(), "rb");
        if (!f) return false;
        char buf[16384];
        std::size_t n;
        while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
        bool ok = std::ferror(f) == 0;
        int saved = errno;
        std::fclose(f);
        errno = saved;
        return ok;
    }

    // Indexes the PEM certificates in `text`: false and the reason if there is none,
    // or one is not well-formed (OpenSSL's own loader rejects such a file too).
    bool parse(const std::string& text, std::string& error) {
        static const struct {
            const char* begin;
            const char* end;
            bool aux;  // "TRUSTED CERTIFICATE": OpenSSL's trust settings follow the certificate
        } kBlocks[] = {
            {"-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----", false},
            {"-----BEGIN X509 CERTIFICATE-----", "-----END X509 CERTIFICATE-----", false},
            {"-----BEGIN TRUSTED CERTIFICATE-----", "-----END TRUSTED CERTIFICATE-----", true},
        };
        std::size_t pos = 0;
        for (;;) {
            std::size_t at = text.find("-----BEGIN ", pos);
            if (at == std::string::npos) break;
            const auto* kind = std::find_if(std::begin(kBlocks), std::end(kBlocks), [&](const auto& k) {
                return text.compare(at, std::strlen(k.begin), k.begin) == 0;
            });
            if (kind == std::end(kBlocks)) {  // a CRL, a key...: skipped, as unused for trust
                pos = at + 1;
                continue;
            }
            std::size_t body = at + std::strlen(kind->begin);
            std::size_t stop = text.find(kind->end, body);
            if (stop == std::string::npos) {
                error = "certificate " + std::to_string(entries_.size() + 1) + " has no END line";
                return false;
            }
            pos = stop + std::strlen(kind->end);
            Entry entry;
            entry.aux = kind->aux;
            if (!base64_decode(text.data() + body, stop - body, entry.der) || !index_subject(entry)) {
                error = "certificate " + std::to_string(entries_.size() + 1) + " is malformed";
                return false;
            }
            entries_.push_back(std::move(entry));
        }
        if (entries_.empty()) {
            error = "no certificate found";
            return false;
        }
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

    static bool base64_decode(const char* in, std::size_t len, std::string& out) {
        if (len > 1u << 20) return false;  // no certificate is a megabyte
        out.resize(len);                   // decoding shrinks
        EVP_ENCODE_CTX* ctx = EVP_ENCODE_CTX_new();
        if (!ctx) return false;
        EVP_DecodeInit(ctx);
        auto* o = reinterpret_cast<unsigned char*>(&out[0]);
        int n = 0, tail = 0;
        bool ok = EVP_DecodeUpdate(ctx, o, &n, reinterpret_cast<const unsigned char*>(in), static_cast<int>(len)) >= 0 &&
                  EVP_DecodeFinal(ctx, o + n, &tail) == 1;
        EVP_ENCODE_CTX_free(ctx);
        out.resize(ok ? static_cast<std::size_t>(n + tail) : 0);
        return ok && !out.empty();
    }

    static bool index_subject(Entry& entry) {
        const unsigned char* name_der;
        std::size_t name_len;
        if (!der_subject(entry.der, &name_der, &name_len)) return false;
        X509_NAME* name = d2i_X509_NAME(nullptr, &name_der, static_cast<long>(name_len));
        if (!name) return false;
        entry.subject_hash = X509_NAME_hash(name);
        X509_NAME_free(name);
        return true;
    }

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
// TLS 1.3 ticket) seen for it. OpenSSL treats a TLS 1.3 ticket as single-use (the
// object stops being resumable once a handshake has resumed with it); connections
// opened before that share it, and each resumed connection's own new tickets replace
// it. Guarded by a mutex because a context may be shared by several loops; OpenSSL's
// own SSL_CTX is already thread-safe.
class OpenSslContext final : public TlsClientContext {
public:
    OpenSslContext(TrustChoice trust, std::string file_label, std::string source)
        : trust_(std::move(trust)), file_label_(std::move(file_label)), trust_source_(std::move(source)) {}

    ~OpenSslContext() override {
        for (auto& entry : cache_) SSL_SESSION_free(entry.second.session);
        if (ctx_) {
            // Sessions still alive keep the SSL_CTX (refcounted) but must not call back
            // into this object: on_new_session checks for null.
            SSL_CTX_set_app_data(ctx_, nullptr);
            SSL_CTX_free(ctx_);
        }
    }

    const std::string& trust_source() const override { return trust_source_; }

    bool ready(std::string& error) override {
        std::call_once(built_, [this] { build(); });
        if (!ctx_) error = build_error_;
        return ctx_ != nullptr;
    }

    // Only after ready() returned true.
    SSL_CTX* ssl_ctx() const { return ctx_; }
    CaBundle* bundle() const { return bundle_.get(); }

    // Takes ownership of `session` (one reference), replacing any older one for `key`.
    void store(const std::string& key, SSL_SESSION* session) {
        std::lock_guard<std::mutex> lock(mutex_);
        auto it = cache_.find(key);
        if (it != cache_.end()) {
            SSL_SESSION_free(it->second.session);
            it->second = Entry{session, ++clock_};
            return;
        }
        if (cache_.size() >= kMaxCachedSessions) {
            auto oldest = std::min_element(cache_.begin(), cache_.end(), [](const auto& a, const auto& b) {
                return a.second.stamp < b.second.stamp;
            });
            SSL_SESSION_free(oldest->second.session);
            cache_.erase(oldest);
        }
        cache_.emplace(key, Entry{session, ++clock_});
    }

    // Offers the cached session for `key` to `ssl`, dropping it if it has expired or
    // OpenSSL has invalidated it (a connection using it ended in a fatal alert).
    void offer(const std::string& key, SSL* ssl) {
        std::lock_guard<std::mutex> lock(mutex_);
        auto it = cache_.find(key);
        if (it == cache_.end()) return;
        SSL_SESSION* session = it->second.session;
        const long expires = static_cast<long>(SSL_SESSION_get_time(session)) +
                             static_cast<long>(SSL_SESSION_get_timeout(session));
        const bool expired = expires <= static_cast<long>(std::time(nullptr));
        if (expired || SSL_SESSION_is_resumable(session) != 1) {
            SSL_SESSION_free(session);
            cache_.erase(it);
            return;
        }
        SSL_set_session(ssl, session);  // takes its own reference
    }

private:
    void build();

    struct Entry {
        SSL_SESSION* session;
        std::uint64_t stamp;  // larger = stored more recently
    };
    const TrustChoice trust_;
    const std::string file_label_;  // trust_.file as named in errors
    const std::string trust_source_;
    std::once_flag built_;
    std::unique_ptr<CaBundle> bundle_;  // trust_.file, when there is one
    SSL_CTX* ctx_ = nullptr;     // set once by build(), when it succeeds
    std::string build_error_;    // why build() failed
    std::mutex mutex_;
    std::map<std::string, Entry> cache_;
    std::uint64_t clock_ = 0;
};

class OpenSslSession final : public TlsSession {
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
        SSL_free(ssl_);  // frees both BIOs; the queues they point at are members, still alive
    }

    // Second phase of construction; false leaves the object safe to destroy.
    bool init(OpenSslContext& ctx, const std::string& host) {
        ERR_clear_error();
        ssl_ = SSL_new(ctx.ssl_ctx());
        if (!ssl_) return false;
        SSL_set_app_data(ssl_, this);
        BIO* rbio = new_queue_bio(&in_);
        BIO* wbio = rbio ? new_queue_bio(&out_) : nullptr;
        if (!wbio) {
            BIO_free(rbio);
            ERR_clear_error();
            return false;
        }
        SSL_set_bio(ssl_, rbio, wbio);
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

    const std::string& key() const { return key_; }

    void feed_ciphertext(const char* data, std::size_t len) override { in_.append(data, len); }
    std::size_t pending_ciphertext() const override { return out_.size(); }
    std::string_view peek_ciphertext() const override { return out_.peek(); }
    void drop_ciphertext(std::size_t n) override { out_.drop(n); }

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
        // means every byte is now ciphertext in out_: room for it is made up front.
        out_.reserve_more(len + (len / kMaxRecordPlaintext + 1) * kRecordOverhead);
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

    const std::string& error() const override { return error_; }

private:
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
            error_ = std::string("certificate verify failed: ") + X509_verify_cert_error_string(verify);
        } else if (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
            error_ = "unexpected end of TLS stream";
        } else {
            error_ = take_openssl_error("TLS protocol error");
        }
        return TlsStatus::Error;
    }

    std::string key_;   // "host:port", the session-cache key
    CipherQueue in_;    // from the peer, not yet consumed by OpenSSL
    CipherQueue out_;   // produced by OpenSSL, not yet taken by the socket owner
    SSL* ssl_ = nullptr;
    bool failed_ = false;
    std::string error_;
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

}  // namespace

void OpenSslContext::build() {
    ERR_clear_error();
    SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        build_error_ = "cannot create TLS context: " + take_openssl_error("out of memory");
        return;
    }
    auto fail = [&](std::string message) {
        SSL_CTX_free(ctx);
        ERR_clear_error();
        build_error_ = std::move(message);
    };

    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
        return fail("cannot require TLS 1.2: " + take_openssl_error("unsupported"));
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    // RELEASE_BUFFERS: record buffers exist only while a record is in flight.
    // Partial writes stay off: SSL_write_ex encrypts everything into the queue.
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_set_alpn_protos(ctx, kAlpnHttp11, sizeof kAlpnHttp11) != 0) {  // 0 is success here
        return fail("cannot set ALPN: " + take_openssl_error("out of memory"));
    }
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, on_new_session);

    // Loaded explicitly, never via SSL_CTX_set_default_verify_paths: a static build's
    // defaults point at its build machine. The file was readable at start-up; it is
    // read again here because it may have changed or gone since.
    if (!trust_.file.empty()) {
        std::string text, why;
        if (!CaBundle::read_file(trust_.file, text)) {
            return fail("cannot read " + file_label_ + ": " + std::strerror(errno));
        }
        auto bundle = std::make_unique<CaBundle>();
        if (!bundle->parse(text, why)) {
            return fail(file_label_ + " holds no usable PEM certificates (" + why + ")");
        }
        X509_STORE_set_get_issuer(SSL_CTX_get_cert_store(ctx), get_issuer_from_bundle);
        bundle_ = std::move(bundle);
    }
    if (!trust_.dir.empty() && SSL_CTX_load_verify_locations(ctx, nullptr, trust_.dir.c_str()) != 1) {
        return fail("cannot use CA directory " + trust_.dir + ": " + take_openssl_error("unknown error"));
    }
    ERR_clear_error();
    SSL_CTX_set_app_data(ctx, this);
    ctx_ = ctx;
}

std::unique_ptr<TlsClientContext> TlsClientContext::create(const TrustSettings& trust, std::string& error) {
    TrustChoice choice = choose_trust_store(trust, sys::file_exists, sys::dir_exists);
    if (choice.file.empty() && choice.dir.empty()) {
        error = "no CA certificate bundle found (SSL_CERT_FILE and SSL_CERT_DIR unset or missing, "
                "none of the usual system paths such as /etc/ssl/certs/ca-certificates.crt or "
                "/etc/pki/tls/certs/ca-bundle.crt exist); pass -ca-file with a PEM bundle";
        return nullptr;
    }
    // Only what is cheap is checked here (the file can be read and has a PEM
    // certificate in it; the directory exists): parsing waits for the first handshake.
    std::string label;
    if (!choice.file.empty()) {
        label = describe_trust_file(trust, choice.file);
        std::FILE* f = std::fopen(choice.file.c_str(), "rb");
        if (!f) {
            error = "cannot read " + label + ": " + std::strerror(errno);
            return nullptr;
        }
        bool pem = has_pem_begin_line(f);
        bool read_error = std::ferror(f) != 0;
        int read_errno = errno;
        std::fclose(f);
        if (read_error) {
            error = "cannot read " + label + ": " + std::strerror(read_errno);
            return nullptr;
        }
        if (!pem) {
            error = label + " holds no usable PEM certificates (no -----BEGIN CERTIFICATE----- line)";
            return nullptr;
        }
    }

    std::string source = choice.file;
    if (!choice.dir.empty()) source += (source.empty() ? "" : " and ") + choice.dir;
    return std::make_unique<OpenSslContext>(std::move(choice), std::move(label), std::move(source));
}

std::unique_ptr<TlsSession> TlsSession::create(TlsClientContext& ctx, std::string_view server_name,
                                               unsigned short port) {
    std::string host = bare_host(server_name);
    if (host.empty()) return nullptr;  // nothing to verify against: never connect unverified
    // OpenSslContext is the only TlsClientContext: contexts come from create() above.
    auto& context = static_cast<OpenSslContext&>(ctx);
    std::string error;
    if (!context.ready(error)) return nullptr;
    auto session = std::make_unique<OpenSslSession>(host + ":" + std::to_string(port));
    if (!session->init(context, host)) return nullptr;
    return session;
}

}  // namespace op
