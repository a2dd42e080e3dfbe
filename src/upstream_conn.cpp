#include "upstream_conn.h"

#include <cassert>
#include <cstdio>

#include "address_policy.h"
#include "http_head.h"
#include "http_writer.h"
#include "log.h"
#include "upstreams.h"

namespace op {

namespace {
// Outgoing bytes buffered (ciphertext with TLS) before write() reports "full".
constexpr std::size_t kOutHighWater = 64 * 1024;
// Socket read size for TLS records (a record carries up to 16 KiB of plaintext), and
// the larger read used while the socket keeps filling the previous one (a bulk
// response): only what is already there is taken either way.
constexpr std::size_t kCipherRead = 16 * 1024 + 512;
constexpr std::size_t kCipherReadBulk = 4 * kCipherRead;
}  // namespace

UpstreamConn::UpstreamConn(Upstreams& upstreams, const Target& target, std::string pool_key, UpstreamOwner* owner,
                           bool restricted, const Egress* egress)
    : upstreams_(upstreams),
      loop_(upstreams.loop()),
      target_(target),
      egress_(egress ? *egress : Egress{}),
      pool_key_(std::move(pool_key)),
      owner_(owner),
      id_(upstreams.next_id()),
      restricted_(restricted) {}

UpstreamConn::~UpstreamConn() {
    if (fd_ != kInvalidSocket) {
        if (registered_) loop_.forget(fd_);
        net::close(fd_);
    }
    upstreams_.forget_lookup(id_);
}

void UpstreamConn::start() {
    uses_ = 1;
    set_deadline(loop_.now_ms() + upstreams_.settings().connect_timeout.count() * 1000);
    // Through an http:// or socks5h:// proxy the origin's name is resolved there, out of
    // reach of the address rule (resolved_target); an address written as the host is not
    // a name, though, and is judged here.
    if (restricted_ && !egress_.direct() && egress_.kind != Egress::Kind::Socks5 &&
        !remote_name_allowed(target_.host)) {
        fail(UpstreamFailure::Forbidden, "X-Target-Host " + target_.host +
                                             " is an internal or numeric address, which " + egress_.describe() +
                                             " would connect to; see -allow-private");
        return;
    }
    // socks5:// sends the origin's address, so its name is resolved here first.
    resolving_origin_ = egress_.kind == Egress::Kind::Socks5;
    bool origin = egress_.direct() || resolving_origin_;
    const std::string& host = origin ? target_.host : egress_.proxy.host;
    std::uint16_t port = origin ? target_.port : egress_.proxy.port;
    Resolution res;
    if (upstreams_.lookup(this, host, port, res) == Resolver::Answer::Ready)
        on_resolved(std::move(res.addresses), res.error);
}

std::string UpstreamConn::via() const { return egress_.direct() ? std::string() : " through " + egress_.describe(); }

// For a client-chosen origin, keeps only the addresses that are not internal; false
// (the connection failed) when none is left.
bool UpstreamConn::resolved_target(std::vector<SockAddr>& addresses) {
    if (!restricted_) return true;
    std::vector<SockAddr> allowed;
    for (const SockAddr& a : addresses)
        if (!is_internal_address(a)) allowed.push_back(a);
    if (allowed.empty()) {
        fail(UpstreamFailure::Forbidden, "X-Target-Host " + target_.host + " resolves to an internal address (" +
                                             addresses.front().to_string() + "); see -allow-private");
        return false;
    }
    addresses.swap(allowed);
    return true;
}

void UpstreamConn::on_resolved(std::vector<SockAddr> addresses, const std::string& error) {
    upstreams_.forget_lookup(id_);
    if (state_ != State::Resolving) return;
    bool origin = egress_.direct() || resolving_origin_;
    if (addresses.empty()) {
        fail(UpstreamFailure::Resolve, "cannot resolve " +
                                           (origin ? target_.host : "upstream proxy " + egress_.proxy.host) + ": " +
                                           error);
        return;
    }
    // Through an http:// or socks5h:// proxy the proxy resolves the origin's name; only
    // the addresses used here can be checked (the proxy's own is the operator's).
    if (origin && !resolved_target(addresses)) return;
    if (resolving_origin_) {
        // socks5://: the first allowed address is the one the proxy is asked for.
        resolving_origin_ = false;
        std::size_t len = 0;
        if (!addresses.front().ip_bytes(socks_destination_.ip, len)) {
            fail(UpstreamFailure::Resolve, "cannot resolve " + target_.host + ": not an IP address");
            return;
        }
        socks_destination_.ip_len = len;
        socks_destination_.port = target_.port;
        Resolution res;
        if (upstreams_.lookup(this, egress_.proxy.host, egress_.proxy.port, res) == Resolver::Answer::Ready)
            on_resolved(std::move(res.addresses), res.error);
        return;
    }
    addresses_ = std::move(addresses);
    next_address_ = 0;
    state_ = State::Connecting;
    connect_next();
}

void UpstreamConn::connect_next() {
    std::string last_error = "no address";
    while (next_address_ < addresses_.size()) {
        const SockAddr& addr = addresses_[next_address_++];
        if (fd_ != kInvalidSocket) {
            if (registered_) loop_.forget(fd_);
            registered_ = false;
            net::close(fd_);
            fd_ = kInvalidSocket;
        }
        IoResult r = net::connect_start(addr, &fd_);
        if (r.status == IoStatus::Ok) {
            interest_ = kWritable;
            registered_ = loop_.add(fd_, this, interest_);
            if (registered_) {
                // The TCP handshake is under way: the first TLS connection of the
                // process loads the trust store now, while the network works, instead
                // of after it. Failures are reported by start_tls().
                std::string ignored;
                if (target_.tls) upstreams_.tls().ready(ignored);
                return;
            }
            last_error = "cannot register socket";
            continue;
        }
        last_error = addr.to_string() + ": " + net::error_text(r.error);
    }
    fail(UpstreamFailure::Connect, "cannot connect to " + connect_name() + " (" + last_error + ")");
}

void UpstreamConn::connected() {
    upstreams_.metrics().upstream_connects.add();
    addresses_.clear();
    addresses_.shrink_to_fit();
    switch (egress_.kind) {
        case Egress::Kind::HttpConnect:
            state_ = State::ProxyConnect;
            write_connect_head(out_, target_, egress_.authorization);
            if (!flush_out()) fail(UpstreamFailure::Proxy, "upstream proxy closed the connection: " + error_);
            else update_interest();
            return;
        case Egress::Kind::Socks5:
        case Egress::Kind::Socks5h: start_socks(); return;
        case Egress::Kind::Direct: break;
    }
    start_tls();
}

void UpstreamConn::start_socks() {
    if (egress_.kind == Egress::Kind::Socks5h) {
        socks_destination_.name = target_.host;  // an IPv6 literal goes as its text
        socks_destination_.port = target_.port;
    }
    socks_ = std::make_unique<socks5::ClientHandshake>(egress_.user, egress_.password, std::move(socks_destination_));
    socks_destination_ = socks5::Destination{};
    state_ = State::SocksHandshake;
    std::string greeting;
    if (socks_->start(greeting) == socks5::ClientHandshake::Status::Failed) {
        fail(UpstreamFailure::Proxy, socks_->error());
        return;
    }
    out_.append(greeting);
    if (!flush_out()) fail(UpstreamFailure::Proxy, "socks5 proxy closed the connection: " + error_);
    else update_interest();
}

void UpstreamConn::socks_readable() {
    char buf[512];
    for (;;) {
        IoResult r = net::read(fd_, buf, sizeof buf);
        if (r.status == IoStatus::WouldBlock) break;
        if (r.status != IoStatus::Ok) {
            fail(UpstreamFailure::Proxy,
                 std::string("socks5 proxy closed the connection during the handshake") +
                     (r.status == IoStatus::Error ? ": " + net::error_text(r.error) : std::string()) +
                     (socks_->authenticated() ? " (after authentication)" : ""));
            return;
        }
        std::string next;
        std::size_t consumed = 0;
        auto st = socks_->feed(buf, r.bytes, consumed, next);
        if (st == socks5::ClientHandshake::Status::Failed) {
            fail(UpstreamFailure::Proxy, socks_->error());
            return;
        }
        if (!next.empty()) {
            out_.append(next);
            if (!flush_out()) {
                fail(UpstreamFailure::Proxy, "socks5 proxy closed the connection: " + error_);
                return;
            }
        }
        if (st == socks5::ClientHandshake::Status::Done) {
            if (consumed != r.bytes) {
                fail(UpstreamFailure::Proxy, "socks5 proxy sent bytes before the tunnel was used");
                return;
            }
            socks_.reset();
            start_tls();
            return;
        }
    }
    update_interest();
}

void UpstreamConn::start_tls() {
    if (!target_.tls) {
        state_ = State::Ready;
        set_deadline(0);
        update_interest();
        if (owner_) owner_->upstream_ready();
        return;
    }
    std::string error;
    if (!upstreams_.tls().ready(error)) {
        fail(UpstreamFailure::Tls, "cannot verify " + target_.authority + ": " + error);
        return;
    }
    tls_ = TlsSession::create(upstreams_.tls(), target_.host, target_.port);
    if (!tls_) {
        fail(UpstreamFailure::Tls, "cannot create TLS session");
        return;
    }
    // Records go straight to the socket, not through the engine's queue: a CONNECT or
    // SOCKS exchange before is over (out_ is empty), so nothing of ours can precede them.
    assert(out_.empty());
    tls_->set_direct_send(net::write_through, &fd_);
    state_ = State::TlsHandshake;
    set_deadline(loop_.now_ms() + upstreams_.settings().tls_timeout.count() * 1000);
    drive_handshake();
}

void UpstreamConn::drive_handshake() {
    TlsStatus st = tls_->handshake();
    if (!flush_out()) {
        // A server that refuses the handshake sends its alert and closes, so our next
        // write fails (EPIPE); the alert is what says why. Read what is there, and let
        // the TLS engine name it.
        std::string why = error_;
        char cipher[kCipherRead];
        bool fed = false;
        for (int i = 0; i < 4; ++i) {
            IoResult r = net::read(fd_, cipher, sizeof cipher);
            if (r.status != IoStatus::Ok) break;
            tls_->feed_ciphertext(cipher, r.bytes);
            fed = true;
        }
        if (fed && tls_->handshake() == TlsStatus::Error && !tls_->error().empty()) why = tls_->error();
        fail(UpstreamFailure::Tls, "TLS handshake with " + target_.authority + " failed: " + why);
        return;
    }
    if (st == TlsStatus::Ok) {
        upstreams_.metrics().tls_handshakes.add();
        if (tls_->session_reused()) upstreams_.metrics().tls_resumptions.add();
        state_ = State::Ready;
        set_deadline(0);
        update_interest();
        if (owner_) owner_->upstream_ready();
        return;
    }
    if (st == TlsStatus::WantRead) {
        if (socket_eof_) {
            fail(UpstreamFailure::Tls, "TLS handshake with " + target_.authority + " failed: connection closed");
            return;
        }
        update_interest();
        return;
    }
    fail(UpstreamFailure::Tls, "TLS handshake with " + target_.authority + " failed: " + tls_->error());
}

// What connect() reaches: the origin, or the egress proxy.
std::string UpstreamConn::connect_name() const {
    return egress_.direct() ? target_.authority : "upstream proxy " + egress_.describe();
}

void UpstreamConn::proxy_connect_readable() {
    for (;;) {
        char* p = in_.prepare(1024);
        IoResult r = net::read(fd_, p, 1024);
        if (r.status == IoStatus::WouldBlock) break;
        if (r.status != IoStatus::Ok) {
            fail(UpstreamFailure::Proxy, "upstream proxy closed the connection during CONNECT");
            return;
        }
        in_.commit(r.bytes);
        ResponseHead head;
        HeadLimits limits;
        ParseResult pr;
        for (;;) {
            pr = parse_response_head(in_.view(), limits, head);
            // An interim answer (1xx but 101) before the final one is skipped, as a
            // client must (RFC 9110 section 15.2); the connect timeout bounds a flood.
            if (pr.status != ParseStatus::Complete || head.status < 100 || head.status > 199 || head.status == 101)
                break;
            in_.consume(pr.consumed);
        }
        if (pr.status == ParseStatus::Incomplete) continue;
        if (pr.status == ParseStatus::Invalid) {
            fail(UpstreamFailure::Proxy, std::string("invalid answer from upstream proxy: ") + pr.error);
            return;
        }
        if (head.status / 100 != 2) {
            fail(UpstreamFailure::Proxy, "upstream proxy refused CONNECT with status " + std::to_string(head.status));
            return;
        }
        if (pr.consumed != in_.size()) {
            fail(UpstreamFailure::Proxy, "upstream proxy sent bytes before the tunnel was used");
            return;
        }
        in_.release();
        start_tls();
        return;
    }
    update_interest();
}

void UpstreamConn::attach(UpstreamOwner* owner) {
    assert(state_ == State::Idle && !closed);  // only pooled connections are attached
    owner_ = owner;
    state_ = State::Ready;
    owner_wants_read_ = true;
    ++uses_;
    update_interest();
}

void UpstreamConn::make_idle() {
    assert(state_ == State::Ready && !closed);  // the caller checked it is reusable
    owner_ = nullptr;
    state_ = State::Idle;
    in_.release();
    out_.release();
    // The first exchange on a connection is where TLS 1.3 session tickets arrive;
    // reading one inside SSL_read leaves a write buffer behind (see tls_openssl.cpp).
    // Later exchanges end with no buffers held, and skip the call.
    if (tls_ && uses_ == 1) tls_->release_buffers();
    update_interest();
}

void UpstreamConn::close() {
    if (closed) return;
    if (state_ == State::Idle) upstreams_.leave_pool(this);
    owner_ = nullptr;
    if (fd_ != kInvalidSocket) {
        // A clean end over TLS, as nginx does: the origin learns from the alert that we
        // stopped (a client that left) rather than that the connection was cut.
        if (tls_ && (state_ == State::Ready || state_ == State::Idle) && !broken_ && out_.empty() &&
            tls_->pending_ciphertext() == 0) {
            tls_->close_notify();  // goes straight to the socket (set_direct_send)
        }
        if (registered_) loop_.forget(fd_);
        registered_ = false;
        net::close(fd_);
        fd_ = kInvalidSocket;
    }
    loop_.destroy_later(this);
}

void UpstreamConn::fail(UpstreamFailure why, const std::string& detail) {
    UpstreamOwner* owner = owner_;
    close();  // first: an Idle connection (a refused watch) must leave the pool
    state_ = State::Failed;
    if (owner) owner->upstream_failed(why, detail);
}

IoResult UpstreamConn::read(char* buf, std::size_t cap) {
    if (state_ != State::Ready) return {IoStatus::WouldBlock, 0, 0};
    // A short read drained the socket: skip the read that would only say EAGAIN until
    // the poller reports readiness again (level-triggered, so nothing is missed).
    if (broken_) socket_readable_ = true;
    if (!tls_) {
        if (!socket_readable_) return {IoStatus::WouldBlock, 0, 0};
        IoResult r = net::read(fd_, buf, cap);
        if (r.status == IoStatus::Error) error_ = net::error_text(r.error);
        if (r.status == IoStatus::WouldBlock || (r.status == IoStatus::Ok && r.bytes < cap)) socket_readable_ = false;
        if (r.status == IoStatus::WouldBlock && broken_) return {IoStatus::Error, 0, 0};
        return r;
    }
    for (;;) {
        // Nothing buffered in the engine and the socket has bytes: read the socket
        // first instead of asking TLS for plaintext it cannot have (the usual case at
        // the start of every response). When the socket is drained the engine is
        // still asked, and its WantRead is where it gives back its record buffers.
        if (socket_readable_ && !socket_eof_ && !tls_->has_buffered_input()) {
            IoResult r = read_ciphertext();
            if (r.status == IoStatus::Ok) continue;
            if (r.status != IoStatus::WouldBlock || broken_) return r;
        }
        std::size_t n = 0;
        TlsStatus st = tls_->read(buf, cap, &n);
        if (tls_->pending_ciphertext() > 0 && !flush_out()) return {IoStatus::Error, 0, 0};
        if (st == TlsStatus::Ok) return {IoStatus::Ok, n, 0};
        if (st == TlsStatus::Closed) return {IoStatus::Eof, 0, 0};
        if (st == TlsStatus::Error) {
            error_ = tls_->error();
            return {IoStatus::Error, 0, 0};
        }
        if (socket_eof_) {  // the peer closed without close_notify
            ragged_eof_ = true;
            return {IoStatus::Eof, 0, 0};
        }
        if (!socket_readable_) return {IoStatus::WouldBlock, 0, 0};
        IoResult r = read_ciphertext();
        if (r.status != IoStatus::Ok) return r;
    }
}

// One socket read into the TLS engine. Ok also stands for "EOF seen, go on": the
// engine then reports what it still holds, and read() the end.
IoResult UpstreamConn::read_ciphertext() {
    // Straight into the engine's input queue: no copy on the way.
    std::size_t want = cipher_bulk_ ? kCipherReadBulk : kCipherRead;
    char* cipher = tls_->ciphertext_space(want);
    if (!cipher) {
        error_ = "out of memory";
        return {IoStatus::Error, 0, 0};
    }
    IoResult r = net::read(fd_, cipher, want);
    tls_->commit_ciphertext(r.status == IoStatus::Ok ? r.bytes : 0);
    if (r.status == IoStatus::Ok) {
        cipher_bulk_ = r.bytes == want;
        if (r.bytes < want) socket_readable_ = false;
        return r;
    }
    cipher_bulk_ = false;
    if (r.status == IoStatus::WouldBlock) socket_readable_ = false;
    if (r.status == IoStatus::Eof) {
        socket_eof_ = true;
        return {IoStatus::Ok, 0, 0};
    }
    if (r.status == IoStatus::Error) error_ = net::error_text(r.error);
    if (r.status == IoStatus::WouldBlock && broken_) return {IoStatus::Error, 0, 0};
    return r;
}

std::size_t UpstreamConn::write(const char* data, std::size_t len) {
    if (state_ != State::Ready || len == 0) return 0;
    if (broken_) return len;  // discarded: the exchange is failing, read() says why
    // Everything not yet on the wire counts: our slice and the ciphertext still in the
    // TLS engine. Counting only the slice let a fast client push a whole upload into
    // the engine while a slow upstream was not reading.
    std::size_t pending = out_.size() + (tls_ ? tls_->pending_ciphertext() : 0);
    if (pending >= kOutHighWater) {
        write_blocked_ = true;
        update_interest();
        return 0;
    }
    std::size_t take = len;
    if (!tls_) {
        if (out_.empty()) {
            IoResult r = net::write(fd_, data, len);
            if (r.status == IoStatus::Ok) {
                if (r.bytes == len) return len;
                data += r.bytes;
                len -= r.bytes;
            } else if (r.status == IoStatus::Error || r.status == IoStatus::Eof) {
                // Reported to the owner by read(), after any response bytes already here.
                error_ = net::error_text(r.error);
                broken_ = true;
                return take;
            }
        }
        if (len > kOutHighWater - out_.size()) {
            take -= len - (kOutHighWater - out_.size());
            len = kOutHighWater - out_.size();
        }
        out_.append(data, len);
    } else {
        if (take > kOutHighWater - pending) take = kOutHighWater - pending;
        // One record per send (see kSendChunk); the caller comes back for the rest.
        if (take > kSendChunk) take = kSendChunk;
        std::size_t n = 0;
        if (tls_->write(data, take, &n) != TlsStatus::Ok) {
            error_ = tls_->error();
            broken_ = true;
            return take;
        }
        take = n;
    }
    if (!flush_out()) {
        broken_ = true;
        return take;
    }
    update_interest();
    return take;
}

bool UpstreamConn::flush_out() {
    for (;;) {
        // out_ (plain bytes, the CONNECT request) always precedes what TLS produces.
        // The engine's ciphertext is sent straight from its queue, all of it in one
        // send, not one per record and without a copy.
        std::string_view pending = out_.view();
        bool from_tls = false;
        if (pending.empty() && tls_ && tls_->pending_ciphertext() > 0) {
            pending = tls_->peek_ciphertext();
            from_tls = true;
        }
        if (pending.empty()) return true;
        IoResult r = net::write(fd_, pending.data(), pending.size());
        if (r.status == IoStatus::Ok) {
            if (from_tls) tls_->drop_ciphertext(r.bytes);
            else out_.consume(r.bytes);
            continue;
        }
        if (r.status == IoStatus::WouldBlock) return true;
        error_ = r.status == IoStatus::Error ? net::error_text(r.error) : "connection closed";
        return false;
    }
}

bool UpstreamConn::has_buffered_input() const { return tls_ && tls_->has_buffered_input(); }

bool UpstreamConn::nothing_unread() {
    if (state_ != State::Ready || broken_ || socket_eof_ || has_buffered_input()) return false;
    // A short read drained the socket, and the poller has not reported it readable
    // since: nothing came after the response that is not yet in a later event.
    if (!socket_readable_) return true;
    // A read filled its ask (a body read up to its Content-Length, a head that ended
    // exactly at a read's size): more may be behind it.
    IoResult r = net::peek(fd_);
    if (r.status != IoStatus::WouldBlock) return false;
    socket_readable_ = false;
    return true;
}

bool UpstreamConn::may_have_input() const {
    return state_ == State::Ready && (socket_readable_ || socket_eof_ || broken_ || has_buffered_input());
}

void UpstreamConn::want_read(bool on) {
    if (owner_wants_read_ == on) return;
    owner_wants_read_ = on;
    update_interest();
}

void UpstreamConn::update_interest() {
    if (fd_ == kInvalidSocket || !registered_) return;
    unsigned want = 0;
    bool pending_out = !out_.empty() || (tls_ && tls_->pending_ciphertext() > 0);
    switch (state_) {
        case State::Connecting: want = kWritable; break;
        case State::ProxyConnect:
        case State::SocksHandshake:
        case State::TlsHandshake: want = kReadable | (pending_out ? kWritable : 0u); break;
        case State::Ready:
            want = (owner_wants_read_ && !socket_eof_ ? kReadable : 0u) |
                   (!broken_ && (pending_out || write_blocked_) ? kWritable : 0u);
            break;
        case State::Idle: want = kReadable; break;
        default: break;
    }
    if (want != interest_) {
        if (!loop_.modify(fd_, this, want)) {
            // Refused: the connection could wait for nothing. It fails at the next tick
            // (on_timeout), not here inside whoever asked for the change (the owner in
            // the middle of a write, the pool taking it back). interest_ is unchanged.
            watch_refused_ = true;
            deadline_ms = loop_.now_ms();
            return;
        }
        interest_ = want;
    }
}

void UpstreamConn::on_ready(unsigned ready) {
    switch (state_) {
        case State::Connecting: {
            int err = net::connect_result(fd_);
            if (err != 0) {
                std::string why = net::error_text(err);
                if (next_address_ < addresses_.size()) {
                    connect_next();
                    return;
                }
                fail(UpstreamFailure::Connect, "cannot connect to " + connect_name() + ": " + why);
                return;
            }
            connected();
            return;
        }
        case State::ProxyConnect:
        case State::SocksHandshake:
            if ((ready & kWritable) && !flush_out()) {
                fail(UpstreamFailure::Proxy, "upstream proxy closed the connection: " + error_);
                return;
            }
            if (ready & kReadable) {
                if (state_ == State::ProxyConnect) proxy_connect_readable();
                else socks_readable();
            } else {
                update_interest();
            }
            return;
        case State::TlsHandshake:
            if (ready & kReadable) {
                char cipher[kCipherRead];
                IoResult r = net::read(fd_, cipher, sizeof cipher);
                if (r.status == IoStatus::Ok) tls_->feed_ciphertext(cipher, r.bytes);
                else if (r.status == IoStatus::Eof) socket_eof_ = true;
                else if (r.status == IoStatus::Error) {
                    fail(UpstreamFailure::Tls,
                         "TLS handshake with " + target_.authority + " failed: " + net::error_text(r.error));
                    return;
                }
            }
            drive_handshake();
            return;
        case State::Ready:
            if (ready & kWritable) {
                bool ok = flush_out();
                bool drained = out_.empty() && !(tls_ && tls_->pending_ciphertext() > 0);
                if (!ok) {
                    broken_ = true;
                    out_.clear();
                    ready |= kReadable;  // the owner's next read reports the error
                }
                if (ok && drained) write_blocked_ = false;
                update_interest();
                if (owner_ && ok && drained) owner_->upstream_writable();
                if (closed) return;
            }
            if (ready & kReadable) socket_readable_ = true;
            if ((ready & kReadable) && owner_) owner_->upstream_readable();
            return;
        case State::Idle:
            // An idle connection that turns readable is closing (or sent junk): drop it.
            close();
            return;
        default:
            return;
    }
}

void UpstreamConn::set_deadline(std::int64_t at_ms) { deadline_ms = watch_refused_ ? loop_.now_ms() : at_ms; }

void UpstreamConn::on_timeout() {
    if (watch_refused_) {
        fail(UpstreamFailure::Connect, "cannot poll the connection to " + target_.authority);
        return;
    }
    if (state_ == State::Resolving || state_ == State::Connecting || state_ == State::ProxyConnect ||
        state_ == State::SocksHandshake || state_ == State::TlsHandshake) {
        bool tls = state_ == State::TlsHandshake;
        auto limit = tls ? upstreams_.settings().tls_timeout : upstreams_.settings().connect_timeout;
        const char* step = tls                                  ? "TLS handshake with "
                           : state_ == State::SocksHandshake   ? "socks5 handshake for "
                           : state_ == State::ProxyConnect     ? "CONNECT tunnel to "
                                                                : "connecting to ";
        fail(UpstreamFailure::Timeout, step + target_.authority + via() + " timed out after " +
                                           std::to_string(limit.count()) + "s");
    }
}

}  // namespace op
