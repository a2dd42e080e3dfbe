#include "upstreams.h"

#include <cassert>
#include <vector>

#include "upstream_conn.h"

namespace op {

namespace {
void close_each(const std::vector<UpstreamConn*>& conns) {
    for (UpstreamConn* c : conns) c->close();
}
}  // namespace

Upstreams::Upstreams(EventLoop& loop, TlsClientContext& tls, UpstreamSettings settings,
                     IdlePool<UpstreamConn>::Limits pool_limits, WorkerMetrics& metrics)
    : loop_(loop),
      tls_(tls),
      settings_(std::move(settings)),
      resolver_(&loop),
      pool_(pool_limits),
      metrics_(metrics) {}

Resolver::Answer Upstreams::lookup(UpstreamConn* conn, const std::string& host, std::uint16_t port,
                                   Resolution& out) {
    Resolver::Answer a = resolver_.lookup(conn->id(), host, port, loop_.now_ms(), out);
    if (a == Resolver::Answer::Pending) waiting_[conn->id()] = conn;
    return a;
}

void Upstreams::deliver_lookups() {
    for (Resolution& res : resolver_.take_results(loop_.now_ms())) {
        auto it = waiting_.find(res.request_id);
        if (it == waiting_.end()) continue;  // the asker went away meanwhile
        UpstreamConn* conn = it->second;
        waiting_.erase(it);
        if (!conn->closed) conn->on_resolved(std::move(res.addresses), res.error);
    }
}

void Upstreams::give_back(UpstreamConn* conn) {
    assert(conn->state() == UpstreamConn::State::Idle && !conn->closed);
    std::vector<UpstreamConn*> evicted;
    pool_.give_back(conn->pool_key(), conn, loop_.now_ms(), evicted);
    count_idle();
    close_each(evicted);
}

void Upstreams::leave_pool(UpstreamConn* conn) {
    pool_.remove(conn->pool_key(), conn);
    count_idle();
}

void Upstreams::expire_idle() {
    std::vector<UpstreamConn*> expired;
    pool_.expire(loop_.now_ms(), expired);
    count_idle();
    close_each(expired);
}

void Upstreams::close_idle_if(const std::function<bool(const std::string& key)>& drop) {
    std::vector<UpstreamConn*> dropped;
    pool_.drain_if(drop, dropped);
    count_idle();
    close_each(dropped);
}

void Upstreams::close_all_idle() {
    std::vector<UpstreamConn*> idle;
    pool_.drain(idle);
    count_idle();
    close_each(idle);
}

}  // namespace op
