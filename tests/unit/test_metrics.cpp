// Tests for metrics.h: histogram buckets, the bound on target labels (100, then
// "other"), the per-worker slot cache, label escaping, and that a scrape adds the
// workers up.
#include <string>

#include "metrics.h"
#include "target.h"
#include "doctest/doctest.h"

using op::MetricsRegistry;
using op::TargetLabels;
using op::WorkerMetrics;

namespace {
op::Target target(const std::string& spec) {
    op::Target t;
    std::string why;
    REQUIRE(op::parse_target(spec, t, why));
    return t;
}

bool has_line(const std::string& text, const std::string& line) {
    return text.find("\n" + line + "\n") != std::string::npos;
}
}  // namespace

TEST_CASE("histogram: each observation in its first bucket whose bound it does not exceed") {
    op::Histogram h;
    h.observe(0);
    h.observe(5);      // the bound itself: le="0.005"
    h.observe(6);
    h.observe(-3);     // clamped to 0
    h.observe(10'000'000);  // beyond the last bound: +Inf
    CHECK(h.buckets[0].get() == 3);
    CHECK(h.buckets[1].get() == 1);
    CHECK(h.buckets[op::kLatencyBuckets].get() == 1);
    CHECK(h.count.get() == 5);
    CHECK(h.sum_ms.get() == 10'000'011);
}

TEST_CASE("target labels: the first 100 origins, then other; the cache agrees") {
    TargetLabels labels;
    WorkerMetrics w(labels);
    for (int i = 0; i < TargetLabels::kMaxTargets; ++i) {
        std::string spec = "h" + std::to_string(i) + ".example";
        CHECK(w.target_slot(spec, target(spec)) == i);
    }
    CHECK(w.target_slot("extra.example", target("extra.example")) == TargetLabels::kOther);
    CHECK(w.target_slot("h7.example", target("h7.example")) == 7);
    // Another worker sees the same names in the same slots.
    WorkerMetrics other(labels);
    CHECK(other.target_slot("h42.example", target("h42.example")) == 42);
    CHECK(labels.names().size() == static_cast<std::size_t>(TargetLabels::kMaxTargets));
    // Far more distinct origins than the cache bound: it is cleared, answers stay right.
    for (int i = 0; i < 5 * TargetLabels::kMaxTargets; ++i) {
        std::string spec = "x" + std::to_string(i) + ".example";
        CHECK(w.target_slot(spec, target(spec)) == TargetLabels::kOther);
    }
    CHECK(w.target_slot("h99.example", target("h99.example")) == 99);
}

TEST_CASE("a scrape adds the workers up, with cumulative buckets and escaped labels") {
    MetricsRegistry r;
    WorkerMetrics a(r.labels), b(r.labels);
    r.workers = {&a, &b};
    // parse_target refuses such a host; the label is escaped whatever it holds.
    op::Target odd;
    odd.host = "q\"uote.example";
    odd.authority = odd.host;
    int slot = a.target_slot("k", odd);
    CHECK(b.target_slot("k", odd) == slot);
    a.targets[slot].requests[0][1].add(2);  // 2xx from the upstream
    b.targets[slot].requests[0][1].add(3);
    b.targets[slot].requests[1][4].add();   // a 5xx of the proxy's own
    a.targets[slot].head_latency.observe(7);
    b.targets[slot].head_latency.observe(20000);
    a.targets[slot].prompt_tokens.add(10);
    b.targets[slot].prompt_tokens.add(5);
    a.bytes_to_clients.add(100);
    b.bytes_to_clients.add(1);
    a.clients_open.add(2);
    b.clients_open.add(-1);
    std::string text = "\n" + op::render_metrics(r);
    std::string lbl = "target=\"https://q\\\"uote.example\"";
    CHECK(has_line(text, "openai_proxy_requests_total{" + lbl + ",code=\"2xx\",source=\"upstream\"} 5"));
    CHECK(has_line(text, "openai_proxy_requests_total{" + lbl + ",code=\"5xx\",source=\"proxy\"} 1"));
    CHECK(text.find("source=\"client\"") == std::string::npos);  // never seen: not listed
    CHECK(has_line(text, "openai_proxy_response_head_seconds_bucket{" + lbl + ",le=\"0.005\"} 0"));
    CHECK(has_line(text, "openai_proxy_response_head_seconds_bucket{" + lbl + ",le=\"0.010\"} 1"));
    CHECK(has_line(text, "openai_proxy_response_head_seconds_bucket{" + lbl + ",le=\"10.000\"} 1"));
    CHECK(has_line(text, "openai_proxy_response_head_seconds_bucket{" + lbl + ",le=\"30.000\"} 2"));
    CHECK(has_line(text, "openai_proxy_response_head_seconds_bucket{" + lbl + ",le=\"+Inf\"} 2"));
    CHECK(has_line(text, "openai_proxy_response_head_seconds_sum{" + lbl + "} 20.007"));
    CHECK(has_line(text, "openai_proxy_response_head_seconds_count{" + lbl + "} 2"));
    CHECK(has_line(text, "openai_proxy_tokens_total{" + lbl + ",type=\"prompt\"} 15"));
    CHECK(has_line(text, "openai_proxy_sent_bytes_total 101"));
    CHECK(has_line(text, "openai_proxy_client_connections 1"));
    CHECK(has_line(text, "openai_proxy_failovers_total{" + lbl + "} 0"));
    CHECK(has_line(text, "openai_proxy_keys_set_aside_total{" + lbl + "} 0"));
    CHECK(text.find("openai_proxy_access_log") == std::string::npos);
    CHECK(text.find("target=\"none\"") == std::string::npos);
    r.access_log_on = true;
    a.targets[TargetLabels::kNone].requests[1][3].add();
    text = "\n" + op::render_metrics(r);
    CHECK(has_line(text, "openai_proxy_access_log_dropped_total 0"));
    CHECK(has_line(text, "openai_proxy_requests_total{target=\"none\",code=\"4xx\",source=\"proxy\"} 1"));
}

TEST_CASE("an access key labelled \"other\" and the overflow share one series") {
    MetricsRegistry r;
    WorkerMetrics a(r.labels, &r.key_labels);
    r.workers = {&a};
    int named = a.key_slot("other");  // a key whose label is "other"
    for (int i = 0; i < TargetLabels::kMaxTargets; ++i) a.key_slot("k" + std::to_string(i));
    int overflow = a.key_slot("beyond");
    REQUIRE(overflow == TargetLabels::kOther);
    REQUIRE(named != overflow);
    a.key_tokens[named].prompt.add(3);
    a.key_tokens[overflow].prompt.add(4);
    std::string text = "\n" + op::render_metrics(r);
    const std::string line = "openai_proxy_key_tokens_total{key=\"other\",type=\"prompt\"}";
    CHECK(has_line(text, line + " 7"));
    CHECK(text.find(line) == text.rfind(line));  // once
}
