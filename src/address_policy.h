// Which addresses an upstream chosen by the client (X-Target-Host) must not reach
// unless -allow-private: a rule over the address bytes alone, applied to the very
// addresses connected to (see UpstreamConn), so DNS rebinding cannot slip past it.
#pragma once

#include <cstddef>

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

}  // namespace op
