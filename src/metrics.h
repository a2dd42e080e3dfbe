// Counters for /metrics (the admin listener, admin_conn.h), kept per worker and merged
// on a scrape.
//
// Each WorkerMetrics is written by its worker's thread only and read by whichever thread
// renders a scrape: its fields are relaxed atomics that the owner updates with a plain
// load and store (single writer; no read-modify-write, no lock, no fence on the hot
// path). A scrape sums the workers' values, so it sees each counter at some recent
// moment, never a torn value.
//
// Target labels are bounded: the configured targets are named first, then up to
// kMaxTargets origins in the order they are first used (X-Target-Host may name any
// number); later ones share the label "other". Requests refused before a target was
// chosen (malformed, no route, X-Target-Host refused) have the label "none". The shared
// name table takes a lock only when a worker sees an origin for the first time
// (target_slot() caches the answer per worker).
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <type_traits>
#include <string>
#include <unordered_map>
#include <vector>

#include "target.h"

namespace op {

// 64 bits where the CPU has lock-free 64-bit atomics; on those without (MIPS32) a
// 64-bit atomic would be a call into libatomic, which takes a lock: the word size
// instead, so a counter wraps at 2^32 there (Prometheus reads that as a reset).
using CounterWord =
    std::conditional_t<std::atomic<std::uint64_t>::is_always_lock_free, std::uint64_t, std::uintptr_t>;

class Counter {
public:
    void add(std::uint64_t n = 1) {
        v_.store(v_.load(std::memory_order_relaxed) + static_cast<CounterWord>(n), std::memory_order_relaxed);
    }
    std::uint64_t get() const { return v_.load(std::memory_order_relaxed); }

private:
    std::atomic<CounterWord> v_{0};
};

class Gauge {
public:
    void add(std::int64_t n) {
        v_.store(v_.load(std::memory_order_relaxed) + static_cast<std::intptr_t>(n), std::memory_order_relaxed);
    }
    void set(std::int64_t n) { v_.store(static_cast<std::intptr_t>(n), std::memory_order_relaxed); }
    std::int64_t get() const { return v_.load(std::memory_order_relaxed); }

private:
    std::atomic<std::intptr_t> v_{0};  // a count of things in memory: the word size suffices
};

// Who produced the status of an exchange.
enum class StatusSource : unsigned char {
    Upstream,  // the upstream's response
    Proxy,     // the proxy's own error answer (502, 504, 400, 404, 413, ...)
    Client,    // the client left before any answer: counted as 499, as nginx logs it
};
inline constexpr int kStatusSources = 3;

// Latency histogram bucket upper bounds, in milliseconds (rendered in seconds).
inline constexpr std::int64_t kLatencyBucketsMs[] = {5,    10,    25,    50,    100,    250,    500,   1000,
                                                     2500, 5000, 10000, 30000, 60000, 120000, 300000};
inline constexpr int kLatencyBuckets = sizeof(kLatencyBucketsMs) / sizeof(kLatencyBucketsMs[0]);

struct Histogram {
    Counter buckets[kLatencyBuckets + 1];  // not cumulative; the last is +Inf
    Counter count;
    Counter sum_ms;
    void observe(std::int64_t ms);
};

struct TargetStats {
    Counter requests[kStatusSources][5];  // [source][status class 1xx..5xx]
    Histogram head_latency;               // exchange start -> response head queued
    Histogram total_latency;              // exchange start -> exchange end
    Counter prompt_tokens;
    Counter completion_tokens;
    // Keys and failover (failover.h), by the origin whose attempt failed.
    Counter failovers;       // attempts that failed and were followed by another
    Counter keys_set_aside;  // server-side keys set aside (401/403, or 429 until Retry-After)
};

// Tokens by access-key label (-access-keys).
struct KeyTokens {
    Counter prompt;
    Counter completion;
};

// The names behind target slots, shared by every worker.
class TargetLabels {
public:
    static constexpr int kMaxTargets = 100;
    static constexpr int kOther = kMaxTargets;  // beyond kMaxTargets
    static constexpr int kNone = kMaxTargets + 1;
    static constexpr int kSlots = kMaxTargets + 2;

    // The slot of `origin`, adding it while there is room; kOther after that.
    int find_or_add(const std::string& origin);
    // The names of the slots in use, in slot order (0 .. size-1).
    std::vector<std::string> names() const;

private:
    mutable std::mutex mutex_;
    std::vector<std::string> names_;
};

struct WorkerMetrics {
    explicit WorkerMetrics(TargetLabels& labels, TargetLabels* key_labels = nullptr)
        : labels_(labels), key_labels_(key_labels) {}
    WorkerMetrics(const WorkerMetrics&) = delete;
    WorkerMetrics& operator=(const WorkerMetrics&) = delete;

    // The slot for a target, by its pool key (one string compare per exchange once
    // cached). The cache is cleared if it grows past a bound (unbounded X-Target-Host
    // origins all map to kOther anyway).
    int target_slot(const std::string& pool_key, const Target& target);
    // The slot of an access-key label (bounded like targets; kOther beyond), cached.
    int key_slot(const std::string& label);

    Counter client_connections;  // accepted, ever
    Gauge clients_open;
    Gauge exchanges_in_flight;
    Gauge sse_in_flight;
    Counter bytes_from_clients;  // read from client sockets
    Counter bytes_to_clients;    // written to client sockets
    Counter upstream_connects;   // TCP connections established to upstreams (or their proxy)
    Counter tls_handshakes;      // completed upstream TLS handshakes
    Counter tls_resumptions;     // ... of which resumed a session
    Counter pool_hits;           // exchanges that took an idle pooled connection
    Counter pool_misses;         // exchanges that opened a new one
    Counter stale_replays;       // a pooled connection was found closed; request replayed
    Counter failover_retries;    // further attempts of keys and failover (another key or origin)
    Gauge idle_pool;
    Counter access_log_lines;    // queued for the writer (access_log.h)
    Counter access_log_dropped;  // dropped: the worker's buffer was full
    TargetStats targets[TargetLabels::kSlots];
    KeyTokens key_tokens[TargetLabels::kSlots];

private:
    TargetLabels& labels_;
    TargetLabels* key_labels_;
    std::unordered_map<std::string, int> slot_cache_;
    std::unordered_map<std::string, int> key_slot_cache_;
};

// What a scrape reads: every worker's metrics, the shared labels, and the process state.
struct MetricsRegistry {
    TargetLabels labels;
    TargetLabels key_labels;  // access-key labels seen (tokens by key)
    std::vector<WorkerMetrics*> workers;  // filled before the loops run; read-only after
    std::atomic<bool> shutting_down{false};
    // Loops not yet finished: the admin listener's worker finishes last, so that
    // /healthz answers 503 for as long as any worker drains (worker.cpp).
    std::atomic<int> loops_running{0};
    bool access_log_on = false;  // set before the loops run
};

// The Prometheus text exposition format (version 0.0.4) of the merged counters.
std::string render_metrics(const MetricsRegistry& registry);

}  // namespace op
