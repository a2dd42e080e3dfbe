#include "worker.h"

#include <cassert>
#include <unordered_set>

#include "access_log.h"
#include "admin_conn.h"
#include "client_conn.h"
#include "log.h"
#include "sys.h"

namespace op {

namespace {
constexpr int kAcceptBackoffMs = 100;  // pause after EMFILE/ENFILE
// A burst this large that has ended gives its memory back (Worker::release_after_burst).
constexpr std::size_t kBurstConnections = 256;

IdlePool<UpstreamConn>::Limits pool_limits(const Config& c) {
    IdlePool<UpstreamConn>::Limits l;
    l.max_total = c.pool_max_idle;
    l.max_per_key = c.pool_max_idle_per_host;
    l.idle_timeout_ms = static_cast<std::int64_t>(c.pool_idle_timeout.count()) * 1000;
    return l;
}

UpstreamSettings upstream_settings(const Config& c) {
    UpstreamSettings s;
    s.connect_timeout = c.connect_timeout;
    s.tls_timeout = c.tls_timeout;
    return s;
}

// The idle-pool keys of the configured origins, as plan_request makes them: the origin,
// then its egress (its own, else -upstream-proxy; Direct adds nothing).
std::unordered_set<std::string> configured_pool_keys(const Config& c) {
    std::unordered_set<std::string> keys;
    auto add = [&](const Route& r) {
        for (const Origin& o : r.origins) {
            std::string key;
            o.target.append_origin(key);
            const Egress* e = o.egress ? &*o.egress : c.upstream_proxy ? &*c.upstream_proxy : nullptr;
            if (e) e->append_key(key);
            keys.insert(std::move(key));
        }
    };
    for (const Route& r : c.routes) add(r);
    if (c.default_route) add(*c.default_route);
    return keys;
}

}  // namespace

// The worker's registration of its listening socket. Retired through destroy_later
// (an event for it may follow in the batch that stops the worker); deleting it stops
// this loop polling the socket, and the last worker to let go closes it.
class Worker::Listener final : public Pollable {
public:
    Listener(Worker& worker, std::shared_ptr<ListenSocket> socket) : worker_(worker), socket_(std::move(socket)) {}
    ~Listener() override { worker_.loop_->remove(fd()); }
    void on_ready(unsigned) override { worker_.accept_clients(); }
    SocketHandle fd() const { return socket_->fd(); }

private:
    Worker& worker_;
    std::shared_ptr<ListenSocket> socket_;
};

std::unique_ptr<Worker> Worker::create(SnapshotPtr config, TlsClientContext& tls,
                                       std::atomic<std::size_t>& open_clients, MetricsRegistry& registry,
                                       AccessLog* access_log, std::string& error) {
    std::unique_ptr<EventLoop> loop = EventLoop::create(error);
    if (!loop) {
        error = "cannot create the event loop: " + error;
        return nullptr;
    }
    return std::unique_ptr<Worker>(
        new Worker(std::move(config), tls, open_clients, registry, access_log, std::move(loop)));
}

bool Worker::listen(std::shared_ptr<ListenSocket> socket, std::string& error) {
    assert(!listener_);
    listener_ = new Listener(*this, std::move(socket));
    loop_->adopt(listener_);
    if (!loop_->add(listener_->fd(), listener_, kReadable)) {
        error = "cannot watch the listening socket";
        return false;
    }
    return true;
}

Worker::Worker(SnapshotPtr config, TlsClientContext& tls, std::atomic<std::size_t>& open_clients,
               MetricsRegistry& registry, AccessLog* access_log, std::unique_ptr<EventLoop> loop)
    : registry_(registry),
      metrics_(registry.labels, &registry.key_labels),
      loop_(std::move(loop)),
      upstreams_(*loop_, tls, upstream_settings(config->config), pool_limits(config->config), metrics_),
      clients_(*loop_, config, upstreams_, *this),
      open_clients_(open_clients) {
    registry_.workers.push_back(&metrics_);
    registry_.loops_running.fetch_add(1);
    clients_.metrics = &metrics_;
    if (access_log) clients_.access_log = access_log->add_ring(metrics_.access_log_lines, metrics_.access_log_dropped);
    clients_.scan_bodies = access_log || config->config.admin_listen;
}

bool Worker::listen_admin(SocketHandle fd, std::string& error) {
    serves_admin_ = true;
    auto* admin = new AdminListener(*loop_, fd, registry_);
    loop_->adopt(admin);
    if (!admin->watch()) {
        error = "cannot watch the admin listening socket";
        return false;
    }
    return true;
}

Worker::~Worker() {
    // The connections first: they use the pool, the lookups and the client count.
    loop_->destroy_all();
}

void Worker::request_stop() {
    stop_requests_.fetch_add(1);
    loop_->wake();
}

void Worker::request_reload() {
    reload_requests_.fetch_add(1);
    loop_->wake();
}

void Worker::publish(SnapshotPtr next) {
    {
        std::lock_guard<std::mutex> lock(published_mutex_);
        published_ = std::move(next);
    }
    has_published_.store(true, std::memory_order_release);
    loop_->wake();
}

// In the loop's thread: new exchanges use `next`; those in flight keep theirs (each
// ClientConn holds its own reference until its exchange ends).
void Worker::adopt(SnapshotPtr next) {
    const Config& now = next->config;
    // Idle connections to origins the new configuration does not have (or reaches by
    // another egress) are closed, those an X-Target-Host chose among them: the address
    // rule (-allow-private, -allow-hosts) was checked when they connected, under the old
    // configuration, and a pooled connection is not checked again.
    const std::unordered_set<std::string> after = configured_pool_keys(now);
    upstreams_.close_idle_if([&](const std::string& key) { return !after.count(key); });
    upstreams_.reconfigure(upstream_settings(now), pool_limits(now));
    upstreams_.failover().forget_keys();
    clients_.snapshot = std::move(next);
    resume_accepting_if_room();  // -max-connections may have grown
}

void Worker::client_closed() {
    assert(client_count_ > 0);  // once per accepted socket
    --client_count_;
    metrics_.clients_open.add(-1);
    open_clients_.fetch_sub(1, std::memory_order_relaxed);
    resume_accepting_if_room();  // other workers notice on their next tick
}

// Polls the listener (on) or stops polling it. A refusal is logged and returns false;
// the caller keeps its flag, so the next tick asks again.
bool Worker::watch_listener(bool on) {
    if (loop_->modify(listener_->fd(), listener_, on ? kReadable : kNone)) return true;
    log_line("Error: cannot %s polling the listening socket", on ? "resume" : "pause");
    return false;
}

void Worker::pause_while_full() {
    // Further connections wait in the kernel's backlog until one of ours closes
    // (client_closed) or, when another worker filled the count, until a tick sees room.
    if (accept_full_) return;
    accept_full_ = true;
    if (!accept_paused_) (void)watch_listener(false);  // refused: accept_clients() ignores the readiness (a busy loop until room)
}

void Worker::resume_accepting_if_room() {
    if (!accept_full_ || !listener_ || clients_.stopping ||
        open_clients_.load(std::memory_order_relaxed) >= cfg().max_connections)
        return;
    if (accept_paused_ || watch_listener(true)) accept_full_ = false;
}

void Worker::accept_clients() {
    // Also while paused: a refused change of interest may leave the listener watched.
    if (clients_.stopping || accept_full_ || accept_paused_) return;
    for (int i = 0; i < 64; ++i) {
        if (open_clients_.load(std::memory_order_relaxed) >= cfg().max_connections) {
            pause_while_full();  // another worker filled it
            return;
        }
        SocketHandle fd = kInvalidSocket;
        IoResult r = net::accept(listener_->fd(), &fd);
        if (r.status == IoStatus::WouldBlock) return;  // also: another worker took it
        if (r.status != IoStatus::Ok) {
            if (net::is_fd_exhaustion(r.error) && !accept_paused_) {
                // Out of descriptors: stop polling the listener for a moment instead of
                // spinning on a readiness we cannot serve; closing connections free some.
                log_line("Error accepting connection: %s", net::error_text(r.error).c_str());
                (void)watch_listener(false);  // refused: accept_clients() ignores the readiness until the pause ends
                accept_paused_ = true;
                accept_resume_ms_ = loop_->now_ms() + kAcceptBackoffMs;
            }
            return;
        }
        ++client_count_;
        metrics_.client_connections.add();
        metrics_.clients_open.add(1);
        open_clients_.fetch_add(1, std::memory_order_relaxed);
        auto* conn = new ClientConn(clients_, fd);
        loop_->adopt(conn);
        conn->start();
        if (open_clients_.load(std::memory_order_relaxed) >= cfg().max_connections) {
            pause_while_full();
            return;
        }
    }
}

void Worker::on_wake() {
    upstreams_.deliver_lookups();
    if (has_published_.load(std::memory_order_acquire)) {
        SnapshotPtr next;
        {
            std::lock_guard<std::mutex> lock(published_mutex_);
            next = std::move(published_);
            has_published_.store(false, std::memory_order_relaxed);
        }
        if (next) adopt(std::move(next));
    }
    int requests = stop_requests_.load();
    if (requests != stop_seen_) {
        stop_seen_ = requests;
        if (!clients_.stopping) begin_shutdown();
    }
    requests = reload_requests_.load();
    if (requests != reload_seen_) {
        reload_seen_ = requests;
        // (main's handler has asked the access log, if any, to reopen itself.)
        if (clients_.listener_tls) clients_.listener_tls->reload();
        if (reload_) reload_();
    }
}

void Worker::begin_shutdown() {
    clients_.stopping = true;
    registry_.shutting_down.store(true);  // /healthz answers 503 from now on
    shutdown_deadline_ms_ = loop_->now_ms() + static_cast<std::int64_t>(cfg().shutdown_grace.count()) * 1000;
    if (listener_) {
        loop_->destroy_later(listener_);  // see Listener
        listener_ = nullptr;
    }
    upstreams_.close_all_idle();
    loop_->close_idle();
}

void Worker::on_tick() {
    if (clients_.stopping) loop_->close_idle();
    upstreams_.expire_idle();
    release_after_burst();
    resume_accepting_if_room();
    if (accept_paused_ && loop_->now_ms() >= accept_resume_ms_ && listener_) {
        if (accept_full_ || watch_listener(true)) accept_paused_ = false;
    }
}

// Connections (clients and pooled upstreams) cost 15-20 KB each, mostly TLS state; when
// many of them end, glibc keeps the freed memory, because a few live blocks above it pin
// the heap's top. Once the count has fallen by at least kBurstConnections below its
// high-water mark since the last release, and has stopped falling (one tick without a
// drop: the burst's end has settled), the free memory goes back to the system. Steady
// traffic never calls it (the count goes up and down by less); a slow decline calls it
// once per kBurstConnections. The call walks the allocator's free lists: not for every
// tick.
void Worker::release_after_burst() {
    const std::size_t now = client_count_ + upstreams_.idle_count();
    const bool falling = now < burst_last_;
    burst_last_ = now;
    if (now > burst_mark_) burst_mark_ = now;
    if (falling || burst_mark_ - now < kBurstConnections) return;
    sys::release_free_memory();
    burst_mark_ = now;
}

int Worker::run() {
    int status = loop_->run(*this);
    if (!reported_done_) {  // a loop that failed: the admin worker must not wait for it
        reported_done_ = true;
        registry_.loops_running.fetch_sub(1);
    }
    return status;
}

bool Worker::finished() {
    bool done = clients_.stopping && (client_count_ == 0 || loop_->now_ms() >= shutdown_deadline_ms_);
    if (done && !reported_done_) {
        reported_done_ = true;
        registry_.loops_running.fetch_sub(1);
    }
    // The admin listener's loop waits for the others (checked at least every tick).
    return done && (!serves_admin_ || registry_.loops_running.load() == 0);
}

}  // namespace op
