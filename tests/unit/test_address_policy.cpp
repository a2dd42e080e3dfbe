#include <array>
#include <initializer_list>
#include <string>

#include "address_policy.h"
#include "doctest/doctest.h"

using op::is_internal_ip;

namespace {

bool v4(unsigned char a, unsigned char b, unsigned char c, unsigned char d) {
    const unsigned char ip[4] = {a, b, c, d};
    return is_internal_ip(ip, 4);
}

// Eight 16-bit groups, as an IPv6 address is written (2001:db8::1 = {0x2001, 0xdb8, 0, 0, 0, 0, 0, 1}).
bool v6(std::initializer_list<unsigned> groups) {
    REQUIRE(groups.size() == 8);
    unsigned char ip[16];
    std::size_t i = 0;
    for (unsigned g : groups) {
        ip[i++] = static_cast<unsigned char>(g >> 8);
        ip[i++] = static_cast<unsigned char>(g & 0xff);
    }
    return is_internal_ip(ip, 16);
}

op::SockAddr resolved(const std::string& numeric) {
    op::SockAddr a;
    std::string error;
    REQUIRE_MESSAGE(op::net::resolve(numeric, 443, &a, 1, error) == 1, error);
    return a;
}

}  // namespace

TEST_CASE("address policy: IPv4 internal ranges, with their first and last addresses") {
    // first inside, last inside, just below, just above
    struct Range {
        std::array<unsigned char, 4> first, last, below, above;
    };
    const Range ranges[] = {
        {{10, 0, 0, 0}, {10, 255, 255, 255}, {9, 255, 255, 255}, {11, 0, 0, 0}},
        {{100, 64, 0, 0}, {100, 127, 255, 255}, {100, 63, 255, 255}, {100, 128, 0, 0}},
        {{127, 0, 0, 0}, {127, 255, 255, 255}, {126, 255, 255, 255}, {128, 0, 0, 0}},
        {{169, 254, 0, 0}, {169, 254, 255, 255}, {169, 253, 255, 255}, {169, 255, 0, 0}},
        {{172, 16, 0, 0}, {172, 31, 255, 255}, {172, 15, 255, 255}, {172, 32, 0, 0}},
        {{192, 0, 0, 0}, {192, 0, 0, 255}, {191, 255, 255, 255}, {192, 0, 1, 0}},
        {{192, 168, 0, 0}, {192, 168, 255, 255}, {192, 167, 255, 255}, {192, 169, 0, 0}},
        {{198, 18, 0, 0}, {198, 19, 255, 255}, {198, 17, 255, 255}, {198, 20, 0, 0}},
    };
    for (const Range& r : ranges) {
        CAPTURE(int(r.first[0]));
        CAPTURE(int(r.first[1]));
        CHECK(is_internal_ip(r.first.data(), 4));
        CHECK(is_internal_ip(r.last.data(), 4));
        CHECK_FALSE(is_internal_ip(r.below.data(), 4));
        CHECK_FALSE(is_internal_ip(r.above.data(), 4));
    }
    CHECK(v4(224, 0, 0, 0));  // multicast, reserved (240/4) and broadcast: everything from 224 up
    CHECK(v4(239, 255, 255, 255));
    CHECK(v4(240, 0, 0, 0));
    CHECK(v4(255, 255, 255, 255));
    CHECK_FALSE(v4(223, 255, 255, 255));
    CHECK(v4(0, 0, 0, 0));
    CHECK(v4(0, 255, 255, 255));
    CHECK_FALSE(v4(1, 0, 0, 0));
    CHECK_FALSE(v4(8, 8, 8, 8));
    CHECK_FALSE(v4(104, 18, 6, 192));
}

TEST_CASE("address policy: IPv6 internal ranges") {
    CHECK(v6({0, 0, 0, 0, 0, 0, 0, 0}));                 // ::
    CHECK(v6({0, 0, 0, 0, 0, 0, 0, 1}));                 // ::1
    CHECK(v6({0, 0, 0, 0, 0, 0, 0x0808, 0x0808}));       // ::8.8.8.8, IPv4-compatible
    CHECK(v6({0xfc00, 0, 0, 0, 0, 0, 0, 1}));            // unique local
    CHECK(v6({0xfdff, 0xffff, 0, 0, 0, 0, 0, 1}));
    CHECK_FALSE(v6({0xfbff, 0xffff, 0, 0, 0, 0, 0, 1}));
    CHECK_FALSE(v6({0xfe00, 0, 0, 0, 0, 0, 0, 1}));
    CHECK_FALSE(v6({0xfe7f, 0, 0, 0, 0, 0, 0, 1}));
    CHECK(v6({0xfe80, 0, 0, 0, 0, 0, 0, 1}));            // link-local
    CHECK(v6({0xfebf, 0xffff, 0, 0, 0, 0, 0, 1}));
    CHECK(v6({0xfec0, 0, 0, 0, 0, 0, 0, 1}));            // site-local
    CHECK(v6({0xfeff, 0, 0, 0, 0, 0, 0, 1}));
    CHECK(v6({0xff02, 0, 0, 0, 0, 0, 0, 1}));            // multicast
    CHECK(v6({0x2001, 0x0db8, 0, 0, 0, 0, 0, 1}));       // documentation
    CHECK_FALSE(v6({0x2001, 0x0db9, 0, 0, 0, 0, 0, 1}));
    CHECK_FALSE(v6({0x2001, 0x4860, 0x4860, 0, 0, 0, 0, 0x8888}));
    CHECK_FALSE(v6({0x2606, 0x4700, 0, 0, 0, 0, 0, 0x1111}));
    CHECK_FALSE(v6({0, 0, 0, 0, 0, 1, 0, 1}));           // outside ::/96
}

TEST_CASE("address policy: an IPv4 address inside IPv6 is judged as IPv4") {
    CHECK(v6({0, 0, 0, 0, 0, 0xffff, 0x7f00, 0x0001}));       // ::ffff:127.0.0.1
    CHECK(v6({0, 0, 0, 0, 0, 0xffff, 0x0a01, 0x0203}));       // ::ffff:10.1.2.3
    CHECK(v6({0, 0, 0, 0, 0, 0xffff, 0xa9fe, 0xa9fe}));       // ::ffff:169.254.169.254
    CHECK_FALSE(v6({0, 0, 0, 0, 0, 0xffff, 0x0808, 0x0808})); // ::ffff:8.8.8.8
    CHECK(v6({0x64, 0xff9b, 0, 0, 0, 0, 0xc0a8, 0x0001}));    // 64:ff9b::192.168.0.1
    CHECK_FALSE(v6({0x64, 0xff9b, 0, 0, 0, 0, 0x0808, 0x0808}));
    CHECK_FALSE(v6({0, 0, 0, 0, 0, 0xfffe, 0x7f00, 0x0001})); // not the mapped prefix
}

TEST_CASE("address policy: what cannot be classified is internal") {
    const unsigned char bytes[16] = {8, 8, 8, 8};
    CHECK(is_internal_ip(bytes, 0));
    CHECK(is_internal_ip(bytes, 5));
    CHECK(is_internal_ip(bytes, 15));
    CHECK_FALSE(is_internal_ip(bytes, 4));
    CHECK(op::is_internal_address(op::SockAddr{}));
}

TEST_CASE("address policy: a host an egress proxy resolves is judged as written") {
    using op::remote_name_allowed;
    // Names: allowed (the egress proxy resolves them).
    CHECK(remote_name_allowed("api.openai.com"));
    CHECK(remote_name_allowed("x.openai.azure.com."));
    CHECK(remote_name_allowed("localhost"));  // a name; the egress proxy's rules apply
    CHECK(remote_name_allowed("3com.example"));
    // IP literals: judged as addresses.
    CHECK(remote_name_allowed("8.8.8.8"));
    CHECK(remote_name_allowed("[2606:4700::6810:6c0]"));
    CHECK_FALSE(remote_name_allowed("127.0.0.1"));
    CHECK_FALSE(remote_name_allowed("10.1.2.3"));
    CHECK_FALSE(remote_name_allowed("169.254.169.254"));
    CHECK_FALSE(remote_name_allowed("[::1]"));
    CHECK_FALSE(remote_name_allowed("[::ffff:127.0.0.1]"));
    CHECK_FALSE(remote_name_allowed("[fd00::1]"));
    // Other numeric forms resolvers accept: refused, whatever they stand for.
    CHECK_FALSE(remote_name_allowed("2130706433"));
    CHECK_FALSE(remote_name_allowed("0x7f.1"));
    CHECK_FALSE(remote_name_allowed("127.1"));
    CHECK_FALSE(remote_name_allowed("0177.0.0.1"));
    CHECK_FALSE(remote_name_allowed("134744072"));  // 8.8.8.8 too: cannot be judged as written
    CHECK_FALSE(remote_name_allowed(""));
}

TEST_CASE("address policy: resolved addresses are judged by their IP") {
    CHECK(op::is_internal_address(resolved("127.0.0.1")));
    CHECK(op::is_internal_address(resolved("10.20.30.40")));
    CHECK_FALSE(op::is_internal_address(resolved("8.8.8.8")));
    CHECK_FALSE(op::is_internal_address(resolved("104.18.6.192")));
}
