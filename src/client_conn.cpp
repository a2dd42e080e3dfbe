#include "client_conn.h"

#include <algorithm>
#include <cassert>
#include <chrono>
#include <utility>

#include "http_writer.h"
#include "log.h"

namespace op {

namespace {

constexpr std::int64_t kDrainTimeoutMs = 30'000;      // flushing a final answer
constexpr std::int64_t kLingerMs = 2'000;             // discarding input before close
constexpr std::size_t kPipelineLimit = 64 * 1024;     // buffered bytes of later requests
constexpr std::size_t kTlsReadChunk = 17 * 1024;      // ciphertext per read: a whole record and its header

std::int64_t ms(std::chrono::seconds s) { return static_cast<std::int64_t>(s.count()) * 1000; }

std::int64_t unix_now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

bool starts_with_ci(std::string_view s, std::string_view prefix) {
    return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

constexpr std::string_view kSseComment = ": keep-alive\n\n";
constexpr std::string_view kJsonWhitespace = "\n";

// Whether `buf` holds the blank line that ends a head ("\n\n" or "\n\r\n"), looking
// only at bytes from `from` on (and the two before, which may start it).
bool head_end_seen(std::string_view buf, std::size_t from) {
    std::size_t i = from >= 2 ? from - 2 : 0;
    while ((i = buf.find('\n', i)) != std::string_view::npos) {
        ++i;
        if (i < buf.size() && buf[i] == '\r') ++i;
        if (i < buf.size() && buf[i] == '\n') return true;
    }
    return false;
}

}  // namespace

ClientConn::ClientConn(ClientContext& ctx, SocketHandle fd)
    : ctx_(ctx), snap_(ctx.snapshot), fd_(fd), req_chunks_(), resp_chunks_() {}

void ClientConn::start() {
    net::set_nodelay(fd_);
    if (ctx_.listener_tls) {
        tls_ = ctx_.listener_tls->new_session();
        if (!tls_) {
            log_line("Error: cannot start TLS for a client connection; closing it");
            close_client();
            return;
        }
        tls_->set_direct_send(net::write_through, &fd_);  // records straight to the socket
    }
    if (ctx_.access_log) meter_.set_client(net::peer_address(fd_));
    interest_ = kReadable;
    if (!ctx_.loop.add(fd_, this, interest_)) {
        log_line("Error: cannot watch a client connection; closing it");
        close_client();
        return;
    }
    refresh_clock();
    // The handshake and then the first request head must come within -header-timeout of
    // the connection: neither the Idle clock (restarted by every event) nor the head's
    // own clock (from its first byte) starts it anew.
    if (tls_) deadline_ms = first_head_deadline_ms_ = ctx_.loop.now_ms() + ms(cfg().header_timeout);
}

ClientConn::~ClientConn() {
    if (fd_ != kInvalidSocket) {
        ctx_.loop.forget(fd_);
        net::close(fd_);
    }
}

// The transitions in the table at the top of client_conn.h, and no others.
bool ClientConn::may_enter(State from, State to) {
    if (to == State::Closed) return from != State::Closed;
    switch (from) {
        case State::Idle: return to == State::ReadingHead;
        case State::ReadingHead: return to == State::Exchange || to == State::Draining;
        case State::Exchange:
            return to == State::Idle || to == State::ReadingHead || to == State::Draining || to == State::Flushing ||
                   to == State::Orphaned || to == State::Tunnel;
        case State::Tunnel: return to == State::Flushing || to == State::TunnelClosing;
        case State::Draining: return to == State::Lingering;
        case State::TunnelClosing:
        case State::Orphaned:
        case State::Flushing:
        case State::Lingering:
        case State::Closed: return false;
    }
    return false;
}

void ClientConn::enter(State next) {
    if (state_ == State::Closed) return;  // closing is idempotent: several paths may end it
    assert(may_enter(state_, next));
    state_ = next;
    const std::int64_t now = ctx_.loop.now_ms();
    switch (next) {
        case State::Idle: deadline_ms = now + ms(cfg().keepalive_timeout); break;
        // The header clock starts with the first byte and is not reset by later ones,
        // so a client trickling bytes cannot hold the connection forever.
        case State::ReadingHead:
            deadline_ms = now + ms(cfg().header_timeout);
            if (first_head_deadline_ms_ != 0 && first_head_deadline_ms_ < deadline_ms) deadline_ms = first_head_deadline_ms_;
            break;
        case State::Exchange:
            first_head_deadline_ms_ = 0;  // the first head is in
            activity_deadline_ms_ = deadline_ms = now + ms(cfg().response_timeout);
            last_emit_ms_ = now;
            break;
        case State::Tunnel: deadline_ms = now + ms(cfg().idle_timeout); break;
        case State::TunnelClosing:
            // The client is gone: its socket closes now; the upstream, once it has taken
            // what the client sent (or the clock runs out). Nothing more is read from it.
            close_socket();
            out_.release();
            if (up_) up_->want_read(false);
            deadline_ms = now + kDrainTimeoutMs;
            break;
        case State::Orphaned:
            // The client's socket is closed with the rest (Closed), after the upstream's:
            // the upstream is the one waiting to learn that nobody reads any more.
            in_.release();
            out_.release();
            deadline_ms = now;  // left within this event (drain_orphan): never waited for
            break;
        case State::Flushing:
        case State::Draining:
            in_.clear();  // nothing the client sends now is answered
            deadline_ms = now + kDrainTimeoutMs;
            break;
        case State::Lingering:
            // Shut our side, then discard what the client still sends for a moment, so
            // unread request bytes do not turn into a reset that destroys the answer
            // before the client reads it. Over TLS, the clean end first (close_notify).
            if (tls_) {
                tls_->close_notify();
                (void)send_ciphertext();  // what does not fit now is not waited for
            }
            net::shutdown_write(fd_);
            deadline_ms = now + kLingerMs;
            break;
        case State::Closed:
            if (up_) {
                up_->close();  // never pooled: it may still be streaming for us
                up_ = nullptr;
            }
            if (fd_ != kInvalidSocket) close_socket();
            meter_.end(ctx_, out_mark());  // an exchange cut short (no-op if none)
            ctx_.loop.destroy_later(this);
            break;
    }
}

void ClientConn::close_client() { enter(State::Closed); }

void ClientConn::end_exchange(bool close) {
    if (state_ == State::Orphaned) {  // nobody to answer: the answer was only read to pool its connection
        close_client();
        return;
    }
    if (close) enter(State::Draining);
    else enter(in_.empty() ? State::Idle : State::ReadingHead);
}

void ClientConn::close_socket() {
    ctx_.loop.forget(fd_);
    net::close(fd_);
    fd_ = kInvalidSocket;
    ctx_.counter.client_closed();
}

// ---- client side -------------------------------------------------------------------

void ClientConn::on_ready(unsigned ready) {
    if (client_gone()) return;  // only the upstream's events matter now
    if (ready & kReadable) read_client();
    if (closed || client_gone()) return;
    if (ready & kWritable) flush_client();
    if (closed) return;
    settle();
}

void ClientConn::read_client() {
    const std::size_t chunk = cfg().buffer_size;
    for (;;) {
        std::size_t limit = before_exchange() ? cfg().max_header_bytes + chunk
                            : (state_ == State::Exchange && !req_done_) || state_ == State::Tunnel ? kHighWater
                                                                                                  : kPipelineLimit;
        if (state_ == State::Lingering) {
            char sink[1024];
            IoResult r = net::read(fd_, sink, sizeof sink);
            if (r.status == IoStatus::Ok) continue;
            if (r.status != IoStatus::WouldBlock) close_client();
            return;
        }
        if (in_.size() >= limit) return;
        // A request body is drained up to 64 reads' worth per system call (what is
        // there, never waiting for more), so a 1 MiB upload costs ~16 reads, not 1024;
        // it is forwarded as soon as it is read either way (bench/results.md, Notes).
        std::size_t want = chunk;
        if ((state_ == State::Exchange && !req_done_) || state_ == State::Tunnel) {
            want = limit - in_.size();
            if (want > 64 * chunk) want = 64 * chunk;
        }
        char* p = in_.prepare(want);
        if (!p) return;
        IoResult r = client_read(p, want);
        if (r.status == IoStatus::Ok) {
            std::size_t before = in_.size();
            in_.commit(r.bytes);
            ctx_.metrics->bytes_from_clients.add(r.bytes);
            // Drained: the poller reports more (or EOF). Not so a TLS record's plaintext
            // that did not fit: the engine holds it, and no event will say so.
            if (r.bytes < want && !(tls_ && tls_->has_buffered_input())) return;
            // A whole head is here: parse it before reading on, so that the body that
            // follows is read in large reads once the exchange has begun.
            if (before_exchange() && head_end_seen(in_.view(), before)) return;
            continue;
        }
        if (r.status == IoStatus::WouldBlock) {
            if (in_.empty()) in_.release();
            return;
        }
        client_left();
        return;
    }
}

void ClientConn::client_left() {
    // End of stream or reset. Between requests that is a normal close. During an exchange
    // the upstream is closed at once too, so that it stops generating tokens nobody reads
    // (issue 17: the upstream sees the close within ~1 ms, before the answer's head as
    // mid-stream). Only what the upstream has already sent is read first (drain_orphan):
    // a short answer found complete there is discarded and its connection pooled rather
    // than closed. Nothing is waited for; before 2026-12-03 a Content-Length answer got
    // 50 ms to arrive, which kept a few TLS handshakes after a benchmark's burst of
    // clients stopping at once but left every other upstream working 50 ms for nobody.
    if (state_ == State::Tunnel) {
        // What the client sent last (a WebSocket close frame, often) goes on first; a
        // slow upstream gets it from TunnelClosing, as the other way round from Flushing.
        if (up_) tunnel_to_upstream();
        if (!closed && up_ && (!in_.empty() || up_->has_pending_output())) enter(State::TunnelClosing);
        else close_client();
        return;
    }
    // An orphan's answer is read to its end so that its connection can be pooled; an
    // upgrade's never can (its 101 would start a tunnel to nobody).
    if (state_ != State::Exchange || !up_ || up_->state() != UpstreamConn::State::Ready || response_started_ ||
        keepalive_head_sent_ || !req_done_ || up_sent_ != up_out_.size() || ctx_.stopping || websocket_) {
        close_client();
        return;
    }
    enter(State::Orphaned);
    drain_orphan();  // what the upstream has sent already
}

void ClientConn::drain_orphan() {
    const std::size_t chunk = cfg().buffer_size;
    char* buf = ctx_.scratch(chunk);
    while (up_ && state_ == State::Orphaned) {
        // Nothing came since the last read (the usual case before the answer's head): no
        // call into the TLS engine for plaintext it cannot have; on an abort that call
        // cost more than the rest of the way to the close_notify (bench/results.md).
        if (!up_->may_have_input()) break;
        IoResult r = up_->read(buf, chunk);
        // Not all there: the upstream is closed now, so that it stops working for
        // nobody at once; no waiting for the rest.
        if (r.status != IoStatus::Ok) break;
        got_response_byte_ = true;
        replayable_ = false;
        on_response_bytes(buf, r.bytes);  // may end the exchange (and close): pooled when reusable
        out_.clear();                      // for nobody
    }
    close_client();  // the upstream too, unless it went back to the pool
}

void ClientConn::flush_client() {
    assert(!client_gone() && state_ != State::Closed);  // no socket
    while (!out_.empty()) {
        IoResult r = client_write(out_.data(), out_.size());
        if (r.status == IoStatus::Ok) {
            out_.consume(r.bytes);
            client_written_ += r.bytes;
            ctx_.metrics->bytes_to_clients.add(r.bytes);
            // The last answer's end has kDrainTimeoutMs between two writes, not in all: a
            // slow reader still taking bytes is not cut off (nginx's send_timeout too).
            if (state_ == State::Flushing || state_ == State::Draining)
                deadline_ms = ctx_.loop.now_ms() + kDrainTimeoutMs;
            continue;
        }
        if (r.status == IoStatus::WouldBlock) return;
        close_client();
        return;
    }
    if (ciphertext_waiting()) {
        IoResult r = send_ciphertext();
        if (r.status == IoStatus::Error) {
            close_client();
            return;
        }
        if (ciphertext_waiting()) return;
    }
    if (state_ == State::Flushing) close_client();
    else if (state_ == State::Draining) enter(State::Lingering);
}

IoResult ClientConn::client_read(char* p, std::size_t cap) {
    if (!tls_) return net::read(fd_, p, cap);
    for (;;) {  // each round takes bytes from the socket, so it ends
        TlsStatus st;
        if (tls_->handshake_done()) {
            std::size_t n = 0;
            st = tls_->read(p, cap, &n);
            if (st == TlsStatus::Ok) return {IoStatus::Ok, n, 0};
        } else {
            st = tls_->handshake();
            IoResult sent = send_ciphertext();  // its answer to the client's flight
            if (sent.status == IoStatus::Error) return sent;
            if (st == TlsStatus::Ok) continue;
        }
        if (st == TlsStatus::Closed) return {IoStatus::Eof, 0, 0};
        if (st == TlsStatus::Error) {
            // Not logged: scanners and clients with other ideas of TLS are common on
            // an open port, and the log is for exchanges.
            return {IoStatus::Error, 0, 0};
        }
        // Straight into the engine's input queue (not the loop's scratch: a caller up
        // the stack may hold that).
        char* buf = tls_->ciphertext_space(kTlsReadChunk);
        if (!buf) return {IoStatus::Error, 0, 0};
        IoResult r = net::read(fd_, buf, kTlsReadChunk);
        tls_->commit_ciphertext(r.status == IoStatus::Ok ? r.bytes : 0);
        if (r.status != IoStatus::Ok) return r;
    }
}

IoResult ClientConn::client_write(const char* p, std::size_t len) {
    if (!tls_) return net::write(fd_, p, len < kSendChunk ? len : kSendChunk);
    IoResult sent = send_ciphertext();
    if (sent.status == IoStatus::Error) return sent;
    if (ciphertext_waiting()) return {IoStatus::WouldBlock, 0, 0};
    std::size_t n = len < kSendChunk ? len : kSendChunk;
    std::size_t done = 0;
    if (tls_->write(p, n, &done) != TlsStatus::Ok) return {IoStatus::Error, 0, 0};
    sent = send_ciphertext();
    if (sent.status == IoStatus::Error) return sent;
    return {IoStatus::Ok, n, 0};  // what is left of its ciphertext goes on the next call
}

IoResult ClientConn::send_ciphertext() {
    std::size_t total = 0;
    while (tls_->pending_ciphertext() > 0) {
        std::string_view c = tls_->peek_ciphertext();
        IoResult r = net::write(fd_, c.data(), c.size());
        if (r.status != IoStatus::Ok) return r.status == IoStatus::WouldBlock ? IoResult{IoStatus::Ok, total, 0} : r;
        tls_->drop_ciphertext(r.bytes);
        total += r.bytes;
    }
    return {IoStatus::Ok, total, 0};
}

void ClientConn::settle() {
    // Re-entry (an upstream failing synchronously inside acquire_upstream) is left to
    // the outer call, which sees the changed state and goes round again.
    if (in_settle_) return;
    in_settle_ = true;
    settle_rounds();
    in_settle_ = false;
}

void ClientConn::settle_rounds() {
    for (int round = 0; round < 64 && !closed; ++round) {
        bool progress = false;
        if (state_ == State::Idle && !in_.empty()) enter(State::ReadingHead);
        if (state_ == State::ReadingHead) {
            std::size_t before = in_.size();
            parse_next_request();
            progress = in_.size() != before || state_ != State::ReadingHead;
        }
        if (closed) return;
        if (state_ == State::Exchange) {
            std::size_t before_in = in_.size(), before_sent = up_sent_;
            move_request();
            if (closed) return;
            progress = progress || in_.size() != before_in || up_sent_ != before_sent;
        } else if (state_ == State::Tunnel) {
            std::size_t before_in = in_.size();
            tunnel_to_upstream();
            if (closed) return;
            progress = progress || in_.size() != before_in;
        }
        flush_client();
        if (closed) return;
        // Backpressure on the response: read the upstream only while the client keeps up.
        if (up_ && (state_ == State::Exchange || state_ == State::Tunnel)) {
            if (upstream_paused_ && out_.size() <= kLowWater) {
                upstream_paused_ = false;
                up_->want_read(true);
                read_upstream();  // TLS may hold decrypted bytes the socket will not signal
                if (closed) return;
                progress = true;
            } else if (!upstream_paused_ && out_.size() >= kHighWater) {
                upstream_paused_ = true;
                up_->want_read(false);
            }
        }
        // Plaintext a TLS record brought beyond what was read: no event will come for it.
        if (!progress && tls_ && state_ != State::Orphaned && wants_client_bytes() && tls_->has_buffered_input()) {
            std::size_t before = in_.size();
            read_client();
            if (closed || client_gone()) return;  // the client left (a tunnel closing)
            progress = in_.size() != before;
        }
        if (!progress) break;
    }
    if (closed) return;
    if (state_ == State::Idle && !in_.empty()) enter(State::ReadingHead);  // rounds ran out
    update_interest();
    if (closed) return;
    refresh_clock();
}

// Whether the client's next bytes are welcome now (the read side of update_interest).
bool ClientConn::wants_client_bytes() const {
    switch (state_) {
        case State::Idle:
        case State::ReadingHead:
        case State::Lingering: return true;
        case State::Exchange: {
            std::size_t limit = req_done_ ? kPipelineLimit : kHighWater;
            std::size_t pending_up = up_out_.size() - up_sent_;
            return in_.size() < limit && (req_done_ || pending_up < kHighWater);
        }
        case State::Tunnel: return in_.size() < kHighWater;
        case State::TunnelClosing:
        case State::Flushing:
        case State::Draining:  // only writing now
        case State::Orphaned:
        case State::Closed: return false;
    }
    return false;
}

void ClientConn::update_interest() {
    if (client_gone() || state_ == State::Closed) {
        assert(!"no socket to poll");
        return;
    }
    unsigned want = wants_client_bytes() ? static_cast<unsigned>(kReadable) : 0u;
    if (!out_.empty() || ciphertext_waiting()) want |= kWritable;
    if (want != interest_) {
        if (!ctx_.loop.modify(fd_, this, want)) {
            // Without the interest it needs the connection would wait for nothing.
            log_line("Error: cannot change what a client connection waits for; closing it");
            close_client();
            return;
        }
        interest_ = want;
    }
}

// The clocks that any event restarts; the others run from entering their state (enter).
void ClientConn::refresh_clock() {
    std::int64_t now = ctx_.loop.now_ms();
    if (tls_ && !tls_->handshake_done()) return;  // the handshake's clock runs from accept (start)
    if (state_ == State::Idle && first_head_deadline_ms_ != 0) {
        deadline_ms = first_head_deadline_ms_;  // not the keep-alive clock before the first request
    } else if (state_ == State::Idle) {
        deadline_ms = now + ms(cfg().keepalive_timeout);
    } else if (state_ == State::Tunnel) {
        deadline_ms = now + ms(cfg().idle_timeout);  // WebSocket pings count
    } else if (state_ == State::Exchange) {
        // Only silence ends an exchange. Connecting and the TLS handshake carry their
        // own, shorter deadlines in UpstreamConn.
        activity_deadline_ms_ = now + ms(response_started_ ? cfg().idle_timeout : cfg().response_timeout);
        // A route's head-timeout counts from the request's end: an origin is not asked
        // to answer what it has not all received (a long upload).
        if (head_deadline_ms_ != 0 && !response_started_ && !request_all_sent())
            head_deadline_ms_ = now + plan_.route->failover.head_timeout.count();
        arm_exchange_clock();
    }
}

void ClientConn::arm_exchange_clock() {
    deadline_ms = activity_deadline_ms_;
    std::int64_t due = keepalive_due_ms();
    if (due != 0 && due < deadline_ms) deadline_ms = due;
    if (head_deadline_ms_ != 0 && !response_started_ && request_all_sent() && head_deadline_ms_ < deadline_ms)
        deadline_ms = head_deadline_ms_;
}

void ClientConn::on_timeout() {
    if (tls_ && !tls_->handshake_done()) {  // nothing can be answered before the handshake
        close_client();
        return;
    }
    switch (state_) {
        case State::ReadingHead:
            answer_error({408, "invalid_request_error", "request_timeout", "timed out reading the request head"});
            break;
        case State::Exchange:
            if (!response_started_ && !req_done_ && in_.empty() && up_sent_ == up_out_.size() &&
                ctx_.loop.now_ms() >= activity_deadline_ms_) {
                // The request body stopped coming while the upstream took all of it (none
                // waits in either buffer): the client's silence, not the upstream's (no
                // failover, no origin marked).
                log_line("Error processing request: the request body to %s stopped arriving for %llds",
                         plan_.target.authority.c_str(), static_cast<long long>(cfg().response_timeout.count()));
                answer_error({408, "invalid_request_error", "request_timeout", "the request body stopped arriving"});
                break;
            }
            if (head_deadline_ms_ != 0 && !response_started_ && request_all_sent() &&
                ctx_.loop.now_ms() >= head_deadline_ms_) {
                // The route's head-timeout: the next origin, else the 504 below.
                std::string msg = "no response head within " +
                                  std::to_string(plan_.route->failover.head_timeout.count()) + "ms";
                if (try_next(AttemptFailure::HeadTimeout, msg)) break;
            } else if (ctx_.loop.now_ms() < activity_deadline_ms_) {  // not the activity clock: a keep-alive is due
                send_keepalive();
                return;
            } else if (failover_ && !response_started_ &&
                       try_next(AttemptFailure::HeadTimeout,
                                "no response within " + std::to_string(cfg().response_timeout.count()) + "s")) {
                break;
            }
            if (!response_started_) {
                bool head_timeout = head_deadline_ms_ != 0 && ctx_.loop.now_ms() >= head_deadline_ms_;
                std::string msg = "upstream " + plan_.target.authority + " sent no response within " +
                                  (head_timeout ? std::to_string(plan_.route->failover.head_timeout.count()) + "ms"
                                                : std::to_string(cfg().response_timeout.count()) + "s");
                if (attempts_ > 1) msg += failover_summary();
                log_line("Error processing request: %s", msg.c_str());
                req_done_ = false;  // the request may be half sent: close after answering
                answer_error({504, "proxy_error", "upstream_timeout", msg});
            } else {
                log_line("Error processing request: no data from %s or the client for %llds",
                         plan_.target.authority.c_str(), static_cast<long long>(cfg().idle_timeout.count()));
                abort_midstream("idle");
            }
            break;
        case State::Tunnel:
            log_line("Error processing request: no data from %s or the client for %llds (WebSocket)",
                     plan_.target.authority.c_str(), static_cast<long long>(cfg().idle_timeout.count()));
            close_client();
            return;
        case State::Orphaned:  // not reached: an orphan is closed within the event that made it
        case State::TunnelClosing:
            log_line("Error processing request: %s took no more of the WebSocket in %llds after the client left",
                     plan_.target.authority.c_str(), static_cast<long long>(kDrainTimeoutMs / 1000));
            close_client();
            return;
        case State::Idle:
        case State::Flushing:
        case State::Draining:
        case State::Lingering: close_client(); return;
        case State::Closed: assert(!"a closed connection timed out"); return;
    }
    if (!closed) settle();
}

// ---- request side --------------------------------------------------------------------

void ClientConn::parse_next_request() {
    // No exchange is in flight: a configuration reloaded since applies from this head on,
    // its limits included. Comparing pointers costs nothing; the reference is only copied
    // after a reload.
    if (snap_ != ctx_.snapshot) {
        plan_.route = nullptr;  // pointed into the old configuration; rebuilt for the exchange
        plan_.egress = nullptr;
        snap_ = ctx_.snapshot;
    }
    RequestHead& head = ctx_.request_head;
    const Config& c = cfg();
    HeadLimits limits;
    limits.max_head_bytes = c.max_header_bytes;
    limits.max_request_line = c.max_request_line;
    limits.max_field_line = c.max_header_line;
    limits.max_fields = c.max_header_count < kMaxHeaderFields ? c.max_header_count : kMaxHeaderFields;
    ParseResult r = parse_request_head(in_.view(), limits, head);
    if (r.status == ParseStatus::Incomplete) return;
    if (r.status == ParseStatus::Invalid) {
        client_keep_alive_ = false;
        req_done_ = false;  // whatever follows is not trusted: close after answering
        answer_error({r.error_status, "invalid_request_error", "invalid_request", r.error});
        in_.clear();
        return;
    }
    begin_exchange(head, r.consumed);
}

void ClientConn::begin_exchange(const RequestHead& head, std::size_t head_len) {
    reset_exchange();
    enter(State::Exchange);
    head_request_ = head.is_head();
    client_minor_ = head.version_minor;
    client_keep_alive_ = head.keep_alive();
    req_kind_ = head.body_kind();
    req_remaining_ = head.content_length;
    req_done_ = req_kind_ == BodyKind::None;
    req_body_bytes_ = 0;
    if (cfg().cors.enabled && begin_cors(head, head_len)) return;  // a preflight, answered
    websocket_ = is_websocket_upgrade(head);
    const bool access_keys = !cfg().access_keys.empty();
    if (access_keys && !check_access(head)) {
        meter_.begin(ctx_, &head, head_len, nullptr, out_mark());
        in_.consume(head_len);  // `head` views die here
        answer_error({401, "invalid_request_error", "invalid_api_key",
                      "Incorrect API key provided. This proxy needs one of its access keys "
                      "(Authorization: Bearer KEY, or api-key: KEY)."});
        return;
    }

    const bool planned = plan_request(head, cfg(), snap_->router, plan_);
    meter_.begin(ctx_, &head, head_len, planned ? &plan_ : nullptr, out_mark());
    if (access_label_) meter_.set_key(access_label_);
    if (!planned) {
        // Logged as the Go original logged its "target not found" (the message names the
        // Host key or the header's fault, never a credential).
        log_line("Error processing request: %s", plan_.refusal->message.c_str());
        in_.consume(head_len);
        answer_error(*plan_.refusal);
        return;
    }
    // Keys and failover: the origin and key of the first attempt. Routes with one origin
    // and no keys (every -targets route) skip all of it.
    failover_ = plan_.route && failover_possible(*plan_.route, plan_.origin);
    if (failover_ && !first_attempt()) {
        in_.consume(head_len);  // `head` views die here
        const std::string& name = plan_.route->name;
        std::string msg = "every server-side key of target " + (name.empty() ? std::string("default") : name) +
                          " is set aside (refused, or rate-limited until its Retry-After)";
        log_line("Error processing request: %s", msg.c_str());
        ProxyError e{503, "proxy_error", "upstream_keys_unavailable", msg};
        // Rate-limited keys: the client's SDK is told when the first is back.
        const std::int64_t now = ctx_.loop.now_ms();
        const std::int64_t back = ctx_.upstreams.failover().first_key_back_ms(*plan_.route, now);
        if (back > now) e.retry_after_s = static_cast<unsigned>((back - now + 999) / 1000);
        answer_error(e);
        return;
    }
    // The upstream request head: re-serialised, so nothing malformed passes through.
    // Other upgrades (h2c...) are not offered upstream: their Upgrade field is dropped
    // like any hop-by-hop field, and the request goes on as plain HTTP/1.1.
    strip_credentials_ = access_keys || key_;
    CredentialEdit credentials;
    if (strip_credentials_) {
        credentials.strip = true;
        if (key_) {
            bool bearer = plan_.route->key_header == KeyHeader::Authorization;
            credentials.name = bearer ? std::string_view("Authorization") : std::string_view("api-key");
            credentials.prefix = bearer ? std::string_view("Bearer ") : std::string_view();
            credentials.secret = key_->secret;
        }
    }
    if (failover_ && !access_keys) {
        // Left out for this origin's server key, kept for a later origin without keys
        // (rewrite_request_head); a WebSocket's subprotocols, for any later origin.
        auto keep = [](std::string& into, const HeaderField& f) {
            into.append(f.name.data(), f.name.size());
            into.append(": ");
            into.append(f.value.data(), f.value.size());
            into.append("\r\n");
        };
        for (std::size_t i = 0; i < head.field_count; ++i) {
            const HeaderField& f = head.fields[i];
            if (f.kind != FieldKind::Other) continue;
            if (key_ && is_credential_field(f.name)) keep(client_credentials_, f);
            else if (websocket_ && is_protocols_field(f.name)) keep(client_protocols_, f);
        }
    }
    write_request_head(up_out_, head, plan_.upstream_target, plan_.target.authority,
                       websocket_ ? std::string_view("websocket") : std::string_view(),
                       strip_credentials_ ? &credentials : nullptr);
    if (failover_) {
        // Where a retry rewrites the head: the Host line and the injected credential.
        std::string_view v = up_out_.view();
        head_edit_at_ = v.find("\r\n") + 2;
        head_edit_end_ = v.find("\r\n", head_edit_at_) + 2;
        if (key_) head_edit_end_ = v.find("\r\n", head_edit_end_) + 2;
        failover_limit_ = plan_.route->failover.replay_limit;
        failover_fits_ = !(head.has_content_length && head.content_length > failover_limit_);
        replay_limit_ = failover_limit_ < kReplayLimit ? kReplayLimit : failover_limit_;
    }
    if (cfg().local_mode) {
        const OutgoingTarget& t = plan_.upstream_target;
        log_line("Proxying request to: %s%s%.*s", plan_.target.origin().c_str(), t.slash ? "/" : "",
                 static_cast<int>(t.rest.size()), t.rest.data());
    }
    if (plan_.send_continue) write_continue(out_);
    if (cfg().json_keepalive.count() > 0 && head.method == "POST" && client_minor_ >= 1) {
        std::string_view type;
        json_candidate_ = find_field(head, "content-type", type) && starts_with_ci(type, "application/json");
    }

    in_.consume(head_len);  // `head` views die here
    acquire_upstream(true);
}

void ClientConn::acquire_upstream(bool allow_pooled) {
    UpstreamConn* conn = allow_pooled ? ctx_.upstreams.take_idle(plan_.pool_key) : nullptr;
    (conn ? ctx_.metrics->pool_hits : ctx_.metrics->pool_misses).add();
    if (conn) {
        up_ = conn;
        up_->attach(this);
        return;  // settle() sends the request
    }
    up_ = new UpstreamConn(ctx_.upstreams, plan_.target, plan_.pool_key, this, plan_.restricted, plan_.egress);
    ctx_.loop.adopt(up_);
    up_->start();  // may fail at once (upstream_failed) or become ready later
}

void ClientConn::move_request() {
    for (int guard = 0; guard < 1024; ++guard) {
        bool progress = false;
        // Client bytes -> upstream buffer, re-framed, while the upstream keeps up.
        while (!req_done_ && !in_.empty() && up_out_.size() - up_sent_ < kHighWater) {
            if (req_kind_ == BodyKind::ContentLength) {
                std::size_t n = in_.size();
                if (n > req_remaining_) n = static_cast<std::size_t>(req_remaining_);
                if (n > kHighWater) n = kHighWater;
                if (!replayable_ && up_sent_ == up_out_.size() && up_ &&
                    up_->state() == UpstreamConn::State::Ready) {
                    // Nothing queued ahead of these bytes and no copy kept for a replay:
                    // they go from the client's buffer to the upstream without a copy.
                    std::size_t w = up_->write(in_.data(), n);
                    if (closed) return;
                    if (w == 0) break;  // the upstream is full; its writable event resumes
                    note_request_body(in_.data(), w);
                    meter_.request_body(in_.data(), w);
                    in_.consume(w);
                    req_body_bytes_ += w;
                    req_remaining_ -= w;
                    req_done_ = req_remaining_ == 0;
                    progress = true;
                    continue;
                }
                note_request_body(in_.data(), n);
                up_out_.append(in_.data(), n);
                meter_.request_body(in_.data(), n);
                in_.consume(n);
                req_body_bytes_ += n;
                req_remaining_ -= n;
                req_done_ = req_remaining_ == 0;
                progress = true;
                continue;
            }
            ChunkedDecoder::Step step = req_chunks_.feed(in_.view());
            if (step.status == ChunkedDecoder::Status::Invalid) {
                std::string msg = std::string("invalid chunked request body: ") + step.error;
                if (response_started_) {
                    abort_midstream(msg);
                } else {
                    req_done_ = false;  // close after answering
                    answer_error({400, "invalid_request_error", "invalid_request", msg});
                }
                return;
            }
            if (step.status == ChunkedDecoder::Status::Data) {
                req_body_bytes_ += step.data.size();
                if (req_body_bytes_ > cfg().max_body_bytes) {
                    std::string msg = "chunked request body exceeds the limit of " +
                                      std::to_string(cfg().max_body_bytes) + " bytes (-max-body-size)";
                    if (response_started_) {
                        abort_midstream(msg);
                    } else {
                        req_done_ = false;
                        answer_error({413, "invalid_request_error", "request_too_large", msg});
                    }
                    return;
                }
                note_request_body(step.data.data(), step.data.size());
                write_chunk(up_out_, step.data);
                meter_.request_body(step.data.data(), step.data.size());
            } else if (step.status == ChunkedDecoder::Status::Done) {
                write_last_chunk(up_out_);
                req_done_ = true;
            }
            in_.consume(step.consumed);
            if (step.consumed > 0) progress = true;
            if (step.status == ChunkedDecoder::Status::NeedMore) break;
        }
        // The limits are on the body as the client sent it (decoded from chunked framing),
        // as the README states them; the kept copy adds the head and any chunk framing.
        if (up_out_.size() > kMaxKept && replayable_) kept_too_big_ = true;
        if (replayable_ && (req_body_bytes_ > replay_limit_ || kept_too_big_)) replayable_ = false;
        if (failover_fits_ && (req_body_bytes_ > failover_limit_ || kept_too_big_)) failover_fits_ = false;
        // Upstream buffer -> upstream connection.
        if (up_ && up_->state() == UpstreamConn::State::Ready && up_sent_ < up_out_.size()) {
            std::size_t n = up_->write(up_out_.data() + up_sent_, up_out_.size() - up_sent_);
            if (closed) return;
            if (n > 0) {
                up_sent_ += n;
                progress = true;
            }
        }
        if (!replayable_ && up_sent_ > 0) {
            up_out_.consume(up_sent_);
            up_sent_ = 0;
        }
        if (!progress) return;
    }
}

// ---- upstream events ----------------------------------------------------------------

void ClientConn::upstream_ready() { settle(); }

void ClientConn::upstream_writable() {
    if (state_ == State::TunnelClosing) {
        finish_tunnel();
        return;
    }
    if (state_ != State::Orphaned) settle();  // an orphan's request went out whole
}

// TunnelClosing: the client's last bytes to the upstream; once all are on the wire, the
// close (over TLS with close_notify, UpstreamConn::close).
void ClientConn::finish_tunnel() {
    tunnel_to_upstream();
    if (!closed && (!up_ || (in_.empty() && !up_->has_pending_output()))) close_client();
}

void ClientConn::upstream_readable() {
    if (state_ == State::TunnelClosing) {  // read interest is off: only an error or the end
        close_client();
        return;
    }
    if (state_ == State::Orphaned) {
        drain_orphan();
        return;
    }
    read_upstream();
    if (!closed) settle();
}

void ClientConn::upstream_failed(UpstreamFailure why, const std::string& detail) {
    up_ = nullptr;  // it closed itself
    if (state_ == State::Orphaned || state_ == State::TunnelClosing) {
        close_client();
        return;
    }
    if (failover_ && state_ == State::Exchange && why != UpstreamFailure::Forbidden) {
        AttemptFailure f = why == UpstreamFailure::Tls       ? AttemptFailure::Tls
                           : why == UpstreamFailure::Timeout ? AttemptFailure::Timeout
                                                             : AttemptFailure::Connect;
        if (try_next(f, detail)) {
            settle();
            return;
        }
    }
    log_line("Error processing request: %s", detail.c_str());
    // The egress proxy's address is the operator's business: it stays in the log line.
    std::string told = detail;
    if (plan_.egress && !plan_.egress->direct()) {
        for (const std::string& name : {plan_.egress->describe(), plan_.egress->proxy.host}) {
            const std::string named = "upstream proxy " + name;
            for (std::size_t at; (at = told.find(named)) != std::string::npos;)
                told.replace(at, named.size(), "the upstream proxy");
        }
    }
    ProxyError e{502, "proxy_error", "upstream_unreachable", attempts_ > 1 ? told + failover_summary() : told};
    switch (why) {
        case UpstreamFailure::Timeout: e.status = 504; e.code = "upstream_timeout"; break;
        case UpstreamFailure::Resolve: e.code = "upstream_dns_error"; break;
        case UpstreamFailure::Connect: e.code = "upstream_unreachable"; break;
        case UpstreamFailure::Proxy: e.code = "upstream_proxy_error"; break;
        case UpstreamFailure::Tls: e.code = "upstream_tls_error"; break;
        case UpstreamFailure::Forbidden:
            e = {403, "invalid_request_error", "target_not_allowed", told};
            break;
    }
    if (response_started_) {
        abort_midstream(detail);
        return;
    }
    answer_error(e);
    settle();
}

void ClientConn::read_upstream() {
    // Each burst starts with reads of -buffer-size bytes, so a small answer or an SSE
    // event costs no more than that and moves on at once. A read that filled its buffer
    // says more is already waiting (a bulk body): the next reads ask for up to 64 KiB
    // (kHighWater, or -buffer-size if larger), still taking only what the engine or the
    // socket holds, never waiting for more.
    const std::size_t chunk = cfg().buffer_size;
    const std::size_t bulk = chunk > kHighWater ? chunk : kHighWater;
    std::size_t want = chunk;
    while (up_ && !closed && (state_ == State::Exchange || state_ == State::Tunnel)) {
        if (out_.size() >= kHighWater) {
            // Full: the client may take it at once (a bulk body to a client that keeps
            // up), which spares stopping and restarting the upstream's reads (two
            // epoll_ctl calls per 64 KiB).
            flush_client();
            if (closed || !up_ || (state_ != State::Exchange && state_ != State::Tunnel)) return;
        }
        if (out_.size() >= kHighWater) {
            // The client is behind: stop reading the upstream. settle() resumes below
            // kLowWater, and then reads what TLS may already hold without waiting for
            // the socket (which would not signal it).
            upstream_paused_ = true;
            up_->want_read(false);
            return;
        }
        // A body relayed as it is (Content-Length both ways) is read straight into the
        // client's output buffer: no copy through the scratch buffer.
        bool direct = response_started_ && state_ == State::Exchange && resp_kind_ == BodyKind::ContentLength &&
                      !client_chunked_ && resp_remaining_ > 0;
        std::size_t cap = want;
        if (direct && cap > resp_remaining_) cap = static_cast<std::size_t>(resp_remaining_);
        char* buf = direct ? out_.prepare(cap) : ctx_.scratch(cap);
        if (!buf) {
            abort_midstream("out of memory");
            return;
        }
        IoResult r = up_->read(buf, cap);
        if (r.status != IoStatus::Ok && direct && out_.empty()) out_.release();  // no block held while waiting
        if (r.status == IoStatus::WouldBlock) return;
        if (r.status == IoStatus::Ok) {
            if (r.bytes == cap) want = bulk;
            if (!got_response_byte_) {
                got_response_byte_ = true;
                // No replay once the upstream has answered: drop the kept request copy.
                // Failover keeps it until the response head is judged (start_response).
                if (!failover_) stop_replay();
            }
            if (direct) {
                body_in_place(r.bytes);
                continue;
            }
            on_response_bytes(buf, r.bytes);
            continue;
        }
        upstream_ended(r.status == IoStatus::Error,
                       r.status == IoStatus::Error ? up_->error_text() : std::string("connection closed"));
        return;
    }
}

// n body bytes read into out_'s free space (read_upstream's direct case): what
// on_body_bytes and emit_body do for a Content-Length body, without the copy.
void ClientConn::body_in_place(std::size_t n) {
    const char* p = out_.data() + out_.size();
    last_emit_ms_ = ctx_.loop.now_ms();
    meter_.response_body(p, n);
    out_.commit(n);
    resp_remaining_ -= n;
    if (resp_remaining_ == 0) response_complete();
}

void ClientConn::upstream_ended(bool error, const std::string& detail) {
    if (state_ == State::Tunnel) {  // its last bytes (a close frame) reach the client, then the close
        release_upstream(false);
        enter(State::Flushing);
        flush_client();
        return;
    }
    bool head_done = response_started_;
    if (!head_done) {
        // A pooled connection the upstream had already closed: replay the request once
        // on a fresh connection. The client never sees that race.
        if (up_ && up_->reused() && !retried_ && replayable_ && !got_response_byte_) {
            up_->close();
            up_ = nullptr;
            retried_ = true;
            meter_.stale_replay(ctx_);
            up_sent_ = 0;
            acquire_upstream(false);
            return;
        }
        std::string msg = "upstream " + plan_.target.authority +
                          (got_response_byte_ ? " sent an incomplete response head" : " closed the connection without a response");
        if (error) msg += " (" + detail + ")";
        // Nothing reached the client: the next origin, as for a refused connection.
        if (failover_ && try_next(AttemptFailure::Closed, msg)) {
            settle();
            return;
        }
        log_line("Error processing request: %s", msg.c_str());
        answer_error({502, "proxy_error", "upstream_bad_response", attempts_ > 1 ? msg + failover_summary() : msg});
        return;
    }
    // A body that runs to the close is complete at the close; over TLS only at a close
    // the peer announced with close_notify (RFC 9112 section 9.8), since a cut
    // connection looks the same as an end otherwise.
    bool ragged = up_ && up_->ended_without_close_notify();
    if (resp_kind_ == BodyKind::UntilClose && !error && !ragged) {
        response_complete();
        return;
    }
    std::string msg = "upstream " + plan_.target.authority + " closed the connection mid-body" +
                      (error                                  ? " (" + detail + ")"
                       : ragged && resp_kind_ == BodyKind::UntilClose ? " (without TLS close_notify: the body may be cut short)"
                                                                      : "");
    log_line("Error processing request: %s", msg.c_str());
    if (retract_response()) answer_error({502, "proxy_error", "upstream_bad_response", msg});
    else abort_midstream(msg);
}

bool ClientConn::retract_response() {
    // Nothing of this response has reached the client yet (its head is still in out_,
    // e.g. head and a broken first chunk came in one read): take it back, so the
    // client gets a clean 502 instead of a cut message.
    if (client_written_ > response_at_) return false;
    out_.truncate(static_cast<std::size_t>(response_at_ - client_written_));
    release_upstream(false);
    response_started_ = false;
    return true;
}

// ---- response side --------------------------------------------------------------------

void ClientConn::on_response_bytes(const char* p, std::size_t n) {
    if (state_ == State::Tunnel) {
        out_.append(p, n);
        return;
    }
    if (response_started_) {
        on_body_bytes(p, n);
        return;
    }
    if (!resp_head_.append(p, n)) {
        abort_midstream("response head too large");
        return;
    }
    for (;;) {
        ResponseHead& head = ctx_.response_head;
        HeadLimits limits;
        ParseResult r = parse_response_head(resp_head_.view(), limits, head);
        if (r.status == ParseStatus::Incomplete) return;
        if (r.status == ParseStatus::Invalid) {
            std::string msg = "invalid response from upstream " + plan_.target.authority + ": " + r.error;
            log_line("Error processing request: %s", msg.c_str());
            release_upstream(false);
            answer_error({502, "proxy_error", "upstream_bad_response", msg});
            return;
        }
        if (head.status < 200) {
            if (head.status == 101 && websocket_ && accepts_websocket(head) && req_done_) {
                resp_head_.consume(r.consumed);
                start_tunnel(head);  // the bytes after the head are the first of the tunnel
                return;
            }
            if (head.status == 101) {
                std::string msg = "upstream " + plan_.target.authority +
                                  (websocket_ ? " answered the WebSocket upgrade with a 101 that does not accept it"
                                              : " switched protocols unasked");
                release_upstream(false);
                answer_error({502, "proxy_error", "upstream_bad_response", msg});
                return;
            }
            // An interim response (102, 103 Early Hints, ...): a proxy forwards it (RFC 9110
            // section 15.2), but never to an HTTP/1.0 client, which knows no 1xx, nor after
            // -json-keepalive's 200 head. A 100 Continue the proxy already sent the client
            // itself (it answers Expect and does not forward it) is not sent twice.
            if (client_minor_ >= 1 && !keepalive_head_sent_ && state_ == State::Exchange &&
                !(head.status == 100 && plan_.send_continue)) {
                write_response_head(out_, head, ResponseFraming{});
            }
            resp_head_.consume(r.consumed);
            continue;
        }
        if (failover_ && state_ == State::Exchange && !keepalive_head_sent_) {
            AttemptFailure why = AttemptFailure::Status;
            bool moves_on = false;
            std::int64_t aside_ms = 0;
            if (key_ && (head.status == 401 || head.status == 403) && refused_key_) {
                // A second key refused for the same request: the request is at fault (a
                // restricted key's missing scope, a model none may use), not the keys. The
                // first is put back, and this answer goes to the client.
                if (ctx_.upstreams.failover().restore(refused_key_)) {
                    const std::string& name = plan_.route->name;
                    log_line("Key %s of target %s back in use: key %s was refused the same request (%s answered %d)",
                             refused_key_->label.c_str(), name.empty() ? "default" : name.c_str(), key_->label.c_str(),
                             plan_.target.authority.c_str(), head.status);
                }
                refused_key_ = nullptr;
            } else if (key_ && (head.status == 401 || head.status == 403)) {
                why = AttemptFailure::KeyRefused;
                moves_on = true;
            } else if (key_ && head.status == 429) {
                why = AttemptFailure::KeyRateLimited;
                std::string_view ra;
                bool has_ra = find_field(head, "retry-after", ra);
                aside_ms = retry_after_ms(ra, has_ra, unix_now_ms());
                moves_on = true;
            } else {
                moves_on = is_failover_status(plan_.route->failover, head.status);
            }
            if (moves_on && try_next(why, "status " + std::to_string(head.status), aside_ms)) return;
        }
        // Bytes after a head that ends its message mean the upstream is out of step.
        resp_extra_ = resp_head_.size() > r.consumed;
        start_response(head);
        if (in_exchange()) resp_extra_ = false;
        resp_head_.consume(r.consumed);
        break;
    }
    if (in_exchange() && !resp_head_.empty()) {
        // Body bytes that arrived with the head. Moved out first: on_body_bytes may
        // finish the exchange, which resets resp_head_.
        ByteBuffer rest;
        rest.swap(resp_head_);
        on_body_bytes(rest.data(), rest.size());
    } else {
        resp_head_.release();
    }
}

void ClientConn::start_response(const ResponseHead& head) {
    response_started_ = true;
    if (failover_) {  // this answer is the one: no replay any more (see read_upstream)
        stop_replay();
        head_deadline_ms_ = 0;
        if (plan_.route->origins.size() > 1) ctx_.upstreams.failover().origin_ok(plan_.pool_key);
    }
    last_emit_ms_ = ctx_.loop.now_ms();  // the head (or, after a keep-alive head, the answer) counts as news
    resp_kind_ = head.body_kind(head_request_);
    resp_keep_alive_ = head.keep_alive();
    resp_remaining_ = head.content_length;
    if (keepalive_head_sent_) {
        // -json-keepalive's 200 head is out: this head is not relayed, its body follows
        // as chunks (an HTTP/1.1 client and a completely read request: see begin_exchange).
        client_chunked_ = true;
        response_at_ = client_written_ + out_.size();
        // Logged and counted with the upstream's status and head time, and its body
        // scanned for usage, as any relayed answer (the 200 the client saw was ours).
        meter_.response_head(ctx_, &head, head.status, StatusSource::Upstream);
        if (resp_kind_ == BodyKind::None) response_complete();
        return;
    }
    client_chunked_ = false;
    bool pass_length = false;
    if (resp_kind_ == BodyKind::Chunked || resp_kind_ == BodyKind::UntilClose) {
        if (client_minor_ >= 1) client_chunked_ = true;
        else close_after_ = true;  // HTTP/1.0: the close delimits the body
    } else if (resp_kind_ == BodyKind::ContentLength) {
        pass_length = true;
    } else if (head.has_content_length && head.status != 204) {
        // "Content-Length: 0": without it a keep-alive client would read until the close.
        // After a HEAD or in a 304 it describes the representation, not this empty body.
        // A 204 never has one (RFC 9110 section 8.6).
        pass_length = true;
    }
    // A stopping proxy keeps no connection, and says so (RFC 9112 section 9.6), so the
    // client does not send its next request into a close.
    if (!client_keep_alive_ || !req_done_ || ctx_.stopping) close_after_ = true;

    response_at_ = client_written_ + out_.size();
    ResponseFraming framing;
    framing.content_length = pass_length;
    framing.chunked = client_chunked_;
    framing.close = close_after_;
    framing.keep_alive = client_minor_ == 0;
    framing.cors = cors();
    write_response_head(out_, head, framing);
    if (cfg().sse_keepalive.count() > 0 &&
        (resp_kind_ == BodyKind::Chunked || resp_kind_ == BodyKind::UntilClose)) {
        // Only where a comment can be added: chunks, or a close-delimited body.
        std::string_view type;
        sse_ = find_field(head, "content-type", type) && starts_with_ci(type, "text/event-stream");
    }
    meter_.response_head(ctx_, &head, head.status, StatusSource::Upstream);

    if (resp_kind_ == BodyKind::None) response_complete();
}

void ClientConn::start_tunnel(const ResponseHead& head) {
    response_started_ = true;
    response_at_ = client_written_ + out_.size();
    ResponseFraming framing;
    framing.upgrade = "websocket";
    write_response_head(out_, head, framing);
    meter_.response_head(ctx_, &head, head.status, StatusSource::Upstream);  // logged when the tunnel ends
    enter(State::Tunnel);
    if (!resp_head_.empty()) out_.append(resp_head_.data(), resp_head_.size());
    resp_head_.release();
    // The request had no body: whatever the client sent after its head is the tunnel's.
    up_out_.clear();
    up_sent_ = 0;
    replayable_ = false;
}

// Client bytes to the upstream, as they are, while it takes them.
void ClientConn::tunnel_to_upstream() {
    while (!in_.empty() && up_ && up_->state() == UpstreamConn::State::Ready) {
        std::size_t w = up_->write(in_.data(), in_.size());
        if (closed || w == 0) return;  // full: its writable event resumes
        in_.consume(w);
    }
}

void ClientConn::emit_body(const char* p, std::size_t n) {
    if (n == 0) return;
    last_emit_ms_ = ctx_.loop.now_ms();
    if (sse_) note_sse_bytes(p, n);
    meter_.response_body(p, n);
    if (client_chunked_) write_chunk(out_, std::string_view(p, n));
    else out_.append(p, n);
}

void ClientConn::on_body_bytes(const char* p, std::size_t n) {
    switch (resp_kind_) {
        case BodyKind::ContentLength: {
            std::size_t take = n < resp_remaining_ ? n : static_cast<std::size_t>(resp_remaining_);
            emit_body(p, take);
            resp_remaining_ -= take;
            if (take < n) resp_extra_ = true;
            if (resp_remaining_ == 0) response_complete();
            return;
        }
        case BodyKind::UntilClose: emit_body(p, n); return;
        case BodyKind::Chunked: {
            std::string_view in(p, n);
            while (!in.empty()) {
                ChunkedDecoder::Step step = resp_chunks_.feed(in);
                if (step.status == ChunkedDecoder::Status::Invalid) {
                    std::string msg = "invalid chunked body from upstream " + plan_.target.authority + ": " + step.error;
                    log_line("Error processing request: %s", msg.c_str());
                    if (retract_response()) answer_error({502, "proxy_error", "upstream_bad_response", msg});
                    else abort_midstream(msg);
                    return;
                }
                if (step.status == ChunkedDecoder::Status::Data) emit_body(step.data.data(), step.data.size());
                in.remove_prefix(step.consumed);
                if (step.status == ChunkedDecoder::Status::Done) {
                    if (!in.empty()) resp_extra_ = true;
                    response_complete();
                    return;
                }
                if (step.status == ChunkedDecoder::Status::NeedMore) {
                    if (!in.empty()) resp_extra_ = true;  // cannot happen: NeedMore consumes all
                    return;
                }
            }
            return;
        }
        case BodyKind::None: resp_extra_ = true; return;
    }
}

void ClientConn::stop_replay() {
    replayable_ = false;
    if (up_sent_ == up_out_.size()) {  // the kept copy is all sent: drop it
        up_out_.clear();
        up_sent_ = 0;
    }
}

void ClientConn::response_complete() {
    if (client_chunked_) write_last_chunk(out_);
    bool all_sent = req_done_ && up_sent_ == up_out_.size();
    bool reusable = resp_keep_alive_ && all_sent && !resp_extra_ && resp_kind_ != BodyKind::UntilClose;
    release_upstream(reusable);
    if (!req_done_) close_after_ = true;  // the rest of the request body was never read
    bool close = close_after_ || !client_keep_alive_ || ctx_.stopping;
    reset_exchange();
    end_exchange(close);
}

void ClientConn::release_upstream(bool reusable) {
    if (!up_) return;
    // A connection of an exchange that began before a configuration reload is not pooled:
    // the reload closed the idle ones its origins no longer have, and this one may be such.
    if (reusable && !ctx_.stopping && up_->state() == UpstreamConn::State::Ready &&
        !up_->watch_refused() && snap_ == ctx_.snapshot && up_->nothing_unread()) {
        up_->make_idle();
        ctx_.upstreams.give_back(up_);
    } else {
        up_->close();
    }
    up_ = nullptr;
}

void ClientConn::answer_error(const ProxyError& e) {
    // Only before any byte of the response went out; afterwards abort_midstream().
    release_upstream(false);
    // The connection stays open only when the whole request was read and the client
    // wants more; after a malformed request nothing that follows is trusted.
    bool close = !req_done_ || !client_keep_alive_ || e.status == 408 || ctx_.stopping;
    if (!meter_.active()) meter_.begin(ctx_, nullptr, 0, nullptr, out_mark());  // no head parsed
    if (keepalive_head_sent_) write_error_chunk(out_, e);  // the 200 head is out: the error is its body
    else write_error_response(out_, e, close, cors(), ctx_.date.now());
    meter_.response_head(ctx_, nullptr, e.status, StatusSource::Proxy);
    reset_exchange();
    end_exchange(close);
}

void ClientConn::abort_midstream(const std::string& why) {
    (void)why;
    // Whatever arrived is delivered, but the message never looks complete: no last
    // chunk, fewer bytes than Content-Length, then the connection closes (no linger:
    // the client is waiting for more and must learn of the failure at once).
    release_upstream(false);
    reset_exchange();
    if (state_ == State::Orphaned) {  // nobody to tell
        close_client();
        return;
    }
    enter(State::Flushing);
    flush_client();
}

void ClientConn::reset_exchange() {
    meter_.end(ctx_, out_mark());  // no-op between exchanges
    if (up_) release_upstream(false);
    websocket_ = false;
    up_out_.clear();
    up_sent_ = 0;
    replayable_ = true;
    retried_ = false;
    upstream_paused_ = false;
    req_chunks_.reset();
    resp_chunks_.reset();
    resp_head_.release();
    got_response_byte_ = false;
    response_started_ = false;
    resp_keep_alive_ = false;
    resp_extra_ = false;
    resp_kind_ = BodyKind::None;
    resp_remaining_ = 0;
    client_chunked_ = false;
    close_after_ = false;
    cors_answer_ = CorsAnswer{};
    sse_ = false;
    sse_tail_len_ = 0;
    json_candidate_ = false;
    stream_scan_.reset();
    keepalive_head_sent_ = false;
    access_label_ = nullptr;
    strip_credentials_ = false;
    client_credentials_.clear();
    client_protocols_.clear();
    protocols_moved_ = false;
    failover_ = false;
    key_ = nullptr;
    attempts_ = 1;
    tried_ = 0;
    replay_limit_ = kReplayLimit;
    failover_limit_ = 0;
    failover_fits_ = true;
    kept_too_big_ = false;
    refused_key_ = nullptr;
    head_deadline_ms_ = 0;
    if (!attempt_notes_.empty()) attempt_notes_.clear();
}

// ---- keys and failover ---------------------------------------------------------------

// Whether the request presents one of -access-keys (failover.h compares in constant
// time): "Authorization: Bearer K", "api-key: K", or a WebSocket upgrade's subprotocol
// "openai-insecure-api-key.K". Sets access_label_.
bool ClientConn::check_access(const RequestHead& head) {
    const std::vector<AccessKey>& keys = cfg().access_keys;
    int found = -1;
    for (std::size_t i = 0; i < head.field_count && found < 0; ++i) {
        const HeaderField& f = head.fields[i];
        if (f.kind != FieldKind::Other) continue;
        std::string_view presented;
        if (iequals(f.name, "authorization")) presented = bearer_token(f.value);
        else if (iequals(f.name, "api-key")) presented = f.value;
        else if (websocket_ && iequals(f.name, "sec-websocket-protocol")) presented = subprotocol_key(f.value);
        else continue;
        if (!presented.empty()) found = match_access_key(keys, presented);
    }
    if (found < 0) return false;
    access_label_ = &keys[static_cast<std::size_t>(found)].label;
    return true;
}

// The first attempt's origin (the planned one unless it is in backoff) and key. False
// when no origin has a usable key (the caller answers 503).
bool ClientConn::first_attempt() {
    FailoverState& fs = ctx_.upstreams.failover();
    const Route& route = *plan_.route;
    const std::int64_t now = ctx_.loop.now_ms();
    const Origin& planned = route.origins[plan_.origin];
    key_ = nullptr;
    bool planned_ok = route.origins.size() == 1 || !fs.origin_down(plan_.pool_key, now);
    if (planned_ok && !planned.keys.empty()) {
        key_ = fs.pick_key(planned, now);
        planned_ok = key_ != nullptr;
    }
    if (!planned_ok) {
        const ApiKey* key = nullptr;
        int next = next_origin(key);
        if (next < 0) return false;
        if (static_cast<unsigned>(next) != plan_.origin) {
            plan_origin(plan_, cfg(), static_cast<unsigned>(next));
            meter_.retarget(ctx_, plan_);
        }
        key_ = key;
    }
    std::int64_t ht = route.failover.head_timeout.count();
    head_deadline_ms_ = ht > 0 ? now + ht : 0;
    return true;
}

// The next origin to try and its key (failover.h's choose_origin over the untried
// origins); an origin whose keys are all set aside is passed over, without a backoff: it
// may serve another target's keys well. -1: none left.
int ClientConn::next_origin(const ApiKey*& key) {
    FailoverState& fs = ctx_.upstreams.failover();
    const Route& route = *plan_.route;
    const std::int64_t now = ctx_.loop.now_ms();
    static_assert(kMaxOrigins <= 32, "tried_ holds a bit per origin");
    assert(route.origins.size() <= kMaxOrigins);  // config_file.cpp refuses more
    const unsigned n = static_cast<unsigned>(std::min<std::size_t>(route.origins.size(), kMaxOrigins));
    OriginStanding standing[kMaxOrigins];
    std::string keys[kMaxOrigins];
    RequestPlan probe;
    probe.route = plan_.route;
    for (unsigned i = 0; i < n; ++i) {
        plan_origin(probe, cfg(), i);
        keys[i] = probe.pool_key;
        standing[i].tried = (tried_ >> i) & 1u;
        standing[i].down = fs.origin_down(keys[i], now);
        standing[i].last_failure = fs.origin_last_failure(keys[i]);
    }
    for (;;) {
        int next = choose_origin(standing, n, plan_.origin);
        if (next < 0) return -1;
        const Origin& o = route.origins[static_cast<unsigned>(next)];
        key = o.keys.empty() ? nullptr : fs.pick_key(o, now);
        if (o.keys.empty() || key) return next;
        // Every key of it set aside: not this exchange's to try.
        standing[next].tried = true;
        tried_ |= 1u << next;
    }
}

// An attempt failed: records it (key set aside, or origin backoff), then starts the next
// attempt when the retry rule allows and a key or origin is left. False: the caller
// answers as it would without failover (the last answer relayed, or its error).
bool ClientConn::try_next(AttemptFailure why, const std::string& detail, std::int64_t key_aside_ms) {
    FailoverState& fs = ctx_.upstreams.failover();
    const Route& route = *plan_.route;
    const std::int64_t now = ctx_.loop.now_ms();
    const char* target_name = route.name.empty() ? "default" : route.name.c_str();
    const bool key_failure = why == AttemptFailure::KeyRefused || why == AttemptFailure::KeyRateLimited;
    bool aside = false;
    if (key_failure) {
        aside = fs.set_aside(key_, why == AttemptFailure::KeyRefused ? -1 : now + key_aside_ms, now);
        if (aside && why == AttemptFailure::KeyRefused) refused_key_ = key_;
        if (aside) {
            if (why == AttemptFailure::KeyRefused)
                log_line("Key %s of target %s set aside until reload: %s answered %s", key_->label.c_str(), target_name,
                         plan_.target.authority.c_str(), detail.c_str());
            else
                log_line("Key %s of target %s set aside for %llds: %s answered 429", key_->label.c_str(), target_name,
                         static_cast<long long>((key_aside_ms + 999) / 1000), plan_.target.authority.c_str());
        }
    } else {
        fs.origin_failed(plan_.pool_key, now);
    }
    // "status 503", "key rate-limited, status 429", "connect failed"
    std::string reason = why == AttemptFailure::Status ? detail
                         : key_failure                 ? std::string(failure_name(why)) + ", " + detail
                                                       : std::string(failure_name(why));
    if (!attempt_notes_.empty()) attempt_notes_ += ", ";
    attempt_notes_ += plan_.target.authority;
    attempt_notes_ += " (";
    attempt_notes_ += reason;
    attempt_notes_ += ')';

    RetryCheck check;
    check.response_sent = response_started_ || keepalive_head_sent_;
    check.replayable = replayable_ && failover_fits_;
    check.attempts = attempts_;
    check.max_attempts = route.failover.max_attempts;
    RetryVerdict verdict = may_retry(check);
    if (verdict == RetryVerdict::NotReplayable && !kept_too_big_) {
        log_line("Not retried: the request body is larger than the retry-body-limit of %llu bytes (target %s, %s: %s)",
                 static_cast<unsigned long long>(route.failover.replay_limit), target_name,
                 plan_.target.authority.c_str(), failure_name(why));
    } else if (verdict == RetryVerdict::NotReplayable) {
        log_line("Not retried: the request with its chunk framing is larger than the %llu bytes kept for a retry "
                 "(target %s, %s: %s)",
                 static_cast<unsigned long long>(kMaxKept), target_name, plan_.target.authority.c_str(),
                 failure_name(why));
    }
    if (verdict != RetryVerdict::Retry) {
        if (aside) meter_.key_set_aside(ctx_);
        return false;
    }
    if (plan_.origin < 32) tried_ |= 1u << plan_.origin;
    const ApiKey* key = nullptr;
    int next = -1;
    if (key_failure) {
        key = fs.pick_key(route.origins[plan_.origin], now);
        if (key) next = static_cast<int>(plan_.origin);
    }
    if (next < 0) next = next_origin(key);
    if (next < 0) {
        if (aside) meter_.key_set_aside(ctx_);
        return false;
    }
    const Origin& o = route.origins[static_cast<unsigned>(next)];
    log_line("Failover: target %s, attempt %u of %u to %s%s%s failed (%s); attempt %u goes to %s%s%s", target_name,
             attempts_, route.failover.max_attempts, plan_.target.authority.c_str(), key_ ? " with key " : "",
             key_ ? key_->label.c_str() : "", reason.c_str(), attempts_ + 1, o.target.authority.c_str(),
             key ? " with key " : "", key ? key->label.c_str() : "");
    meter_.attempt_failed(ctx_, aside);
    ++attempts_;
    // This attempt's connection and whatever it answered are dropped.
    release_upstream(false);
    resp_head_.release();
    got_response_byte_ = false;
    upstream_paused_ = false;
    retried_ = false;
    resp_chunks_.reset();
    if (static_cast<unsigned>(next) != plan_.origin) {
        plan_origin(plan_, cfg(), static_cast<unsigned>(next));
        meter_.retarget(ctx_, plan_);
    }
    key_ = key;
    rewrite_request_head();
    up_sent_ = 0;
    std::int64_t ht = route.failover.head_timeout.count();
    head_deadline_ms_ = ht > 0 ? now + ht : 0;
    acquire_upstream(true);  // may fail at once, and come back here
    if (!closed && state_ == State::Exchange) {
        refresh_clock();
    }
    return true;
}

// The kept request, its Host line and injected credential rewritten for this attempt's
// origin and key (between head_edit_at_ and head_edit_end_, see begin_exchange).
//
// A first attempt to an origin without keys passed the client's own credential on
// (Authorization, api-key). An origin with a server key gets that key in place of
// whatever the client sent, so the client's lines leave the head then: kept aside in
// client_credentials_ and written in the edited lines again for a later keyless origin.
// A WebSocket's Sec-WebSocket-Protocol lines (client_protocols_) move into the edited
// lines at the first rewrite: as sent to an origin without keys, without the
// "openai-insecure-api-key.*" element to one with a key.
void ClientConn::rewrite_request_head() {
    ByteBuffer next;
    next.append(up_out_.data(), head_edit_at_);
    next.append("Host: ");
    next.append(plan_.target.authority);
    next.append("\r\n");
    if (key_) {
        bool bearer = plan_.route->key_header == KeyHeader::Authorization;
        CredentialEdit c;
        c.name = bearer ? std::string_view("Authorization") : std::string_view("api-key");
        c.prefix = bearer ? std::string_view("Bearer ") : std::string_view();
        c.secret = key_->secret;
        write_credential_line(next, c);
    } else {
        next.append(client_credentials_);
    }
    for (std::string_view lines = client_protocols_; !lines.empty();) {
        const std::size_t eol = lines.find("\r\n") + 2;  // each line ends so (begin_exchange)
        const std::string_view line = lines.substr(0, eol);
        lines.remove_prefix(eol);
        if (!key_) {
            next.append(line);
        } else {
            const std::size_t colon = line.find(':');
            write_protocols_without_key(next, line.substr(0, colon), line.substr(colon + 2, line.size() - colon - 4));
        }
    }
    std::size_t end = next.size();
    std::string_view rest(up_out_.data() + head_edit_end_, up_out_.size() - head_edit_end_);
    const bool move_credentials = key_ && !strip_credentials_;
    if (move_credentials || (!client_protocols_.empty() && !protocols_moved_)) {
        // Our own head, well-formed: field lines "name: value" CRLF up to the empty line.
        std::size_t at = 0;
        while (at < rest.size() && rest.compare(at, 2, "\r\n") != 0) {
            std::size_t eol = rest.find("\r\n", at);
            if (eol == std::string_view::npos) break;  // cannot happen: the head is whole
            std::string_view line = rest.substr(at, eol + 2 - at);
            std::string_view name = line.substr(0, line.find(':'));
            if (move_credentials && is_credential_field(name)) client_credentials_.append(line);
            else if (client_protocols_.empty() || !is_protocols_field(name)) next.append(line.data(), line.size());
            // (the protocols lines are written above, from client_protocols_)
            at = eol + 2;
        }
        rest.remove_prefix(at);
        if (move_credentials) strip_credentials_ = true;  // no credential of the client's left in the head
        protocols_moved_ = true;
    }
    next.append(rest.data(), rest.size());
    up_out_.swap(next);
    head_edit_end_ = end;
}

std::string ClientConn::failover_summary() const {
    return "; " + std::to_string(attempts_) + " attempts: " + attempt_notes_;
}

// ---- CORS and keep-alives -------------------------------------------------------------

// Decides this exchange's CORS fields from the request's Origin, and answers a
// preflight (OPTIONS with Origin and Access-Control-Request-Method) itself: 204 with the
// grant, or 403 for an origin not allowed. Returns true when it answered.
bool ClientConn::begin_cors(const RequestHead& head, std::size_t head_len) {
    const CorsPolicy& policy = cfg().cors;
    std::string_view origin, method, request_headers;
    bool has_origin = find_field(head, "origin", origin);
    if (has_origin && policy.allows(origin)) {
        cors_origin_.assign(origin.data(), origin.size());
        cors_answer_.allow_origin = cors_origin_;
        cors_answer_.credentials = policy.credentials();
    }
    if (head.method != "OPTIONS" || !has_origin || !find_field(head, "access-control-request-method", method))
        return false;
    find_field(head, "access-control-request-headers", request_headers);
    // Logged and counted as any exchange, with no target (none is asked).
    meter_.begin(ctx_, &head, head_len, nullptr, out_mark());
    if (cors_answer_.allow_origin.empty()) {
        std::string msg = "origin " + std::string(origin) + " is not allowed (-cors-origins)";
        in_.consume(head_len);  // `head` views die here
        answer_error({403, "invalid_request_error", "origin_not_allowed", std::move(msg)});
        return true;
    }
    // A preflight has no body; one that does is not trusted.
    bool close = !req_done_ || !client_keep_alive_ || ctx_.stopping;
    meter_.response_head(ctx_, nullptr, 204, StatusSource::Proxy);
    write_preflight_response(out_, cors_answer_, request_headers, close, ctx_.date.now());
    in_.consume(head_len);  // `head` views die here
    reset_exchange();
    end_exchange(close);
    return true;
}

void ClientConn::note_sse_bytes(const char* p, std::size_t n) {
    std::size_t from = n > 4 ? n - 4 : 0;
    for (std::size_t i = from; i < n; ++i) sse_tail_ = sse_tail_ << 8 | static_cast<unsigned char>(p[i]);
    sse_tail_len_ += static_cast<unsigned>(n - from);
    if (sse_tail_len_ > 4) sse_tail_len_ = 4;
}

// Between events: nothing relayed yet, or the bytes so far end with a blank line.
bool ClientConn::sse_at_boundary() const {
    if (sse_tail_len_ == 0) return true;
    if (sse_tail_len_ >= 2 && (sse_tail_ & 0xffff) == 0x0a0a) return true;                // "\n\n"
    return sse_tail_len_ == 4 && sse_tail_ == 0x0d0a0d0a;                                 // "\r\n\r\n"
}

std::int64_t ClientConn::keepalive_due_ms() const {
    if (state_ != State::Exchange) return 0;
    if (response_started_) {
        if (!sse_ || !out_.empty() || !sse_at_boundary()) return 0;  // a client behind needs no ping
        return last_emit_ms_ + cfg().sse_keepalive.count();
    }
    if (!json_candidate_ || !req_done_ || stream_scan_.found() || !out_.empty()) return 0;
    return last_emit_ms_ + cfg().json_keepalive.count();
}

void ClientConn::send_keepalive() {
    if (keepalive_due_ms() == 0) {  // no longer due (cannot happen: the clock follows it)
        deadline_ms = activity_deadline_ms_;
        return;
    }
    if (response_started_) {
        if (client_chunked_) write_chunk(out_, kSseComment);
        else out_.append(kSseComment);  // close-delimited; still at a boundary after it
    } else {
        if (!keepalive_head_sent_) {
            keepalive_head_sent_ = true;
            close_after_ = !client_keep_alive_ || ctx_.stopping;  // the request was read whole (keepalive_due_ms)
            write_keepalive_head(out_, cors(), close_after_, ctx_.date.now());
        }
        write_chunk(out_, kJsonWhitespace);
    }
    last_emit_ms_ = ctx_.loop.now_ms();
    flush_client();
    if (closed) return;
    update_interest();
    if (closed) return;
    arm_exchange_clock();  // the activity clock is not restarted: only the peers' activity does that
}

}  // namespace op
