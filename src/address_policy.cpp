#include "address_policy.h"

#include <cstring>

#include "tls_internal.h"

namespace op {
namespace {

bool ipv4_internal(const unsigned char* b) {
    return b[0] == 0 || b[0] == 10 || b[0] == 127 || (b[0] == 100 && (b[1] & 0xC0) == 64) ||
           (b[0] == 169 && b[1] == 254) || (b[0] == 172 && (b[1] & 0xF0) == 16) ||
           (b[0] == 192 && b[1] == 168) || (b[0] == 192 && b[1] == 0 && b[2] == 0) ||
           (b[0] == 198 && (b[1] & 0xFE) == 18) ||  // benchmarking
           b[0] >= 224;                             // multicast, reserved, broadcast
}

bool ipv6_internal(const unsigned char* b) {
    static const unsigned char zero[12] = {};
    if (std::memcmp(b, zero, 10) == 0 && b[10] == 0xff && b[11] == 0xff) return ipv4_internal(b + 12);
    if (std::memcmp(b, zero, 12) == 0) return true;  // ::, ::1 and IPv4-compatible
    if (b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b) return ipv4_internal(b + 12);  // NAT64
    return (b[0] & 0xFE) == 0xFC ||                                      // fc00::/7 unique local
           (b[0] == 0xFE && (b[1] & 0xC0) == 0x80) ||                    // fe80::/10 link-local
           (b[0] == 0xFE && (b[1] & 0xC0) == 0xC0) ||                    // fec0::/10 site-local
           b[0] == 0xFF ||                                               // multicast
           (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8);  // documentation
}

}  // namespace

bool is_internal_ip(const unsigned char* ip, std::size_t len) {
    if (len == 4) return ipv4_internal(ip);
    if (len == 16) return ipv6_internal(ip);
    return true;
}

bool is_internal_address(const SockAddr& addr) {
    unsigned char ip[16];
    std::size_t len = 0;
    return !addr.ip_bytes(ip, len) || is_internal_ip(ip, len);
}

bool remote_name_allowed(std::string_view host) {
    const std::string bare = tls_internal::bare_host(host);
    tls_internal::IpAddress ip;
    if (tls_internal::parse_ip_literal(bare, ip)) return !is_internal_ip(ip.bytes, ip.len);
    if (bare.empty() || bare.find(':') != std::string::npos) return false;  // not a name either
    std::string_view name = bare;
    if (name.back() == '.') name.remove_suffix(1);  // the root's dot
    std::size_t dot = name.rfind('.');
    std::string_view last = dot == std::string_view::npos ? name : name.substr(dot + 1);
    return !last.empty() && !(last[0] >= '0' && last[0] <= '9');
}

}  // namespace op
