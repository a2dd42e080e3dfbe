// One event loop with its listener, its connections, its idle pool and its resolver.
//
// The loop: wait for readiness, dispatch each event to its Pollable (skipping those
// closed earlier in the same batch), then destroy what was closed, then check
// deadlines a few times a second. Configuration is borrowed by const reference and
// never changes. Stopping: the first SIGTERM/SIGINT stops accepting and lets
// exchanges in flight finish (up to the shutdown grace), a second one exits at once.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "config.h"
#include "http_head.h"
#include "idle_pool.h"
#include "pollable.h"
#include "poller.h"
#include "resolver.h"
#include "router.h"
#include "tls.h"

namespace op {

class UpstreamConn;

class Server {
public:
    // `open_clients` counts client connections across all workers, for
    // -max-connections (the one counter they share; touched once per connection).
    Server(const Config& config, TlsClientContext& tls, std::atomic<std::size_t>& open_clients);
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    // Binds the listening socket on the configured host and `port` (the configured
    // port, or the one the first worker got when that was 0); `shared` lets several
    // workers bind the same port. On failure returns false with a message.
    bool listen(std::uint16_t port, bool shared, std::string& error);
    std::uint16_t port() const;
    // Runs until stopped; returns the process exit status.
    int run();
    // Async-signal-safe: asks the loop to stop (graceful first, immediate second).
    void request_stop();

    // Services for connections.
    const Config& config() const { return config_; }
    const Router& router() const { return router_; }
    Poller& poller() { return *poller_; }
    TlsClientContext& tls() { return tls_; }
    Resolver& resolver() { return resolver_; }
    IdlePool<UpstreamConn>& pool() { return pool_; }
    std::int64_t now_ms() const { return now_ms_; }
    std::uint64_t next_id() { return ++last_id_; }
    // A per-loop scratch buffer of at least n bytes, valid until the next call.
    char* scratch(std::size_t n);
    // Per-loop heads for the parser to fill, valid until the next parse of the same
    // kind. One each instead of one per parse: a head holds room for every field
    // (a few KB), and constructing it cost ~500 instructions per request.
    RequestHead& request_head_scratch() { return request_head_; }
    ResponseHead& response_head_scratch() { return response_head_; }
    bool stopping() const { return stopping_; }

    void track(Pollable* p);
    // Marks p closed and deletes it after the current dispatch batch.
    void destroy_later(Pollable* p);
    void expect_resolution(std::uint64_t id, UpstreamConn* conn) { resolving_[id] = conn; }
    void forget_resolution(std::uint64_t id) { resolving_.erase(id); }
    // Pool an upstream connection, closing whatever the bounds evict.
    void give_back(UpstreamConn* conn);
    void client_opened() {
        ++clients_;
        open_clients_.fetch_add(1, std::memory_order_relaxed);
    }
    void client_closed();

private:
    class Listener;
    void accept_clients();
    void on_wake();
    void check_deadlines();
    void resume_accepting_if_room();
    void begin_shutdown();
    void reap();

    const Config& config_;
    TlsClientContext& tls_;
    Router router_;
    std::unique_ptr<Poller> poller_;
    std::string poller_error_;  // why poller_ is null
    Resolver resolver_;
    IdlePool<UpstreamConn> pool_;
    std::unique_ptr<Listener> listener_;
    std::unordered_map<std::uint64_t, UpstreamConn*> resolving_;
    Pollable* live_ = nullptr;          // intrusive list head
    std::vector<Pollable*> graveyard_;
    std::vector<char> scratch_;
    RequestHead request_head_;
    ResponseHead response_head_;
    std::int64_t now_ms_ = 0;
    std::int64_t next_tick_ms_ = 0;
    std::int64_t shutdown_deadline_ms_ = 0;
    std::uint64_t last_id_ = 0;
    std::size_t clients_ = 0;  // this worker's
    std::atomic<std::size_t>& open_clients_;
    std::atomic<int> stop_requests_{0};
    int stop_seen_ = 0;
    bool stopping_ = false;
    bool accept_paused_ = false;  // out of descriptors: backing off
    bool accept_full_ = false;    // at -max-connections
    std::int64_t accept_resume_ms_ = 0;
};

}  // namespace op
