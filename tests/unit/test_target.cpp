#include "doctest/doctest.h"
#include "target.h"

#include <string>

using op::parse_target;
using op::Target;

namespace {
Target parsed(const char* spec) {
    Target t;
    std::string error;
    INFO("spec: \"", spec, "\"");
    REQUIRE(parse_target(spec, t, error));
    CHECK(error.empty());
    return t;
}

void check_rejected(const char* spec) {
    INFO("spec: \"", spec, "\"");
    Target t;
    t.host = "untouched";
    std::string error;
    CHECK_FALSE(parse_target(spec, t, error));
    CHECK_FALSE(error.empty());
    CHECK(error.find(std::string("\"") + spec + "\"") != std::string::npos);  // names the value
    CHECK(error.find('\n') == std::string::npos);                             // one line
    CHECK(t.host == "untouched");                                             // out not written
}
}  // namespace

TEST_CASE("target: a bare name means https on 443") {
    Target t = parsed("api.openai.com");
    CHECK(t.tls);
    CHECK(t.host == "api.openai.com");
    CHECK(t.port == 443);
    CHECK(t.authority == "api.openai.com");
    CHECK(t.origin() == "https://api.openai.com");
}

TEST_CASE("target: an explicit port is kept in the authority") {
    Target t = parsed("host:8443");
    CHECK(t.tls);
    CHECK(t.host == "host");
    CHECK(t.port == 8443);
    CHECK(t.authority == "host:8443");
    CHECK(t.origin() == "https://host:8443");
}

TEST_CASE("target: https:// prefix, any case, lower-cased host, a lone slash allowed") {
    Target a = parsed("https://h");
    CHECK(a.tls);
    CHECK(a.host == "h");
    CHECK(a.port == 443);
    CHECK(a.authority == "h");

    Target b = parsed("HTTPS://H/");
    CHECK(b.tls);
    CHECK(b.host == "h");
    CHECK(b.port == 443);
    CHECK(b.authority == "h");
    CHECK(a == b);

    Target c = parsed("https://API.OpenAI.com:443");
    CHECK(c.host == "api.openai.com");
    CHECK(c.authority == "api.openai.com");  // the default port is not written
}

TEST_CASE("target: http:// means plain HTTP, port 80 by default") {
    Target t = parsed("http://127.0.0.1:8080");
    CHECK_FALSE(t.tls);
    CHECK(t.host == "127.0.0.1");
    CHECK(t.port == 8080);
    CHECK(t.authority == "127.0.0.1:8080");
    CHECK(t.origin() == "http://127.0.0.1:8080");

    Target d = parsed("http://h:80");
    CHECK_FALSE(d.tls);
    CHECK(d.port == 80);
    CHECK(d.authority == "h");

    Target e = parsed("HTTP://h");
    CHECK_FALSE(e.tls);
    CHECK(e.port == 80);

    Target f = parsed("http://h:443");  // 443 is not the default of http
    CHECK(f.authority == "h:443");
}

TEST_CASE("target: IPv6 literals are bracketed in the authority only") {
    Target t = parsed("[::1]:8443");
    CHECK(t.tls);
    CHECK(t.host == "::1");
    CHECK(t.port == 8443);
    CHECK(t.authority == "[::1]:8443");

    Target u = parsed("http://[::1]");
    CHECK_FALSE(u.tls);
    CHECK(u.host == "::1");
    CHECK(u.port == 80);
    CHECK(u.authority == "[::1]");
}

TEST_CASE("target: equality is scheme, host and port") {
    CHECK(parsed("api.openai.com") == parsed("https://api.openai.com:443"));
    CHECK_FALSE(parsed("api.openai.com") == parsed("http://api.openai.com"));
    CHECK_FALSE(parsed("api.openai.com") == parsed("api.openai.com:8443"));
    CHECK_FALSE(parsed("api.openai.com") == parsed("openai.com"));
}

TEST_CASE("target: malformed specifications are rejected with a message naming them") {
    check_rejected("");
    check_rejected("ftp://x");
    check_rejected("https://h/v1");
    check_rejected("h/v1");
    check_rejected("h?x");
    check_rejected("h#f");
    check_rejected("u@h");
    check_rejected("https://u:p@h");
    check_rejected("h:0");
    check_rejected("h:65536");
    check_rejected("h:99999999");
    check_rejected("h:");
    check_rejected("h:x");
    check_rejected("h:-1");
    check_rejected("[::1");
    check_rejected("[::1]x");
    check_rejected("[::1]:");
    check_rejected("[]:443");
    check_rejected("[zz]:443");
    check_rejected("bad host");
    check_rejected("https://");
    check_rejected("http://:80");
    check_rejected(":443");
    check_rejected(".example.com");
    check_rejected("a:b:c");
}

TEST_CASE("target: the edges of the port range") {
    CHECK(parsed("h:1").port == 1);
    CHECK(parsed("h:65535").port == 65535);
    CHECK(parsed("h:65535").authority == "h:65535");
}

TEST_CASE("target: IPv6 literals follow RFC 4291 text form") {
    for (const char* ok : {"[::]", "[::1]", "[1::]", "[1::2]", "[fe80::1:2]", "[2001:db8:0:0:0:0:0:1]",
                           "[1:2:3:4:5:6:7::]", "[::2:3:4:5:6:7:8]", "[::ffff:192.0.2.1]",
                           "[1:2:3:4:5:6:192.0.2.1]", "[ABCD::EF]"}) {
        INFO("spec: ", ok);
        Target t = parsed(ok);
        CHECK(t.authority == "[" + t.host + "]");  // brackets only in the authority
    }
    CHECK(parsed("[ABCD::EF]").host == "abcd::ef");
    for (const char* bad : {"[::::::]", "[1:2]", "[1:2:3:4:5:6:7:8:9]", "[1::2::3]", "[:1::2]", "[1::2:]",
                            "[12345::1]", "[1.2.3.4]", "[abcd]", "[::1.2.3]", "[::1.2.3.4:5]",
                            "[1:2:3:4:5:6:7:1.2.3.4]", "[fe80::1%eth0]", "[:]", "[1:::2]",
                            "[1:2:3:4:5:6:7:8::]"}) {
        check_rejected(bad);
    }
}

TEST_CASE("target: names and IPv4 literals") {
    CHECK(parsed("10.0.0.1:8080").host == "10.0.0.1");
    CHECK(parsed("255.255.255.255").host == "255.255.255.255");
    CHECK(parsed("0.0.0.0").host == "0.0.0.0");
    CHECK(parsed("_svc.example.com").host == "_svc.example.com");
    CHECK(parsed("api.openai.com.").host == "api.openai.com.");  // a fully qualified name
    CHECK(parsed("1e100.net").host == "1e100.net");               // digits are fine before the last label
    CHECK(parsed("a.b1").host == "a.b1");
    // A last label of digits only is what inet_aton reads as an address: only a
    // canonical dotted quad is accepted.
    for (const char* bad : {"999.1.1.1", "1.2.3", "127.1", "0x7f.1", "010.0.0.1", "1.2.3.4.5", "a.123", "1.2.3.256",
                            "a..b", "a.-b.com", "x.com.."}) {
        check_rejected(bad);
    }
    const std::string long_label = std::string(64, 'a') + ".com";  // labels are at most 63 bytes
    check_rejected(long_label.c_str());
    CHECK(parsed((std::string(63, 'a') + ".com").c_str()).host.size() == 67);
}
