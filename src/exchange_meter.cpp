#include "exchange_meter.h"

#include <cassert>
#include <chrono>

#include "access_log.h"
#include "client_context.h"
#include "request_plan.h"

namespace op {

namespace {

// Whether a Content-Type value (its parameters cut off) names the media type `want`.
bool is_type(std::string_view v, std::string_view want) {
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
    return iequals(v, want);
}

// application/json, and the +json types some servers use
bool is_json(std::string_view v) { return v.size() >= 4 && iequals(v.substr(v.size() - 4), "json"); }

// Whether `origin` is what Target::append_origin writes for `t`, without writing it.
bool same_origin(std::string_view origin, const Target& t) {
    const std::string_view scheme = t.tls ? "https://" : "http://";
    return origin.size() == scheme.size() + t.authority.size() && origin.substr(0, scheme.size()) == scheme &&
           origin.substr(scheme.size()) == t.authority;
}

}  // namespace

void ExchangeMeter::begin(ClientContext& ctx, const RequestHead* head, std::size_t head_len, const RequestPlan* plan,
                          std::uint64_t out_mark) {
    assert(!active_);
    active_ = true;
    scan_ = ctx.scan_bodies && head;
    scan_response_ = false;
    sse_ = false;
    status_ = 0;
    source_ = StatusSource::Client;
    start_ms_ = ctx.loop.now_ms();
    head_ms_ = -1;
    key_ = nullptr;
    attempts_ = 1;
    bytes_in_ = head_len;
    out_start_ = out_mark;
    slot_ = plan ? ctx.metrics->target_slot(plan->pool_key, plan->target) : TargetLabels::kNone;
    if (scan_) request_scan_.reset(UsageScanner::Mode::Request);
    ctx.metrics->exchanges_in_flight.add(1);
    if (ctx.access_log) {
        method_.clear();
        path_.clear();
        if (head) {
            method_.assign(head->method.data(), head->method.size());
            std::string_view t = head->target.substr(0, head->target.find('?'));
            if (t.size() > 2048) t = t.substr(0, 2048);
            path_.assign(t.data(), t.size());
        }
        if (!plan) {
            target_.clear();
        } else if (!same_origin(target_, plan->target)) {  // most exchanges of a connection go to one origin
            target_.clear();
            plan->target.append_origin(target_);
        }
    }
}

void ExchangeMeter::response_head(ClientContext& ctx, const ResponseHead* head, int status, StatusSource source) {
    if (!active_) return;
    status_ = status;
    source_ = source;
    head_ms_ = ctx.loop.now_ms() - start_ms_;
    if (head) {
        std::string_view type;  // one look-up of Content-Type for both questions
        const bool typed = find_field(*head, "content-type", type);
        if (typed) type = type.substr(0, type.find(';'));
        sse_ = typed && is_type(type, "text/event-stream");
        if (sse_) ctx.metrics->sse_in_flight.add(1);
        scan_response_ = scan_ && typed && (sse_ || is_json(type));
        if (scan_response_) response_scan_.reset(UsageScanner::Mode::Response, sse_);
    }
}

void ExchangeMeter::stale_replay(ClientContext& ctx) { ctx.metrics->stale_replays.add(); }

void ExchangeMeter::attempt_failed(ClientContext& ctx, bool key_set_aside) {
    if (!active_) return;
    ++attempts_;
    ctx.metrics->targets[slot_].failovers.add();
    ctx.metrics->failover_retries.add();
    if (key_set_aside) ctx.metrics->targets[slot_].keys_set_aside.add();
}

void ExchangeMeter::key_set_aside(ClientContext& ctx) {
    if (active_) ctx.metrics->targets[slot_].keys_set_aside.add();
}

void ExchangeMeter::retarget(ClientContext& ctx, const RequestPlan& plan) {
    if (!active_) return;
    slot_ = ctx.metrics->target_slot(plan.pool_key, plan.target);
    if (ctx.access_log) {
        target_.clear();
        plan.target.append_origin(target_);
    }
}

void ExchangeMeter::end(ClientContext& ctx, std::uint64_t out_mark) {
    if (!active_) return;
    active_ = false;
    WorkerMetrics& m = *ctx.metrics;
    m.exchanges_in_flight.add(-1);
    if (sse_) m.sse_in_flight.add(-1);
    if (status_ == 0) {  // nothing answered: the client left (or the connection failed) first
        status_ = 499;
        source_ = StatusSource::Client;
    }
    const std::int64_t duration = ctx.loop.now_ms() - start_ms_;
    TargetStats& t = m.targets[slot_];
    int cls = status_ / 100 - 1;
    if (cls < 0) cls = 0;
    if (cls > 4) cls = 4;
    t.requests[static_cast<int>(source_)][cls].add();
    if (head_ms_ >= 0) t.head_latency.observe(head_ms_);  // only exchanges that had a head
    t.total_latency.observe(duration);
    const bool usage = scan_response_;
    std::int64_t prompt = usage ? response_scan_.prompt_tokens() : -1;
    std::int64_t completion = usage ? response_scan_.completion_tokens() : -1;
    if (prompt > 0) t.prompt_tokens.add(static_cast<std::uint64_t>(prompt));
    if (completion > 0) t.completion_tokens.add(static_cast<std::uint64_t>(completion));
    if (key_ && (prompt > 0 || completion > 0)) {
        KeyTokens& k = m.key_tokens[m.key_slot(*key_)];
        if (prompt > 0) k.prompt.add(static_cast<std::uint64_t>(prompt));
        if (completion > 0) k.completion.add(static_cast<std::uint64_t>(completion));
    }
    if (!ctx.access_log) return;

    AccessRecord r;
    r.unix_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
    r.client = client_;
    r.method = method_;
    r.path = path_;
    r.target = target_;
    r.status = status_;
    r.source = source_;
    r.bytes_in = bytes_in_;
    r.bytes_out = out_mark >= out_start_ ? out_mark - out_start_ : 0;
    r.head_ms = head_ms_;
    r.duration_ms = duration;
    r.has_model = scan_ && request_scan_.has_model();
    r.model = r.has_model ? request_scan_.model() : std::string_view();
    r.prompt_tokens = prompt;
    r.completion_tokens = completion;
    r.attempts = attempts_;
    if (key_) r.key = *key_;
    std::string& buf = ctx.access_line;
    buf.clear();
    format_access_line(buf, r);
    ctx.access_log->push(buf);
}

}  // namespace op
