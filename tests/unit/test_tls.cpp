// Tests for tls.h (tls_openssl.cpp and trust_store.cpp). Certificates are made here with
// the OpenSSL API; the server is an in-memory OpenSSL SSL object, and bytes are pumped
// between it and the TlsSession by hand: no sockets, no DNS.
#include "doctest/doctest.h"
#include "tls.h"

#include <cstdio>
#include <filesystem>
#include <set>
#include <string>
#include <thread>
#include <vector>

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
// certificate when `ca`, else a server certificate for `san`.
X509* make_cert_as(EVP_PKEY* key, const char* cn, X509* issuer, EVP_PKEY* issuer_key, const char* san, bool ca) {
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
        add_ext(cert, &v3, NID_ext_key_usage, "serverAuth");
        add_ext(cert, &v3, NID_subject_alt_name, san);
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
    ~ServerConn() { SSL_free(ssl); }

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
        CHECK(SSL_version(conn.ssl) == version);
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
    Pki pki;
    auto ctx = client_context(pki.ca_file);
    TestServer server(pki, TLS1_3_VERSION);
    ServerConn conn(server);
    auto client = TlsSession::create(*ctx, "localhost", 8443);
    REQUIRE(client);
    REQUIRE(run_handshake(*client, conn) == TlsStatus::Ok);

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

TEST_CASE("tls: has_buffered_input covers decrypted and undecrypted bytes") {
    Pki pki;
    auto ctx = client_context(pki.ca_file);
    TestServer server(pki, TLS1_3_VERSION);
    ServerConn conn(server);
    auto client = TlsSession::create(*ctx, "localhost", 443);
    REQUIRE(client);
    REQUIRE(run_handshake(*client, conn) == TlsStatus::Ok);
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

TEST_CASE("tls: a certificate from an unknown CA fails verification") {
    Pki pki;
    auto ctx = client_context(pki.other_ca_file);
    TestServer server(pki, TLS1_3_VERSION);
    ServerConn conn(server);
    auto client = TlsSession::create(*ctx, "localhost", 443);
    REQUIRE(client);
    CHECK(run_handshake(*client, conn) == TlsStatus::Error);
    CHECK_FALSE(client->handshake_done());
    CHECK(client->error().find("verify") != std::string::npos);
    CHECK(client->error().find("issuer") != std::string::npos);
    CHECK(client->error().find('\n') == std::string::npos);
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
    CHECK(client->error().find("hostname mismatch") != std::string::npos);

    // The failure leaves nothing behind for the next session on the same thread.
    ServerConn conn2(server);
    auto good = TlsSession::create(*ctx, "localhost", 443);
    REQUIRE(good);
    CHECK(run_handshake(*good, conn2) == TlsStatus::Ok);
    CHECK(good->error().empty());
}

TEST_CASE("tls: IP literals are verified against IP SANs and get no SNI") {
    Pki pki;
    auto ctx = client_context(pki.ca_file);
    TestServer server(pki, TLS1_3_VERSION);
    SUBCASE("IPv4 match") {
        ServerConn conn(server);
        auto client = TlsSession::create(*ctx, "127.0.0.1", 443);
        REQUIRE(client);
        CHECK(run_handshake(*client, conn) == TlsStatus::Ok);
        CHECK(SSL_get_servername(conn.ssl, TLSEXT_NAMETYPE_host_name) == nullptr);
    }
    SUBCASE("IPv6 match, bracketed") {
        ServerConn conn(server);
        auto client = TlsSession::create(*ctx, "[::1]", 443);
        REQUIRE(client);
        CHECK(run_handshake(*client, conn) == TlsStatus::Ok);
        CHECK(SSL_get_servername(conn.ssl, TLSEXT_NAMETYPE_host_name) == nullptr);
    }
    SUBCASE("IPv4 mismatch") {
        ServerConn conn(server);
        auto client = TlsSession::create(*ctx, "127.0.0.2", 443);
        REQUIRE(client);
        CHECK(run_handshake(*client, conn) == TlsStatus::Error);
        CHECK(client->error().find("IP address mismatch") != std::string::npos);
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
    for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
        CAPTURE(version);
        auto ctx = client_context(pki.ca_file);
        TestServer server(pki, version);
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
    Pki pki;
    auto ctx = client_context(pki.ca_file);
    TestServer server(pki, TLS1_2_VERSION);
    ServerConn conn(server);
    auto client = TlsSession::create(*ctx, "localhost", 443);
    REQUIRE(client);
    REQUIRE(run_handshake(*client, conn) == TlsStatus::Ok);
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
            CHECK(error.find("unable to get local issuer certificate") != std::string::npos);
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
        CHECK(error.find("issuer") != std::string::npos);
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
        CHECK(handshake_localhost(*b.ctx, server) == TlsStatus::Error);
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
    SUBCASE("trusted for serverAuth") {
        X509* ca = X509_dup(pki.ca);
        REQUIRE(X509_add1_trust_object(ca, OBJ_nid2obj(NID_server_auth)) == 1);
        BundleContext b(pem_of(ca, true));
        CHECK(handshake_localhost(*b.ctx, server) == TlsStatus::Ok);
        X509_free(ca);
    }
    SUBCASE("rejected for serverAuth") {
        X509* ca = X509_dup(pki.ca);
        REQUIRE(X509_add1_reject_object(ca, OBJ_nid2obj(NID_server_auth)) == 1);
        BundleContext b(pem_of(ca, true));
        std::string error;
        CHECK(handshake_localhost(*b.ctx, server, &error) == TlsStatus::Error);
        CHECK(error.find("rejected") != std::string::npos);
        X509_free(ca);
    }
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
