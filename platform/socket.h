// Non-blocking TCP sockets, as values: every expected outcome (would block, end of
// stream, reset) is an IoResult, never an exception or a raw errno in src/.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace op {

using SocketHandle = std::intptr_t;  // fd on POSIX, SOCKET on Windows
inline constexpr SocketHandle kInvalidSocket = -1;

enum class IoStatus { Ok, WouldBlock, Eof, Error };

struct IoResult {
    IoStatus status = IoStatus::Ok;
    std::size_t bytes = 0;  // when Ok
    int error = 0;          // platform error code when Error
};

// An IPv4 or IPv6 socket address, opaque outside platform/.
struct SockAddr {
    alignas(8) unsigned char storage[128];
    unsigned len = 0;
    std::string to_string() const;  // "1.2.3.4:443" / "[::1]:443"
    // The IP address alone, in network byte order: 4 bytes (IPv4) or 16 (IPv6) written
    // to `out`, their count to `len`. false (nothing written) for anything else, such as
    // a default-constructed SockAddr.
    bool ip_bytes(unsigned char out[16], std::size_t& len) const;
};

namespace net {

// How a listener shares its port with the other workers' (SO_REUSEPORT, where the
// kernel spreads connections over them: reuseport_balances()).
enum class PortShare : std::uint8_t {
    Alone,  // no SO_REUSEPORT: the only socket on the port
    First,  // the first of a group: the port must be free of every other socket (another
            // process's SO_REUSEPORT group too: a second proxy on the port would otherwise
            // start and take part of the connections), then bound with SO_REUSEPORT
    Join,   // SO_REUSEPORT, joining the group the first made
};
// Listening socket bound to host:port ("" = all interfaces, dual-stack when possible),
// non-blocking, SO_REUSEADDR, and SO_REUSEPORT as `share` says. Returns kInvalidSocket and
// sets error text on failure.
SocketHandle listen_tcp(const std::string& host, std::uint16_t port, int backlog, PortShare share,
                        std::string& error);
// Whether SO_REUSEPORT spreads incoming connections over every socket bound to the
// port: Linux does, so each worker binds its own listener (`shared`). Where it does not
// (macOS, the BSDs; Windows has no such option), one listener bound without `shared`
// serves every worker: each worker's poller watches it, all are woken by a connection,
// and accept() gives it to one of them and WouldBlock to the others.
bool reuseport_balances();
// Non-blocking accept; WouldBlock when none pending; Error with error==EMFILE-class
// reported via is_fd_exhaustion().
IoResult accept(SocketHandle listener, SocketHandle* out);
bool is_fd_exhaustion(int error);
// Starts a non-blocking connect. Ok = connected or in progress (wait for writable, then
// connect_result()); Error otherwise.
IoResult connect_start(const SockAddr& addr, SocketHandle* out);
// After the socket became writable: 0 on success, else an error code.
int connect_result(SocketHandle s);

// A write to a connection the peer has closed or reset is an Error value (EPIPE,
// ECONNRESET), never SIGPIPE: MSG_NOSIGNAL on Linux, SO_NOSIGPIPE on macOS and the BSDs;
// the BSD path built on Linux relies on sys::ignore_sigpipe().
IoResult read(SocketHandle s, char* buf, std::size_t cap);
// Looks without taking: Ok (1 byte) when bytes are waiting, Eof when the peer has
// closed, WouldBlock when nothing has come, or Error.
IoResult peek(SocketHandle s);
IoResult write(SocketHandle s, const char* data, std::size_t len);
// write() in the shape of TlsSession::DirectSend: `handle` points at the owner's
// SocketHandle, read at each call (a socket closed meanwhile takes nothing). The bytes
// sent; 0 for EAGAIN and for errors alike, which the owner's next write() then meets.
inline std::size_t write_through(void* handle, const char* data, std::size_t len) {
    SocketHandle s = *static_cast<const SocketHandle*>(handle);
    if (s == kInvalidSocket) return 0;
    IoResult r = write(s, data, len);
    return r.status == IoStatus::Ok ? r.bytes : 0;
}
void shutdown_write(SocketHandle s);
void close(SocketHandle s);
void set_nodelay(SocketHandle s);
std::uint16_t local_port(SocketHandle s);
// The connected peer as "1.2.3.4:5678" / "[::1]:5678"; "" when the OS cannot say.
std::string peer_address(SocketHandle s);
std::string error_text(int error);

// Blocking name resolution (called on the resolver thread only). Fills up to `cap`
// addresses with `port`; returns the count, 0 and sets error on failure.
int resolve(const std::string& host, std::uint16_t port, SockAddr* out, int cap, std::string& error);

}  // namespace net

}  // namespace op
