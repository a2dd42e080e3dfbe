// What a ClientConn may use of the worker that accepted it, and nothing more: the loop,
// the configuration snapshot (with routing), the upstream side (pool and new connections), per-loop
// scratch space, and one notification back. The worker owns it and sets `stopping`;
// ClientConn never sees the worker itself (no include runs back up the layers).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "config.h"
#include "config_snapshot.h"
#include "event_loop.h"
#include "http_date.h"
#include "http_head.h"
#include "listener_tls.h"
#include "metrics.h"
#include "router.h"
#include "upstreams.h"

namespace op {

class AccessLogRing;

// Implemented by the worker, which counts clients for -max-connections.
class ClientCounter {
public:
    // A client's socket was closed (the ClientConn may live on a moment as an orphan).
    virtual void client_closed() = 0;

protected:
    ~ClientCounter() = default;
};

struct ClientContext {
    ClientContext(EventLoop& l, SnapshotPtr s, Upstreams& u, ClientCounter& cc)
        : loop(l), snapshot(std::move(s)), upstreams(u), counter(cc) {}
    ClientContext(const ClientContext&) = delete;
    ClientContext& operator=(const ClientContext&) = delete;

    EventLoop& loop;
    // The configuration and router this worker starts new exchanges with: replaced by the
    // worker (in its loop thread) when a reload is published. A connection keeps its own
    // reference for the exchange in flight (ClientConn::cfg()).
    SnapshotPtr snapshot;
    Upstreams& upstreams;
    ClientCounter& counter;
    bool stopping = false;  // graceful stop under way: no orphan grace, nothing pooled
    ListenerTls* listener_tls = nullptr;  // -tls-cert: clients speak TLS (shared by every worker)

    // Observability (exchange_meter.h), set by the worker before it accepts: its
    // counters, its access log ring (null: no access log), and whether bodies are
    // scanned for the model and token usage (the access log or the admin listener is on).
    WorkerMetrics* metrics = nullptr;
    AccessLogRing* access_log = nullptr;
    bool scan_bodies = false;
    std::string access_line;  // per-loop scratch for formatting a log line
    HttpDateClock date;       // the Date of the proxy's own answers

    // A per-loop scratch buffer of at least n bytes, valid until the next call.
    char* scratch(std::size_t n) {
        if (scratch_.size() < n) scratch_.resize(n);
        return scratch_.data();
    }
    // Per-loop heads for the parser to fill, valid until the next parse of the same
    // kind. One each instead of one per parse: a head holds room for every field (a few
    // KB), and building one per request costs (bench/results.md, Notes).
    RequestHead request_head;
    ResponseHead response_head;

private:
    std::vector<char> scratch_;
};

}  // namespace op
