// What the mbedTLS build's CA callback costs per call (src/tls_mbedtls.cpp,
// Engine::candidates): the trust index's lookup by issuer, the PEM block read back from
// the file and checked against its SHA-256, and mbedTLS parsing the certificate; once
// for the subject of every anchor of a bundle, `rounds` times. A full handshake calls it
// once per certificate of the chain the server sends (for the leaf, whose issuer is
// usually an intermediate no bundle holds, it finds nothing and reads nothing). Prints
// the CPU time (std::clock) per call; NOPARSE=1 leaves the parse out.
//
// Built against the small amd64 build's mbedTLS and the proxy's library, as `make
// test-small` leaves them (or configure build/small-e2e as the Makefile's test-small does):
//
//   P=build/mbedtls-prefix/small-amd64
//   g++ -O2 -std=c++17 -Isrc -Iplatform -I$P/include bench/trust_lookup.cpp build/small-e2e/libopcore.a
//       $P/lib/libmbedtls.a $P/lib/libmbedx509.a $P/lib/libmbedcrypto.a -lpthread -o /tmp/trust_lookup
//   (one command line)
//   /tmp/trust_lookup /etc/ssl/certs/ca-certificates.crt 20
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>
#include <vector>

#include <mbedtls/sha256.h>
#include <mbedtls/x509_crt.h>

#include "tls_internal.h"

using op::tls_internal::PemCertificate;
using op::tls_internal::TrustIndex;

static void sha256(const unsigned char* data, std::size_t len, unsigned char out[32]) {
    mbedtls_sha256_ret(data, len, out, 0);
}

int main(int argc, char** argv) {
    const char* path = argc > 1 ? argv[1] : "/etc/ssl/certs/ca-certificates.crt";
    const int rounds = argc > 2 ? std::atoi(argv[2]) : 20;
    const bool parse = std::getenv("NOPARSE") == nullptr;
    std::vector<std::string> subjects;
    TrustIndex index(sha256);
    std::string error;
    if (!index.load(path, path,
                    [&subjects](const PemCertificate& c) {
                        subjects.push_back(c.der.substr(c.subject_offset, c.subject_len));
                        return true;
                    },
                    error)) {
        std::fprintf(stderr, "%s\n", error.c_str());
        return 1;
    }
    std::size_t calls = 0, parsed = 0;
    const std::clock_t start = std::clock();
    for (int r = 0; r < rounds; ++r) {
        for (const std::string& s : subjects) {
            mbedtls_x509_crt chain;
            mbedtls_x509_crt_init(&chain);
            const bool ok = index.find(
                reinterpret_cast<const unsigned char*>(s.data()), s.size(),
                [&](const unsigned char* der, std::size_t len) {
                    if (parse) parsed += mbedtls_x509_crt_parse_der(&chain, der, len) == 0;
                },
                error);
            mbedtls_x509_crt_free(&chain);
            if (!ok) {
                std::fprintf(stderr, "%s\n", error.c_str());
                return 1;
            }
            ++calls;
        }
    }
    const double us = 1e6 * static_cast<double>(std::clock() - start) / CLOCKS_PER_SEC;
    std::printf("%zu anchors (index: %zu bytes); %zu lookups, %zu certificates parsed: %.1f us of CPU per lookup\n",
                index.size(), index.memory(), calls, parsed, us / static_cast<double>(calls));
    return 0;
}
