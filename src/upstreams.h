// The upstream side of one worker: what its UpstreamConns may use (the loop, the TLS
// context, the upstream settings, name lookups off the loop) and the idle pool its
// ClientConns take connections from and give them back to. It knows nothing of
// clients, routing or the listener; UpstreamConn reaches its worker only through it.
//
// Lookups: lookup() answers at once from the resolver's cache;
// otherwise the connection is registered under its id and on_resolved() is called from
// deliver_lookups() (the loop's wake-up) when the answer comes, unless forget_lookup()
// came first (a connection that went away is simply not found).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>

#include "event_loop.h"
#include "failover.h"
#include "idle_pool.h"
#include "metrics.h"
#include "resolver.h"
#include "target.h"
#include "tls.h"

namespace op {

class UpstreamConn;

// The part of the configuration that concerns upstream connections.
struct UpstreamSettings {
    std::chrono::seconds connect_timeout{10};  // TCP connect, and the egress tunnel (CONNECT, SOCKS5)
    std::chrono::seconds tls_timeout{10};      // TLS handshake
    // The egress proxy is per connection (RequestPlan::egress), not a setting here.
};

class Upstreams {
public:
    Upstreams(EventLoop& loop, TlsClientContext& tls, UpstreamSettings settings,
              IdlePool<UpstreamConn>::Limits pool_limits, WorkerMetrics& metrics);
    Upstreams(const Upstreams&) = delete;
    Upstreams& operator=(const Upstreams&) = delete;

    EventLoop& loop() const { return loop_; }
    TlsClientContext& tls() const { return tls_; }
    const UpstreamSettings& settings() const { return settings_; }
    WorkerMetrics& metrics() const { return metrics_; }

    // Name lookups (see the top of this file).
    std::uint64_t next_id() { return ++last_id_; }
    Resolver::Answer lookup(UpstreamConn* conn, const std::string& host, std::uint16_t port, Resolution& out);
    void forget_lookup(std::uint64_t id) { waiting_.erase(id); }
    void deliver_lookups();

    // The idle pool (rules in idle_pool.h). Whether a connection may go back at all is
    // the caller's decision; give_back() only keeps the bounds, closing what they evict.
    UpstreamConn* take_idle(const std::string& key) {
        UpstreamConn* conn = pool_.take(key);
        if (conn) count_idle();
        return conn;
    }
    void give_back(UpstreamConn* conn);
    std::size_t idle_count() const { return pool_.size(); }
    void leave_pool(UpstreamConn* conn);  // an idle connection that died
    void expire_idle();                   // closes those idle longer than the timeout
    void close_all_idle();                // shutdown
    // Configuration reload: closes the idle connections whose key `drop` accepts.
    void close_idle_if(const std::function<bool(const std::string& key)>& drop);
    // Configuration reload: new timeouts and pool bounds for what comes next. The
    // upstream proxy stays the one connections were made with (a connection under way
    // reads it at each step).
    void reconfigure(const UpstreamSettings& settings, IdlePool<UpstreamConn>::Limits pool_limits) {
        settings_.connect_timeout = settings.connect_timeout;
        settings_.tls_timeout = settings.tls_timeout;
        pool_.set_limits(pool_limits);
    }

    // Keys in turn, set-aside keys and origin backoff (failover.h), per worker: keyed by
    // pool key, so it outlives a configuration.
    FailoverState& failover() { return failover_; }

private:
    void count_idle() { metrics_.idle_pool.set(static_cast<std::int64_t>(pool_.size())); }

    EventLoop& loop_;
    TlsClientContext& tls_;
    UpstreamSettings settings_;
    Resolver resolver_;
    std::unordered_map<std::uint64_t, UpstreamConn*> waiting_;  // lookups in flight, by id
    std::uint64_t last_id_ = 0;
    IdlePool<UpstreamConn> pool_;
    WorkerMetrics& metrics_;
    FailoverState failover_;
};

}  // namespace op
