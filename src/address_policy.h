// Which addresses an upstream chosen by the client (X-Target-Host) must not reach
// unless -allow-private: a rule over the address bytes alone, applied to the very
// addresses connected to (see UpstreamConn), so DNS rebinding cannot slip past it.
#pragma once

#include <cstddef>
#include <string_view>

#include "socket.h"

namespace op {

// `ip`: `len` bytes in network order, 4 (IPv4) or 16 (IPv6). Internal: loopback,
// private (RFC 1918, IPv6 ULA), link-local, CGNAT (100.64/10), 192.0.0/24, benchmarking
// (198.18/15), multicast, reserved (240/4), broadcast, unspecified (0/8, ::),
// IPv4-compatible (::/96), IPv6 site-local and documentation (2001:db8::/32), and an
// IPv4-mapped (::ffff:0:0/96) or NAT64 (64:ff9b::/96) address embedding an internal IPv4
// one. Any other length counts as internal: what cannot be classified is refused.
bool is_internal_ip(const unsigned char* ip, std::size_t len);

// The same for a resolved address; one that is neither IPv4 nor IPv6 is internal.
bool is_internal_address(const SockAddr& addr);

// For an egress proxy that resolves the origin's name itself (http://, socks5h://), the
// host as the client wrote it, since no address of it is ever seen here: an IP literal
// is judged as an address; a host whose last label starts with a digit is some other
// numeric form ("2130706433", "0x7f.1", "127.1") that resolvers take for an address, so
// it cannot be judged and is refused. A name is allowed (the egress proxy's own rules,
// -allow-hosts or -disable-target-header are what restrict names there). true: allowed.
bool remote_name_allowed(std::string_view host);

}  // namespace op
