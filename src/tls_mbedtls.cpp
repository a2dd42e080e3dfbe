// The mbedTLS backend of tls.h (OP_TLS=mbedtls), written against mbed TLS 2.28 (Debian
// 12's libmbedtls-dev): the only file that includes mbedTLS's headers. What does not
// depend on the library is in tls_common.cpp.
//
// TLS 1.2 only: 2.28 does not support TLS 1.3 (a build option enables unsupported,
// partial prototype code, and Debian leaves it off). Certificates, host names, SNI,
// ALPN and resumption behave as in the OpenSSL backend, with these differences in the
// library:
//   - it cannot match IP addresses against iPAddress SANs (it lists only DNS names):
//     the verify callback does it (certificate_has_ip_san), failing as a name mismatch;
//   - its wildcards may stand for the first label of a two-label name ("*.test" for
//     "example.test"), where OpenSSL wants two labels after the "*": the verify callback
//     refuses such a match (names_host), as a name mismatch;
//   - a CA bundle is read on first use, and each certificate parsed once then; a
//     certificate mbedTLS cannot parse (an algorithm it lacks) is not trusted, which is
//     what such a certificate is to OpenSSL too. With MBEDTLS_X509_TRUSTED_CERTIFICATE_
//     CALLBACK (the builds of scripts/mbedtls.sh) only an index is kept (TrustIndex:
//     subject keys, file offsets, digests), and the verification's CA callback reads
//     back and parses the anchors a certificate's issuer names, for that handshake only:
//     a parsed bundle of 150 roots would keep ~600 KB. Without it (Debian's own
//     libmbedtls) the parsed certificates are kept, as mbedtls_ssl_conf_ca_chain wants.
//     CA directories (SSL_CERT_DIR) and the Windows system store are always parsed
//     whole and kept: mbedTLS has no lookup by subject hash for the first, the second
//     comes from CryptoAPI as DER;
//   - OpenSSL's trust settings ("TRUSTED CERTIFICATE" blocks) are read for server
//     authentication (server_auth_trust) and a rejected CA is left out;
//   - every certificate of the trust store is a trust anchor, self-signed or not: a
//     bundle holding an intermediate CA without its root verifies chains up to that
//     intermediate, where OpenSSL (without X509_V_FLAG_PARTIAL_CHAIN) wants the root;
//   - mbedTLS allocates a session's two record buffers (the incoming one at TLS's full
//     16 KiB, since a server may send records that large; the outgoing one at
//     MBEDTLS_SSL_OUT_CONTENT_LEN) at setup and keeps them to the end. Between records
//     neither holds anything but the 8-byte sequence number in front, so a session that
//     is idle after the handshake "parks" them, as OpenSSL's SSL_MODE_RELEASE_BUFFERS
//     does its own: the buffers are freed and their pointers moved, offsets kept, into
//     two small arrays of the session; every call that may read or write a record first
//     gives them their full size back. 2.28 has no API for it (its
//     MBEDTLS_SSL_VARIABLE_BUFFER_LENGTH shrinks only to a negotiated max_fragment_length,
//     which the big front ends ignore), so this walks the record-layer fields of
//     mbedtls_ssl_context, public in 2.x.
// Errors are worded as OpenSSL words them (X509_verify_cert_error_string, its alert
// and record-layer reasons), so users and tests see one vocabulary whichever backend.
#include "sys.h"
#include "tls_internal.h"

#include <array>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <vector>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/oid.h>  // MBEDTLS_OID_AT_CN
#include <mbedtls/platform.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/sha256.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_internal.h>  // MBEDTLS_SSL_IN_BUFFER_LEN, MBEDTLS_SSL_OUT_BUFFER_LEN
#include <mbedtls/ssl_ciphersuites.h>
#if defined(MBEDTLS_SSL_TICKET_C)
#include <mbedtls/ssl_ticket.h>
#endif
#include <mbedtls/version.h>
#include <mbedtls/x509_crt.h>

#if MBEDTLS_VERSION_MAJOR != 2
#error "tls_mbedtls.cpp is written against the mbed TLS 2.28 API (3.x renamed and hid much of it)"
#endif
// One configuration, trust chain and random generator serve every worker thread;
// mbedTLS makes that safe (the generator's lock, the RSA public-key cache's lock) only
// with its threading layer.
#if !defined(MBEDTLS_THREADING_C)
#error "tls_mbedtls.cpp shares one mbedTLS configuration between threads: build mbedTLS with MBEDTLS_THREADING_C"
#endif

namespace op::tls_internal {
namespace {

// A session offered for resumption is kept this long when the server gives no ticket
// lifetime: OpenSSL's default session timeout, so both backends age entries alike.
constexpr std::int64_t kSessionSeconds = 7200;

// ALPN offer: we speak HTTP/1.1 only. mbedTLS keeps the pointer: static storage.
const char* kAlpn[] = {"http/1.1", nullptr};

// mbedTLS's text for an error code, as OpenSSL words its reasons: the module prefix
// ("SSL - ") dropped and a lower-case start.
std::string mbedtls_reason(int code) {
    char buf[200];
    mbedtls_strerror(code, buf, sizeof buf);
    std::string text(buf);
    std::size_t dash = text.find(" - ");
    if (dash != std::string::npos && dash < 12) text.erase(0, dash + 3);
    if (!text.empty()) text[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(text[0])));
    return text;
}

struct SessionFree {
    void operator()(mbedtls_ssl_session* session) const {
        mbedtls_ssl_session_free(session);
        delete session;
    }
};
using SessionPtr = std::unique_ptr<mbedtls_ssl_session, SessionFree>;

#if defined(MBEDTLS_X509_TRUSTED_CERTIFICATE_CALLBACK)
// SHA-256, the trust index's digest of each anchor it reads back.
void sha256(const unsigned char* data, std::size_t len, unsigned char out[32]) {
    mbedtls_sha256_ret(data, len, out, 0);
}
#endif

// Where the CA callback reports why it failed, for the handshake running on this
// thread (MbedTlsSession::handshake sets it): mbedTLS only passes a fatal error on.
thread_local std::string* t_trust_error = nullptr;

// What the context and its sessions share: configuration, trust anchors, random
// generator, session cache. A session may outlive its context (tls.h), so each holds
// a reference. Immutable once build() has filled it, but for the cache (locked) and
// the generator (locked by mbedTLS).
struct Engine {
    Engine() {
        mbedtls_entropy_init(&entropy);
        mbedtls_ctr_drbg_init(&drbg);
        mbedtls_x509_crt_init(&anchors);
        mbedtls_ssl_config_init(&conf);
    }
    ~Engine() {
        mbedtls_ssl_config_free(&conf);
        mbedtls_x509_crt_free(&anchors);
        mbedtls_ctr_drbg_free(&drbg);
        mbedtls_entropy_free(&entropy);
    }
    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;

    // One certificate of the trust file (read_pem_bundle's take). One mbedTLS cannot
    // parse is skipped, not an error: the bundle is well-formed (read_pem_bundle checked
    // its framing), and the certificate is simply not trusted.
    bool add_anchor(PemCertificate& cert) {
        const auto* der = reinterpret_cast<const unsigned char*>(cert.der.data());
        if (!not_rejected(cert)) return true;
        if (mbedtls_x509_crt_parse_der(&anchors, der, cert.cert_len) == 0) ++usable_anchors;
        return true;
    }

    // false for a TRUSTED CERTIFICATE whose settings reject server authentication: it
    // counts as loaded, as OpenSSL loads it, to be refused when a chain reaches it.
    bool not_rejected(const PemCertificate& cert) {
        const auto* der = reinterpret_cast<const unsigned char*>(cert.der.data());
        if (cert.trusted_form &&
            server_auth_trust(der + cert.cert_len, cert.der.size() - cert.cert_len) == AuxTrust::Rejected) {
            rejected_subjects.emplace_back(cert.der, cert.subject_offset, cert.subject_len);
            ++usable_anchors;
            return false;
        }
        return true;
    }

#if defined(MBEDTLS_X509_TRUSTED_CERTIFICATE_CALLBACK)
    // add_anchor for the index: whether `cert` is an anchor to index, parsed once to
    // know (and then dropped).
    bool index_anchor(const PemCertificate& cert) {
        if (!not_rejected(cert)) return false;
        mbedtls_x509_crt parsed;
        mbedtls_x509_crt_init(&parsed);
        const bool ok = mbedtls_x509_crt_parse_der_nocopy(
                            &parsed, reinterpret_cast<const unsigned char*>(cert.der.data()), cert.cert_len) == 0;
        mbedtls_x509_crt_free(&parsed);
        if (ok) ++usable_anchors;
        return ok;
    }

    // mbedtls_ssl_conf_ca_cb's callback: the anchors whose subject may be `child`'s
    // issuer, parsed into a chain that mbedTLS frees (nullptr: none). Candidates whose
    // subject is not the issuer after all (a key collision) are turned down by mbedTLS,
    // which checks every candidate's name as it does the whole store's.
    static int candidates(void* p, const mbedtls_x509_crt* child, mbedtls_x509_crt** out) {
        const auto* engine = static_cast<const Engine*>(p);
        *out = nullptr;
        auto* chain = static_cast<mbedtls_x509_crt*>(mbedtls_calloc(1, sizeof(mbedtls_x509_crt)));
        if (chain == nullptr) return MBEDTLS_ERR_X509_ALLOC_FAILED;
        mbedtls_x509_crt_init(chain);
        std::string error;
        const bool ok = engine->candidates_into(child->issuer_raw, chain, error);
        if (!ok && t_trust_error != nullptr) *t_trust_error = error;
        if (!ok || chain->raw.p == nullptr) {
            mbedtls_x509_crt_free(chain);
            mbedtls_free(chain);
            return ok ? 0 : -1;
        }
        *out = chain;
        return 0;
    }

    bool candidates_into(const mbedtls_x509_buf& issuer, mbedtls_x509_crt* chain, std::string& error) const {
        const bool ok = file_anchors.find(issuer.p, issuer.len, [chain](const unsigned char* der, std::size_t len) {
            mbedtls_x509_crt_parse_der(chain, der, len);  // parsed at load: fails only without memory
        }, error);
        // The anchors of a CA directory given beside the file (SSL_CERT_FILE and SSL_CERT_DIR).
        const std::uint64_t key = name_key(issuer.p, issuer.len);
        for (const mbedtls_x509_crt* c = &anchors; c != nullptr && c->raw.p != nullptr; c = c->next) {
            if (name_key(c->subject_raw.p, c->subject_raw.len) == key) {
                mbedtls_x509_crt_parse_der(chain, c->raw.p, c->raw.len);
            }
        }
        return ok;
    }

    // Whether `cert` is itself one of the anchors, byte for byte: what mbedTLS checks,
    // in the trust list it has, for a self-issued server certificate to be trusted as
    // itself; given a callback instead, it has none to check (on_verify does it).
    bool is_anchor(const mbedtls_x509_crt& cert, std::string& error) const {
        mbedtls_x509_crt chain;
        mbedtls_x509_crt_init(&chain);
        const bool ok = candidates_into(cert.subject_raw, &chain, error);
        bool found = false;
        for (const mbedtls_x509_crt* c = &chain; ok && c != nullptr && c->raw.p != nullptr; c = c->next) {
            found = found || (c->raw.len == cert.raw.len && std::memcmp(c->raw.p, cert.raw.p, c->raw.len) == 0);
        }
        mbedtls_x509_crt_free(&chain);
        return found;
    }

    bool lazy = false;                  // the CA callback serves the trust store (a trust file is used)
    TrustIndex file_anchors{sha256};    // the trust file's anchors, when lazy
#endif

    bool is_rejected(const mbedtls_x509_buf& name) const {
        for (const std::string& subject : rejected_subjects) {
            if (subject.size() == name.len && std::memcmp(subject.data(), name.p, name.len) == 0) return true;
        }
        return false;
    }

    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_x509_crt anchors;
    std::size_t usable_anchors = 0;              // from the trust file
    std::vector<std::string> rejected_subjects;  // DER subject names of CAs rejected for serverAuth
    mbedtls_ssl_config conf;
    SessionCache<SessionPtr> cache;
};

class MbedTlsSession final : public QueuedTlsSession {
public:
    MbedTlsSession(std::shared_ptr<Engine> engine, std::string key)
        : engine_(std::move(engine)), key_(std::move(key)) {
        mbedtls_ssl_init(&ssl_);
    }
    ~MbedTlsSession() override {
        // mbedtls_ssl_free frees (and wipes, at the full size) only heap buffers.
        if (parked_) {
            mbedtls_platform_zeroize(in_park_, sizeof in_park_);
            mbedtls_platform_zeroize(out_park_, sizeof out_park_);
            ssl_.in_buf = nullptr;
            ssl_.out_buf = nullptr;
        }
        mbedtls_ssl_free(&ssl_);
    }
    MbedTlsSession(const MbedTlsSession&) = delete;
    MbedTlsSession& operator=(const MbedTlsSession&) = delete;

    // Second phase of construction; false leaves the object safe to destroy.
    bool init(const std::string& host) {
        if (mbedtls_ssl_setup(&ssl_, &engine_->conf) != 0) return false;
        mbedtls_ssl_set_bio(&ssl_, this, send_to_queue, receive_from_queue, nullptr);
        mbedtls_ssl_set_verify(&ssl_, on_verify, this);
        // An address gets no SNI (RFC 6066 forbids it) and no name check by mbedTLS,
        // which would compare it with DNS names: on_verify matches the IP SANs.
        const bool ip = parse_ip_literal(host, ip_);
        if (mbedtls_ssl_set_hostname(&ssl_, ip ? nullptr : host.c_str()) != 0) return false;
        engine_->cache.offer(key_, [this](mbedtls_ssl_session* session) {
            offered_ = mbedtls_ssl_set_session(&ssl_, session) == 0;  // copies it
            return true;  // mbedTLS has no notion of a session invalidated by a failure
        });
        return true;
    }

    // The server side's second phase: `owner` keeps `conf` (and what it points at) alive
    // for as long as the session lives.
    bool init_server(std::shared_ptr<void> owner, const mbedtls_ssl_config& conf) {
        server_ = std::move(owner);
        if (mbedtls_ssl_setup(&ssl_, &conf) != 0) return false;
        mbedtls_ssl_set_bio(&ssl_, this, send_to_queue, receive_from_queue, nullptr);
        return true;
    }

    TlsStatus handshake() override {
        if (failed_) return TlsStatus::Error;
        if (done_) return TlsStatus::Ok;
        t_trust_error = &trust_error_;
        int rc = mbedtls_ssl_handshake(&ssl_);
        t_trust_error = nullptr;
        if (rc == 0) {
            done_ = true;
            if (engine_) remember_session();  // a client's, for its next connection
            park();
            return TlsStatus::Ok;
        }
        if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE) return TlsStatus::WantRead;
        return fail(rc);
    }

    bool handshake_done() const override { return done_; }
    // A resumed TLS 1.2 handshake carries no certificate, so nothing was verified.
    bool session_reused() const override { return done_ && offered_ && !verified_; }

    TlsStatus read(char* out, std::size_t cap, std::size_t* n) override {
        *n = 0;
        if (failed_) return TlsStatus::Error;
        if (closed_) return TlsStatus::Closed;
        if (cap == 0) return TlsStatus::Ok;  // nothing asked for; callers pass cap > 0
        if (!unpark()) return TlsStatus::Error;
        int rc = mbedtls_ssl_read(&ssl_, reinterpret_cast<unsigned char*>(out), cap);
        if (rc > 0) {
            *n = static_cast<std::size_t>(rc);
            return TlsStatus::Ok;
        }
        if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE) {
            park();  // nothing to read until more ciphertext comes
            return TlsStatus::WantRead;
        }
        if (rc == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY) {
            closed_ = true;  // mbedTLS would go on reading records after it
            return TlsStatus::Closed;
        }
        return fail(rc);
    }

    TlsStatus write(const char* data, std::size_t len, std::size_t* n) override {
        *n = 0;
        if (failed_) return TlsStatus::Error;
        if (len == 0) return TlsStatus::Ok;
        if (!unpark()) return TlsStatus::Error;
        // The send callback never refuses bytes, so every call makes whole records of
        // up to 16 KiB; room for all of them is made up front unless they go straight out.
        if (out_.queues_writes()) out_.reserve_more(len + (len / kMaxRecordPlaintext + 1) * kRecordOverhead);
        std::size_t done = 0;
        while (done < len) {
            int rc = mbedtls_ssl_write(&ssl_, reinterpret_cast<const unsigned char*>(data) + done, len - done);
            if (rc > 0) {
                done += static_cast<std::size_t>(rc);
                continue;
            }
            if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE) {
                // Renegotiation is off; a handshake message in the way means the bytes
                // cannot go out, which for this caller is a failed exchange.
                failed_ = true;
                error_ = "TLS write blocked by renegotiation";
                return TlsStatus::Error;
            }
            return fail(rc);
        }
        *n = len;
        park();
        return TlsStatus::Ok;
    }

    // mbedTLS reads exactly one record at a time from the queue, so what it holds is
    // decrypted plaintext not yet read, unprocessed data, or a partial record, which
    // the incoming queue's record tracker sees.
    bool has_buffered_input() const override {
        return mbedtls_ssl_get_bytes_avail(&ssl_) > 0 || mbedtls_ssl_check_pending(&ssl_) != 0 || in_.size() > 0 ||
               !in_.taken_whole_records();
    }

    // Parked whenever read() runs dry and after each write(): here only for callers that
    // ask outright.
    void release_buffers() override { park(); }

    void close_notify() override {
        if (failed_ || !done_ || closed_ || !unpark()) return;
        mbedtls_ssl_close_notify(&ssl_);  // the send callback takes the alert whole
        park();
    }

private:
    // --- record buffers (see the top of the file) ---------------------------------------
    // What a parked buffer keeps: the sequence number (8 bytes), then the record header
    // and explicit IV, where the pointers into the buffer point (TLS: at most 8 + 5 + 16
    // bytes in from its start; park() checks).
    static constexpr std::size_t kParkBytes = 48;

    // The pointers into each record buffer (a null entry: a field this build lacks).
    using BufferPointers = std::array<unsigned char**, 7>;
    BufferPointers in_pointers() {
        return {&ssl_.in_ctr, &ssl_.in_hdr, &ssl_.in_len, &ssl_.in_iv, &ssl_.in_msg, &ssl_.in_offt,
#if defined(MBEDTLS_SSL_DTLS_CONNECTION_ID)
                &ssl_.in_cid};
#else
                nullptr};
#endif
    }
    BufferPointers out_pointers() {
        return {&ssl_.out_ctr, &ssl_.out_hdr, &ssl_.out_len, &ssl_.out_iv, &ssl_.out_msg,
#if defined(MBEDTLS_SSL_DTLS_CONNECTION_ID)
                &ssl_.out_cid,
#else
                nullptr,
#endif
                nullptr};
    }

    static bool within_park(const unsigned char* buf, const BufferPointers& pointers) {
        for (unsigned char** p : pointers) {
            if (p == nullptr || *p == nullptr) continue;
            if (*p < buf || *p - buf >= static_cast<std::ptrdiff_t>(kParkBytes)) return false;
        }
        return true;
    }

    // Moves a record buffer to `to`, its first kParkBytes bytes and its pointers with it.
    static void move_buffer(unsigned char*& buf, unsigned char* to, const BufferPointers& pointers) {
        for (unsigned char** p : pointers) {
            if (p != nullptr && *p != nullptr) *p = to + (*p - buf);
        }
        std::memcpy(to, buf, kParkBytes);
        buf = to;
    }

    // Frees both record buffers when no record is in flight either way: the handshake
    // over, no byte of an incoming record taken (in_left), nothing decrypted or held back
    // (check_pending), no outgoing record unsent (out_left: the send callback takes all).
    void park() {
        if (parked_ || !done_ || failed_ || ssl_.state != MBEDTLS_SSL_HANDSHAKE_OVER || ssl_.handshake != nullptr ||
            ssl_.in_left != 0 || ssl_.out_left != 0 || mbedtls_ssl_check_pending(&ssl_) != 0) {
            return;
        }
        const BufferPointers in = in_pointers(), out = out_pointers();
        if (!within_park(ssl_.in_buf, in) || !within_park(ssl_.out_buf, out)) return;  // never so in TLS
#if defined(MBEDTLS_SSL_VARIABLE_BUFFER_LENGTH)
        in_size_ = ssl_.in_buf_len;
        out_size_ = ssl_.out_buf_len;
#endif
        unsigned char* in_heap = ssl_.in_buf;
        unsigned char* out_heap = ssl_.out_buf;
        move_buffer(ssl_.in_buf, in_park_, in);
        move_buffer(ssl_.out_buf, out_park_, out);
        mbedtls_platform_zeroize(in_heap, in_size_);
        mbedtls_free(in_heap);
        mbedtls_platform_zeroize(out_heap, out_size_);
        mbedtls_free(out_heap);
        parked_ = true;
    }

    // Gives the record buffers their full size back; false (and a sticky error) if the
    // memory is not there.
    bool unpark() {
        if (!parked_) return true;
        auto* in_heap = static_cast<unsigned char*>(mbedtls_calloc(1, in_size_));
        auto* out_heap = static_cast<unsigned char*>(mbedtls_calloc(1, out_size_));
        if (in_heap == nullptr || out_heap == nullptr) {
            mbedtls_free(in_heap);
            mbedtls_free(out_heap);
            failed_ = true;
            error_ = "out of memory for the TLS record buffers";
            return false;
        }
        move_buffer(ssl_.in_buf, in_heap, in_pointers());
        move_buffer(ssl_.out_buf, out_heap, out_pointers());
        mbedtls_platform_zeroize(in_park_, sizeof in_park_);
        mbedtls_platform_zeroize(out_park_, sizeof out_park_);
        parked_ = false;
        return true;
    }

    static int send_to_queue(void* self, const unsigned char* data, std::size_t len) {
        static_cast<MbedTlsSession*>(self)->out_.emit(reinterpret_cast<const char*>(data), len);
        return static_cast<int>(len);
    }

    // An empty queue is WANT_READ: never 0, which mbedTLS would take for end of stream.
    static int receive_from_queue(void* self, unsigned char* out, std::size_t cap) {
        CipherQueue& in = static_cast<MbedTlsSession*>(self)->in_;
        if (in.size() == 0 || cap == 0) return MBEDTLS_ERR_SSL_WANT_READ;
        return static_cast<int>(in.take(reinterpret_cast<char*>(out), cap));
    }

    // Called for each certificate of the chain mbedTLS built, from its top down to the
    // server's own (depth 0), only in full handshakes.
    static int on_verify(void* p, mbedtls_x509_crt* cert, int depth, std::uint32_t* flags) {
        auto* self = static_cast<MbedTlsSession*>(p);
        if (!self->verified_) {  // the top of the chain: what an untrusted chain ends in
            self->verified_ = true;
            self->top_is_leaf_ = depth == 0;
            self->top_self_issued_ = cert->issuer_raw.len == cert->subject_raw.len &&
                                     std::memcmp(cert->issuer_raw.p, cert->subject_raw.p, cert->subject_raw.len) == 0;
            self->top_rejected_ = self->engine_->is_rejected(cert->issuer_raw) ||
                                  self->engine_->is_rejected(cert->subject_raw);
        }
        if (depth == 0) {
#if defined(MBEDTLS_X509_TRUSTED_CERTIFICATE_CALLBACK)
            // A self-issued server certificate that is itself an anchor is trusted as
            // itself, as mbedTLS does with a trust list (x509_crt_check_ee_locally_trusted,
            // which skips the chain and so the key check of its issuer: itself).
            constexpr std::uint32_t kChainFlags = MBEDTLS_X509_BADCERT_NOT_TRUSTED | MBEDTLS_X509_BADCERT_BAD_KEY;
            if (self->engine_->lazy && (*flags & kChainFlags) != 0 && cert->issuer_raw.len == cert->subject_raw.len &&
                std::memcmp(cert->issuer_raw.p, cert->subject_raw.p, cert->subject_raw.len) == 0) {
                std::string error;
                if (self->engine_->is_anchor(*cert, error)) *flags &= ~kChainFlags;
                else if (!error.empty()) self->trust_error_ = error;
            }
#endif
            if (self->ip_.len != 0 && !certificate_has_ip_san(cert->raw.p, cert->raw.len, self->ip_)) {
                *flags |= MBEDTLS_X509_BADCERT_CN_MISMATCH;
            }
            if (self->ip_.len == 0 && (*flags & MBEDTLS_X509_BADCERT_CN_MISMATCH) == 0 &&
                (self->ssl_.hostname == nullptr || !names_host(*cert, self->ssl_.hostname))) {
                *flags |= MBEDTLS_X509_BADCERT_CN_MISMATCH;
            }
            self->leaf_flags_ = *flags;
        }
        return 0;
    }

    // Whether a DNS name of `cert` names `host` by dns_name_matches(), looked for where
    // mbedTLS looks (x509_crt_verify_name): the dNSName entries of the subjectAltName, or
    // the CNs of a certificate without one. Asked once mbedTLS found the name: its own
    // matching lets "*" stand for the first label of a two-label name ("*.test" for
    // "example.test"), which OpenSSL refuses; this refuses it too.
    static bool names_host(const mbedtls_x509_crt& cert, std::string_view host) {
        auto names = [host](const mbedtls_x509_buf& name) {
            return dns_name_matches(std::string_view(reinterpret_cast<const char*>(name.p), name.len), host);
        };
        if (cert.ext_types & MBEDTLS_X509_EXT_SUBJECT_ALT_NAME) {
            for (const mbedtls_x509_sequence* san = &cert.subject_alt_names; san != nullptr; san = san->next) {
                if ((san->buf.tag & MBEDTLS_ASN1_TAG_VALUE_MASK) == MBEDTLS_X509_SAN_DNS_NAME && names(san->buf))
                    return true;
            }
            return false;
        }
        for (const mbedtls_x509_name* attr = &cert.subject; attr != nullptr; attr = attr->next) {
            if (MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &attr->oid) == 0 && names(attr->val)) return true;
        }
        return false;
    }

    // The one reason OpenSSL would give, in its order of checks: the chain first,
    // then the purpose, the name, the validity period.
    const char* verify_reason(std::uint32_t flags) const {
        if (flags & MBEDTLS_X509_BADCERT_NOT_TRUSTED) {
            if (top_rejected_) return "certificate rejected";
            if (top_self_issued_) {
                return top_is_leaf_ ? "self-signed certificate" : "self-signed certificate in certificate chain";
            }
            return "unable to get local issuer certificate";
        }
        if (flags & (MBEDTLS_X509_BADCERT_KEY_USAGE | MBEDTLS_X509_BADCERT_EXT_KEY_USAGE |
                     MBEDTLS_X509_BADCERT_NS_CERT_TYPE)) {
            return "unsuitable certificate purpose";
        }
        if (flags & MBEDTLS_X509_BADCERT_CN_MISMATCH) return ip_.len != 0 ? "IP address mismatch" : "hostname mismatch";
        if (flags & MBEDTLS_X509_BADCERT_EXPIRED) return "certificate has expired";
        if (flags & MBEDTLS_X509_BADCERT_FUTURE) return "certificate is not yet valid";
        if (flags & MBEDTLS_X509_BADCERT_REVOKED) return "certificate revoked";
        if (flags & MBEDTLS_X509_BADCERT_BAD_MD) return "CA signature digest algorithm too weak";
        if (flags & MBEDTLS_X509_BADCERT_BAD_KEY) {
            return leaf_flags_ & MBEDTLS_X509_BADCERT_BAD_KEY ? "EE certificate key too weak"
                                                             : "CA certificate key too weak";
        }
        return "unspecified certificate verification error";
    }

    // Fatal errors become sticky with a one-line reason.
    TlsStatus fail(int rc) {
        failed_ = true;
        if (!trust_error_.empty()) {  // the trust file could not be read back
            error_ = verify_failed(trust_error_.c_str());
            return TlsStatus::Error;
        }
        const std::uint32_t verify = mbedtls_ssl_get_verify_result(&ssl_);
        if (rc == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED ||
            (rc == MBEDTLS_ERR_SSL_BAD_HS_CERTIFICATE && verify != 0 && verify != static_cast<std::uint32_t>(-1))) {
            error_ = verify_failed(verify_reason(verify));
            return TlsStatus::Error;
        }
        switch (rc) {
            // 2.28 has no accessor for the alert; its description is the record's second byte.
            case MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE: error_ = alert_reason(ssl_.in_msg[1]); break;
            case MBEDTLS_ERR_SSL_INVALID_RECORD: error_ = "wrong version number"; break;  // not TLS at all, mostly
            case MBEDTLS_ERR_SSL_INVALID_MAC: error_ = "decryption failed or bad record mac"; break;
            case MBEDTLS_ERR_SSL_BAD_HS_PROTOCOL_VERSION: error_ = "unsupported protocol"; break;
            case 0:
            case MBEDTLS_ERR_SSL_CONN_EOF: error_ = "unexpected end of TLS stream"; break;
            default: error_ = mbedtls_reason(rc); break;
        }
        return TlsStatus::Error;
    }

    // The session just established, for the next connection to host:port.
    void remember_session() {
        SessionPtr session(new mbedtls_ssl_session);
        mbedtls_ssl_session_init(session.get());
        if (mbedtls_ssl_get_session(&ssl_, session.get()) != 0) return;
        if (session->id_len == 0 && session->ticket_len == 0) return;  // nothing to resume with
        std::int64_t lifetime = kSessionSeconds;
        if (session->ticket_len > 0 && session->ticket_lifetime > 0) {
            lifetime = std::min<std::int64_t>(lifetime, session->ticket_lifetime);
        }
        engine_->cache.store(key_, std::move(session), static_cast<std::int64_t>(std::time(nullptr)) + lifetime);
    }

    std::shared_ptr<Engine> engine_;  // a client's (null on the server side)
    std::shared_ptr<void> server_;    // a server's: what its configuration lives in
    std::string key_;   // "host:port", the session-cache key
    IpAddress ip_;      // the target, when it is an address
    mbedtls_ssl_context ssl_;
    bool done_ = false;
    bool closed_ = false;
    bool offered_ = false;        // a cached session was set for resumption
    bool verified_ = false;       // on_verify ran: a full handshake
    bool top_is_leaf_ = false;    // the chain mbedTLS built is the server's certificate alone
    bool top_self_issued_ = false;
    bool top_rejected_ = false;   // ends in, or at a CA issued by, a rejected trust anchor
    std::uint32_t leaf_flags_ = 0;
    std::string trust_error_;     // why the trust store could not be consulted, if so
    bool parked_ = false;          // the record buffers are in the arrays below
    std::size_t in_size_ = MBEDTLS_SSL_IN_BUFFER_LEN;  // their full sizes, given back by unpark()
    std::size_t out_size_ = MBEDTLS_SSL_OUT_BUFFER_LEN;
    unsigned char in_park_[kParkBytes] = {};
    unsigned char out_park_[kParkBytes] = {};
};

// The trust store is chosen and checked when the context is created; mbedTLS's side
// (the generator's seed, the trust anchors, the configuration) is built on first use.
class MbedTlsContext final : public TlsContextBase {
public:
    MbedTlsContext(TrustChoice trust, std::string file_label, std::string trust_source)
        : TlsContextBase(std::move(trust), std::move(file_label), std::move(trust_source)) {}

    std::unique_ptr<TlsSession> new_session(const std::string& host, std::string cache_key) override {
        auto session = std::make_unique<MbedTlsSession>(engine_, std::move(cache_key));
        if (!session->init(host)) return nullptr;
        return session;
    }

private:
    std::string build() override;

    std::shared_ptr<Engine> engine_;  // set once by build(), when it succeeds
};

// The system's store (Windows: ROOT and CA, sys::os_trust_store). Each ROOT certificate
// is a trust anchor. mbedTLS has no notion of untrusted intermediates kept aside to
// complete a chain (what Windows keeps CA for, when a server sends its chain without
// them): each CA certificate is added as an anchor only if it verifies, now, against the
// roots, so that it stands for a chain that ends in one of them.
std::string load_os_store(Engine& engine) {
    std::vector<std::string> roots, intermediates;
    std::string error;
    if (!sys::os_trust_store(roots, intermediates, error)) return error;
    for (const std::string& der : roots) {
        if (mbedtls_x509_crt_parse_der(&engine.anchors, reinterpret_cast<const unsigned char*>(der.data()),
                                       der.size()) == 0)
            ++engine.usable_anchors;
    }
    if (engine.usable_anchors == 0) return "the system certificate store ROOT holds no certificate mbed TLS can use";
    for (const std::string& der : intermediates) {
        mbedtls_x509_crt cert;
        mbedtls_x509_crt_init(&cert);
        std::uint32_t flags = 0;
        const auto* p = reinterpret_cast<const unsigned char*>(der.data());
        if (mbedtls_x509_crt_parse_der(&cert, p, der.size()) == 0 &&
            mbedtls_x509_crt_verify(&cert, &engine.anchors, nullptr, nullptr, &flags, nullptr, nullptr) == 0 &&
            cert.ca_istrue)
            mbedtls_x509_crt_parse_der(&engine.anchors, p, der.size());
        mbedtls_x509_crt_free(&cert);
    }
    return "";
}

std::string MbedTlsContext::build() {
    auto engine = std::make_shared<Engine>();
    static const unsigned char kPersonalisation[] = "openai-proxy upstream TLS";
    int rc = mbedtls_ctr_drbg_seed(&engine->drbg, mbedtls_entropy_func, &engine->entropy, kPersonalisation,
                                   sizeof kPersonalisation - 1);
    if (rc != 0) return "cannot seed the TLS random generator: " + mbedtls_reason(rc);

    // Loaded explicitly: a static build has no idea of the running system's paths.
    if (!trust().file.empty()) {
        std::string error;
#if defined(MBEDTLS_X509_TRUSTED_CERTIFICATE_CALLBACK)
        engine->lazy = true;
        if (!engine->file_anchors.load(
                trust().file, file_label(),
                [&engine](const PemCertificate& cert) { return engine->index_anchor(cert); }, error)) {
            return error;
        }
#else
        if (!read_trust_file([&engine](PemCertificate& cert) { return engine->add_anchor(cert); }, error)) {
            return error;
        }
#endif
        if (engine->usable_anchors == 0) {
            return file_label() + " holds no usable PEM certificates (none that mbed TLS can parse)";
        }
    }
    // Every file of the directory is parsed now (mbedTLS has no lookup by subject
    // hash); files that are not certificates are skipped, as OpenSSL never reads them.
    std::string dir_error;
    for_each_cert_dir(trust().dir, [&](const std::string& dir) {  // one directory, or several
        if (!dir_error.empty()) return;
        int parsed = mbedtls_x509_crt_parse_path(&engine->anchors, dir.c_str());
        if (parsed < 0) dir_error = "cannot use CA directory " + dir + ": " + mbedtls_reason(parsed);
    });
    if (!dir_error.empty()) return dir_error;
    if (trust().os_store) {
        std::string error = load_os_store(*engine);
        if (!error.empty()) return error;
    }

    mbedtls_ssl_config& conf = engine->conf;
    rc = mbedtls_ssl_config_defaults(&conf, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_STREAM,
                                     MBEDTLS_SSL_PRESET_DEFAULT);
    if (rc != 0) return "cannot create TLS context: " + mbedtls_reason(rc);
    mbedtls_ssl_conf_min_version(&conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);  // TLS 1.2
    mbedtls_ssl_conf_authmode(&conf, MBEDTLS_SSL_VERIFY_REQUIRED);
#if defined(MBEDTLS_X509_TRUSTED_CERTIFICATE_CALLBACK)
    if (engine->lazy) mbedtls_ssl_conf_ca_cb(&conf, Engine::candidates, engine.get());
    else
#endif
        mbedtls_ssl_conf_ca_chain(&conf, &engine->anchors, nullptr);
    mbedtls_ssl_conf_rng(&conf, mbedtls_ctr_drbg_random, &engine->drbg);
    mbedtls_ssl_conf_session_tickets(&conf, MBEDTLS_SSL_SESSION_TICKETS_ENABLED);
#if defined(MBEDTLS_SSL_RENEGOTIATION)  // compiled out of the small builds' mbedTLS (platform/mbedtls/small.cfg)
    mbedtls_ssl_conf_renegotiation(&conf, MBEDTLS_SSL_RENEGOTIATION_DISABLED);
#endif
    rc = mbedtls_ssl_conf_alpn_protocols(&conf, kAlpn);
    if (rc != 0) return "cannot set ALPN: " + mbedtls_reason(rc);
    engine_ = std::move(engine);
    return "";
}

#if defined(MBEDTLS_SSL_SRV_C)
// The listener's side (tls.h, TlsServerContext): the certificate chain, its key, the
// configuration and the ticket key. Each session holds a reference, so that a reload
// can drop the context while its connections go on.
class MbedTlsServerContext final : public TlsServerContext,
                                   public std::enable_shared_from_this<MbedTlsServerContext> {
public:
    MbedTlsServerContext() {
        mbedtls_entropy_init(&entropy_);
        mbedtls_ctr_drbg_init(&drbg_);
        mbedtls_x509_crt_init(&chain_);
        mbedtls_pk_init(&key_);
        mbedtls_ssl_config_init(&conf_);
#if defined(MBEDTLS_SSL_TICKET_C)
        mbedtls_ssl_ticket_init(&tickets_);
#endif
    }
    ~MbedTlsServerContext() override {
#if defined(MBEDTLS_SSL_TICKET_C)
        mbedtls_ssl_ticket_free(&tickets_);
#endif
        mbedtls_ssl_config_free(&conf_);
        mbedtls_pk_free(&key_);
        mbedtls_x509_crt_free(&chain_);
        mbedtls_ctr_drbg_free(&drbg_);
        mbedtls_entropy_free(&entropy_);
    }
    MbedTlsServerContext(const MbedTlsServerContext&) = delete;
    MbedTlsServerContext& operator=(const MbedTlsServerContext&) = delete;

    // "" or why not, naming the file.
    std::string build(const std::string& cert_file, const std::string& key_file);

    std::unique_ptr<TlsSession> new_session() override {
        auto session = std::make_unique<MbedTlsSession>(nullptr, std::string());
        if (!session->init_server(shared_from_this(), conf_)) return nullptr;
        return session;
    }

private:
    mbedtls_entropy_context entropy_;
    mbedtls_ctr_drbg_context drbg_;
    mbedtls_x509_crt chain_;
    mbedtls_pk_context key_;
    mbedtls_ssl_config conf_;
#if defined(MBEDTLS_SSL_TICKET_C)
    mbedtls_ssl_ticket_context tickets_;
#endif
    std::vector<int> suites_;  // conf_ keeps the pointer
};

std::string MbedTlsServerContext::build(const std::string& cert_file, const std::string& key_file) {
    static const unsigned char kPersonalisation[] = "openai-proxy listener TLS";
    int rc = mbedtls_ctr_drbg_seed(&drbg_, mbedtls_entropy_func, &entropy_, kPersonalisation,
                                   sizeof kPersonalisation - 1);
    if (rc != 0) return "cannot seed the TLS random generator: " + mbedtls_reason(rc);
    rc = mbedtls_x509_crt_parse_file(&chain_, cert_file.c_str());
    if (rc != 0) {
        return "cannot use -tls-cert " + cert_file + ": " +
               (rc > 0 ? std::to_string(rc) + " of its certificates do not parse" : mbedtls_reason(rc));
    }
    rc = mbedtls_pk_parse_keyfile(&key_, key_file.c_str(), nullptr);
    if (rc != 0) return "cannot use -tls-key " + key_file + ": " + mbedtls_reason(rc);
    rc = mbedtls_pk_check_pair(&chain_.pk, &key_);
    if (rc != 0) return "-tls-key " + key_file + " is not the key of -tls-cert " + cert_file;

    rc = mbedtls_ssl_config_defaults(&conf_, MBEDTLS_SSL_IS_SERVER, MBEDTLS_SSL_TRANSPORT_STREAM,
                                     MBEDTLS_SSL_PRESET_DEFAULT);
    if (rc != 0) return "cannot create TLS context: " + mbedtls_reason(rc);
    mbedtls_ssl_conf_min_version(&conf_, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);  // TLS 1.2
    mbedtls_ssl_conf_rng(&conf_, mbedtls_ctr_drbg_random, &drbg_);
    mbedtls_ssl_conf_authmode(&conf_, MBEDTLS_SSL_VERIFY_NONE);  // no client certificates
#if defined(MBEDTLS_SSL_RENEGOTIATION)
    mbedtls_ssl_conf_renegotiation(&conf_, MBEDTLS_SSL_RENEGOTIATION_DISABLED);
#endif
    // Forward-secret AEAD suites only, those this mbedTLS has; the server's order.
    static const char* const kSuites[] = {
        "TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256",       "TLS-ECDHE-RSA-WITH-AES-128-GCM-SHA256",
        "TLS-ECDHE-ECDSA-WITH-AES-256-GCM-SHA384",       "TLS-ECDHE-RSA-WITH-AES-256-GCM-SHA384",
        "TLS-ECDHE-ECDSA-WITH-CHACHA20-POLY1305-SHA256", "TLS-ECDHE-RSA-WITH-CHACHA20-POLY1305-SHA256",
    };
    for (const char* name : kSuites) {
        if (int id = mbedtls_ssl_get_ciphersuite_id(name)) suites_.push_back(id);
    }
    if (suites_.empty()) return "this build's mbed TLS has none of the ECDHE AEAD cipher suites";
    suites_.push_back(0);
    mbedtls_ssl_conf_ciphersuites(&conf_, suites_.data());
    rc = mbedtls_ssl_conf_own_cert(&conf_, &chain_, &key_);
    if (rc != 0) return "cannot use -tls-cert " + cert_file + ": " + mbedtls_reason(rc);
    // mbedTLS answers an ALPN offer without a protocol of this list with
    // no_application_protocol, as RFC 7301 asks.
    rc = mbedtls_ssl_conf_alpn_protocols(&conf_, kAlpn);
    if (rc != 0) return "cannot set ALPN: " + mbedtls_reason(rc);
#if defined(MBEDTLS_SSL_TICKET_C)
    rc = mbedtls_ssl_ticket_setup(&tickets_, mbedtls_ctr_drbg_random, &drbg_, MBEDTLS_CIPHER_AES_256_GCM, 86400);
    if (rc != 0) return "cannot set up session tickets: " + mbedtls_reason(rc);
    mbedtls_ssl_conf_session_tickets_cb(&conf_, mbedtls_ssl_ticket_write, mbedtls_ssl_ticket_parse, &tickets_);
#endif
    return "";
}
#endif  // MBEDTLS_SSL_SRV_C

}  // namespace

bool trust_file_indexed() {
#if defined(MBEDTLS_X509_TRUSTED_CERTIFICATE_CALLBACK)
    return true;
#else
    return false;
#endif
}

std::unique_ptr<TlsContextBase> new_tls_context(TrustChoice trust, std::string file_label, std::string trust_source) {
    return std::make_unique<MbedTlsContext>(std::move(trust), std::move(file_label), std::move(trust_source));
}

}  // namespace op::tls_internal

namespace op {

std::shared_ptr<TlsServerContext> TlsServerContext::load(const std::string& cert_file, const std::string& key_file,
                                                         std::string& error) {
#if defined(MBEDTLS_SSL_SRV_C)
    auto ctx = std::make_shared<tls_internal::MbedTlsServerContext>();
    error = ctx->build(cert_file, key_file);
    if (!error.empty()) return nullptr;
    return ctx;
#else
    (void)cert_file;
    (void)key_file;
    error = "this build's mbed TLS has no TLS server side (the small router builds leave it out): "
            "-tls-cert needs the standard build";
    return nullptr;
#endif
}

}  // namespace op
