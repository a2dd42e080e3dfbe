// The POSIX sockets behind platform/socket.h, common to Linux, the BSDs and macOS. What
// differs (how a descriptor becomes non-blocking, how SIGPIPE is turned off, whether
// SO_REUSEPORT balances) is in the OS part behind posix/socket_os.h.
#include "socket.h"

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "posix/socket_os.h"

#include "sockaddr_common.h"

namespace op {

static_assert(sizeof(SockAddr::storage) >= sizeof(sockaddr_storage), "SockAddr too small");

namespace {

using sockaddr_common::sa;

IoResult from_errno(ssize_t n) {
    if (n > 0) return {IoStatus::Ok, static_cast<std::size_t>(n), 0};
    if (n == 0) return {IoStatus::Eof, 0, 0};
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return {IoStatus::WouldBlock, 0, 0};
    return {IoStatus::Error, 0, errno};
}

}  // namespace

namespace net {

namespace {

// A socket for `ai` with the options of a listener, bound (not listening); -1 and error
// text when the OS refuses.
int bind_stream(const addrinfo& ai, bool dual_stack, bool reuse_port, std::string& error) {
    int fd = os::open_stream(ai.ai_family);
    if (fd < 0) {
        error = std::strerror(errno);
        return -1;
    }
    int one = 1, zero = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reuse_port) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (dual_stack && ai.ai_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    if (bind(fd, ai.ai_addr, ai.ai_addrlen) == 0) return fd;
    error = std::strerror(errno);
    ::close(fd);
    return -1;
}

bool port_is_zero(const addrinfo& ai) {
    if (ai.ai_family == AF_INET) return reinterpret_cast<const sockaddr_in*>(ai.ai_addr)->sin_port == 0;
    if (ai.ai_family == AF_INET6) return reinterpret_cast<const sockaddr_in6*>(ai.ai_addr)->sin6_port == 0;
    return false;
}

// One listening socket for `ai`: -1 and error text when the OS refuses.
int open_listener(const addrinfo& ai, bool dual_stack, int backlog, PortShare share, std::string& error) {
    if (share == PortShare::First && !port_is_zero(ai)) {
        // Bound once without SO_REUSEPORT, which any socket already on the port refuses
        // (EADDRINUSE), then let go for the group: a moment in which another process could
        // take the port, against one in which it always could.
        int probe = bind_stream(ai, dual_stack, false, error);
        if (probe < 0) return -1;
        ::close(probe);
    }
    int fd = bind_stream(ai, dual_stack, share != PortShare::Alone, error);
    if (fd < 0) return -1;
    if (listen(fd, backlog) == 0) return fd;
    error = std::strerror(errno);
    ::close(fd);
    return -1;
}

}  // namespace

SocketHandle listen_tcp(const std::string& host, std::uint16_t port, int backlog, PortShare share,
                        std::string& error) {
    std::string service = std::to_string(port);
    const char* node = host.empty() ? nullptr : host.c_str();
    // "" means every interface: the IPv6 wildcard with V6ONLY off (dual stack) first, then
    // IPv4 alone where IPv6 is missing from libc or unusable in this kernel.
    const int families[] = {node ? AF_UNSPEC : AF_INET6, AF_INET};
    for (int i = 0; i < (node ? 1 : 2); ++i) {
        addrinfo hints{};
        hints.ai_family = families[i];
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
        addrinfo* res = nullptr;
        int rc = getaddrinfo(node, service.c_str(), &hints, &res);
        if (rc != 0) {
            error = std::string("cannot resolve listen address: ") + gai_strerror(rc);
            continue;
        }
        int fd = -1;
        for (addrinfo* ai = res; ai && fd < 0; ai = ai->ai_next) fd = open_listener(*ai, !node, backlog, share, error);
        freeaddrinfo(res);
        if (fd >= 0) return fd;
    }
    return kInvalidSocket;
}

IoResult accept(SocketHandle listener, SocketHandle* out) {
    int fd = os::accept_stream(static_cast<int>(listener));
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
    int fd = os::open_stream(sa(addr)->sa_family);
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

IoResult peek(SocketHandle s) {
    char byte;
    return from_errno(::recv(static_cast<int>(s), &byte, 1, MSG_PEEK));
}

IoResult write(SocketHandle s, const char* data, std::size_t len) {
    ssize_t n = ::send(static_cast<int>(s), data, len, os::send_flags());
    if (n == 0 && len > 0) return {IoStatus::WouldBlock, 0, 0};
    return n == 0 ? IoResult{IoStatus::Ok, 0, 0} : from_errno(n);
}

void shutdown_write(SocketHandle s) { ::shutdown(static_cast<int>(s), SHUT_WR); }
void close(SocketHandle s) { ::close(static_cast<int>(s)); }

void set_nodelay(SocketHandle s) {
    int one = 1;
    setsockopt(static_cast<int>(s), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

std::string peer_address(SocketHandle s) {
    SockAddr a;
    socklen_t len = sizeof a.storage;
    if (getpeername(static_cast<int>(s), reinterpret_cast<sockaddr*>(a.storage), &len) != 0) return std::string();
    a.len = static_cast<unsigned>(len);
    return a.to_string();
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
    return sockaddr_common::take_addresses(res, out, cap, error);
}

}  // namespace net

}  // namespace op
