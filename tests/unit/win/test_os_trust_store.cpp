// The Windows system certificate stores (sys::os_trust_store, CryptoAPI) and the TLS
// context built on them when nothing else names a trust store. Under Wine the ROOT
// store holds the Linux host's CA bundle (Wine's crypt32 imports it), on Windows its own.
#include <string>
#include <vector>

#include "doctest/doctest.h"
#include "sys.h"
#include "tls.h"

TEST_CASE("windows: the ROOT store has certificates, each a DER SEQUENCE") {
    REQUIRE(op::sys::has_os_trust_store());
    std::vector<std::string> roots, intermediates;
    std::string error;
    REQUIRE_MESSAGE(op::sys::os_trust_store(roots, intermediates, error), error);
    MESSAGE("ROOT: " << roots.size() << " certificates, CA: " << intermediates.size());
    CHECK(roots.size() > 0);
    for (const std::string& der : roots) {
        REQUIRE(der.size() > 4);
        CHECK(static_cast<unsigned char>(der[0]) == 0x30);  // Certificate ::= SEQUENCE
    }
}

TEST_CASE("windows: with no -ca-file nor SSL_CERT_*, the TLS context loads the system stores") {
    op::TrustSettings trust;
    trust.os_store = op::sys::has_os_trust_store();
    std::string error;
    auto ctx = op::TlsClientContext::create(trust, error);
    REQUIRE_MESSAGE(ctx, error);
    CHECK(ctx->trust_source() == "the system certificate stores (ROOT, CA)");
    CHECK_MESSAGE(ctx->ready(error), error);
}
