// What the POSIX and the Windows sockets (posix/socket_posix.cpp, win/socket_win.cpp)
// do the same way once the OS's socket headers are in: the BSD socket address structures
// and getaddrinfo() are common to both. Included by exactly one of those files per build,
// after its system headers; it defines, so it is not an ordinary header.
#pragma once

#include <cstring>
#include <string>

namespace op {

namespace sockaddr_common {

inline const sockaddr* sa(const SockAddr& a) { return reinterpret_cast<const sockaddr*>(a.storage); }

// getaddrinfo()'s answer, as far as `cap` allows and each address fits, into `out`; the
// list is freed. 0 and `error` set when nothing was usable.
inline int take_addresses(addrinfo* res, SockAddr* out, int cap, std::string& error) {
    int n = 0;
    for (addrinfo* ai = res; ai && n < cap; ai = ai->ai_next) {
        if (ai->ai_addrlen > sizeof out[n].storage) continue;
        std::memcpy(out[n].storage, ai->ai_addr, ai->ai_addrlen);
        out[n].len = static_cast<unsigned>(ai->ai_addrlen);
        ++n;
    }
    freeaddrinfo(res);
    if (n == 0) error = "no usable address";
    return n;
}

}  // namespace sockaddr_common

std::string SockAddr::to_string() const {
    char host[INET6_ADDRSTRLEN] = "?";
    const sockaddr* s = sockaddr_common::sa(*this);
    if (s->sa_family == AF_INET) {
        auto* in = reinterpret_cast<const sockaddr_in*>(s);
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        return std::string(host) + ":" + std::to_string(ntohs(in->sin_port));
    }
    auto* in6 = reinterpret_cast<const sockaddr_in6*>(s);
    inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
    return "[" + std::string(host) + "]:" + std::to_string(ntohs(in6->sin6_port));
}

bool SockAddr::ip_bytes(unsigned char out[16], std::size_t& n) const {
    const sockaddr* s = sockaddr_common::sa(*this);
    if (len >= sizeof(sockaddr_in) && s->sa_family == AF_INET) {
        std::memcpy(out, &reinterpret_cast<const sockaddr_in*>(s)->sin_addr, 4);
        n = 4;
        return true;
    }
    if (len >= sizeof(sockaddr_in6) && s->sa_family == AF_INET6) {
        std::memcpy(out, &reinterpret_cast<const sockaddr_in6*>(s)->sin6_addr, 16);
        n = 16;
        return true;
    }
    return false;
}

}  // namespace op
