#include "doctest/doctest.h"
#include "socks5.h"

#include <string>
#include <vector>

using op::socks5::ClientHandshake;
using op::socks5::Destination;
using Status = ClientHandshake::Status;

namespace {

std::string bytes(std::initializer_list<int> b) {
    std::string s;
    for (int v : b) s += static_cast<char>(v);
    return s;
}

Destination by_name(const std::string& name, std::uint16_t port) {
    Destination d;
    d.name = name;
    d.port = port;
    return d;
}

Destination by_ip(std::initializer_list<int> ip, std::uint16_t port) {
    Destination d;
    for (int v : ip) d.ip[d.ip_len++] = static_cast<unsigned char>(v);
    d.port = port;
    return d;
}

// The server's answers after the greeting, for a handshake without authentication.
const std::string kNoAuth = bytes({5, 0});
const std::string kReplyV4 = bytes({5, 0, 0, 1, 127, 0, 0, 1, 0x1f, 0x90});
const std::string kReplyV6 = bytes({5, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 80});
const std::string kReplyName = bytes({5, 0, 0, 3, 9, 'l', 'o', 'c', 'a', 'l', 'h', 'o', 's', 't', 0, 80});

// Feeds `server` to a started handshake in pieces cut at `cuts`; returns the last status
// and what the client sent after the greeting.
Status feed_in_pieces(ClientHandshake& h, const std::string& server, std::vector<std::size_t> cuts,
                      std::string& sent, std::size_t& consumed_total) {
    cuts.push_back(server.size());
    std::size_t at = 0;
    Status st = Status::NeedMore;
    consumed_total = 0;
    for (std::size_t cut : cuts) {
        if (cut < at) continue;
        std::size_t consumed = 0;
        st = h.feed(server.data() + at, cut - at, consumed, sent);
        consumed_total += consumed;
        if (st != Status::NeedMore) return st;
        CHECK(consumed == cut - at);
        at = cut;
    }
    return st;
}

}  // namespace

TEST_CASE("socks5: greeting offers no-auth, and user/password only with credentials") {
    std::string out;
    ClientHandshake plain("", "", by_name("api.example.com", 443));
    CHECK(plain.start(out) == Status::NeedMore);
    CHECK(out == bytes({5, 1, 0}));

    out.clear();
    ClientHandshake creds("u", "p", by_name("api.example.com", 443));
    CHECK(creds.start(out) == Status::NeedMore);
    CHECK(out == bytes({5, 2, 0, 2}));
}

TEST_CASE("socks5: CONNECT by name (socks5h), IPv4 and IPv6 (socks5)") {
    struct Case {
        Destination dest;
        std::string request;
    } cases[] = {
        {by_name("api.example.com", 443),
         bytes({5, 1, 0, 3, 15}) + "api.example.com" + bytes({1, 0xbb})},
        {by_ip({10, 1, 2, 3}, 8443), bytes({5, 1, 0, 1, 10, 1, 2, 3, 0x20, 0xfb})},
        {by_ip({0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 443),
         bytes({5, 1, 0, 4, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0xbb})},
    };
    for (auto& c : cases) {
        ClientHandshake h("", "", c.dest);
        std::string out;
        REQUIRE(h.start(out) == Status::NeedMore);
        out.clear();
        std::size_t consumed = 0;
        CHECK(h.feed(kNoAuth.data(), kNoAuth.size(), consumed, out) == Status::NeedMore);
        CHECK(consumed == 2);
        CHECK(out == c.request);
        CHECK_FALSE(h.authenticated());
        out.clear();
        CHECK(h.feed(kReplyV4.data(), kReplyV4.size(), consumed, out) == Status::Done);
        CHECK(consumed == kReplyV4.size());
        CHECK(out.empty());
    }
}

TEST_CASE("socks5: RFC 1929 user/password, then CONNECT") {
    ClientHandshake h("user", "pa:ss", by_name("h", 80));
    std::string out;
    REQUIRE(h.start(out) == Status::NeedMore);
    out.clear();
    std::size_t consumed = 0;
    std::string choose = bytes({5, 2});
    CHECK(h.feed(choose.data(), 2, consumed, out) == Status::NeedMore);
    CHECK(out == bytes({1, 4}) + "user" + bytes({5}) + "pa:ss");
    CHECK(h.authenticated());
    out.clear();
    std::string ok = bytes({1, 0});
    CHECK(h.feed(ok.data(), 2, consumed, out) == Status::NeedMore);
    CHECK(out == bytes({5, 1, 0, 3, 1, 'h', 0, 80}));
    out.clear();
    CHECK(h.feed(kReplyName.data(), kReplyName.size(), consumed, out) == Status::Done);
    CHECK(consumed == kReplyName.size());

    // Some servers answer the sub-negotiation with version 5: accepted.
    ClientHandshake five("user", "", by_name("h", 80));
    out.clear();
    REQUIRE(five.start(out) == Status::NeedMore);
    out.clear();
    std::string server = bytes({5, 2, 5, 0}) + kReplyV4;
    CHECK(five.feed(server.data(), server.size(), consumed, out) == Status::Done);
    CHECK(out.find(bytes({1, 4}) + "user" + bytes({0})) == 0);  // empty password: PLEN 0
}

TEST_CASE("socks5: wrong credentials and refused methods have clear messages") {
    std::string out;
    std::size_t consumed = 0;
    ClientHandshake wrong("user", "bad", by_name("h", 80));
    wrong.start(out);
    std::string server = bytes({5, 2, 1, 1});
    CHECK(wrong.feed(server.data(), server.size(), consumed, out) == Status::Failed);
    CHECK(wrong.error() == "socks5 proxy: authentication failed (user or password rejected, status 1)");
    // Once failed, it stays failed.
    CHECK(wrong.feed(server.data(), server.size(), consumed, out) == Status::Failed);

    ClientHandshake none("", "", by_name("h", 80));
    none.start(out);
    std::string ff = bytes({5, 0xff});
    CHECK(none.feed(ff.data(), 2, consumed, out) == Status::Failed);
    CHECK(none.error() == "socks5 proxy requires a user and password (none configured)");

    ClientHandshake unoffered("", "", by_name("h", 80));
    unoffered.start(out);
    std::string two = bytes({5, 2});  // asks for user/password that was not offered
    CHECK(unoffered.feed(two.data(), 2, consumed, out) == Status::Failed);
    CHECK(unoffered.error().find("user and password") != std::string::npos);

    ClientHandshake rejected("u", "p", by_name("h", 80));
    rejected.start(out);
    CHECK(rejected.feed(ff.data(), 2, consumed, out) == Status::Failed);
    CHECK(rejected.error() == "socks5 proxy accepts none of the offered authentication methods");

    ClientHandshake gssapi("", "", by_name("h", 80));
    gssapi.start(out);
    std::string one = bytes({5, 1});
    CHECK(gssapi.feed(one.data(), 2, consumed, out) == Status::Failed);
    CHECK(gssapi.error().find("0x01") != std::string::npos);

    ClientHandshake http("", "", by_name("h", 80));
    http.start(out);
    std::string h = "HTTP/1.1 400 Bad Request\r\n";
    CHECK(http.feed(h.data(), h.size(), consumed, out) == Status::Failed);
    CHECK(http.error() == "not a SOCKS5 proxy (it answered version 72)");
}

TEST_CASE("socks5: every reply code has its message") {
    const char* texts[] = {nullptr,
                           "general SOCKS server failure",
                           "connection not allowed by ruleset",
                           "network unreachable",
                           "host unreachable",
                           "connection refused by destination",
                           "TTL expired",
                           "command not supported",
                           "address type not supported",
                           "unassigned reply code"};
    for (int rep = 1; rep <= 9; ++rep) {
        INFO("REP ", rep);
        ClientHandshake h("", "", by_name("h", 80));
        std::string out;
        h.start(out);
        // Only VER and REP: a failure is reported without waiting for the rest.
        std::string server = kNoAuth + bytes({5, rep});
        std::size_t consumed = 0;
        CHECK(h.feed(server.data(), server.size(), consumed, out) == Status::Failed);
        CHECK(h.error() == std::string("socks5 proxy refused: ") + texts[rep] + " (REP " + std::to_string(rep) + ")");
    }
    ClientHandshake h("", "", by_name("h", 80));
    std::string out;
    h.start(out);
    std::string server = kNoAuth + bytes({5, 5, 0, 1, 0, 0, 0, 0, 0, 0});
    std::size_t consumed = 0;
    CHECK(h.feed(server.data(), server.size(), consumed, out) == Status::Failed);
    CHECK(h.error() == "socks5 proxy refused: connection refused by destination (REP 5)");
    CHECK(std::string(op::socks5::reply_text(200)) == "unassigned reply code");
}

TEST_CASE("socks5: replies split at any byte, with every BND.ADDR form; extra bytes are not taken") {
    for (const std::string* reply : {&kReplyV4, &kReplyV6, &kReplyName}) {
        const std::string server = bytes({5, 2, 1, 0}) + *reply;
        const std::string tail = "\x16\x03\x01";  // what the destination might send at once
        const std::string all = server + tail;
        for (std::size_t a = 0; a <= all.size(); ++a) {
            for (std::size_t b = a; b <= all.size(); ++b) {
                INFO("reply size ", reply->size(), ", cuts at ", a, " and ", b);
                ClientHandshake h("u", "p", by_name("dest.example", 443));
                std::string sent;
                REQUIRE(h.start(sent) == Status::NeedMore);
                std::size_t consumed = 0;
                Status st = feed_in_pieces(h, all, {a, b}, sent, consumed);
                REQUIRE(st == Status::Done);
                CHECK(consumed == server.size());  // the tail is left for TLS
            }
        }
        // Fed whole: exactly the handshake's bytes are consumed.
        ClientHandshake h("u", "p", by_name("dest.example", 443));
        std::string sent;
        h.start(sent);
        std::size_t consumed = 0;
        CHECK(h.feed(all.data(), all.size(), consumed, sent) == Status::Done);
        CHECK(consumed == server.size());
        // One byte at a time.
        ClientHandshake one("u", "p", by_name("dest.example", 443));
        one.start(sent);
        Status st = Status::NeedMore;
        std::size_t i = 0;
        for (; i < server.size(); ++i) {
            st = one.feed(server.data() + i, 1, consumed, sent);
            CHECK(consumed == 1);
            if (i + 1 < server.size()) REQUIRE(st == Status::NeedMore);
        }
        CHECK(st == Status::Done);
    }
}

TEST_CASE("socks5: malformed replies and unencodable requests") {
    std::string out;
    std::size_t consumed = 0;
    ClientHandshake bad_atyp("", "", by_name("h", 80));
    bad_atyp.start(out);
    std::string s = kNoAuth + bytes({5, 0, 0, 2});
    CHECK(bad_atyp.feed(s.data(), s.size(), consumed, out) == Status::Failed);
    CHECK(bad_atyp.error().find("address type 2") != std::string::npos);

    ClientHandshake bad_ver("", "", by_name("h", 80));
    bad_ver.start(out);
    s = kNoAuth + bytes({4, 0});
    CHECK(bad_ver.feed(s.data(), s.size(), consumed, out) == Status::Failed);
    CHECK(bad_ver.error().find("invalid reply") != std::string::npos);

    ClientHandshake socks4("", "", by_name("h", 80));
    socks4.start(out);
    s = bytes({0, 0x5b});
    CHECK(socks4.feed(s.data(), s.size(), consumed, out) == Status::Failed);
    CHECK(socks4.error().find("SOCKS4") != std::string::npos);

    ClientHandshake long_name("", "", by_name(std::string(256, 'a'), 80));
    CHECK(long_name.start(out) == Status::Failed);
    ClientHandshake max_name("", "", by_name(std::string(255, 'a'), 80));
    CHECK(max_name.start(out) == Status::NeedMore);
    ClientHandshake long_user(std::string(256, 'u'), "p", by_name("h", 80));
    CHECK(long_user.start(out) == Status::Failed);
    ClientHandshake no_user("", "p", by_name("h", 80));
    CHECK(no_user.start(out) == Status::Failed);
    Destination nothing;
    ClientHandshake no_dest("", "", nothing);
    CHECK(no_dest.start(out) == Status::Failed);
    ClientHandshake unstarted("", "", by_name("h", 80));
    CHECK(unstarted.feed("\x05\x00", 2, consumed, out) == Status::Failed);
}
