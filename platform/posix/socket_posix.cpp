// POSIX sockets behind platform/socket.h (Linux, BSD, macOS).
#include "socket.h"

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

namespace op {

static_assert(sizeof(SockAddr::storage) >= sizeof(sockaddr_storage), "SockAddr too small");

namespace {

const sockaddr* sa(const SockAddr& a) { return reinterpret_cast<const sockaddr*>(a.storage); }

bool set_nonblocking(int fd) {
    int flags = fcntl(fd, F_GETFL, 0);
    return flags >= 0 && fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0 &&
           fcntl(fd, F_SETFD, FD_CLOEXEC) == 0;
}

IoResult from_errno(ssize_t n) {
    if (n > 0) return {IoStatus::Ok, static_cast<std::size_t>(n), 0};
    if (n == 0) return {IoStatus::Eof, 0, 0};
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return {IoStatus::WouldBlock, 0, 0};
    return {IoStatus::Error, 0, errno};
}

}  // namespace

std::string SockAddr::to_string() const {
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    const sockaddr* s = sa(*this);
    if (s->sa_family == AF_INET) {
        auto* in = reinterpret_cast<const sockaddr_in*>(s);
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        port = ntohs(in->sin_port);
        return std::string(host) + ":" + std::to_string(port);
    }
    auto* in6 = reinterpret_cast<const sockaddr_in6*>(s);
    inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
    port = ntohs(in6->sin6_port);
    return "[" + std::string(host) + "]:" + std::to_string(port);
}

bool SockAddr::ip_bytes(unsigned char out[16], std::size_t& n) const {
    const sockaddr* s = sa(*this);
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

namespace net {

bool reuseport_balances() { return true; }  // Linux: see socket.h

SocketHandle listen_tcp(const std::string& host, std::uint16_t port, int backlog, bool shared,
                        std::string& error) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    addrinfo* res = nullptr;
    std::string service = std::to_string(port);
    // "" means every interface: prefer the IPv6 wildcard with V6ONLY off (dual stack),
    // falling back to IPv4 where IPv6 is disabled.
    const char* node = host.empty() ? nullptr : host.c_str();
    if (!node) hints.ai_family = AF_INET6;
    int rc = getaddrinfo(node, service.c_str(), &hints, &res);
    if (rc != 0 && !node) {
        hints.ai_family = AF_INET;
        rc = getaddrinfo(node, service.c_str(), &hints, &res);
    }
    if (rc != 0) {
        error = std::string("cannot resolve listen address: ") + gai_strerror(rc);
        return kInvalidSocket;
    }
    int fd = -1;
    for (addrinfo* ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd < 0) {
            error = std::strerror(errno);
            continue;
        }
        int one = 1, zero = 0;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (shared) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
        if (ai->ai_family == AF_INET6 && !node) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, backlog) == 0 && set_nonblocking(fd)) break;
        error = std::strerror(errno);
        ::close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0 && !node && hints.ai_family == AF_INET6) {
        // IPv6 present in libc but unusable in this kernel: retry IPv4 only.
        hints.ai_family = AF_INET;
        if (getaddrinfo(nullptr, service.c_str(), &hints, &res) == 0) {
            fd = socket(res->ai_family, res->ai_socktype, res->ai_protocol);
            int one = 1;
            if (fd >= 0) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
            if (fd >= 0 && shared) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
            if (fd >= 0 && !(bind(fd, res->ai_addr, res->ai_addrlen) == 0 && listen(fd, backlog) == 0 &&
                             set_nonblocking(fd))) {
                error = std::strerror(errno);
                ::close(fd);
                fd = -1;
            }
            freeaddrinfo(res);
        }
    }
    return fd;
}

IoResult accept(SocketHandle listener, SocketHandle* out) {
    int fd = ::accept4(static_cast<int>(listener), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED)
            return {IoStatus::WouldBlock, 0, 0};
        return {IoStatus::Error, 0, errno};
    }
    *out = fd;
    return {IoStatus::Ok, 0, 0};
}

bool is_fd_exhaustion(int error) { return error == EMFILE || error == ENFILE || error == ENOBUFS || error == ENOMEM; }

IoResult connect_start(const SockAddr& addr, SocketHandle* out) {
    int fd = socket(sa(addr)->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return {IoStatus::Error, 0, errno};
    set_nodelay(fd);
    if (::connect(fd, sa(addr), addr.len) != 0 && errno != EINPROGRESS) {
        int e = errno;
        ::close(fd);
        return {IoStatus::Error, 0, e};
    }
    *out = fd;
    return {IoStatus::Ok, 0, 0};
}

int connect_result(SocketHandle s) {
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(static_cast<int>(s), SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
    return err;
}

IoResult read(SocketHandle s, char* buf, std::size_t cap) { return from_errno(::read(static_cast<int>(s), buf, cap)); }

IoResult write(SocketHandle s, const char* data, std::size_t len) {
    ssize_t n = ::send(static_cast<int>(s), data, len, MSG_NOSIGNAL);
    if (n == 0 && len > 0) return {IoStatus::WouldBlock, 0, 0};
    return n == 0 ? IoResult{IoStatus::Ok, 0, 0} : from_errno(n);
}

IoResult writev(SocketHandle s, const IoSlice* slices, int count) {
    iovec iov[64];
    if (count > 64) count = 64;
    for (int i = 0; i < count; ++i) {
        iov[i].iov_base = const_cast<char*>(slices[i].data);
        iov[i].iov_len = slices[i].len;
    }
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = static_cast<std::size_t>(count);
    ssize_t n = ::sendmsg(static_cast<int>(s), &msg, MSG_NOSIGNAL);
    if (n == 0) return {IoStatus::WouldBlock, 0, 0};
    return from_errno(n);
}

void shutdown_write(SocketHandle s) { ::shutdown(static_cast<int>(s), SHUT_WR); }
void close(SocketHandle s) { ::close(static_cast<int>(s)); }

void set_nodelay(SocketHandle s) {
    int one = 1;
    setsockopt(static_cast<int>(s), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

std::uint16_t local_port(SocketHandle s) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (getsockname(static_cast<int>(s), reinterpret_cast<sockaddr*>(&ss), &len) != 0) return 0;
    if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
}

std::string error_text(int error) { return std::strerror(error); }

int resolve(const std::string& host, std::uint16_t port, SockAddr* out, int cap, std::string& error) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG;
    addrinfo* res = nullptr;
    std::string service = std::to_string(port);
    int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &res);
    if (rc == EAI_BADFLAGS || (rc != 0 && rc != EAI_NONAME && rc != EAI_AGAIN)) {
        hints.ai_flags = AI_NUMERICSERV;  // AI_ADDRCONFIG fails where no interface is configured
        rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &res);
    }
    if (rc != 0) {
        error = gai_strerror(rc);
        return 0;
    }
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

}  // namespace net

}  // namespace op
