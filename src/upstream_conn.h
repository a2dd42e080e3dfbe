// One connection to an upstream origin: resolve, TCP connect, optional tunnel through
// an egress proxy (HTTP CONNECT or SOCKS5), optional TLS, then plaintext I/O for the
// exchange that owns it, or idle in the pool.
//
//   Resolving -> Connecting -> [ProxyConnect | SocksHandshake] -> [TlsHandshake] -> Ready <-> Idle
//        any failure -> Failed (owner told once), then closed
//
// What is resolved here: the origin's name when connecting directly; the egress proxy's
// name otherwise, and for socks5:// also the origin's name first (its address goes in
// the SOCKS request). http:// and socks5h:// proxies resolve the origin themselves.
// Everything from the start to the tunnel's opening is bounded by -connect-timeout.
//
// The owner (the client side of an exchange) is told about progress through
// UpstreamOwner; it pulls plaintext with read() and pushes it with write(). The
// connection never reads from its socket while the owner does not want input
// (backpressure), except while idle, when any readability means the peer closed or
// sent junk, and the connection is dropped from the pool.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "byte_buffer.h"
#include "egress.h"
#include "pollable.h"
#include "socket.h"
#include "socks5.h"
#include "target.h"
#include "tls.h"

namespace op {

class EventLoop;
class Upstreams;

enum class UpstreamFailure {
    Resolve,      // name did not resolve
    Connect,      // refused, unreachable
    Timeout,      // connect/handshake took longer than -connect-timeout
    Proxy,        // the egress proxy refused the tunnel (CONNECT status, SOCKS5 reply, authentication)
    Tls,          // handshake or verification failed
    Forbidden,    // a client-chosen target resolved only to internal addresses
};

class UpstreamOwner {
public:
    virtual ~UpstreamOwner() = default;
    virtual void upstream_ready() = 0;     // handshake done: write the request
    virtual void upstream_readable() = 0;  // read() may return data, Eof or an error
    virtual void upstream_writable() = 0;  // write() accepts bytes again
    virtual void upstream_failed(UpstreamFailure why, const std::string& detail) = 0;
};

class UpstreamConn final : public Pollable {
public:
    enum class State { Resolving, Connecting, ProxyConnect, SocksHandshake, TlsHandshake, Ready, Idle, Failed };

    // `pool_key` identifies the origin (and egress) for the idle pool. `egress`: how the
    // origin is reached (nullptr or Direct: directly); copied, as a pooled connection
    // may outlive the configuration it points into. `restricted`: the target was chosen
    // by the client (X-Target-Host), so internal addresses (is_internal_address) are
    // refused; the check is made on the very addresses connected to (or, for socks5://,
    // the one sent to the proxy), so there is no DNS-rebinding gap between check and use.
    UpstreamConn(Upstreams& upstreams, const Target& target, std::string pool_key, UpstreamOwner* owner,
                 bool restricted, const Egress* egress = nullptr);
    ~UpstreamConn() override;

    void start();                       // begins resolving (owner set)
    void attach(UpstreamOwner* owner);  // taken from the pool: state Idle -> Ready
    void make_idle();                   // given back to the pool: Ready -> Idle
    void close();                       // closes the socket now; destroyed after the batch

    // Plaintext. read(): Ok with bytes, WouldBlock, Eof, Error (error_text() says why).
    IoResult read(char* buf, std::size_t cap);
    // Accepts up to len bytes; 0 when the outgoing buffer is full (wait for writable).
    std::size_t write(const char* data, std::size_t len);
    // Whether plaintext may already be waiting (TLS buffered), so the owner should read
    // without waiting for socket readiness.
    bool has_buffered_input() const;
    // Whether read() could give anything now (bytes, or the end) without the poller
    // reporting more: false means it would only say WouldBlock.
    bool may_have_input() const;
    // Whether the response just read was all the connection holds, so that it may be
    // pooled: nothing buffered, and nothing more on the socket (looked at, not taken,
    // when the last read filled what it asked for). Bytes after a complete response
    // are never the next request's answer (RFC 9112 section 6.3).
    bool nothing_unread();
    // Bytes accepted by write() and not yet on the wire (plain, or TLS records).
    bool has_pending_output() const { return !out_.empty() || (tls_ && tls_->pending_ciphertext() > 0); }
    // After read() said Eof: whether a TLS connection ended without the peer's
    // close_notify, which leaves a body that runs to the close unproven (RFC 9112
    // section 9.8). Never for plain TCP, where the close is the only end there is.
    bool ended_without_close_notify() const { return ragged_eof_; }

    void want_read(bool on);

    State state() const { return state_; }
    const std::string& pool_key() const { return pool_key_; }
    const Target& target() const { return target_; }
    const Egress& egress() const { return egress_; }
    const std::string& error_text() const { return error_; }
    bool reused() const { return uses_ > 1; }
    // The poller refused a change of interest: the connection fails at the next tick
    // and must not be pooled meanwhile.
    bool watch_refused() const { return watch_refused_; }
    std::uint64_t id() const { return id_; }

    void on_ready(unsigned ready) override;
    void on_timeout() override;
    void on_resolved(std::vector<SockAddr> addresses, const std::string& error);

private:
    void connect_next();
    void connected();
    void start_tls();
    void drive_handshake();
    void proxy_connect_readable();
    void start_socks();
    void socks_readable();
    bool resolved_target(std::vector<SockAddr>& addresses);  // the -allow-private check
    std::string via() const;
    std::string connect_name() const;  // " through socks5://host:port", or "" when direct
    bool flush_out();   // sends out_ / TLS ciphertext; false on a socket error
    IoResult read_ciphertext();  // one socket read into the TLS engine
    void fail(UpstreamFailure why, const std::string& detail);
    void update_interest();
    void set_deadline(std::int64_t at_ms);  // 0: none

    Upstreams& upstreams_;
    EventLoop& loop_;
    Target target_;
    Egress egress_;
    std::string pool_key_;
    UpstreamOwner* owner_;
    std::uint64_t id_;
    State state_ = State::Resolving;
    SocketHandle fd_ = kInvalidSocket;
    bool registered_ = false;
    unsigned interest_ = 0;
    bool owner_wants_read_ = true;
    bool socket_eof_ = false;
    bool ragged_eof_ = false;  // over TLS, read() said Eof for a TCP end without close_notify
    bool write_blocked_ = false;
    bool broken_ = false;  // a write failed; read() reports it once input is drained
    bool restricted_ = false;
    bool cipher_bulk_ = false;     // the last socket read filled its buffer: read larger
    bool socket_readable_ = true;  // false after a short read, until the poller says otherwise
    bool watch_refused_ = false;   // the poller refused a change of interest: fail at the next tick
    int uses_ = 0;
    std::vector<SockAddr> addresses_;  // only while connecting
    std::size_t next_address_ = 0;
    bool resolving_origin_ = false;  // socks5://: the origin's name first, then the proxy's
    socks5::Destination socks_destination_;
    std::unique_ptr<socks5::ClientHandshake> socks_;  // only during the handshake
    std::unique_ptr<TlsSession> tls_;
    ByteBuffer out_;   // bytes waiting for the socket (ciphertext with TLS)
    ByteBuffer in_;    // plain: unused; CONNECT: the proxy's response head
    std::string error_;
};

}  // namespace op
