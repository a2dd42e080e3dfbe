// Windows sockets behind platform/socket.h: Winsock 2, non-blocking through
// ioctlsocket(FIONBIO), not inheritable (WSA_FLAG_NO_HANDLE_INHERIT, the counterpart of
// close-on-exec), and no SIGPIPE to turn off: Windows has no signals, a send on a
// connection the peer closed fails with WSAECONNRESET/WSAECONNABORTED/WSAESHUTDOWN.
//
// Error codes are WSAGetLastError() values; error_text() words the common ones as the
// Linux build does (strerror's texts), so that log lines and error answers read the
// same on both, and falls back to the system's own message for the rest.
#include "socket.h"

#include <winsock2.h>
#include <ws2tcpip.h>
#include <windows.h>

#include <cstring>

#include "sockaddr_common.h"

namespace op {

static_assert(sizeof(SockAddr::storage) >= sizeof(sockaddr_storage), "SockAddr too small");
static_assert(static_cast<SocketHandle>(INVALID_SOCKET) == kInvalidSocket, "INVALID_SOCKET is not -1");

namespace {

// Winsock must be started before any other call of it, once per process. Done by a
// static object: this file is linked into every build that has sockets, and nothing
// opens a socket before main(). Never cleaned up: at exit a detached resolver thread
// may still be inside getaddrinfo(), and the process's end releases Winsock anyway.
struct WinsockStartup {
    WinsockStartup() {
        WSADATA data;
        WSAStartup(MAKEWORD(2, 2), &data);
    }
} g_winsock;

SOCKET sock(SocketHandle s) { return static_cast<SOCKET>(s); }

using sockaddr_common::sa;

bool would_block(int e) { return e == WSAEWOULDBLOCK || e == WSAEINTR || e == WSAEINPROGRESS; }

// A TCP socket ready for the loop; INVALID_SOCKET with the error in WSAGetLastError().
SOCKET open_stream(int family) {
    // WSA_FLAG_OVERLAPPED: the poller's AFD polls are asynchronous I/O on the socket's
    // base handle, which a socket made without it would refuse.
    SOCKET s = WSASocketW(family, SOCK_STREAM, IPPROTO_TCP, nullptr, 0,
                          WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
    if (s == INVALID_SOCKET) return s;
    u_long on = 1;
    if (ioctlsocket(s, FIONBIO, &on) != 0) {
        int e = WSAGetLastError();
        closesocket(s);
        WSASetLastError(e);
        return INVALID_SOCKET;
    }
    return s;
}

IoResult from_result(int n) {
    if (n > 0) return {IoStatus::Ok, static_cast<std::size_t>(n), 0};
    if (n == 0) return {IoStatus::Eof, 0, 0};
    int e = WSAGetLastError();
    if (would_block(e)) return {IoStatus::WouldBlock, 0, 0};
    return {IoStatus::Error, 0, e};
}

// getaddrinfo's failures as glibc's gai_strerror words them (EAI_* are WSA codes here,
// and gai_strerrorA is not thread-safe); the system's message for the rest.
std::string gai_text(int rc) {
    switch (rc) {
    case EAI_NONAME: return "Name or service not known";
    case EAI_AGAIN: return "Temporary failure in name resolution";
    case EAI_FAIL: return "Non-recoverable failure in name resolution";
    case EAI_FAMILY: return "ai_family not supported";
    case EAI_MEMORY: return "Memory allocation failure";
    default: return net::error_text(rc);
    }
}

}  // namespace

namespace net {

// Windows has no SO_REUSEPORT: every worker polls one shared listener.
bool reuseport_balances() { return false; }

namespace {

SOCKET open_listener(const addrinfo& ai, bool dual_stack, int backlog, std::string& error) {
    SOCKET s = open_stream(ai.ai_family);
    if (s == INVALID_SOCKET) {
        error = error_text(WSAGetLastError());
        return s;
    }
    // SO_EXCLUSIVEADDRUSE, not SO_REUSEADDR: on Windows SO_REUSEADDR lets a second
    // process bind the very port this one listens on and take its connections. Without
    // it, a restarted proxy still binds while old connections sit in TIME_WAIT (Windows
    // never refuses a bind for those), which is what SO_REUSEADDR buys on POSIX.
    BOOL one = TRUE;
    setsockopt(s, SOL_SOCKET, SO_EXCLUSIVEADDRUSE, reinterpret_cast<const char*>(&one), sizeof one);
    if (dual_stack && ai.ai_family == AF_INET6) {
        DWORD zero = 0;  // off by default on Windows, unlike Linux: [::] must ask for IPv4 too
        setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, reinterpret_cast<const char*>(&zero), sizeof zero);
    }
    if (bind(s, ai.ai_addr, static_cast<int>(ai.ai_addrlen)) == 0 && listen(s, backlog) == 0) return s;
    error = error_text(WSAGetLastError());
    closesocket(s);
    return INVALID_SOCKET;
}

}  // namespace

SocketHandle listen_tcp(const std::string& host, std::uint16_t port, int backlog, PortShare /*share: no SO_REUSEPORT*/,
                        std::string& error) {
    // `shared` (SO_REUSEPORT) never comes: reuseport_balances() is false here.
    std::string service = std::to_string(port);
    const char* node = host.empty() ? nullptr : host.c_str();
    // "" means every interface: the IPv6 wildcard in dual stack first, then IPv4 alone
    // where IPv6 is disabled.
    const int families[] = {node ? AF_UNSPEC : AF_INET6, AF_INET};
    for (int i = 0; i < (node ? 1 : 2); ++i) {
        addrinfo hints{};
        hints.ai_family = families[i];
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
        addrinfo* res = nullptr;
        int rc = getaddrinfo(node, service.c_str(), &hints, &res);
        if (rc != 0) {
            error = "cannot resolve listen address: " + gai_text(rc);
            continue;
        }
        SOCKET s = INVALID_SOCKET;
        for (addrinfo* ai = res; ai && s == INVALID_SOCKET; ai = ai->ai_next)
            s = open_listener(*ai, !node, backlog, error);
        freeaddrinfo(res);
        if (s != INVALID_SOCKET) return static_cast<SocketHandle>(s);
    }
    return kInvalidSocket;
}

IoResult accept(SocketHandle listener, SocketHandle* out) {
    SOCKET s = ::accept(sock(listener), nullptr, nullptr);
    if (s == INVALID_SOCKET) {
        int e = WSAGetLastError();
        // WSAECONNRESET: the client reset the connection before it was accepted; as
        // ECONNABORTED on POSIX, nothing is left to serve.
        if (would_block(e) || e == WSAECONNRESET) return {IoStatus::WouldBlock, 0, 0};
        return {IoStatus::Error, 0, e};
    }
    // An accepted socket inherits the listener's properties, non-blocking mode among
    // them; set again all the same, since the loop would hang on a blocking one.
    u_long on = 1;
    ioctlsocket(s, FIONBIO, &on);
    SetHandleInformation(reinterpret_cast<HANDLE>(s), HANDLE_FLAG_INHERIT, 0);
    *out = static_cast<SocketHandle>(s);
    return {IoStatus::Ok, 0, 0};
}

bool is_fd_exhaustion(int error) {
    return error == WSAEMFILE || error == WSAENOBUFS || error == ERROR_NOT_ENOUGH_MEMORY ||
           error == ERROR_OUTOFMEMORY;
}

IoResult connect_start(const SockAddr& addr, SocketHandle* out) {
    SOCKET s = open_stream(sa(addr)->sa_family);
    if (s == INVALID_SOCKET) return {IoStatus::Error, 0, WSAGetLastError()};
    set_nodelay(static_cast<SocketHandle>(s));
    if (::connect(s, sa(addr), static_cast<int>(addr.len)) != 0) {
        int e = WSAGetLastError();
        if (e != WSAEWOULDBLOCK) {  // Winsock's word for "in progress"
            closesocket(s);
            return {IoStatus::Error, 0, e};
        }
    }
    *out = static_cast<SocketHandle>(s);
    return {IoStatus::Ok, 0, 0};
}

int connect_result(SocketHandle s) {
    // A failed non-blocking connect leaves its error in SO_ERROR, as on POSIX.
    int err = 0;
    int len = sizeof err;
    if (getsockopt(sock(s), SOL_SOCKET, SO_ERROR, reinterpret_cast<char*>(&err), &len) != 0) return WSAGetLastError();
    return err;
}

IoResult read(SocketHandle s, char* buf, std::size_t cap) {
    int n = ::recv(sock(s), buf, cap > INT_MAX ? INT_MAX : static_cast<int>(cap), 0);
    return from_result(n);
}

IoResult peek(SocketHandle s) {
    char byte;
    return from_result(::recv(sock(s), &byte, 1, MSG_PEEK));
}

IoResult write(SocketHandle s, const char* data, std::size_t len) {
    if (len == 0) return {IoStatus::Ok, 0, 0};
    int n = ::send(sock(s), data, len > INT_MAX ? INT_MAX : static_cast<int>(len), 0);
    if (n == 0) return {IoStatus::WouldBlock, 0, 0};
    return from_result(n);
}

void shutdown_write(SocketHandle s) { ::shutdown(sock(s), SD_SEND); }
void close(SocketHandle s) { closesocket(sock(s)); }

void set_nodelay(SocketHandle s) {
    BOOL one = TRUE;
    setsockopt(sock(s), IPPROTO_TCP, TCP_NODELAY, reinterpret_cast<const char*>(&one), sizeof one);
}

std::string peer_address(SocketHandle s) {
    SockAddr a;
    int len = sizeof a.storage;
    if (getpeername(sock(s), reinterpret_cast<sockaddr*>(a.storage), &len) != 0) return std::string();
    a.len = static_cast<unsigned>(len);
    return a.to_string();
}

std::uint16_t local_port(SocketHandle s) {
    sockaddr_storage ss{};
    int len = sizeof ss;
    if (getsockname(sock(s), reinterpret_cast<sockaddr*>(&ss), &len) != 0) return 0;
    if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
}

std::string error_text(int error) {
    // The Linux build's words (strerror) for what a proxy meets every day; see the top.
    switch (error) {
    case WSAECONNREFUSED: return "Connection refused";
    case WSAECONNRESET: return "Connection reset by peer";
    case WSAECONNABORTED: return "Software caused connection abort";
    case WSAESHUTDOWN: return "Broken pipe";
    case WSAETIMEDOUT: return "Connection timed out";
    case WSAENETUNREACH: return "Network is unreachable";
    case WSAEHOSTUNREACH: return "No route to host";
    case WSAENETDOWN: return "Network is down";
    case WSAEADDRINUSE: return "Address already in use";
    case WSAEADDRNOTAVAIL: return "Cannot assign requested address";
    case WSAEACCES: return "Permission denied";
    case WSAEMFILE: return "Too many open files";
    case WSAENOBUFS: return "No buffer space available";
    case WSAEAFNOSUPPORT: return "Address family not supported by protocol";
    default: break;
    }
    char buf[256];
    DWORD n = FormatMessageA(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS, nullptr,
                             static_cast<DWORD>(error), MAKELANGID(LANG_NEUTRAL, SUBLANG_DEFAULT), buf,
                             sizeof buf, nullptr);
    while (n > 0 && (buf[n - 1] == '\r' || buf[n - 1] == '\n' || buf[n - 1] == ' ' || buf[n - 1] == '.')) --n;
    if (n == 0) return "error " + std::to_string(error);
    return std::string(buf, n);
}

int resolve(const std::string& host, std::uint16_t port, SockAddr* out, int cap, std::string& error) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG;
    addrinfo* res = nullptr;
    std::string service = std::to_string(port);
    int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &res);
    if (rc != 0 && rc != EAI_AGAIN) {
        // AI_ADDRCONFIG on Windows does not count loopback as configured: with no other
        // interface up, even "localhost" fails, and with WSAHOST_NOT_FOUND (EAI_NONAME),
        // so unlike on Linux that answer is asked again too, without the flag.
        hints.ai_flags = AI_NUMERICSERV;
        rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &res);
    }
    if (rc != 0) {
        error = gai_text(rc);
        return 0;
    }
    return sockaddr_common::take_addresses(res, out, cap, error);
}

}  // namespace net

}  // namespace op
