#include "metrics.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>

namespace op {

void Histogram::observe(std::int64_t ms) {
    if (ms < 0) ms = 0;
    int i = 0;
    while (i < kLatencyBuckets && ms > kLatencyBucketsMs[i]) ++i;
    buckets[i].add();
    count.add();
    sum_ms.add(static_cast<std::uint64_t>(ms));
}

int TargetLabels::find_or_add(const std::string& origin) {
    std::lock_guard<std::mutex> lock(mutex_);
    for (std::size_t i = 0; i < names_.size(); ++i)
        if (names_[i] == origin) return static_cast<int>(i);
    if (names_.size() >= kMaxTargets) return kOther;
    names_.push_back(origin);
    return static_cast<int>(names_.size() - 1);
}

std::vector<std::string> TargetLabels::names() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return names_;
}

int WorkerMetrics::target_slot(const std::string& pool_key, const Target& target) {
    auto it = slot_cache_.find(pool_key);
    if (it != slot_cache_.end()) return it->second;
    if (slot_cache_.size() >= 4 * TargetLabels::kMaxTargets) slot_cache_.clear();
    int slot = labels_.find_or_add(target.origin());
    slot_cache_.emplace(pool_key, slot);
    return slot;
}

int WorkerMetrics::key_slot(const std::string& label) {
    if (!key_labels_) return TargetLabels::kOther;
    auto it = key_slot_cache_.find(label);
    if (it != key_slot_cache_.end()) return it->second;
    if (key_slot_cache_.size() >= 4 * TargetLabels::kMaxTargets) key_slot_cache_.clear();
    int slot = key_labels_->find_or_add(label);
    key_slot_cache_.emplace(label, slot);
    return slot;
}

namespace {

// A label value, escaped as the format requires (backslash, double quote, newline).
std::string label(const std::string& v) {
    std::string out;
    for (char c : v) {
        if (c == '\\') out += "\\\\";
        else if (c == '"') out += "\\\"";
        else if (c == '\n') out += "\\n";
        else out += c;
    }
    return out;
}

void header(std::string& out, const char* name, const char* type, const char* help) {
    out += "# HELP ";
    out += name;
    out += ' ';
    out += help;
    out += "\n# TYPE ";
    out += name;
    out += ' ';
    out += type;
    out += '\n';
}

void sample(std::string& out, const char* name, const std::string& labels, std::uint64_t v) {
    char num[32];
    std::snprintf(num, sizeof num, "%" PRIu64, v);
    out += name;
    if (!labels.empty()) out += "{" + labels + "}";
    out += ' ';
    out += num;
    out += '\n';
}

void sample_signed(std::string& out, const char* name, std::int64_t v) {
    char num[32];
    std::snprintf(num, sizeof num, "%" PRId64, v);
    out += name;
    out += ' ';
    out += num;
    out += '\n';
}

std::string seconds_text(std::uint64_t ms) {
    char num[40];
    std::snprintf(num, sizeof num, "%" PRIu64 ".%03u", ms / 1000, static_cast<unsigned>(ms % 1000));
    return num;
}

template <typename F>
std::uint64_t sum(const MetricsRegistry& r, F field) {
    std::uint64_t total = 0;
    for (const WorkerMetrics* w : r.workers) total += field(*w).get();
    return total;
}

template <typename F>
std::int64_t sum_gauge(const MetricsRegistry& r, F field) {
    std::int64_t total = 0;
    for (const WorkerMetrics* w : r.workers) total += field(*w).get();
    return total;
}

void histogram(std::string& out, const MetricsRegistry& r, const char* name, const char* help,
               const std::vector<std::pair<int, std::string>>& slots, Histogram TargetStats::*which) {
    header(out, name, "histogram", help);
    std::string bucket = std::string(name) + "_bucket";
    std::string sum_name = std::string(name) + "_sum";
    std::string count_name = std::string(name) + "_count";
    for (const auto& [slot, lbl] : slots) {
        std::uint64_t cumulative = 0;
        for (int b = 0; b <= kLatencyBuckets; ++b) {
            for (const WorkerMetrics* w : r.workers) cumulative += (w->targets[slot].*which).buckets[b].get();
            std::string le = b < kLatencyBuckets ? seconds_text(static_cast<std::uint64_t>(kLatencyBucketsMs[b])) : "+Inf";
            sample(out, bucket.c_str(), lbl + ",le=\"" + le + "\"", cumulative);
        }
        std::uint64_t s = 0, c = 0;
        for (const WorkerMetrics* w : r.workers) {
            s += (w->targets[slot].*which).sum_ms.get();
            c += (w->targets[slot].*which).count.get();
        }
        out += sum_name + "{" + lbl + "} " + seconds_text(s) + "\n";
        sample(out, count_name.c_str(), lbl, c);
    }
}

}  // namespace

std::string render_metrics(const MetricsRegistry& r) {
    std::string out;
    out.reserve(16384);
    // Target slots with any traffic, each with its label text.
    std::vector<std::string> names = r.labels.names();
    std::vector<std::pair<int, std::string>> slots;
    auto used = [&r](int slot) {
        for (const WorkerMetrics* w : r.workers)
            for (const auto& by_source : w->targets[slot].requests)
                for (const Counter& c : by_source)
                    if (c.get()) return true;
        return false;
    };
    for (std::size_t i = 0; i < names.size(); ++i) slots.emplace_back(static_cast<int>(i), "target=\"" + label(names[i]) + "\"");
    if (used(TargetLabels::kOther)) slots.emplace_back(TargetLabels::kOther, "target=\"other\"");
    if (used(TargetLabels::kNone)) slots.emplace_back(TargetLabels::kNone, "target=\"none\"");

    header(out, "openai_proxy_requests_total", "counter",
           "Exchanges ended, by target, status class and who set the status (upstream; proxy: its own error "
           "answer; client: left before any answer, counted as 499).");
    static const char* kSources[kStatusSources] = {"upstream", "proxy", "client"};
    for (const auto& [slot, lbl] : slots) {
        for (int s = 0; s < kStatusSources; ++s) {
            for (int c = 0; c < 5; ++c) {
                std::uint64_t v = 0;
                for (const WorkerMetrics* w : r.workers) v += w->targets[slot].requests[s][c].get();
                if (!v && s != 0) continue;  // the upstream series always, the others once seen
                if (!v && (c == 0 || c == 2)) continue;
                char codes[48];
                std::snprintf(codes, sizeof codes, ",code=\"%dxx\",source=\"%s\"", c + 1, kSources[s]);
                sample(out, "openai_proxy_requests_total", lbl + codes, v);
            }
        }
    }
    histogram(out, r, "openai_proxy_response_head_seconds",
              "Time from a request's head to the response head (upstream's or the proxy's error), by target.", slots,
              &TargetStats::head_latency);
    histogram(out, r, "openai_proxy_request_duration_seconds", "Time from a request's head to the exchange's end, by target.",
              slots, &TargetStats::total_latency);
    header(out, "openai_proxy_tokens_total", "counter",
           "Tokens reported in the answers' usage, by target and type (prompt: prompt_tokens or input_tokens; "
           "completion: completion_tokens or output_tokens). By access-key label: openai_proxy_key_tokens_total.");
    for (const auto& [slot, lbl] : slots) {
        std::uint64_t p = 0, c = 0;
        for (const WorkerMetrics* w : r.workers) {
            p += w->targets[slot].prompt_tokens.get();
            c += w->targets[slot].completion_tokens.get();
        }
        sample(out, "openai_proxy_tokens_total", lbl + ",type=\"prompt\"", p);
        sample(out, "openai_proxy_tokens_total", lbl + ",type=\"completion\"", c);
    }

    std::vector<std::string> key_names = r.key_labels.names();
    if (!key_names.empty()) {
        header(out, "openai_proxy_key_tokens_total", "counter",
               "Tokens reported in the answers' usage, by access-key label (-access-keys) and type.");
        // An access key may itself be labelled "other", the overflow's name: one series
        // for both then, never the same series twice.
        const std::size_t named_other =
            static_cast<std::size_t>(std::find(key_names.begin(), key_names.end(), "other") - key_names.begin());
        for (std::size_t i = 0; i <= key_names.size(); ++i) {
            if (i == key_names.size() && named_other < key_names.size()) break;  // counted with it
            int slot = i < key_names.size() ? static_cast<int>(i) : TargetLabels::kOther;
            std::uint64_t p = 0, c = 0;
            for (const WorkerMetrics* w : r.workers) {
                p += w->key_tokens[slot].prompt.get();
                c += w->key_tokens[slot].completion.get();
                if (i == named_other) {
                    p += w->key_tokens[TargetLabels::kOther].prompt.get();
                    c += w->key_tokens[TargetLabels::kOther].completion.get();
                }
            }
            if (i == key_names.size() && p == 0 && c == 0) break;
            std::string lbl = "key=\"" + label(i < key_names.size() ? key_names[i] : std::string("other")) + "\"";
            sample(out, "openai_proxy_key_tokens_total", lbl + ",type=\"prompt\"", p);
            sample(out, "openai_proxy_key_tokens_total", lbl + ",type=\"completion\"", c);
        }
    }

    header(out, "openai_proxy_received_bytes_total", "counter", "Bytes read from clients.");
    sample(out, "openai_proxy_received_bytes_total", "", sum(r, [](const WorkerMetrics& w) -> const Counter& { return w.bytes_from_clients; }));
    header(out, "openai_proxy_sent_bytes_total", "counter", "Bytes written to clients.");
    sample(out, "openai_proxy_sent_bytes_total", "", sum(r, [](const WorkerMetrics& w) -> const Counter& { return w.bytes_to_clients; }));
    header(out, "openai_proxy_client_connections_total", "counter", "Client connections accepted.");
    sample(out, "openai_proxy_client_connections_total", "", sum(r, [](const WorkerMetrics& w) -> const Counter& { return w.client_connections; }));
    header(out, "openai_proxy_client_connections", "gauge", "Client connections open.");
    sample_signed(out, "openai_proxy_client_connections", sum_gauge(r, [](const WorkerMetrics& w) -> const Gauge& { return w.clients_open; }));
    header(out, "openai_proxy_exchanges_in_flight", "gauge", "Requests being answered.");
    sample_signed(out, "openai_proxy_exchanges_in_flight", sum_gauge(r, [](const WorkerMetrics& w) -> const Gauge& { return w.exchanges_in_flight; }));
    header(out, "openai_proxy_sse_streams_in_flight", "gauge", "text/event-stream answers being relayed.");
    sample_signed(out, "openai_proxy_sse_streams_in_flight", sum_gauge(r, [](const WorkerMetrics& w) -> const Gauge& { return w.sse_in_flight; }));
    header(out, "openai_proxy_upstream_connects_total", "counter", "TCP connections established to upstreams (or to the upstream proxy).");
    sample(out, "openai_proxy_upstream_connects_total", "", sum(r, [](const WorkerMetrics& w) -> const Counter& { return w.upstream_connects; }));
    header(out, "openai_proxy_upstream_tls_handshakes_total", "counter", "Upstream TLS handshakes completed.");
    sample(out, "openai_proxy_upstream_tls_handshakes_total", "", sum(r, [](const WorkerMetrics& w) -> const Counter& { return w.tls_handshakes; }));
    header(out, "openai_proxy_upstream_tls_resumptions_total", "counter", "Upstream TLS handshakes that resumed a session.");
    sample(out, "openai_proxy_upstream_tls_resumptions_total", "", sum(r, [](const WorkerMetrics& w) -> const Counter& { return w.tls_resumptions; }));
    header(out, "openai_proxy_pool_hits_total", "counter", "Exchanges that took an idle pooled upstream connection.");
    sample(out, "openai_proxy_pool_hits_total", "", sum(r, [](const WorkerMetrics& w) -> const Counter& { return w.pool_hits; }));
    header(out, "openai_proxy_pool_misses_total", "counter", "Exchanges that found no idle upstream connection and opened one.");
    sample(out, "openai_proxy_pool_misses_total", "", sum(r, [](const WorkerMetrics& w) -> const Counter& { return w.pool_misses; }));
    header(out, "openai_proxy_idle_pool_connections", "gauge", "Idle upstream connections in the pools.");
    sample_signed(out, "openai_proxy_idle_pool_connections", sum_gauge(r, [](const WorkerMetrics& w) -> const Gauge& { return w.idle_pool; }));
    header(out, "openai_proxy_retries_total", "counter",
           "Requests sent again. reason=stale_pooled_connection: a pooled connection turned out closed by the "
           "upstream and the request was replayed on a new one. reason=failover: another attempt with the next "
           "server-side key or origin (README \"Keys and failover\").");
    sample(out, "openai_proxy_retries_total", "reason=\"stale_pooled_connection\"",
           sum(r, [](const WorkerMetrics& w) -> const Counter& { return w.stale_replays; }));
    sample(out, "openai_proxy_retries_total", "reason=\"failover\"",
           sum(r, [](const WorkerMetrics& w) -> const Counter& { return w.failover_retries; }));
    header(out, "openai_proxy_failovers_total", "counter",
           "Attempts that failed (connect, TLS, timeout, a failover status, a refused or rate-limited key) and "
           "were followed by another, by the target whose attempt failed.");
    for (const auto& [slot, lbl] : slots) {
        std::uint64_t v = 0;
        for (const WorkerMetrics* w : r.workers) v += w->targets[slot].failovers.get();
        sample(out, "openai_proxy_failovers_total", lbl, v);
    }
    header(out, "openai_proxy_keys_set_aside_total", "counter",
           "Server-side keys set aside: answered 401/403 (until reload) or 429 (until its Retry-After), by target.");
    for (const auto& [slot, lbl] : slots) {
        std::uint64_t v = 0;
        for (const WorkerMetrics* w : r.workers) v += w->targets[slot].keys_set_aside.get();
        sample(out, "openai_proxy_keys_set_aside_total", lbl, v);
    }
    if (r.access_log_on) {
        header(out, "openai_proxy_access_log_lines_total", "counter", "Access log lines queued for writing.");
        sample(out, "openai_proxy_access_log_lines_total", "", sum(r, [](const WorkerMetrics& w) -> const Counter& { return w.access_log_lines; }));
        header(out, "openai_proxy_access_log_dropped_total", "counter",
               "Access log lines dropped because the writer fell behind (a full per-worker buffer).");
        sample(out, "openai_proxy_access_log_dropped_total", "", sum(r, [](const WorkerMetrics& w) -> const Counter& { return w.access_log_dropped; }));
    }
    header(out, "openai_proxy_shutting_down", "gauge", "1 once a graceful stop began.");
    sample_signed(out, "openai_proxy_shutting_down", r.shutting_down.load() ? 1 : 0);
    return out;
}

}  // namespace op
