#include "server.h"

#include "client_conn.h"
#include "log.h"
#include "upstream_conn.h"

namespace op {

namespace {
constexpr int kTickMs = 250;              // deadline resolution
constexpr int kAcceptBackoffMs = 100;     // pause after EMFILE/ENFILE

IdlePool<UpstreamConn>::Limits pool_limits(const Config& c) {
    IdlePool<UpstreamConn>::Limits l;
    l.max_total = c.pool_max_idle;
    l.max_per_key = c.pool_max_idle_per_host;
    l.idle_timeout_ms = static_cast<std::int64_t>(c.pool_idle_timeout.count()) * 1000;
    return l;
}

const Target* default_target_of(const Config& c) { return c.default_target ? &*c.default_target : nullptr; }
}  // namespace

class Server::Listener final : public Pollable {
public:
    Listener(Server& server, SocketHandle fd) : server_(server), fd_(fd) {}
    ~Listener() override { net::close(fd_); }
    void on_ready(unsigned) override { server_.accept_clients(); }
    SocketHandle fd() const { return fd_; }

private:
    Server& server_;
    SocketHandle fd_;
};

Server::Server(const Config& config, TlsClientContext& tls, std::atomic<std::size_t>& open_clients)
    : config_(config),
      tls_(tls),
      router_(config.targets, default_target_of(config)),
      poller_(Poller::create(poller_error_)),
      resolver_(poller_.get()),
      pool_(pool_limits(config)),
      open_clients_(open_clients) {}

Server::~Server() {
    // Close everything still open; deleting a connection touches only its own socket.
    while (live_) {
        Pollable* p = live_;
        live_ = p->next_live;
        delete p;
    }
    if (listener_) poller_->remove(listener_->fd());
}

bool Server::listen(std::uint16_t port, bool shared, std::string& error) {
    if (!poller_) {
        error = "cannot create the event loop: " + poller_error_;
        return false;
    }
    SocketHandle fd = net::listen_tcp(config_.listen.host, port, 1024, shared, error);
    if (fd == kInvalidSocket) return false;
    listener_ = std::make_unique<Listener>(*this, fd);
    if (!poller_->add(fd, listener_.get(), kReadable)) {
        error = "cannot watch the listening socket";
        listener_.reset();
        return false;
    }
    return true;
}

std::uint16_t Server::port() const { return listener_ ? net::local_port(listener_->fd()) : 0; }

void Server::request_stop() {
    stop_requests_.fetch_add(1);
    poller_->wake();
}

char* Server::scratch(std::size_t n) {
    if (scratch_.size() < n) scratch_.resize(n);
    return scratch_.data();
}

void Server::track(Pollable* p) {
    p->next_live = live_;
    p->prev_live = nullptr;
    if (live_) live_->prev_live = p;
    live_ = p;
}

void Server::destroy_later(Pollable* p) {
    if (p->closed) return;
    p->closed = true;
    graveyard_.push_back(p);
}

void Server::reap() {
    for (Pollable* p : graveyard_) {
        if (p->prev_live) p->prev_live->next_live = p->next_live;
        else if (live_ == p) live_ = p->next_live;
        if (p->next_live) p->next_live->prev_live = p->prev_live;
        delete p;
    }
    graveyard_.clear();
}

void Server::give_back(UpstreamConn* conn) {
    std::vector<UpstreamConn*> evicted;
    pool_.give_back(conn->pool_key(), conn, now_ms_, evicted);
    for (UpstreamConn* c : evicted) c->close();
}

void Server::client_closed() {
    --clients_;
    open_clients_.fetch_sub(1, std::memory_order_relaxed);
    resume_accepting_if_room();  // other workers notice on their next tick
}

void Server::resume_accepting_if_room() {
    if (accept_full_ && open_clients_.load(std::memory_order_relaxed) < config_.max_connections && listener_ &&
        !stopping_) {
        accept_full_ = false;
        if (!accept_paused_) poller_->modify(listener_->fd(), listener_.get(), kReadable);
    }
}

void Server::accept_clients() {
    if (stopping_) return;
    for (int i = 0; i < 64; ++i) {
        if (open_clients_.load(std::memory_order_relaxed) >= config_.max_connections) {
            poller_->modify(listener_->fd(), listener_.get(), kNone);  // another worker filled it
            accept_full_ = true;
            return;
        }
        SocketHandle fd = kInvalidSocket;
        IoResult r = net::accept(listener_->fd(), &fd);
        if (r.status == IoStatus::WouldBlock) return;
        if (r.status != IoStatus::Ok) {
            if (net::is_fd_exhaustion(r.error) && !accept_paused_) {
                // Out of descriptors: stop polling the listener for a moment instead of
                // spinning on a readiness we cannot serve; closing connections free some.
                log_line("Error accepting connection: %s", net::error_text(r.error).c_str());
                poller_->modify(listener_->fd(), listener_.get(), kNone);
                accept_paused_ = true;
                accept_resume_ms_ = now_ms_ + kAcceptBackoffMs;
            }
            return;
        }
        auto* conn = new ClientConn(*this, fd);
        track(conn);
        if (open_clients_.load(std::memory_order_relaxed) >= config_.max_connections) {
            // At the limit: leave further connections in the kernel's backlog until one
            // of ours closes (client_closed resumes accepting).
            poller_->modify(listener_->fd(), listener_.get(), kNone);
            accept_full_ = true;
            return;
        }
    }
}

void Server::on_wake() {
    for (Resolution& res : resolver_.take_results(now_ms_)) {
        auto it = resolving_.find(res.request_id);
        if (it == resolving_.end()) continue;  // the asker went away meanwhile
        UpstreamConn* conn = it->second;
        resolving_.erase(it);
        if (!conn->closed) conn->on_resolved(std::move(res.addresses), res.error);
    }
    int requests = stop_requests_.load();
    if (requests != stop_seen_) {
        stop_seen_ = requests;
        if (!stopping_) begin_shutdown();
    }
}

void Server::begin_shutdown() {
    stopping_ = true;
    shutdown_deadline_ms_ = now_ms_ + static_cast<std::int64_t>(config_.shutdown_grace.count()) * 1000;
    if (listener_) {
        // Retired, not deleted: this runs from on_wake(), and the listener may have an
        // event later in the same batch (a stop request and pending connections are
        // often reported together), which must find it marked closed.
        poller_->remove(listener_->fd());
        destroy_later(listener_.release());
    }
    std::vector<UpstreamConn*> idle;
    pool_.drain(idle);
    for (UpstreamConn* c : idle) c->close();
    for (Pollable* p = live_; p; p = p->next_live)
        if (!p->closed) p->close_if_idle();
}

void Server::check_deadlines() {
    for (Pollable* p = live_; p; p = p->next_live) {
        if (p->closed) continue;
        if (stopping_ && p->close_if_idle()) continue;
        if (p->deadline_ms != 0 && p->deadline_ms <= now_ms_) {
            p->deadline_ms = 0;
            p->on_timeout();
        }
    }
    std::vector<UpstreamConn*> expired;
    pool_.expire(now_ms_, expired);
    for (UpstreamConn* c : expired) c->close();
    resume_accepting_if_room();
    if (accept_paused_ && now_ms_ >= accept_resume_ms_ && listener_) {
        accept_paused_ = false;
        if (!accept_full_) poller_->modify(listener_->fd(), listener_.get(), kReadable);
    }
}

int Server::run() {
    PollEvent events[256];
    now_ms_ = sys::monotonic_ms();
    next_tick_ms_ = now_ms_ + kTickMs;
    for (;;) {
        int timeout = static_cast<int>(next_tick_ms_ - now_ms_);
        if (timeout < 0) timeout = 0;
        PollWait w = poller_->wait(events, 256, timeout);
        now_ms_ = sys::monotonic_ms();
        if (w.error != 0) {
            // The backend itself failed (not an interruption): nothing can be served.
            log_line("Error: event loop failed: %s", net::error_text(w.error).c_str());
            return 1;
        }
        if (w.woken) on_wake();
        for (int i = 0; i < w.count; ++i) {
            auto* p = static_cast<Pollable*>(events[i].owner);
            if (!p->closed) p->on_ready(events[i].ready);  // closed earlier in this batch: skip
        }
        reap();
        if (now_ms_ >= next_tick_ms_) {
            check_deadlines();
            reap();
            next_tick_ms_ = now_ms_ + kTickMs;
        }
        if (stopping_ && (clients_ == 0 || now_ms_ >= shutdown_deadline_ms_)) return 0;
    }
}

}  // namespace op
