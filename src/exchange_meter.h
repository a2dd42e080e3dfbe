// What one client connection measures of its exchanges, for the metrics (metrics.h) and
// the access log (access_log.h). ClientConn calls it at the points of an exchange's
// life; it keeps the timings, byte counts and the body scanners (usage_scanner.h), and
// when the exchange ends it updates the worker's counters and queues the log line.
//
//   begin()             a request head was parsed (or a malformed one refused)
//   request_body()      request body bytes moving to the upstream (decoded if chunked)
//   response_head()     the response head was queued for the client (upstream's or ours)
//   response_body()     response body bytes queued for the client (decoded if chunked)
//   end()               the exchange is over, whichever way
//
// Bodies are scanned only when someone reads the results (the access log, or the
// admin listener's token counts): ClientContext::scan_bodies.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "http_head.h"
#include "metrics.h"
#include "usage_scanner.h"

namespace op {

struct ClientContext;
struct RequestPlan;

class ExchangeMeter {
public:
    // The client's address, for the log ("ip:port"); set once per connection.
    void set_client(std::string addr) { client_ = std::move(addr); }
    bool active() const { return active_; }

    // `head` null: a malformed request (or a head that never completed). `plan` null: no
    // target was chosen (refused before routing). `out_mark`: bytes queued for the
    // client so far on this connection (written + buffered).
    void begin(ClientContext& ctx, const RequestHead* head, std::size_t head_len, const RequestPlan* plan,
               std::uint64_t out_mark);
    void request_body(const char* p, std::size_t n) {
        bytes_in_ += n;
        if (scan_ && !request_scan_.done()) request_scan_.feed(p, n);
    }
    void response_head(ClientContext& ctx, const ResponseHead* head, int status, StatusSource source);
    void response_body(const char* p, std::size_t n) {
        if (scan_response_) response_scan_.feed(p, n);
    }
    void stale_replay(ClientContext& ctx);
    // Keys and failover (failover.h): the access key's label (the configuration's
    // string, valid while the exchange is; null: none), an attempt that failed and is
    // followed by another (counted for the target it failed on), a key set aside there,
    // and the target of the next attempt.
    void set_key(const std::string* label) { key_ = label; }
    void attempt_failed(ClientContext& ctx, bool key_set_aside);
    void key_set_aside(ClientContext& ctx);  // a key set aside by the last attempt
    void retarget(ClientContext& ctx, const RequestPlan& plan);
    // `out_mark`: as for begin(); the difference is the answer's bytes.
    void end(ClientContext& ctx, std::uint64_t out_mark);

private:
    std::string client_;
    bool active_ = false;
    bool scan_ = false;
    bool scan_response_ = false;
    bool sse_ = false;
    int slot_ = TargetLabels::kNone;
    const std::string* key_ = nullptr;
    int attempts_ = 1;
    int status_ = 0;
    StatusSource source_ = StatusSource::Client;
    std::int64_t start_ms_ = 0;
    std::int64_t head_ms_ = -1;
    std::uint64_t bytes_in_ = 0;
    std::uint64_t out_start_ = 0;
    // For the log line: views would die with the request head, so the few bytes are kept.
    std::string method_;
    std::string path_;
    std::string target_;
    UsageScanner request_scan_{UsageScanner::Mode::Request};
    UsageScanner response_scan_{UsageScanner::Mode::Response};
};

}  // namespace op
