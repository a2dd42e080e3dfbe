// Tests for tls.h (tls_common.cpp, trust_store.cpp and the backend the build compiles:
// tls_openssl.cpp or tls_mbedtls.cpp; OP_TLS_BACKEND names it). Whatever the backend,
// certificates are made here with the OpenSSL API and the server is an in-memory
// OpenSSL SSL object; bytes are pumped between it and the TlsSession by hand: no
// sockets, no DNS. Expected failure texts are OpenSSL's own strings
// (X509_verify_cert_error_string and friends), which both backends must produce.
#include "doctest/doctest.h"
#include "tls.h"
#include "tls_internal.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string_view>
#include <filesystem>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#if defined(__GLIBC__)
#include <malloc.h>  // mallinfo2: the heap bytes in use, for the idle-session test
#endif

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

using op::TlsClientContext;
using op::TlsSession;
using op::TlsStatus;
using op::TrustChoice;
using op::TrustSettings;

namespace {

namespace fs = std::filesystem;

constexpr bool kOpenSslBackend = std::string_view(OP_TLS_BACKEND) == "openssl";

// mbed TLS 2.28 negotiates TLS 1.2 at most; a TLS 1.3 server then speaks 1.2 with it.
int negotiated(int server_max_version) { return kOpenSslBackend ? server_max_version : TLS1_2_VERSION; }

// "certificate verify failed: " and OpenSSL's text for `x509_error`.
std::string verify_error(long x509_error) {
    return std::string("certificate verify failed: ") + X509_verify_cert_error_string(x509_error);
}

fs::path unique_temp_path(const char* suffix) {
    unsigned char r[8];
    REQUIRE(RAND_bytes(r, sizeof r) == 1);
    char name[64];
    std::snprintf(name, sizeof name, "op-tls-test-%02x%02x%02x%02x%02x%02x%02x%02x%s", r[0], r[1], r[2], r[3],
                  r[4], r[5], r[6], r[7], suffix);
    return fs::temp_directory_path() / name;
}

// Removes a temporary file or directory tree when the test leaves its scope.
struct RemoveOnExit {
    fs::path path;
    ~RemoveOnExit() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

void add_ext(X509* cert, X509V3_CTX* v3, int nid, const char* value) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, v3, nid, value);
    REQUIRE(ext != nullptr);
    REQUIRE(X509_add_ext(cert, ext, -1) == 1);
    X509_EXTENSION_free(ext);
}

// A certificate for `key` named `cn`, signed by `issuer` (self-signed when null): a CA
// certificate when `ca`, else a server certificate for `san` (none when null) and the
// extended key usage `eku`.
X509* make_cert_as(EVP_PKEY* key, const char* cn, X509* issuer, EVP_PKEY* issuer_key, const char* san, bool ca,
                   const char* eku = "serverAuth") {
    static long serial = 1;
    X509* cert = X509_new();
    REQUIRE(cert != nullptr);
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), serial++);
    X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert), 24 * 3600);
    X509_set_pubkey(cert, key);
    X509_NAME* name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn), -1, -1, 0);
    X509_set_issuer_name(cert, issuer ? X509_get_subject_name(issuer) : name);
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, issuer ? issuer : cert, cert, nullptr, nullptr, 0);
    add_ext(cert, &v3, NID_subject_key_identifier, "hash");
    if (!ca) {
        add_ext(cert, &v3, NID_basic_constraints, "critical,CA:FALSE");
        add_ext(cert, &v3, NID_key_usage, "critical,digitalSignature");
        add_ext(cert, &v3, NID_ext_key_usage, eku);
        if (san) add_ext(cert, &v3, NID_subject_alt_name, san);
    } else {
        add_ext(cert, &v3, NID_basic_constraints, "critical,CA:TRUE");
        add_ext(cert, &v3, NID_key_usage, "critical,keyCertSign,cRLSign");
    }
    REQUIRE(X509_sign(cert, issuer && issuer_key ? issuer_key : key, EVP_sha256()) > 0);
    return cert;
}

// A server certificate signed by `issuer`, or a self-signed CA when `issuer` is null.
X509* make_cert(EVP_PKEY* key, const char* cn, X509* issuer, EVP_PKEY* issuer_key, const char* san) {
    return make_cert_as(key, cn, issuer, issuer_key, san, issuer == nullptr);
}

void write_pem(const fs::path& path, X509* cert) {
    BIO* out = BIO_new_file(path.string().c_str(), "w");
    REQUIRE(out != nullptr);
    REQUIRE(PEM_write_bio_X509(out, cert) == 1);
    BIO_free(out);
}

// A test CA with a server certificate for localhost, 127.0.0.1 and ::1, an unrelated
// second CA, and both CA certificates as PEM files (removed with the object).
struct Pki {
    EVP_PKEY* ca_key = EVP_EC_gen("P-256");
    EVP_PKEY* server_key = EVP_EC_gen("P-256");
    EVP_PKEY* other_key = EVP_EC_gen("P-256");
    X509* ca = nullptr;
    X509* server = nullptr;
    X509* other_ca = nullptr;
    fs::path ca_file = unique_temp_path("-ca.pem");
    fs::path other_ca_file = unique_temp_path("-other.pem");

    Pki() {
        REQUIRE(ca_key != nullptr);
        REQUIRE(server_key != nullptr);
        REQUIRE(other_key != nullptr);
        ca = make_cert(ca_key, "op test CA", nullptr, nullptr, nullptr);
        server = make_cert(server_key, "localhost", ca, ca_key, "DNS:localhost,IP:127.0.0.1,IP:::1");
        other_ca = make_cert(other_key, "op other CA", nullptr, nullptr, nullptr);
        write_pem(ca_file, ca);
        write_pem(other_ca_file, other_ca);
    }
    ~Pki() {
        std::error_code ec;
        fs::remove(ca_file, ec);
        fs::remove(other_ca_file, ec);
        X509_free(ca);
        X509_free(server);
        X509_free(other_ca);
        EVP_PKEY_free(ca_key);
        EVP_PKEY_free(server_key);
        EVP_PKEY_free(other_key);
    }
};

std::unique_ptr<TlsClientContext> client_context(const fs::path& ca_file) {
    TrustSettings trust;
    trust.ca_file = ca_file.string();
    std::string error;
    auto ctx = TlsClientContext::create(trust, error);
    REQUIRE_MESSAGE(ctx != nullptr, error);
    return ctx;
}

// The server side: one SSL_CTX (so session tickets and the session cache span
// connections), recording what the last client offered.
struct TestServer {
    SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
    std::string alpn_offered;

    TestServer(const Pki& pki, int max_version) {
        REQUIRE(ctx != nullptr);
        REQUIRE(SSL_CTX_use_certificate(ctx, pki.server) == 1);
        REQUIRE(SSL_CTX_use_PrivateKey(ctx, pki.server_key) == 1);
        REQUIRE(SSL_CTX_set_max_proto_version(ctx, max_version) == 1);
        SSL_CTX_set_session_id_context(ctx, reinterpret_cast<const unsigned char*>("op"), 2);
        SSL_CTX_set_alpn_select_cb(ctx, select_alpn, this);
    }
    ~TestServer() { SSL_CTX_free(ctx); }

    static int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                           unsigned int inlen, void* arg) {
        static_cast<TestServer*>(arg)->alpn_offered.assign(reinterpret_cast<const char*>(in), inlen);
        if (inlen == 0 || in[0] + 1u > inlen) return SSL_TLSEXT_ERR_NOACK;
        *out = in + 1;
        *outlen = in[0];
        return SSL_TLSEXT_ERR_OK;
    }
};

struct ServerConn {
    SSL* ssl;
    BIO* in = BIO_new(BIO_s_mem());   // ciphertext from the client
    BIO* out = BIO_new(BIO_s_mem());  // ciphertext to the client

    explicit ServerConn(TestServer& server) : ssl(SSL_new(server.ctx)) {
        REQUIRE(ssl != nullptr);
        SSL_set_bio(ssl, in, out);
        SSL_set_accept_state(ssl);
    }
    ~ServerConn() {
        // Without this, SSL_free drops the session from the server's cache when no
        // close_notify was exchanged (the pool closes connections that way), and TLS 1.2
        // session IDs could never resume.
        if (SSL_is_init_finished(ssl)) SSL_set_shutdown(ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
        SSL_free(ssl);
    }

    void step_handshake() {
        if (!SSL_is_init_finished(ssl)) SSL_do_handshake(ssl);
        ERR_clear_error();
    }
    std::string read_all() {
        std::string got;
        char buf[8192];
        std::size_t n = 0;
        while (SSL_read_ex(ssl, buf, sizeof buf, &n) == 1) got.append(buf, n);
        ERR_clear_error();
        return got;
    }
    void write(const std::string& data) {
        std::size_t n = 0;
        REQUIRE(SSL_write_ex(ssl, data.data(), data.size(), &n) == 1);
        REQUIRE(n == data.size());
    }
};

// Client ciphertext into the server, taken `chunk` bytes at a time.
bool client_to_server(TlsSession& client, ServerConn& server, std::size_t chunk = 16 * 1024) {
    bool moved = false;
    std::vector<char> buf(chunk);
    while (client.pending_ciphertext() > 0) {
        std::size_t n = client.take_ciphertext(buf.data(), buf.size());
        REQUIRE(n > 0);
        REQUIRE(BIO_write(server.in, buf.data(), static_cast<int>(n)) == static_cast<int>(n));
        moved = true;
    }
    return moved;
}

// Server ciphertext into the client, fed `chunk` bytes at a time.
bool server_to_client(ServerConn& server, TlsSession& client, std::size_t chunk = 16 * 1024) {
    bool moved = false;
    std::vector<char> buf(chunk);
    int n;
    while ((n = BIO_read(server.out, buf.data(), static_cast<int>(buf.size()))) > 0) {
        client.feed_ciphertext(buf.data(), static_cast<std::size_t>(n));
        moved = true;
    }
    return moved;
}

// Steps both handshakes, moving bytes both ways, until the client fails or both are done
// and nothing moves any more. Returns the client's last handshake status.
TlsStatus run_handshake(TlsSession& client, ServerConn& server) {
    TlsStatus st = TlsStatus::WantRead;
    for (int round = 0; round < 20; ++round) {
        st = client.handshake();
        bool moved = client_to_server(client, server);
        server.step_handshake();
        moved = server_to_client(server, client) || moved;
        if (st == TlsStatus::Error) return st;
        if (st == TlsStatus::Ok && SSL_is_init_finished(server.ssl) && !moved) return st;
        if (st == TlsStatus::WantRead && !moved) return st;  // stuck: the test fails on it
    }
    return st;
}

// A client session past its handshake with an in-memory server ("localhost":port): what
// most data tests start from.
struct Connected {
    Pki pki;
    std::unique_ptr<TlsClientContext> ctx = client_context(pki.ca_file);
    TestServer server;
    ServerConn conn{server};
    std::unique_ptr<TlsSession> client;

    Connected(int version, unsigned short port)
        : server(pki, version), client(TlsSession::create(*ctx, "localhost", port)) {
        REQUIRE(client);
        REQUIRE(run_handshake(*client, conn) == TlsStatus::Ok);
    }
};

// Everything the client can read from what has been fed so far.
std::string client_read_all(TlsSession& client, std::size_t cap = 16 * 1024, TlsStatus* last = nullptr) {
    std::string got;
    std::vector<char> buf(cap);
    for (;;) {
        std::size_t n = 0;
        TlsStatus st = client.read(buf.data(), buf.size(), &n);
        if (st != TlsStatus::Ok) {
            if (last) *last = st;
            return got;
        }
        REQUIRE(n > 0);
        got.append(buf.data(), n);
    }
}

void client_write(TlsSession& client, const std::string& data) {
    std::size_t n = 0;
    REQUIRE(client.write(data.data(), data.size(), &n) == TlsStatus::Ok);
    REQUIRE(n == data.size());
}

std::string pattern(std::size_t len, unsigned seed) {
    std::string s(len, '\0');
    for (std::size_t i = 0; i < len; ++i) s[i] = static_cast<char>((i * 131 + (i >> 9) + seed) & 0xff);
    return s;
}

}  // namespace

TEST_CASE("tls: handshake, ALPN, SNI and data both ways") {
    Pki pki;
    auto ctx = client_context(pki.ca_file);
    CHECK(ctx->trust_source() == pki.ca_file.string());
    for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
        CAPTURE(version);
        TestServer server(pki, version);
        ServerConn conn(server);
        auto client = TlsSession::create(*ctx, "localhost", 443);
        REQUIRE(client);
        CHECK_FALSE(client->handshake_done());
        REQUIRE(run_handshake(*client, conn) == TlsStatus::Ok);
        CHECK(client->handshake_done());
        CHECK_FALSE(client->session_reused());
        CHECK(client->error().empty());
        CHECK(SSL_version(conn.ssl) == negotiated(version));
        CHECK(server.alpn_offered == std::string("\x08http/1.1", 9));
        const char* sni = SSL_get_servername(conn.ssl, TLSEXT_NAMETYPE_host_name);
        REQUIRE(sni != nullptr);
        CHECK(std::string(sni) == "localhost");

        client_write(*client, "GET / HTTP/1.1\r\n\r\n");
        client_to_server(*client, conn);
        CHECK(conn.read_all() == "GET / HTTP/1.1\r\n\r\n");
        conn.write("HTTP/1.1 200 OK\r\n\r\n");
        server_to_client(conn, *client);
        TlsStatus last = TlsStatus::Ok;
        CHECK(client_read_all(*client, 16 * 1024, &last) == "HTTP/1.1 200 OK\r\n\r\n");
        CHECK(last == TlsStatus::WantRead);
        CHECK_FALSE(client->has_buffered_input());
        client_to_server(*client, conn);  // whatever reading produced (nothing expected)
    }
}

TEST_CASE("tls: 1 MiB each way in uneven pieces") {
    Connected t(TLS1_3_VERSION, 8443);
    auto& client = t.client;
    auto& conn = t.conn;

    const std::size_t total = 1024 * 1024;
    const std::size_t pieces[] = {1, 100, 5000, 16384, 16385, 40000, 7};

    // Client to server: every write takes all its bytes; ciphertext leaves in 3000-byte bites.
    const std::string up = pattern(total, 1);
    std::string received;
    for (std::size_t off = 0, i = 0; off < total; ++i) {
        std::size_t len = std::min(pieces[i % 7], total - off);
        client_write(*client, up.substr(off, len));
        off += len;
        client_to_server(*client, conn, 3000);
        received += conn.read_all();
    }
    CHECK(client->pending_ciphertext() == 0);
    CHECK(received.size() == total);
    CHECK(received == up);

    // Server to client: ciphertext arrives 1000 bytes at a time, plaintext is read with
    // a small buffer after every feed.
    const std::string down = pattern(total, 2);
    for (std::size_t off = 0, i = 0; off < total; ++i) {
        std::size_t len = std::min(pieces[i % 7], total - off);
        conn.write(down.substr(off, len));
        off += len;
    }
    std::string got;
    char buf[1000];
    int n;
    while ((n = BIO_read(conn.out, buf, sizeof buf)) > 0) {
        client->feed_ciphertext(buf, static_cast<std::size_t>(n));
        got += client_read_all(*client, 4096);
    }
    CHECK(got.size() == total);
    CHECK(got == down);
    CHECK_FALSE(client->has_buffered_input());
}

namespace {

// A socket for set_direct_send: takes up to `budget` bytes per call (0: EAGAIN).
struct Wire {
    std::string bytes;
    std::size_t calls = 0;
    std::size_t budget = SIZE_MAX;
};

std::size_t wire_take(void* ctx, const char* data, std::size_t len) {
    auto* w = static_cast<Wire*>(ctx);
    ++w->calls;
    std::size_t k = std::min(len, w->budget);
    w->bytes.append(data, k);
    return k;
}

}  // namespace

TEST_CASE("tls: a direct sender gets records as they are made, never ahead of queued ones") {
    Connected t(TLS1_3_VERSION, 8443);
    auto& client = t.client;
    auto& conn = t.conn;

    Wire wire;
    client->set_direct_send(wire_take, &wire);
    const std::string up = pattern(300 * 1000, 3);
    // The socket takes everything, nothing, part of a record, or more than one.
    const std::size_t budgets[] = {SIZE_MAX, 0, 700, SIZE_MAX, 5000, 0};
    const std::size_t pieces[] = {16384, 1, 5000, 16384, 300, 16384, 9000};
    std::string received;
    bool queued_seen = false;
    std::vector<char> buf(64 * 1024);
    for (std::size_t off = 0, i = 0; off < up.size(); ++i) {
        std::size_t len = std::min(pieces[i % 7], up.size() - off);
        wire.budget = budgets[i % 6];
        client_write(*client, up.substr(off, len));
        off += len;
        if (client->pending_ciphertext() > 0) queued_seen = true;
        // Now and then the owner's socket is writable again and takes the queue; the
        // direct sends in between must not have overtaken it.
        if (i % 3 == 2) wire.bytes.append(buf.data(), client->take_ciphertext(buf.data(), buf.size()));
        REQUIRE(BIO_write(conn.in, wire.bytes.data(), static_cast<int>(wire.bytes.size())) ==
                static_cast<int>(wire.bytes.size()));
        wire.bytes.clear();
        received += conn.read_all();
    }
    while (client->pending_ciphertext() > 0) wire.bytes.append(buf.data(), client->take_ciphertext(buf.data(), buf.size()));
    REQUIRE(BIO_write(conn.in, wire.bytes.data(), static_cast<int>(wire.bytes.size())) == static_cast<int>(wire.bytes.size()));
    received += conn.read_all();
    CHECK(received.size() == up.size());
    CHECK(received == up);
    CHECK(queued_seen);
    CHECK(wire.calls > 0);

    // Off again: the next record waits in the queue, the sender is not asked.
    client->set_direct_send(nullptr, nullptr);
    std::size_t calls = wire.calls;
    client_write(*client, "tail");
    CHECK(wire.calls == calls);
    CHECK(client->pending_ciphertext() > 0);
    client_to_server(*client, conn);
    CHECK(conn.read_all() == "tail");
}

TEST_CASE("tls: has_buffered_input covers decrypted and undecrypted bytes") {
    Connected t(TLS1_3_VERSION, 443);
    auto& client = t.client;
    auto& conn = t.conn;
    client_read_all(*client);  // consume the TLS 1.3 tickets
    CHECK_FALSE(client->has_buffered_input());

    conn.write(pattern(10000, 3));
    std::string record(static_cast<std::size_t>(BIO_ctrl_pending(conn.out)), '\0');
    REQUIRE(BIO_read(conn.out, record.data(), static_cast<int>(record.size())) == static_cast<int>(record.size()));

    // Half a record: fed but not decryptable yet.
    client->feed_ciphertext(record.data(), record.size() / 2);
    CHECK(client->has_buffered_input());
    char buf[100];
    std::size_t n = 0;
    CHECK(client->read(buf, sizeof buf, &n) == TlsStatus::WantRead);
    CHECK(n == 0);
    CHECK(client->has_buffered_input());  // the partial record is held inside the engine

    // The rest: decrypted plaintext remains after a short read.
    client->feed_ciphertext(record.data() + record.size() / 2, record.size() - record.size() / 2);
    REQUIRE(client->read(buf, sizeof buf, &n) == TlsStatus::Ok);
    CHECK(n == sizeof buf);
    CHECK(client->has_buffered_input());
    std::string rest = client_read_all(*client, 3000);
    CHECK(rest.size() == 10000 - sizeof buf);
    CHECK_FALSE(client->has_buffered_input());
}

#if defined(__GLIBC__)
// Both backends give a session's record buffers back when a read runs dry (OpenSSL:
// SSL_MODE_RELEASE_BUFFERS; mbed TLS: the session parks them), and take them again for
// the next record: an idle pooled connection or a held stream costs no 16 KiB buffer.
TEST_CASE("tls: an idle session gives its record buffers back, and reads the next record whole") {
    if (mallinfo2().uordblks == 0) {
        MESSAGE("skipped: no heap statistics here (a sanitizer's allocator replaces glibc's)");
        return;
    }
    Pki pki;
    auto ctx = client_context(pki.ca_file);
    for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
        CAPTURE(version);
        TestServer server(pki, version);
        ServerConn conn(server);
        auto client = TlsSession::create(*ctx, "localhost", 443);
        REQUIRE(client);
        REQUIRE(run_handshake(*client, conn) == TlsStatus::Ok);
        client_read_all(*client);  // TLS 1.3 tickets
        client_write(*client, "POST /v1/chat/completions HTTP/1.1\r\n\r\n");
        client_to_server(*client, conn);
        conn.read_all();
        for (int round = 0; round < 3; ++round) {
            CAPTURE(round);
            // A full-size record (16 KiB of plaintext), read in two parts: after the first,
            // the session holds its incoming buffer; once the read runs dry, it does not.
            const std::string event = pattern(16 * 1024, static_cast<unsigned>(round));
            conn.write(event);
            server_to_client(conn, *client);
            std::string got(event.size() + 1, '\0');  // allocated before measuring
            std::size_t have = 0, n = 0;
            REQUIRE(client->read(got.data(), 100, &n) == TlsStatus::Ok);
            have += n;
            const std::size_t busy = mallinfo2().uordblks;
            TlsStatus last;
            while ((last = client->read(got.data() + have, got.size() - have, &n)) == TlsStatus::Ok) have += n;
            const std::size_t idle = mallinfo2().uordblks;
            CHECK(last == TlsStatus::WantRead);
            got.resize(have);
            CHECK(got == event);
            CHECK(busy >= idle + 16 * 1024);
        }
    }
}
#endif

TEST_CASE("tls: a certificate from an unknown CA fails verification") {
    Pki pki;
    auto ctx = client_context(pki.other_ca_file);
    TestServer server(pki, TLS1_3_VERSION);
    ServerConn conn(server);
    auto client = TlsSession::create(*ctx, "localhost", 443);
    REQUIRE(client);
    CHECK(run_handshake(*client, conn) == TlsStatus::Error);
    CHECK_FALSE(client->handshake_done());
    CHECK(client->error() == verify_error(X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY));
    // Sticky, and the text does not change on later calls.
    std::string first = client->error();
    CHECK(client->handshake() == TlsStatus::Error);
    CHECK(client->error() == first);
    std::size_t n = 1;
    char buf[16];
    CHECK(client->read(buf, sizeof buf, &n) == TlsStatus::Error);
    CHECK(n == 0);
    CHECK(client->write("x", 1, &n) == TlsStatus::Error);
}

TEST_CASE("tls: a name the certificate does not carry fails verification") {
    Pki pki;
    auto ctx = client_context(pki.ca_file);
    TestServer server(pki, TLS1_2_VERSION);
    ServerConn conn(server);
    auto client = TlsSession::create(*ctx, "api.example.test", 443);
    REQUIRE(client);
    CHECK(run_handshake(*client, conn) == TlsStatus::Error);
    CHECK(client->error() == verify_error(X509_V_ERR_HOSTNAME_MISMATCH));

    // The failure leaves nothing behind for the next session on the same thread.
    ServerConn conn2(server);
    auto good = TlsSession::create(*ctx, "localhost", 443);
    REQUIRE(good);
    CHECK(run_handshake(*good, conn2) == TlsStatus::Ok);
    CHECK(good->error().empty());
}

TEST_CASE("tls: IP literals are verified against IP SANs and get no SNI") {
    Pki pki;  // the server's certificate: DNS:localhost, IP:127.0.0.1, IP:::1
    auto ctx = client_context(pki.ca_file);
    TestServer server(pki, TLS1_3_VERSION);
    const struct {
        const char* name;
        bool matches;
    } kCases[] = {{"127.0.0.1", true}, {"[::1]", true}, {"127.0.0.2", false}, {"[::2]", false}};
    for (const auto& c : kCases) {
        CAPTURE(c.name);
        ServerConn conn(server);
        auto client = TlsSession::create(*ctx, c.name, 443);
        REQUIRE(client);
        CHECK(run_handshake(*client, conn) == (c.matches ? TlsStatus::Ok : TlsStatus::Error));
        CHECK(client->error() == (c.matches ? std::string() : verify_error(X509_V_ERR_IP_ADDRESS_MISMATCH)));
        CHECK(SSL_get_servername(conn.ssl, TLSEXT_NAMETYPE_host_name) == nullptr);
    }
}

TEST_CASE("tls: an empty server name is refused") {
    Pki pki;
    auto ctx = client_context(pki.ca_file);
    CHECK(TlsSession::create(*ctx, "", 443) == nullptr);
    CHECK(TlsSession::create(*ctx, "[]", 443) == nullptr);
}

TEST_CASE("tls: the second connection to the same host:port resumes the session") {
    Pki pki;
    // Tickets (RFC 5077 in TLS 1.2, the only kind in 1.3) and, without them, TLS 1.2
    // session IDs (for 1.3, OpenSSL's server then issues stateful tickets).
    for (int version : {TLS1_2_VERSION, TLS1_3_VERSION})
    for (bool tickets : {true, false}) {
        CAPTURE(version);
        CAPTURE(tickets);
        auto ctx = client_context(pki.ca_file);
        TestServer server(pki, version);
        if (!tickets) SSL_CTX_set_options(server.ctx, SSL_OP_NO_TICKET);
        {
            ServerConn conn(server);
            auto first = TlsSession::create(*ctx, "localhost", 443);
            REQUIRE(first);
            REQUIRE(run_handshake(*first, conn) == TlsStatus::Ok);
            CHECK_FALSE(first->session_reused());
            // TLS 1.3 tickets arrive after the handshake and are taken in by a read.
            conn.write("hello");
            server_to_client(conn, *first);
            CHECK(client_read_all(*first) == "hello");
        }  // destroyed without close_notify, as the pool does: the session must survive
        // OpenSSL uses a TLS 1.3 ticket once; the tickets each resumed connection
        // receives with its response keep the chain going.
        for (int round = 0; round < 3; ++round) {
            CAPTURE(round);
            ServerConn conn(server);
            auto next = TlsSession::create(*ctx, "localhost", 443);
            REQUIRE(next);
            REQUIRE(run_handshake(*next, conn) == TlsStatus::Ok);
            CHECK(next->session_reused());
            CHECK(SSL_session_reused(conn.ssl) == 1);
            client_write(*next, "ping");
            client_to_server(*next, conn);
            CHECK(conn.read_all() == "ping");
            conn.write("pong");
            server_to_client(conn, *next);
            CHECK(client_read_all(*next) == "pong");
        }
        {
            ServerConn conn(server);
            auto other_port = TlsSession::create(*ctx, "localhost", 444);
            REQUIRE(other_port);
            REQUIRE(run_handshake(*other_port, conn) == TlsStatus::Ok);
            CHECK_FALSE(other_port->session_reused());
        }
        {
            // A fresh context has its own, empty cache.
            auto ctx2 = client_context(pki.ca_file);
            ServerConn conn(server);
            auto fresh = TlsSession::create(*ctx2, "localhost", 443);
            REQUIRE(fresh);
            REQUIRE(run_handshake(*fresh, conn) == TlsStatus::Ok);
            CHECK_FALSE(fresh->session_reused());
        }
    }
}

TEST_CASE("tls: a connection opened while another resumes the cached TLS 1.3 session resumes too") {
    // OpenSSL stops resuming with a TLS 1.3 session object once a handshake has resumed
    // with it; the cache must not hand out that object itself, or every connection
    // opened before the next ticket arrives makes a full handshake.
    Pki pki;
    auto ctx = client_context(pki.ca_file);
    TestServer server(pki, TLS1_3_VERSION);
    {
        ServerConn conn(server);
        auto first = TlsSession::create(*ctx, "localhost", 443);
        REQUIRE(first);
        REQUIRE(run_handshake(*first, conn) == TlsStatus::Ok);
        conn.write("hello");
        server_to_client(conn, *first);
        CHECK(client_read_all(*first) == "hello");  // takes in the tickets
    }
    ServerConn conn_a(server);
    auto a = TlsSession::create(*ctx, "localhost", 443);
    REQUIRE(a);
    REQUIRE(run_handshake(*a, conn_a) == TlsStatus::Ok);
    CHECK(a->session_reused());
    // a's own tickets are not read yet: b can only resume with the one a used.
    for (int i = 0; i < 2; ++i) {
        CAPTURE(i);
        ServerConn conn_b(server);
        auto b = TlsSession::create(*ctx, "localhost", 443);
        REQUIRE(b);
        REQUIRE(run_handshake(*b, conn_b) == TlsStatus::Ok);
        CHECK(b->session_reused());
    }
}

TEST_CASE("tls: a session may outlive its context") {
    Pki pki;
    TestServer server(pki, TLS1_3_VERSION);
    ServerConn conn(server);
    auto ctx = client_context(pki.ca_file);
    auto client = TlsSession::create(*ctx, "localhost", 443);
    REQUIRE(client);
    REQUIRE(run_handshake(*client, conn) == TlsStatus::Ok);
    ctx.reset();
    // Tickets arriving now must not reach the destroyed cache.
    conn.write("late");
    server_to_client(conn, *client);
    CHECK(client_read_all(*client) == "late");
}

TEST_CASE("tls: close_notify reads as Closed") {
    Pki pki;
    auto ctx = client_context(pki.ca_file);
    for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
        CAPTURE(version);
        TestServer server(pki, version);
        ServerConn conn(server);
        auto client = TlsSession::create(*ctx, "localhost", 443);
        REQUIRE(client);
        REQUIRE(run_handshake(*client, conn) == TlsStatus::Ok);
        conn.write("bye");
        SSL_shutdown(conn.ssl);
        ERR_clear_error();
        server_to_client(conn, *client);
        TlsStatus last = TlsStatus::Ok;
        CHECK(client_read_all(*client, 1024, &last) == "bye");
        CHECK(last == TlsStatus::Closed);
        char buf[8];
        std::size_t n = 1;
        CHECK(client->read(buf, sizeof buf, &n) == TlsStatus::Closed);
        CHECK(n == 0);
    }
}

TEST_CASE("tls: a peer that does not speak TLS is a one-line error") {
    Pki pki;
    auto ctx = client_context(pki.ca_file);
    auto client = TlsSession::create(*ctx, "localhost", 443);
    REQUIRE(client);
    CHECK(client->handshake() == TlsStatus::WantRead);
    CHECK(client->pending_ciphertext() > 0);  // the ClientHello, for the caller to send
    const std::string reply = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
    client->feed_ciphertext(reply.data(), reply.size());
    CHECK(client->handshake() == TlsStatus::Error);
    CHECK_FALSE(client->error().empty());
    CHECK(client->error().find('\n') == std::string::npos);
    CHECK(client->error().find("verify") == std::string::npos);
}

TEST_CASE("tls: a corrupted record after the handshake is an error") {
    Connected t(TLS1_2_VERSION, 443);
    auto& client = t.client;
    auto& conn = t.conn;
    conn.write("some data");
    std::string record(static_cast<std::size_t>(BIO_ctrl_pending(conn.out)), '\0');
    REQUIRE(BIO_read(conn.out, record.data(), static_cast<int>(record.size())) == static_cast<int>(record.size()));
    record[record.size() - 1] = static_cast<char>(record[record.size() - 1] ^ 0x55);
    client->feed_ciphertext(record.data(), record.size());
    char buf[64];
    std::size_t n = 0;
    CHECK(client->read(buf, sizeof buf, &n) == TlsStatus::Error);
    CHECK_FALSE(client->error().empty());
}

// --- trust store choice ---------------------------------------------------------------

namespace {

std::set<std::string> g_files;
std::set<std::string> g_dirs;
bool fake_file(const std::string& path) { return g_files.count(path) > 0; }
bool fake_dir(const std::string& path) { return g_dirs.count(path) > 0; }

TrustChoice choose(const TrustSettings& trust) { return op::choose_trust_store(trust, fake_file, fake_dir); }

const char* const kDistroFiles[] = {
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
    "/etc/pki/tls/cacert.pem",
    "/usr/local/share/certs/ca-root-nss.crt",
    "/usr/share/ssl/certs/ca-bundle.crt",
};
const char* const kDistroDirs[] = {"/etc/ssl/certs", "/system/etc/security/cacerts", "/etc/pki/tls/certs"};

void everything_exists() {
    g_files = {"/ca.pem", "/env.pem"};
    g_dirs = {"/envdir"};
    for (const char* f : kDistroFiles) g_files.insert(f);
    for (const char* d : kDistroDirs) g_dirs.insert(d);
}

}  // namespace

TEST_CASE("trust store: -ca-file wins, even over a missing file") {
    everything_exists();
    TrustSettings trust;
    trust.ca_file = "/ca.pem";
    trust.env_cert_file = "/env.pem";
    trust.env_cert_dir = "/envdir";
    TrustChoice c = choose(trust);
    CHECK(c.file == "/ca.pem");
    CHECK(c.dir.empty());
    trust.ca_file = "/missing.pem";
    c = choose(trust);
    CHECK(c.file == "/missing.pem");
    CHECK(c.dir.empty());
}

TEST_CASE("trust store: SSL_CERT_FILE and SSL_CERT_DIR come next, when they exist") {
    everything_exists();
    TrustSettings trust;
    trust.env_cert_file = "/env.pem";
    trust.env_cert_dir = "/envdir";
    TrustChoice c = choose(trust);
    CHECK(c.file == "/env.pem");
    CHECK(c.dir == "/envdir");

    trust.env_cert_dir = "/nodir";
    c = choose(trust);
    CHECK(c.file == "/env.pem");
    CHECK(c.dir.empty());

    trust.env_cert_file = "";
    trust.env_cert_dir = "/envdir";
    c = choose(trust);
    CHECK(c.file.empty());
    CHECK(c.dir == "/envdir");

    // Set but missing: the system store is used instead.
    trust.env_cert_file = "/missing.pem";
    trust.env_cert_dir = "/nodir";
    c = choose(trust);
    CHECK(c.file == "/etc/ssl/certs/ca-certificates.crt");
    CHECK(c.dir.empty());
    CHECK_FALSE(c.os_store);
}

TEST_CASE("trust store: SSL_CERT_DIR may list directories; those that exist are kept") {
    everything_exists();
    g_dirs.insert("/envdir2");
    const std::string sep(1, op::kCertDirSeparator);
    TrustSettings trust;
    trust.env_cert_dir = "/envdir" + sep + "/nodir" + sep + sep + "/envdir2";
    TrustChoice c = choose(trust);
    CHECK(c.dir == "/envdir" + sep + "/envdir2");
    CHECK(c.file.empty());
    trust.env_cert_dir = "/nodir" + sep + "/envdir2";
    CHECK(choose(trust).dir == "/envdir2");
    // None of them exists: the system store, as for one missing directory.
    trust.env_cert_dir = "/nodir" + sep + "/other";
    c = choose(trust);
    CHECK(c.dir.empty());
    CHECK(c.file == "/etc/ssl/certs/ca-certificates.crt");
}

TEST_CASE("trust store: a system store outside files is loaded by ready(); POSIX has none to load") {
    // Windows' side is tests/unit/win/test_os_trust_store.cpp.
    TrustSettings trust;
    trust.os_store = true;
    std::string error;
    auto ctx = op::TlsClientContext::create(trust, error);
    REQUIRE_MESSAGE(ctx, error);
    CHECK(ctx->trust_source() == "the system certificate stores (ROOT, CA)");
    CHECK_FALSE(ctx->ready(error));
    CHECK_FALSE(error.empty());
}

TEST_CASE("trust store: a system store outside files (Windows) comes after the environment, instead of the paths") {
    everything_exists();
    TrustSettings trust;
    trust.os_store = true;
    trust.ca_file = "/ca.pem";
    TrustChoice c = choose(trust);
    CHECK(c.file == "/ca.pem");
    CHECK_FALSE(c.os_store);

    trust.ca_file = "";
    trust.env_cert_file = "/env.pem";
    c = choose(trust);
    CHECK(c.file == "/env.pem");
    CHECK_FALSE(c.os_store);

    // Nothing set (or set but missing): the system's store, and no distro path, although
    // every one exists (under Wine, /etc/ssl/... would name the Linux host's files).
    trust.env_cert_file = "/missing.pem";
    c = choose(trust);
    CHECK(c.os_store);
    CHECK(c.file.empty());
    CHECK(c.dir.empty());
}

TEST_CASE("trust store: each distro bundle is found when it is the only one") {
    TrustSettings trust;
    for (const char* f : kDistroFiles) {
        CAPTURE(f);
        g_files = {f};
        g_dirs = {"/etc/ssl/certs", "/etc/pki/tls/certs"};  // bundles beat directories
        TrustChoice c = choose(trust);
        CHECK(c.file == f);
        CHECK(c.dir.empty());
    }
}

TEST_CASE("trust store: each certificate directory is found when it is the only one") {
    TrustSettings trust;
    for (const char* d : kDistroDirs) {
        CAPTURE(d);
        g_files.clear();
        g_dirs = {d};
        TrustChoice c = choose(trust);
        CHECK(c.file.empty());
        CHECK(c.dir == d);
    }
    // A path that is a file where a directory is expected does not count.
    g_files = {"/system/etc/security/cacerts"};
    g_dirs.clear();
    TrustChoice c = choose(trust);
    CHECK(c.file.empty());
    CHECK(c.dir.empty());
}

TEST_CASE("trust store: nothing found gives an empty choice") {
    g_files.clear();
    g_dirs.clear();
    TrustSettings trust;
    trust.env_cert_file = "/env.pem";
    trust.env_cert_dir = "/envdir";
    TrustChoice c = choose(trust);
    CHECK(c.file.empty());
    CHECK(c.dir.empty());
}

TEST_CASE("tls context: a missing or unusable -ca-file fails naming the file") {
    std::string error;
    TrustSettings trust;
    trust.env_cert_file = "";  // the machine's SSL_CERT_* must not matter here
    trust.env_cert_dir = "";

    const fs::path missing = unique_temp_path("-missing.pem");
    trust.ca_file = missing.string();
    CHECK(TlsClientContext::create(trust, error) == nullptr);
    CHECK(error.find(missing.string()) != std::string::npos);
    CHECK(error.find("-ca-file") != std::string::npos);

    const fs::path garbage = unique_temp_path("-garbage.pem");
    RemoveOnExit cleanup{garbage};
    {
        std::FILE* f = std::fopen(garbage.string().c_str(), "w");
        REQUIRE(f != nullptr);
        std::fputs("not a certificate\n", f);
        std::fclose(f);
    }
    trust.ca_file = garbage.string();
    error.clear();
    CHECK(TlsClientContext::create(trust, error) == nullptr);
    CHECK(error.find(garbage.string()) != std::string::npos);
    CHECK(error.find("holds no usable PEM certificates") != std::string::npos);
}

namespace {

void write_text(const fs::path& path, const std::string& text) {
    std::FILE* f = std::fopen(path.string().c_str(), "wb");
    REQUIRE(f != nullptr);
    REQUIRE(std::fwrite(text.data(), 1, text.size(), f) == text.size());
    std::fclose(f);
}

std::string read_text(const fs::path& path) {
    std::string text;
    std::FILE* f = std::fopen(path.string().c_str(), "rb");
    REQUIRE(f != nullptr);
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
    std::fclose(f);
    return text;
}

}  // namespace

TEST_CASE("tls context: a bundle that only looks like PEM fails on first use, naming the file") {
    // The BEGIN line passes the start-up check; the certificates are parsed on first
    // use, and a bundle with none that parses is an error from then on.
    const fs::path broken = unique_temp_path("-broken.pem");
    RemoveOnExit cleanup{broken};
    write_text(broken, "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n");
    TrustSettings trust;
    trust.env_cert_file = "";  // the machine's SSL_CERT_* must not matter here
    trust.env_cert_dir = "";
    trust.ca_file = broken.string();
    std::string error;
    auto ctx = TlsClientContext::create(trust, error);
    REQUIRE_MESSAGE(ctx != nullptr, error);
    CHECK(ctx->trust_source() == broken.string());

    CHECK_FALSE(ctx->ready(error));
    CHECK(error.find("-ca-file " + broken.string()) != std::string::npos);
    CHECK(error.find("holds no usable PEM certificates") != std::string::npos);
    CHECK(TlsSession::create(*ctx, "localhost", 443) == nullptr);
    std::string again;
    CHECK_FALSE(ctx->ready(again));  // tried once, not on every connection
    CHECK(again == error);
}

TEST_CASE("tls context: the PEM check finds a BEGIN line anywhere, also across read chunks") {
    Pki pki;
    TestServer server(pki, TLS1_3_VERSION);
    const std::string pem = read_text(pki.ca_file);
    // Comments before the certificate, as some bundles have, putting its BEGIN line
    // across each 8 KiB boundary in turn.
    for (std::size_t pad : {std::size_t{0}, std::size_t{8170}, std::size_t{8180}, std::size_t{8190},
                            std::size_t{40000}}) {
        CAPTURE(pad);
        const fs::path file = unique_temp_path("-padded.pem");
        RemoveOnExit cleanup{file};
        std::string text;
        while (text.size() + 50 < pad) text += "# a comment line in front of the certificates\n";
        if (pad > text.size()) text += std::string(pad - text.size() - 1, '#') + "\n";
        REQUIRE(text.size() == pad);
        write_text(file, text + pem);
        auto ctx = client_context(file);
        ServerConn conn(server);
        auto client = TlsSession::create(*ctx, "localhost", 443);
        REQUIRE(client);
        CHECK(run_handshake(*client, conn) == TlsStatus::Ok);
    }
}

TEST_CASE("tls context: loaded once when several threads need it at the same time") {
    Pki pki;
    auto ctx = client_context(pki.ca_file);
    std::vector<std::thread> threads;
    std::vector<int> ok(8, 0);
    for (std::size_t i = 0; i < ok.size(); ++i) {
        threads.emplace_back([&ctx, &ok, i] {
            std::string error;
            ok[i] = ctx->ready(error) ? 1 : 0;
            if (ok[i]) ok[i] = TlsSession::create(*ctx, "localhost", 443) != nullptr ? 1 : 0;
        });
    }
    for (auto& t : threads) t.join();
    for (int v : ok) CHECK(v == 1);
}

namespace {

// A CA certificate named `cn` for `key`, signed by `issuer` (self-signed when null).
X509* make_ca(EVP_PKEY* key, const char* cn, X509* issuer, EVP_PKEY* issuer_key) {
    return make_cert_as(key, cn, issuer, issuer_key, nullptr, true);
}

std::string pem_of(X509* cert, bool trusted_form = false) {
    BIO* b = BIO_new(BIO_s_mem());
    REQUIRE(b != nullptr);
    REQUIRE((trusted_form ? PEM_write_bio_X509_AUX(b, cert) : PEM_write_bio_X509(b, cert)) == 1);
    char* data = nullptr;
    long n = BIO_get_mem_data(b, &data);
    std::string text(data, static_cast<std::size_t>(n));
    BIO_free(b);
    return text;
}

// Unrelated CAs, to make a bundle of many certificates around the ones that matter.
struct Strangers {
    std::vector<EVP_PKEY*> keys;
    std::vector<X509*> certs;
    std::string pem;
    explicit Strangers(int n) {
        for (int i = 0; i < n; ++i) {
            keys.push_back(EVP_EC_gen("P-256"));
            REQUIRE(keys.back() != nullptr);
            std::string cn = "stranger CA " + std::to_string(i);
            certs.push_back(make_ca(keys.back(), cn.c_str(), nullptr, nullptr));
            pem += pem_of(certs.back());
        }
    }
    ~Strangers() {
        for (X509* c : certs) X509_free(c);
        for (EVP_PKEY* k : keys) EVP_PKEY_free(k);
    }
};

// A handshake of a fresh session on `ctx` against `server`, verifying "localhost".
TlsStatus handshake_localhost(TlsClientContext& ctx, TestServer& server, std::string* error = nullptr) {
    ServerConn conn(server);
    auto client = TlsSession::create(ctx, "localhost", 443);
    REQUIRE(client);
    TlsStatus st = run_handshake(*client, conn);
    if (error) *error = client->error();
    return st;
}

// A context trusting exactly `pem` (written to a temporary -ca-file).
struct BundleContext {
    fs::path file = unique_temp_path("-bundle.pem");
    std::unique_ptr<TlsClientContext> ctx;
    explicit BundleContext(const std::string& pem) {
        write_text(file, pem);
        ctx = client_context(file);
    }
    ~BundleContext() {
        ctx.reset();
        std::error_code ec;
        fs::remove(file, ec);
    }
};

}  // namespace

TEST_CASE("ca bundle: the one CA that matters among many unrelated ones") {
    Pki pki;
    TestServer server(pki, TLS1_3_VERSION);
    Strangers strangers(40);
    std::string ca_pem = read_text(pki.ca_file);
    SUBCASE("first") {
        BundleContext b(ca_pem + strangers.pem);
        CHECK(handshake_localhost(*b.ctx, server) == TlsStatus::Ok);
        CHECK(handshake_localhost(*b.ctx, server) == TlsStatus::Ok);  // already in the store
    }
    SUBCASE("last, with comments and CRLF line ends around it") {
        std::string crlf;
        for (char c : ca_pem) {
            if (c == '\n') crlf += '\r';
            crlf += c;
        }
        BundleContext b("# Mozilla's list\n" + strangers.pem + "\n# ours:\r\n" + crlf + "\n");
        CHECK(handshake_localhost(*b.ctx, server) == TlsStatus::Ok);
    }
    SUBCASE("absent: unable to get the issuer, every time") {
        BundleContext b(strangers.pem);
        for (int i = 0; i < 2; ++i) {
            std::string error;
            CHECK(handshake_localhost(*b.ctx, server, &error) == TlsStatus::Error);
            CHECK(error == verify_error(X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY));
        }
    }
}

TEST_CASE("ca bundle: an intermediate from the peer or from the bundle; the root from the bundle") {
    Pki pki;  // for the leaf's key only
    EVP_PKEY* root_key = EVP_EC_gen("P-256");
    EVP_PKEY* mid_key = EVP_EC_gen("P-256");
    REQUIRE(root_key != nullptr);
    REQUIRE(mid_key != nullptr);
    X509* root = make_ca(root_key, "op chain root", nullptr, nullptr);
    X509* mid = make_ca(mid_key, "op chain intermediate", root, root_key);
    X509* leaf = make_cert(pki.server_key, "localhost", mid, mid_key, "DNS:localhost");
    TestServer server(pki, TLS1_3_VERSION);
    REQUIRE(SSL_CTX_use_certificate(server.ctx, leaf) == 1);
    REQUIRE(SSL_CTX_use_PrivateKey(server.ctx, pki.server_key) == 1);
    Strangers strangers(5);

    SUBCASE("the peer sends the leaf only: the bundle holds the intermediate and the root") {
        BundleContext b(strangers.pem + pem_of(mid) + pem_of(root));
        CHECK(handshake_localhost(*b.ctx, server) == TlsStatus::Ok);
    }
    SUBCASE("the peer sends leaf and intermediate: the bundle holds the root") {
        REQUIRE(SSL_CTX_add1_chain_cert(server.ctx, mid) == 1);
        BundleContext b(pem_of(root) + strangers.pem);
        CHECK(handshake_localhost(*b.ctx, server) == TlsStatus::Ok);
    }
    SUBCASE("the peer sends the leaf only: the root alone does not do") {
        BundleContext b(pem_of(root) + strangers.pem);
        std::string error;
        CHECK(handshake_localhost(*b.ctx, server, &error) == TlsStatus::Error);
        CHECK(error == verify_error(X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY));
    }
    SUBCASE("the bundle holds the intermediate without its root: the backends differ") {
        // OpenSSL anchors a chain only in a self-signed certificate; mbed TLS in any
        // certificate of the trust store (a partial chain), as tls_mbedtls.cpp says.
        BundleContext b(strangers.pem + pem_of(mid));
        std::string error;
        if (kOpenSslBackend) {
            CHECK(handshake_localhost(*b.ctx, server, &error) == TlsStatus::Error);
            CHECK(error == verify_error(X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT));
        } else {
            CHECK(handshake_localhost(*b.ctx, server, &error) == TlsStatus::Ok);
        }
    }
    X509_free(leaf);
    X509_free(mid);
    X509_free(root);
    EVP_PKEY_free(mid_key);
    EVP_PKEY_free(root_key);
}

TEST_CASE("ca bundle: a self-signed server certificate trusted as itself") {
    // -ca-file with the upstream's own self-signed certificate (pinning it).
    Pki pki;
    X509* self = X509_new();
    REQUIRE(self != nullptr);
    X509_set_version(self, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(self), 4242);
    X509_gmtime_adj(X509_getm_notBefore(self), -3600);
    X509_gmtime_adj(X509_getm_notAfter(self), 24 * 3600);
    X509_set_pubkey(self, pki.server_key);
    X509_NAME* name = X509_get_subject_name(self);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("pinned"), -1, -1,
                               0);
    X509_set_issuer_name(self, name);
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, self, self, nullptr, nullptr, 0);
    add_ext(self, &v3, NID_key_usage, "critical,digitalSignature,keyCertSign");
    add_ext(self, &v3, NID_subject_alt_name, "DNS:localhost");
    REQUIRE(X509_sign(self, pki.server_key, EVP_sha256()) > 0);
    TestServer server(pki, TLS1_3_VERSION);
    REQUIRE(SSL_CTX_use_certificate(server.ctx, self) == 1);
    REQUIRE(SSL_CTX_use_PrivateKey(server.ctx, pki.server_key) == 1);
    Strangers strangers(3);
    SUBCASE("in the bundle") {
        BundleContext b(strangers.pem + pem_of(self));
        std::string error;
        CHECK_MESSAGE(handshake_localhost(*b.ctx, server, &error) == TlsStatus::Ok, error);
    }
    SUBCASE("not in the bundle") {
        BundleContext b(strangers.pem);
        std::string error;
        CHECK(handshake_localhost(*b.ctx, server, &error) == TlsStatus::Error);
        CHECK(error == verify_error(X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT));
    }
    X509_free(self);
}

TEST_CASE("ca bundle: issuer names are matched as OpenSSL compares them, not byte for byte") {
    // The leaf names its issuer "CN=OP TEST CA", the CA calls itself "CN=op test ca":
    // X509_NAME_cmp compares canonical forms (case folded), and so must the index.
    Pki pki;
    EVP_PKEY* ca_key = EVP_EC_gen("P-256");
    REQUIRE(ca_key != nullptr);
    X509* ca = make_ca(ca_key, "op test ca", nullptr, nullptr);
    X509* leaf = make_cert(pki.server_key, "localhost", ca, ca_key, "DNS:localhost");
    X509_NAME* shouted = X509_NAME_new();
    X509_NAME_add_entry_by_txt(shouted, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("OP TEST CA"),
                               -1, -1, 0);
    REQUIRE(X509_set_issuer_name(leaf, shouted) == 1);
    REQUIRE(X509_sign(leaf, ca_key, EVP_sha256()) > 0);
    REQUIRE(X509_NAME_cmp(X509_get_issuer_name(leaf), X509_get_subject_name(ca)) == 0);
    TestServer server(pki, TLS1_3_VERSION);
    REQUIRE(SSL_CTX_use_certificate(server.ctx, leaf) == 1);
    REQUIRE(SSL_CTX_use_PrivateKey(server.ctx, pki.server_key) == 1);
    Strangers strangers(3);
    BundleContext b(strangers.pem + pem_of(ca));
    CHECK(handshake_localhost(*b.ctx, server) == TlsStatus::Ok);
    X509_NAME_free(shouted);
    X509_free(leaf);
    X509_free(ca);
    EVP_PKEY_free(ca_key);
}

TEST_CASE("ca bundle: TRUSTED CERTIFICATE blocks keep their trust settings") {
    Pki pki;
    TestServer server(pki, TLS1_3_VERSION);
    // The client's error ("" when it verifies) trusting only the test CA, written in the
    // TRUSTED form with `settings` applied to it.
    auto verdict = [&](auto&& settings) {
        X509* ca = X509_dup(pki.ca);
        REQUIRE(ca != nullptr);
        REQUIRE(settings(ca) == 1);
        BundleContext b(pem_of(ca, true));
        X509_free(ca);
        std::string error;
        return handshake_localhost(*b.ctx, server, &error) == TlsStatus::Ok ? std::string() : error;
    };
    const std::string rejected = verify_error(X509_V_ERR_CERT_REJECTED);
    CHECK(verdict([](X509* ca) { return X509_add1_trust_object(ca, OBJ_nid2obj(NID_server_auth)); }).empty());
    CHECK(verdict([](X509* ca) { return X509_add1_reject_object(ca, OBJ_nid2obj(NID_server_auth)); }) == rejected);
    CHECK(verdict([](X509* ca) { return X509_add1_trust_object(ca, OBJ_nid2obj(NID_client_auth)); }) == rejected);
    CHECK(verdict([](X509* ca) {  // no trust settings at all
              return X509_alias_set1(ca, reinterpret_cast<const unsigned char*>("op"), 2);
          }).empty());
}

TEST_CASE("ca bundle: a malformed certificate makes the whole bundle unusable, as with OpenSSL's loader") {
    Pki pki;
    Strangers strangers(2);
    const fs::path file = unique_temp_path("-malformed.pem");
    RemoveOnExit cleanup{file};
    SUBCASE("bad DER") {
        write_text(file, read_text(pki.ca_file) +
                             "-----BEGIN CERTIFICATE-----\nMIIBkTCB+wIJAKHBfpegPjMCMA0GCSqGSIb3DQEBCwUAMBExDzANBgNVBAMM\n"
                             "-----END CERTIFICATE-----\n" + strangers.pem);
    }
    SUBCASE("no END line") {
        write_text(file, read_text(pki.ca_file) + "-----BEGIN CERTIFICATE-----\nMIIB\n");
    }
    TrustSettings trust;
    trust.ca_file = file.string();
    std::string error;
    auto ctx = TlsClientContext::create(trust, error);
    REQUIRE_MESSAGE(ctx != nullptr, error);
    CHECK_FALSE(ctx->ready(error));
    CHECK(error.find("-ca-file " + file.string() + " holds no usable PEM certificates (certificate 2 ") !=
          std::string::npos);
}

TEST_CASE("ca bundle: handshakes on several threads at once all find the CA") {
    Pki pki;
    Strangers strangers(20);
    BundleContext b(strangers.pem + read_text(pki.ca_file));
    constexpr int kThreads = 6;
    std::vector<std::unique_ptr<TestServer>> servers;  // one each: TestServer records state
    for (int i = 0; i < kThreads; ++i) servers.push_back(std::make_unique<TestServer>(pki, TLS1_3_VERSION));
    std::vector<int> results(kThreads, -1);
    std::vector<std::thread> threads;
    for (int i = 0; i < kThreads; ++i) {
        threads.emplace_back([&, i] {
            ServerConn conn(*servers[i]);
            auto client = TlsSession::create(*b.ctx, "localhost", 443);
            results[i] = client && run_handshake(*client, conn) == TlsStatus::Ok ? 1 : 0;
        });
    }
    for (auto& t : threads) t.join();
    for (int r : results) CHECK(r == 1);
}

namespace {

// The trust index's digest in these tests: SHA-256, as the mbedTLS backend's.
void test_digest(const unsigned char* data, std::size_t len, unsigned char out[32]) {
    unsigned int n = 0;
    EVP_Digest(data, len, out, &n, EVP_sha256(), nullptr);
}

std::string der_of(X509* cert) {
    unsigned char* p = nullptr;
    int n = i2d_X509(cert, &p);
    REQUIRE(n > 0);
    std::string der(reinterpret_cast<char*>(p), static_cast<std::size_t>(n));
    OPENSSL_free(p);
    return der;
}

std::string der_of(const X509_NAME* name) {
    unsigned char* p = nullptr;
    int n = i2d_X509_NAME(name, &p);
    REQUIRE(n > 0);
    std::string der(reinterpret_cast<char*>(p), static_cast<std::size_t>(n));
    OPENSSL_free(p);
    return der;
}

// The DER certificates find() hands out for `name`; "error: ..." when it fails.
std::vector<std::string> found(const op::tls_internal::TrustIndex& index, const std::string& name) {
    std::vector<std::string> out;
    std::string error;
    const auto* p = reinterpret_cast<const unsigned char*>(name.data());
    if (!index.find(p, name.size(), [&out](const unsigned char* der, std::size_t len) {
            out.emplace_back(reinterpret_cast<const char*>(der), len);
        }, error))
        out = {"error: " + error};
    return out;
}

std::uint64_t key_of(const X509_NAME* name) {
    const std::string der = der_of(name);
    return op::tls_internal::name_key(reinterpret_cast<const unsigned char*>(der.data()), der.size());
}

}  // namespace

TEST_CASE("trust index: anchors by the subject a child names as issuer, self-signed or not, in file order") {
    using op::tls_internal::TrustIndex;
    EVP_PKEY* root_key = EVP_EC_gen("P-256");
    EVP_PKEY* other_key = EVP_EC_gen("P-256");
    REQUIRE(root_key != nullptr);
    REQUIRE(other_key != nullptr);
    X509* root = make_ca(root_key, "op index root", nullptr, nullptr);
    X509* mid = make_ca(other_key, "op index intermediate", root, root_key);
    X509* rollover = make_ca(other_key, "op index root", nullptr, nullptr);  // same subject, another key
    Strangers strangers(20);
    const fs::path file = unique_temp_path("-index.pem");
    RemoveOnExit cleanup{file};
    const std::size_t half = strangers.pem.find("-----BEGIN", strangers.pem.size() / 2);  // a block boundary
    write_text(file, "# a comment\n" + strangers.pem.substr(0, half) + pem_of(root) + strangers.pem.substr(half) +
                         pem_of(mid) + "\r\n" + pem_of(rollover));
    TrustIndex index(test_digest);
    std::string error;
    REQUIRE_MESSAGE(index.load(file.string(), "-ca-file " + file.string(), [](const auto&) { return true; }, error),
                    error);
    CHECK(index.size() == 23);
    CHECK(index.memory() < 23 * 100);
    CHECK(found(index, der_of(X509_get_subject_name(root))) ==
          std::vector<std::string>{der_of(root), der_of(rollover)});
    CHECK(found(index, der_of(X509_get_subject_name(mid))) == std::vector<std::string>{der_of(mid)});
    CHECK(found(index, der_of(X509_get_subject_name(strangers.certs[13]))) ==
          std::vector<std::string>{der_of(strangers.certs[13])});
    // Names as mbedTLS compares them: ASCII case aside in Printable/UTF8 strings.
    X509_NAME* shouted = X509_NAME_new();
    X509_NAME_add_entry_by_txt(shouted, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("OP INDEX ROOT"),
                               -1, -1, 0);
    CHECK(found(index, der_of(shouted)).size() == 2);
    X509_NAME* nobody = X509_NAME_new();
    X509_NAME_add_entry_by_txt(nobody, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("nobody"), -1, -1,
                               0);
    CHECK(found(index, der_of(nobody)).empty());
    X509_NAME_free(nobody);
    X509_NAME_free(shouted);
    X509_free(rollover);
    X509_free(mid);
    X509_free(root);
    EVP_PKEY_free(other_key);
    EVP_PKEY_free(root_key);
}

TEST_CASE("trust index: a certificate the backend turns down (a rejected TRUSTED CERTIFICATE) is left out") {
    using namespace op::tls_internal;
    Pki pki;
    X509* rejected = X509_dup(pki.ca);
    REQUIRE(rejected != nullptr);
    REQUIRE(X509_add1_reject_object(rejected, OBJ_nid2obj(NID_server_auth)) == 1);
    Strangers strangers(2);
    const fs::path file = unique_temp_path("-index.pem");
    RemoveOnExit cleanup{file};
    write_text(file, strangers.pem + pem_of(rejected, true));
    TrustIndex index(test_digest);
    std::string error;
    std::size_t seen = 0;
    REQUIRE(index.load(file.string(), "x",
                       [&seen](const PemCertificate& cert) {
                           ++seen;
                           const auto* der = reinterpret_cast<const unsigned char*>(cert.der.data());
                           return !cert.trusted_form || server_auth_trust(der + cert.cert_len,
                                                                          cert.der.size() - cert.cert_len) ==
                                                            AuxTrust::Anchor;
                       },
                       error));
    CHECK(seen == 3);
    CHECK(index.size() == 2);
    CHECK(found(index, der_of(X509_get_subject_name(pki.ca))).empty());
    X509_free(rejected);
}

TEST_CASE("trust index: a file rewritten in place fails the lookup, one replaced by a rename is read as loaded") {
    using op::tls_internal::TrustIndex;
    Pki pki;
    Strangers strangers(6);
    const fs::path file = unique_temp_path("-index.pem");
    RemoveOnExit cleanup{file};
    const std::string ca_pem = read_text(pki.ca_file);
    const std::string ca_subject = der_of(X509_get_subject_name(pki.ca));
    const std::string loaded = strangers.pem + ca_pem;
    write_text(file, loaded);
    TrustIndex index(test_digest);
    std::string error;
    const std::string label = "-ca-file " + file.string();
    REQUIRE(index.load(file.string(), label, [](const auto&) { return true; }, error));
    REQUIRE(found(index, ca_subject) == std::vector<std::string>{der_of(pki.ca)});

    SUBCASE("another certificate where the CA was") {
        // Same length: the stranger's PEM block and the CA's are both P-256 CAs, but differ.
        std::string text = ca_pem + strangers.pem;
        text.resize(loaded.size(), '\n');
        write_text(file, text);  // truncates and writes the same file
        const auto got = found(index, ca_subject);
        REQUIRE(got.size() == 1);
        CHECK(got[0] == "error: " + label +
                            " has changed since it was loaded (certificate 7); restart the proxy to load it again");
    }
    SUBCASE("shorter") {
        write_text(file, strangers.pem.substr(0, 100));
        const auto got = found(index, ca_subject);
        REQUIRE(got.size() == 1);
        CHECK(got[0].rfind("error: cannot read " + label + " again (certificate 7): ", 0) == 0);
    }
    SUBCASE("the same bytes again") {
        write_text(file, loaded);
        CHECK(found(index, ca_subject) == std::vector<std::string>{der_of(pki.ca)});
    }
#if !defined(_WIN32)  // Windows refuses to replace a file that is open
    SUBCASE("replaced by a rename: the open file is the one loaded") {
        const fs::path next = unique_temp_path("-index-next.pem");
        write_text(next, ca_pem + strangers.pem);
        fs::rename(next, file);
        CHECK(found(index, ca_subject) == std::vector<std::string>{der_of(pki.ca)});
    }
#endif
}

TEST_CASE("trust index: name keys follow mbedTLS's name comparison") {
    auto name = [](std::initializer_list<std::tuple<const char*, int, const char*, int>> entries) {
        X509_NAME* n = X509_NAME_new();
        for (const auto& [field, type, value, set] : entries) {
            REQUIRE(X509_NAME_add_entry_by_txt(n, field, type, reinterpret_cast<const unsigned char*>(value), -1, -1,
                                               set) == 1);
        }
        std::uint64_t key = key_of(n);
        X509_NAME_free(n);
        return key;
    };
    const auto base = name({{"O", V_ASN1_PRINTABLESTRING, "Example", 0}, {"CN", V_ASN1_UTF8STRING, "Root CA", 0}});
    // PrintableString and UTF8String compare across tags, without ASCII case.
    CHECK(base == name({{"O", V_ASN1_UTF8STRING, "EXAMPLE", 0}, {"CN", V_ASN1_PRINTABLESTRING, "root ca", 0}}));
    CHECK(base != name({{"O", V_ASN1_PRINTABLESTRING, "Example", 0}, {"CN", V_ASN1_UTF8STRING, "Root CB", 0}}));
    CHECK(base != name({{"CN", V_ASN1_UTF8STRING, "Root CA", 0}, {"O", V_ASN1_PRINTABLESTRING, "Example", 0}}));
    CHECK(base != name({{"O", V_ASN1_PRINTABLESTRING, "Example", 0}}));
    // Other string types: byte for byte, tag included.
    CHECK(name({{"emailAddress", V_ASN1_IA5STRING, "ca@example.org", 0}}) !=
          name({{"emailAddress", V_ASN1_IA5STRING, "CA@example.org", 0}}));
    CHECK(name({{"CN", V_ASN1_IA5STRING, "Root", 0}}) != name({{"CN", V_ASN1_UTF8STRING, "Root", 0}}));
    // The same attributes in one multi-valued RDN are another name.
    CHECK(base != name({{"O", V_ASN1_PRINTABLESTRING, "Example", 0}, {"CN", V_ASN1_UTF8STRING, "Root CA", -1}}));
}

TEST_CASE("ca bundle: rewritten in place after it was loaded") {
    Pki pki;
    TestServer server(pki, TLS1_3_VERSION);
    Strangers strangers(4);
    const std::string ca_pem = read_text(pki.ca_file);
    BundleContext b(strangers.pem + ca_pem);
    REQUIRE(handshake_localhost(*b.ctx, server) == TlsStatus::Ok);
    std::string text = ca_pem + strangers.pem;  // the same length, the CA elsewhere
    write_text(b.file, text);
    // Another port: a session of its own, not resumed, so verified again.
    ServerConn conn(server);
    auto client = TlsSession::create(*b.ctx, "localhost", 8443);
    REQUIRE(client);
    const TlsStatus st = run_handshake(*client, conn);
    if (op::tls_internal::trust_file_indexed()) {
        CHECK(st == TlsStatus::Error);
        CHECK(client->error() == "certificate verify failed: -ca-file " + b.file.string() +
                                     " has changed since it was loaded (certificate 5); restart the proxy to load "
                                     "it again");
    } else {
        CHECK_MESSAGE(st == TlsStatus::Ok, client->error());  // the certificates parsed at load are kept
    }
}

TEST_CASE("tls context: SSL_CERT_FILE and a hashed SSL_CERT_DIR are loaded and trusted") {
    Pki pki;
    TestServer server(pki, TLS1_3_VERSION);
    std::string error;

    SUBCASE("file") {
        TrustSettings trust;
        trust.env_cert_file = pki.ca_file.string();
        trust.env_cert_dir = "";
        auto ctx = TlsClientContext::create(trust, error);
        REQUIRE_MESSAGE(ctx != nullptr, error);
        CHECK(ctx->trust_source() == pki.ca_file.string());
        ServerConn conn(server);
        auto client = TlsSession::create(*ctx, "localhost", 443);
        REQUIRE(client);
        CHECK(run_handshake(*client, conn) == TlsStatus::Ok);
    }
    SUBCASE("directory of <subject-hash>.0 files, as on Android") {
        const fs::path dir = unique_temp_path("-dir");
        RemoveOnExit cleanup{dir};
        REQUIRE(fs::create_directory(dir));
        char hashed[16];
        std::snprintf(hashed, sizeof hashed, "%08lx.0", X509_subject_name_hash(pki.ca));
        write_pem(dir / hashed, pki.ca);

        TrustSettings trust;
        trust.env_cert_file = "";
        trust.env_cert_dir = dir.string();
        auto ctx = TlsClientContext::create(trust, error);
        REQUIRE_MESSAGE(ctx != nullptr, error);
        CHECK(ctx->trust_source() == dir.string());
        {
            ServerConn conn(server);
            auto client = TlsSession::create(*ctx, "localhost", 443);
            REQUIRE(client);
            CHECK(run_handshake(*client, conn) == TlsStatus::Ok);
        }
    }
}

// --- verification as both backends must word it ------------------------------------------

namespace {

// A handshake of a fresh session for `name` on `ctx` against a server showing `leaf`
// (and `chain` after it, when given).
TlsStatus handshake_with_leaf(TlsClientContext& ctx, const Pki& pki, X509* leaf, std::string_view name,
                              std::string* error = nullptr, X509* chain = nullptr) {
    TestServer server(pki, TLS1_3_VERSION);
    REQUIRE(SSL_CTX_use_certificate(server.ctx, leaf) == 1);
    REQUIRE(SSL_CTX_use_PrivateKey(server.ctx, pki.server_key) == 1);
    if (chain) REQUIRE(SSL_CTX_add1_chain_cert(server.ctx, chain) == 1);
    ServerConn conn(server);
    auto client = TlsSession::create(ctx, name, 443);
    REQUIRE(client);
    TlsStatus st = run_handshake(*client, conn);
    if (error) *error = client->error();
    if (op::tls_internal::is_ip_literal(op::tls_internal::bare_host(name))) {
        CHECK(SSL_get_servername(conn.ssl, TLSEXT_NAMETYPE_host_name) == nullptr);
    }
    return st;
}

// A leaf for pki.server_key from the test CA.
X509* make_leaf(const Pki& pki, const char* cn, const char* san, const char* eku = "serverAuth") {
    return make_cert_as(pki.server_key, cn, pki.ca, pki.ca_key, san, false, eku);
}

// `cert` again, valid from now + from_s to now + to_s, re-signed by the test CA.
void set_validity(X509* cert, const Pki& pki, long from_s, long to_s) {
    X509_gmtime_adj(X509_getm_notBefore(cert), from_s);
    X509_gmtime_adj(X509_getm_notAfter(cert), to_s);
    REQUIRE(X509_sign(cert, pki.ca_key, EVP_sha256()) > 0);
}

}  // namespace

TEST_CASE("tls: IP literals match iPAddress SANs as addresses, never DNS names or the CN") {
    Pki pki;
    auto ctx = client_context(pki.ca_file);
    const std::string mismatch = verify_error(X509_V_ERR_IP_ADDRESS_MISMATCH);
    std::string error;
    SUBCASE("the address only as a DNS name and as the CN") {
        X509* leaf = make_leaf(pki, "127.0.0.1", "DNS:127.0.0.1,DNS:localhost");
        CHECK(handshake_with_leaf(*ctx, pki, leaf, "127.0.0.1", &error) == TlsStatus::Error);
        CHECK(error == mismatch);
        CHECK(handshake_with_leaf(*ctx, pki, leaf, "localhost") == TlsStatus::Ok);
        X509_free(leaf);
    }
    SUBCASE("no subjectAltName at all, the address as the CN") {
        X509* leaf = make_leaf(pki, "127.0.0.1", nullptr);
        CHECK(handshake_with_leaf(*ctx, pki, leaf, "127.0.0.1", &error) == TlsStatus::Error);
        CHECK(error == mismatch);
        X509_free(leaf);
    }
    SUBCASE("several SANs: each address matches in any spelling, others do not") {
        X509* leaf = make_leaf(pki, "multi", "DNS:localhost,IP:10.1.2.3,email:a@b.test,IP:2001:db8::7,DNS:x.test");
        for (const char* name : {"10.1.2.3", "[2001:db8::7]", "2001:db8:0:0:0:0:0:7", "[2001:0db8::0007]"}) {
            CAPTURE(name);
            CHECK(handshake_with_leaf(*ctx, pki, leaf, name, &error) == TlsStatus::Ok);
            CHECK(error.empty());
        }
        for (const char* name : {"10.1.2.4", "3.2.1.10", "[::ffff:10.1.2.3]", "[2001:db8::8]", "[::]"}) {
            CAPTURE(name);
            CHECK(handshake_with_leaf(*ctx, pki, leaf, name, &error) == TlsStatus::Error);
            CHECK(error == mismatch);
        }
        CHECK(handshake_with_leaf(*ctx, pki, leaf, "x.test") == TlsStatus::Ok);
        X509_free(leaf);
    }
    SUBCASE("an IPv4-mapped IPv6 SAN is not the IPv4 address") {
        X509* leaf = make_leaf(pki, "mapped", "IP:::ffff:127.0.0.1");
        CHECK(handshake_with_leaf(*ctx, pki, leaf, "[::ffff:127.0.0.1]") == TlsStatus::Ok);
        CHECK(handshake_with_leaf(*ctx, pki, leaf, "127.0.0.1", &error) == TlsStatus::Error);
        CHECK(error == mismatch);
        X509_free(leaf);
    }
    SUBCASE("an untrusted certificate with the right address still fails on its issuer") {
        auto other = client_context(pki.other_ca_file);
        CHECK(handshake_with_leaf(*other, pki, pki.server, "127.0.0.1", &error) == TlsStatus::Error);
        CHECK(error == verify_error(X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY));
    }
}

TEST_CASE("tls: host names as OpenSSL matches them, on either backend") {
    Pki pki;
    auto ctx = client_context(pki.ca_file);
    const std::string mismatch = verify_error(X509_V_ERR_HOSTNAME_MISMATCH);
    std::string error;
    SUBCASE("an absolute name's trailing dot is neither sent as SNI nor matched") {
        TestServer server(pki, TLS1_3_VERSION);  // DNS:localhost
        ServerConn conn(server);
        auto client = TlsSession::create(*ctx, "localhost.", 443);
        REQUIRE(client);
        CHECK(run_handshake(*client, conn) == TlsStatus::Ok);
        const char* sni = SSL_get_servername(conn.ssl, TLSEXT_NAMETYPE_host_name);
        REQUIRE(sni != nullptr);
        CHECK(std::string(sni) == "localhost");
        CHECK(handshake_with_leaf(*ctx, pki, pki.server, "127.0.0.1.") == TlsStatus::Ok);  // IP:127.0.0.1
    }
    SUBCASE("a wildcard stands for one whole label, with two labels at least after it") {
        const struct {
            const char* pattern;
            const char* host;
            bool matches;
        } kCases[] = {
            {"*.example.test", "a.example.test", true},   {"*.EXAMPLE.test", "a.example.test", true},
            {"*.example.test", "a.example.test.", true},  {"*.test", "example.test", false},
            {"*.localhost", "a.localhost", false},        {"*.test.", "example.test", false},
            {"*.example.test", "a.b.example.test", false}, {"*.example.test", "example.test", false},
            {"f*.example.test", "foo.example.test", false},
        };
        for (const auto& c : kCases) {
            CAPTURE(c.pattern);
            CAPTURE(c.host);
            const std::string san = std::string("DNS:") + c.pattern;
            X509* in_san = make_leaf(pki, "wild", san.c_str());
            X509* in_cn = make_leaf(pki, c.pattern, nullptr);  // no subjectAltName: the CN counts
            for (X509* leaf : {in_san, in_cn}) {
                CHECK(handshake_with_leaf(*ctx, pki, leaf, c.host, &error) ==
                      (c.matches ? TlsStatus::Ok : TlsStatus::Error));
                CHECK(error == (c.matches ? std::string() : mismatch));
            }
            X509_free(in_san);
            X509_free(in_cn);
        }
    }
    SUBCASE("the CN counts only in a certificate without a subjectAltName (RFC 6125 6.4.4)") {
        for (const char* san : {"IP:127.0.0.1", "URI:https://svc.example/", "email:a@localhost"}) {
            CAPTURE(san);
            X509* leaf = make_leaf(pki, "localhost", san);
            CHECK(handshake_with_leaf(*ctx, pki, leaf, "localhost", &error) == TlsStatus::Error);
            CHECK(error == mismatch);
            X509_free(leaf);
        }
        X509* leaf = make_leaf(pki, "localhost", nullptr);
        CHECK(handshake_with_leaf(*ctx, pki, leaf, "localhost") == TlsStatus::Ok);
        X509_free(leaf);
    }
}

TEST_CASE("tls: validity period and purpose failures name OpenSSL's reason") {
    Pki pki;
    auto ctx = client_context(pki.ca_file);
    std::string error;
    X509* leaf = make_leaf(pki, "localhost", "DNS:localhost,IP:127.0.0.1");
    SUBCASE("expired") {
        set_validity(leaf, pki, -7200, -3600);
        CHECK(handshake_with_leaf(*ctx, pki, leaf, "localhost", &error) == TlsStatus::Error);
        CHECK(error == verify_error(X509_V_ERR_CERT_HAS_EXPIRED));
    }
    SUBCASE("not yet valid") {
        set_validity(leaf, pki, 3600, 7200);
        CHECK(handshake_with_leaf(*ctx, pki, leaf, "127.0.0.1", &error) == TlsStatus::Error);
        CHECK(error == verify_error(X509_V_ERR_CERT_NOT_YET_VALID));
    }
    SUBCASE("for clients only") {
        X509_free(leaf);
        leaf = make_leaf(pki, "localhost", "DNS:localhost", "clientAuth");
        CHECK(handshake_with_leaf(*ctx, pki, leaf, "localhost", &error) == TlsStatus::Error);
        CHECK(error == verify_error(X509_V_ERR_INVALID_PURPOSE));
    }
    SUBCASE("signed with SHA-1") {
        REQUIRE(X509_sign(leaf, pki.ca_key, EVP_sha1()) > 0);
        TestServer server(pki, TLS1_3_VERSION);
        SSL_CTX_set_security_level(server.ctx, 0);  // a server that still shows such a certificate
        REQUIRE(SSL_CTX_use_certificate(server.ctx, leaf) == 1);
        REQUIRE(SSL_CTX_use_PrivateKey(server.ctx, pki.server_key) == 1);
        CHECK(handshake_localhost(*ctx, server, &error) == TlsStatus::Error);
        CHECK(error == verify_error(X509_V_ERR_CA_MD_TOO_WEAK));
    }
    SUBCASE("the wrong name wins over the validity period, as in OpenSSL's order of checks") {
        set_validity(leaf, pki, -7200, -3600);
        CHECK(handshake_with_leaf(*ctx, pki, leaf, "api.example.test", &error) == TlsStatus::Error);
        CHECK(error == verify_error(X509_V_ERR_HOSTNAME_MISMATCH));
    }
    X509_free(leaf);
}

TEST_CASE("ca bundle: a chain up to a root the bundle lacks, sent whole by the peer") {
    Pki pki;
    auto ctx = client_context(pki.ca_file);
    X509* leaf = make_cert(pki.server_key, "localhost", pki.other_ca, pki.other_key, "DNS:localhost");
    std::string error;
    CHECK(handshake_with_leaf(*ctx, pki, leaf, "localhost", &error, pki.other_ca) == TlsStatus::Error);
    CHECK(error == verify_error(X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN));
    X509_free(leaf);
}

namespace {
int refuse_alpn(SSL*, const unsigned char**, unsigned char*, const unsigned char*, unsigned int, void*) {
    return SSL_TLSEXT_ERR_ALERT_FATAL;  // no_application_protocol
}
}  // namespace

TEST_CASE("tls: a fatal alert from the server is named as OpenSSL names it") {
    Pki pki;
    auto ctx = client_context(pki.ca_file);
    TestServer server(pki, TLS1_3_VERSION);
    SSL_CTX_set_alpn_select_cb(server.ctx, refuse_alpn, nullptr);
    REQUIRE(OPENSSL_init_ssl(OPENSSL_INIT_LOAD_SSL_STRINGS, nullptr) == 1);
    std::string error;
    CHECK(handshake_localhost(*ctx, server, &error) == TlsStatus::Error);
    CHECK(error == ERR_reason_error_string(ERR_PACK(ERR_LIB_SSL, 0, SSL_R_TLSV1_ALERT_NO_APPLICATION_PROTOCOL)));
}

// --- the library-neutral helpers (tls_internal.h) ----------------------------------------

TEST_CASE("tls internal: alert descriptions in OpenSSL's words") {
    REQUIRE(OPENSSL_init_ssl(OPENSSL_INIT_LOAD_SSL_STRINGS, nullptr) == 1);
    for (int code = 0; code < 256; ++code) {
        CAPTURE(code);
        const char* openssl = ERR_reason_error_string(ERR_PACK(ERR_LIB_SSL, 0, SSL_AD_REASON_OFFSET + code));
        std::string ours = op::tls_internal::alert_reason(static_cast<unsigned char>(code));
        if (openssl) {
            CHECK(ours == openssl);
        } else {
            CHECK(ours == "fatal alert " + std::to_string(code) + " from the peer");
        }
    }
}

TEST_CASE("tls internal: IP literals, as OpenSSL's a2i_IPADDRESS reads them") {
    using op::tls_internal::IpAddress;
    using op::tls_internal::parse_ip_literal;
    // Each one both parsers must agree on: the same bytes, or both refusing. (a2i also
    // takes trailing text after a dotted quad, "1.2.3.4x": targets never have any.)
    const char* const kCases[] = {
        "127.0.0.1", "0.0.0.0", "255.255.255.255", "10.01.2.3", "1.2.3", "1.2.3.4.5", "256.1.1.1", "1..2.3",
        ".1.2.3", "1.2.3.", "a.b.c.d", "localhost", "api.example.test", "", "::", "::1", "1::", "2001:db8::7",
        "2001:DB8:0:0:0:0:0:7", "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7::", "::2:3:4:5:6:7:8", "1:2:3:4:5:6:1.2.3.4",
        "::ffff:127.0.0.1", "::1.2.3.4", "fe80::1", "1:2:3:4:5:6:7", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7:8::",
        "::1:2:3:4:5:6:7:8", "1::2::3", ":1::", "1:::2", ":::", "1:", ":1", "12345::", "g::", "1.2.3.4::",
        "1:2:3:4:5:6:7:1.2.3.4", "::1.2.3", "::256.1.1.1", "[::1]",
    };
    for (const char* text : kCases) {
        CAPTURE(text);
        IpAddress ours;
        const bool parsed = parse_ip_literal(text, ours);
        ASN1_OCTET_STRING* theirs = a2i_IPADDRESS(text);
        REQUIRE(parsed == (theirs != nullptr));
        if (theirs) {
            CHECK(ours.len == static_cast<std::size_t>(ASN1_STRING_length(theirs)));
            CHECK(std::memcmp(ours.bytes, ASN1_STRING_get0_data(theirs), ours.len) == 0);
            ASN1_OCTET_STRING_free(theirs);
        }
        CHECK(op::tls_internal::is_ip_literal(text) == parsed);
    }
    IpAddress v4;
    REQUIRE(parse_ip_literal("192.0.2.33", v4));
    CHECK(v4.len == 4);
    CHECK(std::string(reinterpret_cast<const char*>(v4.bytes), 4) == std::string("\xc0\x00\x02\x21", 4));
}

TEST_CASE("tls internal: tls_host also drops one trailing dot") {
    using op::tls_internal::tls_host;
    CHECK(tls_host("api.openai.com.") == "api.openai.com");
    CHECK(tls_host("localhost.") == "localhost");
    CHECK(tls_host("localhost") == "localhost");
    CHECK(tls_host("127.0.0.1.") == "127.0.0.1");
    CHECK(tls_host("[::1]") == "::1");
    CHECK(tls_host(".").empty());
}

TEST_CASE("tls internal: dns_name_matches as OpenSSL with X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS") {
    using op::tls_internal::dns_name_matches;
    CHECK(dns_name_matches("api.example.test", "api.example.test"));
    CHECK(dns_name_matches("API.Example.TEST", "api.example.test"));
    CHECK(dns_name_matches("localhost", "localhost"));
    CHECK_FALSE(dns_name_matches("localhost", "localhost2"));
    CHECK(dns_name_matches("*.example.test", "a.example.test"));
    CHECK(dns_name_matches("*.example.test", "xn--bcher-kva.example.test"));
    CHECK_FALSE(dns_name_matches("*.example.test", "a.b.example.test"));
    CHECK_FALSE(dns_name_matches("*.example.test", "example.test"));
    CHECK_FALSE(dns_name_matches("*.example.test", ".example.test"));
    CHECK_FALSE(dns_name_matches("*.test", "example.test"));
    CHECK_FALSE(dns_name_matches("*.localhost", "a.localhost"));
    CHECK_FALSE(dns_name_matches("*.test.", "example.test."));
    CHECK_FALSE(dns_name_matches("*", "localhost"));
    CHECK_FALSE(dns_name_matches("*.", "localhost."));
    CHECK_FALSE(dns_name_matches("f*.example.test", "foo.example.test"));
    CHECK_FALSE(dns_name_matches("*.*.example.test", "a.b.example.test"));
    CHECK_FALSE(dns_name_matches("a.*.example.test", "a.b.example.test"));
}

TEST_CASE("tls internal: bare_host strips brackets and zone ids") {
    using op::tls_internal::bare_host;
    CHECK(bare_host("[::1]") == "::1");
    CHECK(bare_host("fe80::1%eth0") == "fe80::1");
    CHECK(bare_host("[fe80::1%25eth0]") == "fe80::1");
    CHECK(bare_host("localhost") == "localhost");
    CHECK(bare_host("a%b") == "a%b");  // not an address: left alone
    CHECK(bare_host("[]").empty());
}

namespace {
bool has_ip_san(const std::string& der, const char* ip_text) {
    op::tls_internal::IpAddress ip;
    REQUIRE(op::tls_internal::parse_ip_literal(ip_text, ip));
    return op::tls_internal::certificate_has_ip_san(reinterpret_cast<const unsigned char*>(der.data()), der.size(), ip);
}
}  // namespace

TEST_CASE("tls internal: certificate_has_ip_san walks the DER to the iPAddress entries") {
    Pki pki;
    const std::string server = der_of(pki.server);  // DNS:localhost, IP:127.0.0.1, IP:::1
    CHECK(has_ip_san(server, "127.0.0.1"));
    CHECK(has_ip_san(server, "::1"));
    CHECK_FALSE(has_ip_san(server, "127.0.0.2"));
    CHECK_FALSE(has_ip_san(server, "::2"));
    CHECK_FALSE(has_ip_san(der_of(pki.ca), "127.0.0.1"));  // extensions, none of them a SAN

    X509* critical = make_cert_as(pki.server_key, "c", pki.ca, pki.ca_key, "critical,IP:192.0.2.1", false);
    CHECK(has_ip_san(der_of(critical), "192.0.2.1"));  // the BOOLEAN before the value is skipped
    X509_free(critical);

    // A version 1 certificate has no extensions at all.
    X509* v1 = X509_new();
    REQUIRE(v1 != nullptr);
    X509_set_version(v1, 0);
    ASN1_INTEGER_set(X509_get_serialNumber(v1), 7);
    X509_gmtime_adj(X509_getm_notBefore(v1), 0);
    X509_gmtime_adj(X509_getm_notAfter(v1), 60);
    X509_set_pubkey(v1, pki.server_key);
    X509_set_issuer_name(v1, X509_get_subject_name(pki.ca));
    REQUIRE(X509_sign(v1, pki.ca_key, EVP_sha256()) > 0);
    CHECK_FALSE(has_ip_san(der_of(v1), "127.0.0.1"));
    X509_free(v1);

    // Cut anywhere, it is refused without reading past the end.
    for (std::size_t len = 0; len < server.size(); ++len) {
        CAPTURE(len);
        const std::string cut = server.substr(0, len);
        CHECK_FALSE(has_ip_san(cut, "127.0.0.1"));
    }
}

namespace {
op::tls_internal::AuxTrust trust_of(X509* cert) {
    unsigned char* der = nullptr;
    int whole = i2d_X509_AUX(cert, &der);
    REQUIRE(whole > 0);
    const std::size_t cert_len = der_of(cert).size();
    REQUIRE(static_cast<std::size_t>(whole) >= cert_len);
    auto t = op::tls_internal::server_auth_trust(der + cert_len, static_cast<std::size_t>(whole) - cert_len);
    OPENSSL_free(der);
    return t;
}
}  // namespace

TEST_CASE("tls internal: server_auth_trust reads OpenSSL's trust settings") {
    using op::tls_internal::AuxTrust;
    Pki pki;
    auto with = [&](auto&& set) {
        X509* ca = X509_dup(pki.ca);
        set(ca);
        AuxTrust t = trust_of(ca);
        X509_free(ca);
        return t;
    };
    CHECK(with([](X509* ca) { X509_alias_set1(ca, reinterpret_cast<const unsigned char*>("x"), 1); }) ==
          AuxTrust::Anchor);
    CHECK(with([](X509* ca) { X509_add1_trust_object(ca, OBJ_nid2obj(NID_server_auth)); }) == AuxTrust::Anchor);
    CHECK(with([](X509* ca) { X509_add1_trust_object(ca, OBJ_nid2obj(NID_anyExtendedKeyUsage)); }) ==
          AuxTrust::Anchor);
    CHECK(with([](X509* ca) {
              X509_add1_trust_object(ca, OBJ_nid2obj(NID_client_auth));
              X509_add1_trust_object(ca, OBJ_nid2obj(NID_server_auth));
          }) == AuxTrust::Anchor);
    CHECK(with([](X509* ca) { X509_add1_trust_object(ca, OBJ_nid2obj(NID_client_auth)); }) == AuxTrust::Rejected);
    CHECK(with([](X509* ca) { X509_add1_reject_object(ca, OBJ_nid2obj(NID_server_auth)); }) == AuxTrust::Rejected);
    CHECK(with([](X509* ca) {
              X509_add1_trust_object(ca, OBJ_nid2obj(NID_server_auth));
              X509_add1_reject_object(ca, OBJ_nid2obj(NID_server_auth));
          }) == AuxTrust::Rejected);
    CHECK(with([](X509* ca) { X509_add1_reject_object(ca, OBJ_nid2obj(NID_email_protect)); }) == AuxTrust::Anchor);
    const unsigned char not_der[] = {0x04, 0x01, 0x00};
    CHECK(op::tls_internal::server_auth_trust(not_der, sizeof not_der) == AuxTrust::Rejected);
}

TEST_CASE("tls internal: read_pem_bundle decodes what OpenSSL's PEM reader decodes") {
    Pki pki;
    const std::string pem = read_text(pki.ca_file);
    const std::string der = der_of(pki.ca);
    auto read = [](const std::string& text, std::vector<op::tls_internal::PemCertificate>& out, std::string& error) {
        return op::tls_internal::read_pem_bundle(
            text, [&out](op::tls_internal::PemCertificate& c) { out.push_back(c); return true; }, error);
    };
    SUBCASE("line ends, spaces and tabs anywhere in the base64") {
        const std::size_t body = pem.find('\n') + 1, end = pem.find("-----END");
        std::string spaced = pem.substr(0, body);
        for (char c : pem.substr(body, end - body)) {
            if (c == '\n') spaced += '\r';
            spaced += c;
            if (c == 'A') spaced += " \t";
        }
        spaced += pem.substr(end);
        std::vector<op::tls_internal::PemCertificate> got;
        std::string error;
        REQUIRE_MESSAGE(read("junk before\n" + spaced + "junk after", got, error), error);
        REQUIRE(got.size() == 1);
        CHECK(got[0].der == der);
        CHECK(got[0].cert_len == der.size());
        CHECK_FALSE(got[0].trusted_form);
        // The subject offset and length are the DER X509_NAME OpenSSL decodes.
        const auto* p = reinterpret_cast<const unsigned char*>(got[0].der.data()) + got[0].subject_offset;
        X509_NAME* name = d2i_X509_NAME(nullptr, &p, static_cast<long>(got[0].subject_len));
        REQUIRE(name != nullptr);
        CHECK(X509_NAME_cmp(name, X509_get_subject_name(pki.ca)) == 0);
        X509_NAME_free(name);
    }
    SUBCASE("the TRUSTED form keeps its trust settings after the certificate") {
        X509* ca = X509_dup(pki.ca);
        REQUIRE(X509_add1_trust_object(ca, OBJ_nid2obj(NID_server_auth)) == 1);
        std::vector<op::tls_internal::PemCertificate> got;
        std::string error;
        REQUIRE(read(pem_of(ca, true) + pem, got, error));
        REQUIRE(got.size() == 2);
        CHECK(got[0].trusted_form);
        CHECK(got[0].cert_len == der.size());
        CHECK(got[0].der.size() > der.size());
        CHECK_FALSE(got[1].trusted_form);
        X509_free(ca);
    }
    SUBCASE("malformed base64 is refused, naming the certificate") {
        const std::size_t body = pem.find('\n') + 1;
        for (const char* bad : {"*", "=", "A=B", "-"}) {
            CAPTURE(bad);
            std::vector<op::tls_internal::PemCertificate> got;
            std::string error;
            std::string text = pem + pem;
            text.insert(pem.size() + body + 8, bad);
            CHECK_FALSE(read(text, got, error));
            CHECK(error == "certificate 2 is malformed");
            CHECK(got.size() == 1);
        }
    }
    SUBCASE("take() refusing a certificate makes it malformed") {
        std::string error;
        CHECK_FALSE(op::tls_internal::read_pem_bundle(
            pem, [](op::tls_internal::PemCertificate&) { return false; }, error));
        CHECK(error == "certificate 1 is malformed");
    }
    SUBCASE("no certificate, only a key") {
        std::vector<op::tls_internal::PemCertificate> got;
        std::string error;
        CHECK_FALSE(read("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", got, error));
        CHECK(error == "no certificate found");
    }
}

TEST_CASE("tls internal: the session cache keeps one session per key, the newest 256") {
    using Cache = op::tls_internal::SessionCache<std::unique_ptr<int>>;
    Cache cache;
    const std::int64_t later = static_cast<std::int64_t>(std::time(nullptr)) + 3600;
    auto offered = [&cache](const std::string& key) {
        int value = -1;
        cache.offer(key, [&value](int* v) {
            value = *v;
            return true;
        });
        return value;
    };
    cache.store("a:443", std::make_unique<int>(1), later);
    cache.store("a:443", std::make_unique<int>(2), later);  // replaces
    CHECK(cache.size() == 1);
    CHECK(offered("a:443") == 2);
    CHECK(offered("a:444") == -1);

    for (int i = 0; i < 300; ++i) cache.store("h" + std::to_string(i) + ":443", std::make_unique<int>(i), later);
    CHECK(cache.size() == Cache::kMaxSessions);
    CHECK(offered("a:443") == -1);  // the least recently stored went first
    CHECK(offered("h43:443") == -1);
    CHECK(offered("h44:443") == 44);
    CHECK(offered("h299:443") == 299);

    // Stored again, a key counts as recent: it outlives those stored before it.
    cache.store("h44:443", std::make_unique<int>(440), later);
    cache.store("new:443", std::make_unique<int>(7), later);
    CHECK(offered("h44:443") == 440);
    CHECK(offered("h45:443") == -1);

    // Expired, or refused by the library: dropped.
    cache.store("old:443", std::make_unique<int>(3), static_cast<std::int64_t>(std::time(nullptr)) - 1);
    CHECK(offered("old:443") == -1);
    bool called = false;
    cache.offer("old:443", [&called](int*) { return called = true; });
    CHECK_FALSE(called);
    cache.offer("h299:443", [](int*) { return false; });
    CHECK(offered("h299:443") == -1);
}

TEST_CASE("tls internal: the cipher queue tracks record boundaries and frees drained storage") {
    op::tls_internal::CipherQueue q;
    CHECK(q.taken_whole_records());
    // Two records: 3 and 2 bytes of body.
    const std::string records =
        std::string("\x17\x03\x03\x00\x03", 5) + "abc" + std::string("\x17\x03\x03\x00\x02", 5) + "de";
    q.append(records.data(), records.size());
    char buf[32];
    for (std::size_t taken = 0; taken < records.size(); ++taken) {
        CAPTURE(taken);
        CHECK(q.taken_whole_records() == (taken == 0 || taken == 8));
        REQUIRE(q.take(buf, 1) == 1);
        CHECK(buf[0] == records[taken]);
    }
    CHECK(q.taken_whole_records());
    CHECK(q.size() == 0);
    CHECK(q.take(buf, sizeof buf) == 0);
    q.append("xyz", 3);
    CHECK(q.peek() == "xyz");
    q.drop(2);
    CHECK(q.peek() == "z");
    q.drop(5);
    CHECK(q.size() == 0);
    CHECK(q.peek().empty());
}

TEST_CASE("tls internal: the cipher queue takes a socket read in place") {
    op::tls_internal::CipherQueue q;
    const std::string record = std::string("\x17\x03\x03\x00\x03", 5) + "abc";
    char* p = q.space(64);  // room for more than arrives, as a socket read asks
    REQUIRE(p != nullptr);
    std::memcpy(p, record.data(), 5);
    q.commit(5);
    CHECK(q.size() == 5);
    p = q.space(64);
    REQUIRE(p != nullptr);
    std::memcpy(p, record.data() + 5, 3);
    q.commit(3);
    CHECK(q.peek() == record);
    char buf[16];
    REQUIRE(q.take(buf, sizeof buf) == record.size());
    CHECK(std::string(buf, record.size()) == record);
    CHECK(q.taken_whole_records());
    // A read that brought nothing leaves the queue empty and holding no storage.
    REQUIRE(q.space(64) != nullptr);
    q.commit(0);
    CHECK(q.size() == 0);
    CHECK(q.peek().data() == nullptr);
}
