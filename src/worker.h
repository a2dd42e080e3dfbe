// One proxy worker: an EventLoop with a listener, the client connections it accepts,
// and its own upstream side (idle pool, resolver). -workers starts one per thread;
// they share only the TLS context, the count of open clients and, where the OS does
// not balance SO_REUSEPORT, the listening socket.
//
// The worker is the loop's owner (LoopOwner): it accepts clients up to
// -max-connections, backs off when out of descriptors, and stops. Stopping: the first
// SIGTERM/SIGINT stops accepting at once and lets exchanges in flight finish (up to
// -shutdown-grace); a second one exits at once (main.cpp). Connections see the worker
// only through ClientContext and Upstreams.
#pragma once

#include <atomic>
#include <functional>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "client_context.h"
#include "config.h"
#include "config_snapshot.h"
#include "event_loop.h"
#include "metrics.h"
#include "socket.h"
#include "tls.h"
#include "upstreams.h"

namespace op {

class AccessLog;

// A bound, listening socket. Shared by every worker where the OS does not spread
// connections over SO_REUSEPORT sockets (net::reuseport_balances()); it is closed when
// the last worker that polls it lets go, so no loop ever polls a closed descriptor.
class ListenSocket {
public:
    explicit ListenSocket(SocketHandle fd) : fd_(fd) {}
    ~ListenSocket() { net::close(fd_); }
    ListenSocket(const ListenSocket&) = delete;
    ListenSocket& operator=(const ListenSocket&) = delete;
    SocketHandle fd() const { return fd_; }

private:
    SocketHandle fd_;
};

class Worker final : private LoopOwner, private ClientCounter {
public:
    // `open_clients` counts client connections across all workers, for
    // -max-connections (the one counter they share; touched once per connection).
    // nullptr and `error` set when the loop cannot be created.
    // `registry`: where this worker's counters are published (metrics.h); `access_log`:
    // the access log, or nullptr when it is off.
    static std::unique_ptr<Worker> create(SnapshotPtr config, TlsClientContext& tls,
                                          std::atomic<std::size_t>& open_clients, MetricsRegistry& registry,
                                          AccessLog* access_log, std::string& error);
    // Polls `socket` for clients (once, before run()); false and `error` when the OS
    // refuses. main binds the sockets after every loop exists, so that a client that
    // can connect finds the process complete.
    bool listen(std::shared_ptr<ListenSocket> socket, std::string& error);
    // Serves the admin listener (admin_conn.h) on this worker's loop: takes the socket.
    bool listen_admin(SocketHandle fd, std::string& error);
    ~Worker();
    Worker(const Worker&) = delete;
    Worker& operator=(const Worker&) = delete;

    // Runs until stopped; returns the process exit status.
    int run();
    // Async-signal-safe: asks the loop to stop (the graceful stop; see above).
    void request_stop();
    // Clients of this worker speak TLS with `tls`'s certificate (before run()).
    void serve_tls(ListenerTls* tls) { clients_.listener_tls = tls; }
    // Async-signal-safe: asks the loop to re-read what SIGHUP re-reads (the listener's
    // certificate, and the configuration through on_reload), in the loop's thread; one
    // worker is asked, for all of them.
    void request_reload();
    // Called in the loop's thread after a reload request (before run()): main's
    // configuration reload, which publishes to every worker.
    void on_reload(std::function<void()> reload) { reload_ = std::move(reload); }
    // Any thread: this worker starts new exchanges with `next` from its next wake-up, and
    // closes the idle upstream connections no origin of `next` can use.
    void publish(SnapshotPtr next);

private:
    class Listener;

    Worker(SnapshotPtr config, TlsClientContext& tls, std::atomic<std::size_t>& open_clients,
           MetricsRegistry& registry, AccessLog* access_log, std::unique_ptr<EventLoop> loop);
    void accept_clients();
    bool watch_listener(bool on);
    void pause_while_full();
    void resume_accepting_if_room();
    void begin_shutdown();
    void release_after_burst();
    void adopt(SnapshotPtr next);
    const Config& cfg() const { return clients_.snapshot->config; }

    void on_wake() override;
    void on_tick() override;
    bool finished() override;
    void client_closed() override;

    MetricsRegistry& registry_;
    WorkerMetrics metrics_;            // this worker's counters; read by scrapes
    std::unique_ptr<EventLoop> loop_;  // first in, last out: the others use it
    Upstreams upstreams_;
    ClientContext clients_;  // what ClientConns see; clients_.stopping is the stop flag
    Listener* listener_ = nullptr;  // owned by the loop; null once retired
    std::int64_t shutdown_deadline_ms_ = 0;
    std::size_t client_count_ = 0;  // this worker's
    std::size_t burst_mark_ = 0;    // most connections since memory was last released
    std::size_t burst_last_ = 0;    // connections at the last tick
    std::atomic<std::size_t>& open_clients_;
    std::atomic<int> stop_requests_{0};
    int stop_seen_ = 0;
    std::atomic<int> reload_requests_{0};
    int reload_seen_ = 0;
    std::function<void()> reload_;
    std::mutex published_mutex_;           // guards published_
    SnapshotPtr published_;                // the next configuration, until adopted
    std::atomic<bool> has_published_{false};
    bool accept_paused_ = false;  // out of descriptors: backing off
    bool accept_full_ = false;    // at -max-connections
    bool serves_admin_ = false;
    bool reported_done_ = false;  // counted out of registry_.loops_running
    std::int64_t accept_resume_ms_ = 0;
};

}  // namespace op
