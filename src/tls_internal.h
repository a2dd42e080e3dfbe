// The seam between the library-neutral half of tls.h's implementation (tls_common.cpp)
// and the one backend a build compiles (tls_openssl.cpp or tls_mbedtls.cpp, picked by
// CMake's OP_TLS). Nothing here includes a TLS library's headers.
//
// tls_common.cpp owns what does not depend on the library: choosing and checking the
// trust store (TlsClientContext::create), loading it once (TlsContextBase::ready),
// the host-name helpers, reading a PEM bundle, the few DER walks both backends need,
// and the session cache's rule. A backend provides new_tls_context() and the
// TlsContextBase and TlsSession subclasses behind it.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "byte_buffer.h"
#include "tls.h"

namespace op::tls_internal {

// TLS records carry at most 16 KiB of plaintext; what a record adds to it (header,
// explicit nonce, tag, CBC padding) stays well under 64 bytes for the suites either
// backend negotiates. Only used to size the outgoing queue ahead of a write.
constexpr std::size_t kMaxRecordPlaintext = 16 * 1024;
constexpr std::size_t kRecordOverhead = 64;

// Follows TLS record framing (5-byte header: type, version, 16-bit length) over the
// bytes the engine has taken, so we know when it cannot be holding part of a record.
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

// A FIFO of ciphertext bytes between the socket owner and the engine, on a ByteBuffer:
// storage is released as soon as everything has been read (an idle connection holds
// nothing), and a consumed prefix is slid away before growing. The socket owner may
// read straight into it (space/commit), so incoming ciphertext is not copied on its
// way from the socket to the engine. Inline: it is on every record's path.
class CipherQueue {
public:
    std::size_t size() const { return buf_.size(); }

    // Cannot fail below ByteBuffer's 256 MiB limit, far above what any owner lets queue
    // (64 KiB high-water marks).
    void append(const char* p, std::size_t n) { buf_.append(p, n); }

    // Room for up to n more bytes, to be filled (e.g. by a socket read) and then
    // committed; nullptr past ByteBuffer's limit. commit(0) after a failed read.
    char* space(std::size_t n) { return buf_.prepare(n); }
    void commit(std::size_t n) {
        buf_.commit(n);
        if (buf_.empty()) buf_.release();
    }

    // Makes room for n more bytes at once, so that a large write appends into one
    // allocation instead of doubling (and copying) its way up record by record.
    void reserve_more(std::size_t n) { buf_.prepare(n); }

    // Write side used by the engine (the outgoing queue): each record it makes goes to
    // the direct sender first when one is set and nothing is queued before it
    // (TlsSession::set_direct_send); the rest is queued.
    void set_direct(TlsSession::DirectSend send, void* ctx) {
        direct_ = send;
        direct_ctx_ = ctx;
    }
    void emit(const char* p, std::size_t n) {
        if (direct_ && buf_.empty()) {
            std::size_t sent = direct_(direct_ctx_, p, n);
            p += sent;
            n -= sent;
        }
        if (n > 0) buf_.append(p, n);
    }
    // Whether a write's ciphertext will be queued (so room for it is worth making up
    // front) rather than go straight out.
    bool queues_writes() const { return !direct_ || !buf_.empty(); }

    // Read side used by the engine (the incoming queue): tracks record boundaries.
    std::size_t take(char* out, std::size_t cap) {
        std::size_t n = std::min(cap, size());
        if (n == 0) return 0;
        std::memcpy(out, buf_.data(), n);
        records_.consumed(out, n);
        buf_.consume(n);
        return n;
    }

    // Read side used by the socket owner (the outgoing queue): no copy.
    std::string_view peek() const { return buf_.view(); }
    void drop(std::size_t n) { buf_.consume(std::min(n, size())); }

    // Whether everything taken so far ends exactly at a record boundary.
    bool taken_whole_records() const { return records_.at_boundary(); }

private:
    ByteBuffer buf_;
    RecordTracker records_;
    TlsSession::DirectSend direct_ = nullptr;
    void* direct_ctx_ = nullptr;
};

// What every backend's session shares: the ciphertext queues with the four calls of
// tls.h that only move bytes through them, and the sticky failure.
class QueuedTlsSession : public TlsSession {
public:
    void feed_ciphertext(const char* data, std::size_t len) final { in_.append(data, len); }
    char* ciphertext_space(std::size_t cap) final { return in_.space(cap); }
    void commit_ciphertext(std::size_t n) final { in_.commit(n); }
    std::size_t pending_ciphertext() const final { return out_.size(); }
    std::string_view peek_ciphertext() const final { return out_.peek(); }
    void drop_ciphertext(std::size_t n) final { out_.drop(n); }
    void set_direct_send(DirectSend send, void* ctx) final { out_.set_direct(send, ctx); }
    const std::string& error() const final { return error_; }

protected:
    // A subclass's destructor frees its engine while these are still alive.
    CipherQueue in_;       // from the peer, not yet consumed by the engine
    CipherQueue out_;      // produced by the engine, not yet taken by the socket owner
    bool failed_ = false;  // a fatal error happened: every call fails from now on
    std::string error_;    // its one-line reason
};

// --- host names --------------------------------------------------------------------

// The name to verify: brackets are URL syntax, and a zone id ("%eth0") names a local
// interface, not anything a certificate can carry; neither takes part in verification.
std::string bare_host(std::string_view name);

// The name a session sends as SNI and verifies the certificate against: bare_host()'s,
// less the one trailing dot of an absolute name ("api.openai.com."). RFC 6066 section 3
// sends SNI without it, and a certificate names the host without it (Go and curl drop
// it too). Only TLS sees this form: the Host field, the CONNECT request and the pool
// keep the name as written.
std::string tls_host(std::string_view name);

// Whether `pattern`, a DNS name from a certificate, names `host` (tls_host()'s form) as
// OpenSSL matches them (X509_check_host with X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS): the
// same name, ASCII case aside; or a wildcard "*." followed by at least two labels,
// the "*" standing for the whole first label of `host`. "*.test" names nothing (it
// would stand for every name under a top-level domain), nor do "f*.example.test" and
// "*.*.example.test" (but "*.example.test" is "a.example.test", not "a.b.example.test").
bool dns_name_matches(std::string_view pattern, std::string_view host);

// An IP address in network byte order, as a certificate's iPAddress SAN holds it.
struct IpAddress {
    unsigned char bytes[16] = {};
    std::size_t len = 0;  // 4 or 16; 0 when not an address
};

// A dotted quad (decimal parts 0-255) or an RFC 4291 IPv6 address (one "::" at most,
// an embedded dotted quad at the end), as bare_host() leaves it. Such a host gets no
// SNI (RFC 6066) and is matched against the certificate's IP SANs.
bool parse_ip_literal(std::string_view host, IpAddress& out);
bool is_ip_literal(std::string_view host);

// --- the trust store -----------------------------------------------------------------

// The whole file; false (errno set) if it cannot be read.
bool read_whole_file(const std::string& path, std::string& out);

// One certificate block of a PEM bundle, base64-decoded. The DER is the Certificate,
// followed, in the "TRUSTED CERTIFICATE" form, by OpenSSL's trust settings for it
// (X509_CERT_AUX). The certificate's framing has been checked as far as its subject.
struct PemCertificate {
    std::string der;
    bool trusted_form = false;
    std::size_t cert_len = 0;        // the Certificate: der[0, cert_len)
    std::size_t subject_offset = 0;  // its subject Name, as DER: der[subject_offset, +subject_len)
    std::size_t subject_len = 0;
    std::size_t block_offset = 0;    // the PEM block in the text: BEGIN line to END line
    std::size_t block_len = 0;
    std::size_t number = 0;          // 1 for the bundle's first certificate
};

// Calls take() with each certificate of a PEM bundle, in file order (other blocks,
// CRLs or keys, and text between blocks are skipped). false and the reason (without
// the file's name) if there is none, or one is not well-formed: no END line, bad
// base64, DER framing broken before the subject, or take() returning false. A backend
// refuses the whole bundle then, as OpenSSL's own loader does.
bool read_pem_bundle(const std::string& text, const std::function<bool(PemCertificate&)>& take,
                     std::string& error);

// Whether the DER Certificate names `ip` among its subjectAltName iPAddress entries
// (RFC 5280 4.2.1.6: [7] OCTET STRING of 4 or 16 bytes). For backends whose library
// cannot match addresses itself. false for malformed DER.
bool certificate_has_ip_san(const unsigned char* der, std::size_t len, const IpAddress& ip);

// What OpenSSL's trust settings (the X509_CERT_AUX after a TRUSTED CERTIFICATE) say
// about TLS server authentication, as X509_check_trust reads them: a `reject` list
// naming serverAuth or anyExtendedKeyUsage, or a `trust` list naming neither, rejects
// the certificate; otherwise (it names one, or there are no lists) it is a trust anchor.
// Settings that do not parse reject it too: such a certificate is never trusted.
enum class AuxTrust { Anchor, Rejected };
AuxTrust server_auth_trust(const unsigned char* aux, std::size_t len);

// A key for a DER Name under mbedTLS's equality of names (x509_name_cmp, which
// x509_crt_check_parent uses): attribute by attribute, the same types, values equal
// byte for byte with the same tag, or UTF8String/PrintableString values (either tag)
// equal but for the case of ASCII letters, grouped into the same RDNs. Names mbedTLS
// takes for equal get equal keys; unequal ones almost always different keys (a
// collision only costs a look at one more certificate, which mbedTLS then turns down).
// Malformed DER gets a key of its bytes.
std::uint64_t name_key(const unsigned char* der, std::size_t len);

// The trust anchors of a PEM bundle, kept as an index instead of parsed certificates:
// for each one the key of its subject (name_key), where its PEM block is in the file,
// and a digest of its DER. The file stays open, and a lookup reads the blocks of the
// anchors a child certificate's issuer names back from it (a few hundred bytes each),
// so that a bundle of 150 roots costs about 10 KB of memory instead of their parsed
// form. The file's bytes are checked against the digests on every read: a file
// rewritten in place after load() fails the lookup with a clear error instead of
// trusting whatever is there now (one replaced by a rename, as update-ca-certificates
// does, goes on being read through the open handle: the anchors loaded stay those in
// use, as with a parsed store). Thread-safe once loaded: reads are serialised by a
// mutex, lookups otherwise touch only immutable data.
class TrustIndex {
public:
    // SHA-256, or any 32-byte digest: supplied by the backend, which has one.
    using DigestFn = void (*)(const unsigned char* data, std::size_t len, unsigned char out[32]);
    explicit TrustIndex(DigestFn digest) : digest_(digest) {}
    ~TrustIndex();
    TrustIndex(const TrustIndex&) = delete;
    TrustIndex& operator=(const TrustIndex&) = delete;

    // Reads the bundle `path` (named `label` in errors, as read_trust_file words them),
    // indexing each certificate anchor(cert) accepts. false and the reason if the file
    // cannot be read or read_pem_bundle refuses it. Once, before any find().
    bool load(const std::string& path, const std::string& label,
              const std::function<bool(const PemCertificate&)>& anchor, std::string& error);

    // Calls use(der, len) with the DER Certificate of each anchor whose subject has the
    // key of `name` (a DER Name), in file order. false and the reason if a block read
    // back is not the one indexed (the file changed) or cannot be read.
    bool find(const unsigned char* name, std::size_t len,
              const std::function<void(const unsigned char*, std::size_t)>& use, std::string& error) const;

    std::size_t size() const { return entries_.size(); }
    // What the index holds on the heap, for the memory figures.
    std::size_t memory() const { return entries_.capacity() * sizeof(Entry) + label_.capacity(); }

private:
    struct Entry {
        std::uint64_t key;           // name_key of the subject
        std::uint64_t offset;        // of the PEM block in the file
        std::uint32_t block_len;
        std::uint32_t number;        // its place in the bundle, for errors
        unsigned char digest[32];    // of the block's DER (the TRUSTED form's settings included)
    };
    bool read_back(const Entry& entry, PemCertificate& out, std::string& error) const;

    DigestFn digest_;
    std::vector<Entry> entries_;
    std::string label_;
    std::FILE* file_ = nullptr;
    mutable std::mutex file_mutex_;  // one seek-and-read at a time
};

// Whether this backend keeps a trust file as a TrustIndex (the mbedTLS backend built
// with MBEDTLS_X509_TRUSTED_CERTIFICATE_CALLBACK) rather than parsed in memory.
bool trust_file_indexed();

// --- contexts and sessions -----------------------------------------------------------

// What every backend context has: the trust store chosen and checked by create(), and
// the library's side built on first use, once (see ready() in tls.h).
class TlsContextBase : public TlsClientContext {
public:
    const std::string& trust_source() const final { return trust_source_; }
    bool ready(std::string& error) final;

    // A session for `host` (tls_host()'s form, not empty), resuming from the cache
    // entry `cache_key` ("host:port") when it can. Only after ready() returned true;
    // nullptr when the library cannot allocate or configure it.
    virtual std::unique_ptr<TlsSession> new_session(const std::string& host, std::string cache_key) = 0;

protected:
    TlsContextBase(TrustChoice trust, std::string file_label, std::string trust_source)
        : trust_(std::move(trust)), file_label_(std::move(file_label)), trust_source_(std::move(trust_source)) {}

    // Loads the library's side and the trust store: "" on success, else why not (one
    // line, naming the file or directory). Runs once, in the first ready().
    virtual std::string build() = 0;

    const TrustChoice& trust() const { return trust_; }
    const std::string& file_label() const { return file_label_; }  // trust().file as named in errors

    // trust().file's certificates for build(): read_pem_bundle() with the file's errors
    // worded for users ("cannot read ...", "... holds no usable PEM certificates (...)").
    bool read_trust_file(const std::function<bool(PemCertificate&)>& take, std::string& error) const;

private:
    const TrustChoice trust_;
    const std::string file_label_;
    const std::string trust_source_;
    std::once_flag built_;
    bool built_ok_ = false;    // written once inside call_once, read after it
    std::string build_error_;  // why build() failed
};

// The backend's context for a trust store create() has chosen and checked.
std::unique_ptr<TlsContextBase> new_tls_context(TrustChoice trust, std::string file_label, std::string trust_source);

// "certificate verify failed: <reason>", the words both backends use for a failed
// verification, with OpenSSL's reason strings (X509_verify_cert_error_string).
std::string verify_failed(const char* reason);

// A fatal alert from the peer (its description, RFC 8446 section 6) in OpenSSL's words
// for it ("sslv3 alert handshake failure"), for backends whose library has none. The
// texts are OpenSSL 3.0's reason strings; test_tls.cpp checks them against the library.
std::string alert_reason(unsigned char description);

// Resumable sessions, one per "host:port" (a proxy talks to a handful of upstreams):
// the latest one stored for a key replaces the one before; beyond kMaxSessions the
// least recently stored entry is dropped. Guarded by a mutex because one context
// serves every worker thread. `Session` owns one library session object
// (std::unique_ptr with the library's free function).
template <class Session>
class SessionCache {
public:
    static constexpr std::size_t kMaxSessions = 256;

    // Keeps `session` for `key` until `expires` (seconds since the epoch).
    void store(const std::string& key, Session session, std::int64_t expires) {
        std::lock_guard<std::mutex> lock(mutex_);
        auto it = entries_.find(key);
        if (it != entries_.end()) {
            it->second = Entry{std::move(session), expires, ++clock_};
            return;
        }
        if (entries_.size() >= kMaxSessions) {
            auto oldest = std::min_element(entries_.begin(), entries_.end(), [](const auto& a, const auto& b) {
                return a.second.stamp < b.second.stamp;
            });
            entries_.erase(oldest);
        }
        entries_.emplace(key, Entry{std::move(session), expires, ++clock_});
    }

    // Calls use(session) with the unexpired session kept for `key`, if any, under the
    // cache's lock (so `use` copies or references it before another thread replaces
    // it). `use` returns false when the library says it can no longer be resumed; the
    // entry is dropped then, as is an expired one.
    template <class Use>
    void offer(const std::string& key, Use&& use) {
        std::lock_guard<std::mutex> lock(mutex_);
        auto it = entries_.find(key);
        if (it == entries_.end()) return;
        const bool expired = it->second.expires <= static_cast<std::int64_t>(std::time(nullptr));
        if (expired || !use(it->second.session.get())) entries_.erase(it);
    }

    std::size_t size() {
        std::lock_guard<std::mutex> lock(mutex_);
        return entries_.size();
    }

private:
    struct Entry {
        Session session;
        std::int64_t expires;
        std::uint64_t stamp;  // larger = stored more recently
    };
    std::mutex mutex_;
    std::map<std::string, Entry> entries_;
    std::uint64_t clock_ = 0;
};

}  // namespace op::tls_internal
