#include "doctest/doctest.h"
#include "egress.h"

#include <string>

using op::Egress;
using op::parse_egress;

namespace {
Egress parsed(const char* spec) {
    INFO("spec: \"", spec, "\"");
    Egress e;
    std::string error;
    REQUIRE(parse_egress(spec, e, error));
    CHECK(error.empty());
    return e;
}

std::string rejected(const char* spec) {
    INFO("spec: \"", spec, "\"");
    Egress e;
    e.kind = Egress::Kind::Socks5h;
    e.proxy.host = "untouched";
    std::string error;
    CHECK_FALSE(parse_egress(spec, e, error));
    CHECK_FALSE(error.empty());
    CHECK(error.find('\n') == std::string::npos);
    CHECK(e.proxy.host == "untouched");  // out not written
    CHECK(e.kind == Egress::Kind::Socks5h);
    return error;
}

std::string key(const Egress& e) {
    std::string k = "https://o:443";
    e.append_key(k);
    return k;
}
}  // namespace

TEST_CASE("egress: direct, in any case, adds nothing to the pool key") {
    for (const char* s : {"direct", "DIRECT", "Direct"}) {
        Egress e = parsed(s);
        CHECK(e.kind == Egress::Kind::Direct);
        CHECK(e.direct());
        CHECK(key(e) == "https://o:443");
        CHECK(e.describe() == "direct");
    }
    CHECK(key(Egress{}) == "https://o:443");
}

TEST_CASE("egress: http proxies, with or without the scheme, default port 80") {
    Egress a = parsed("http://proxy.lan:3128");
    CHECK(a.kind == Egress::Kind::HttpConnect);
    CHECK(a.proxy.host == "proxy.lan");
    CHECK(a.proxy.port == 3128);
    CHECK_FALSE(a.proxy.tls);
    CHECK(a.authorization.empty());
    CHECK(a.user.empty());
    CHECK(key(a) == "https://o:443 via http://proxy.lan:3128");

    Egress bare = parsed("proxy.lan:8080");
    CHECK(bare.kind == Egress::Kind::HttpConnect);
    CHECK(bare.proxy.port == 8080);

    Egress d = parsed("HTTP://Proxy.LAN");
    CHECK(d.kind == Egress::Kind::HttpConnect);
    CHECK(d.proxy.host == "proxy.lan");
    CHECK(d.proxy.port == 80);
    CHECK(d.describe() == "http://proxy.lan:80");

    Egress slash = parsed("http://127.0.0.1:3128/");
    CHECK(slash.proxy.host == "127.0.0.1");
    CHECK(slash.proxy.port == 3128);
}

TEST_CASE("egress: http credentials are percent-decoded and become Basic") {
    Egress e = parsed("http://user:p%40ss@127.0.0.1:3128");
    CHECK(e.user == "user");
    CHECK(e.password == "p@ss");
    CHECK(e.authorization == "Basic dXNlcjpwQHNz");  // base64("user:p@ss")
    CHECK(key(e) == "https://o:443 via http://user@127.0.0.1:3128");
    CHECK(key(e).find("p@ss") == std::string::npos);
    CHECK(e.describe() == "http://127.0.0.1:3128");

    Egress at = parsed("http://a@b:c@d@h:1");  // the last '@' ends the credentials
    CHECK(at.user == "a@b");
    CHECK(at.password == "c@d");
    CHECK(at.proxy.host == "h");
}

TEST_CASE("egress: socks5 and socks5h, default port 1080") {
    Egress s = parsed("socks5://127.0.0.1");
    CHECK(s.kind == Egress::Kind::Socks5);
    CHECK(s.socks());
    CHECK(s.proxy.port == 1080);
    CHECK_FALSE(s.proxy.tls);
    CHECK(s.authorization.empty());
    CHECK(key(s) == "https://o:443 via socks5://127.0.0.1:1080");

    Egress h = parsed("SOCKS5H://user:pa%3Ass@Proxy.Example:9050");
    CHECK(h.kind == Egress::Kind::Socks5h);
    CHECK(h.proxy.host == "proxy.example");
    CHECK(h.proxy.port == 9050);
    CHECK(h.user == "user");
    CHECK(h.password == "pa:ss");
    CHECK(h.authorization.empty());  // SOCKS credentials go by RFC 1929, not Basic
    CHECK(key(h) == "https://o:443 via socks5h://user@proxy.example:9050");
    CHECK(h.describe() == "socks5h://proxy.example:9050");

    Egress v6 = parsed("socks5h://[::1]");
    CHECK(v6.proxy.host == "::1");
    CHECK(v6.proxy.port == 1080);
    CHECK(key(v6) == "https://o:443 via socks5h://[::1]:1080");
    Egress v6p = parsed("socks5://[::1]:1081");
    CHECK(v6p.proxy.port == 1081);

    Egress p80 = parsed("socks5://h:80");  // an explicit port, even the http default, is kept
    CHECK(p80.proxy.port == 80);
}

TEST_CASE("egress: keys tell kinds, hosts, ports and users apart") {
    const char* specs[] = {"http://h:1",  "socks5://h:1", "socks5h://h:1", "socks5h://h:2",
                           "socks5h://g:1", "socks5h://u@h:1", "socks5h://v:x@h:1"};
    for (std::size_t i = 0; i < std::size(specs); ++i)
        for (std::size_t j = i + 1; j < std::size(specs); ++j) {
            INFO(specs[i], " vs ", specs[j]);
            CHECK(key(parsed(specs[i])) != key(parsed(specs[j])));
        }
    // Only the password differs: the same key (it is never part of one).
    CHECK(key(parsed("socks5://u:a@h:1")) == key(parsed("socks5://u:b@h:1")));
}

TEST_CASE("egress: malformed values are refused with one line") {
    CHECK(rejected("https://p:1").find("https://") != std::string::npos);
    CHECK(rejected("socks4://p:1").find("socks4") != std::string::npos);
    rejected("ftp://p");
    rejected("");
    rejected("http://");
    rejected("socks5://");
    rejected("socks5://h:0");
    rejected("socks5://h:99999");
    rejected("http://h:1/path");
    rejected("http://u:p@h/x@y");
    rejected("socks5://[::1");
    rejected("socks5://u:%zz@h");
    rejected("socks5://u:%4@h");
    rejected("socks5://:pass@h");  // RFC 1929 needs a user name
    std::string long_user(256, 'a');
    std::string spec = "socks5://" + long_user + ":p@h";
    rejected(spec.c_str());
    std::string ok_user(255, 'a');
    std::string ok_spec = "socks5://" + ok_user + ":p@h";
    CHECK(parsed(ok_spec.c_str()).user.size() == 255);
    // The password is never echoed in the error.
    CHECK(rejected("socks5://u:sekret@h:0").find("sekret") == std::string::npos);
}

TEST_CASE("egress: base64") {
    CHECK(op::base64("") == "");
    CHECK(op::base64("f") == "Zg==");
    CHECK(op::base64("fo") == "Zm8=");
    CHECK(op::base64("foo") == "Zm9v");
    CHECK(op::base64("foob") == "Zm9vYg==");
    CHECK(op::base64("fooba") == "Zm9vYmE=");
    CHECK(op::base64("foobar") == "Zm9vYmFy");
    CHECK(op::base64(std::string("\xff\xfe\x00", 3)) == "//4A");
}
