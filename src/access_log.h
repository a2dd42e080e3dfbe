// The JSON access log (-access-log PATH, or - for standard output): one object per
// exchange per line, written off the event loops.
//
// Each worker formats its lines into its own AccessLogRing, a fixed-size byte ring with
// one producer (the worker's thread) and one consumer (the writer thread): publishing a
// line is a copy and one atomic store, never a lock or a system call. The writer thread
// drains every ring into the file at least every kFlushMs (and at exit), and reopens
// the file when asked (SIGHUP, for logrotate). When the file or pipe is slower than the
// traffic, a ring fills and the worker drops whole lines instead of waiting or growing:
// each drop is counted (openai_proxy_access_log_dropped_total) and the writer logs the
// count on standard error, at most once per kDropReportMs.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "metrics.h"

namespace op {

class AccessLogRing {
public:
    static constexpr std::size_t kCapacity = 256 * 1024;  // a power of two

    AccessLogRing(Counter& lines, Counter& dropped);
    // Producer: publishes one whole line, or drops it (counted) when it does not fit.
    bool push(std::string_view line);
    // Consumer: writes what is published to `out`; returns the bytes written.
    std::size_t drain(std::FILE* out);
    const Counter& dropped() const { return dropped_; }

private:
    std::unique_ptr<char[]> buf_;
    std::atomic<std::size_t> head_{0};  // bytes published, ever (mod 2^N): the producer's
    std::atomic<std::size_t> tail_{0};  // bytes consumed, ever: the consumer's
    Counter& lines_;
    Counter& dropped_;
};

class AccessLog {
public:
    static constexpr int kFlushMs = 20;
    static constexpr int kDropReportMs = 10'000;

    // `path`: a file opened for appending, or "-" for standard output. nullptr and
    // `error` when it cannot be opened.
    static std::unique_ptr<AccessLog> open(const std::string& path, std::string& error);
    ~AccessLog();  // stops the writer after a last drain

    // One ring per worker, made before start().
    AccessLogRing* add_ring(Counter& lines, Counter& dropped);
    void start();
    // Async-signal-safe: the writer reopens the file at its next round.
    void request_reopen() { reopen_.store(true, std::memory_order_relaxed); }

private:
    AccessLog(std::string path, std::FILE* file) : path_(std::move(path)), file_(file) {}
    void run();
    void drain_all();

    std::string path_;
    std::FILE* file_;
    std::vector<std::unique_ptr<AccessLogRing>> rings_;
    std::thread writer_;
    std::mutex mutex_;
    std::condition_variable wake_;
    bool stop_ = false;
    std::atomic<bool> reopen_{false};
};

// The fields of one line (see README, "Access log").
struct AccessRecord {
    std::int64_t unix_ms = 0;          // when the exchange ended
    std::string_view client;           // "ip:port"
    std::string_view key;              // access-key label; empty: none (null)
    std::string_view method;           // empty: the request was malformed (null)
    std::string_view path;             // without the query
    std::string_view target;           // origin; empty: none chosen (null)
    int status = 0;
    StatusSource source = StatusSource::Upstream;
    std::uint64_t bytes_in = 0;
    std::uint64_t bytes_out = 0;
    std::int64_t head_ms = -1;         // -1: no response head (null)
    std::int64_t duration_ms = 0;
    std::string_view model;            // empty and !has_model: null
    bool has_model = false;
    std::int64_t prompt_tokens = -1;   // -1: null
    std::int64_t completion_tokens = -1;
    int attempts = 1;
};

// Appends the record as one JSON object and a newline.
void format_access_line(std::string& out, const AccessRecord& r);
// Appends `s` as a JSON string (quotes included): '"', '\\' and control bytes escaped,
// bytes that are not valid UTF-8 replaced with U+FFFD, so the line is always valid JSON.
void append_json_string(std::string& out, std::string_view s);
// "2026-12-03T13:00:00.123Z" (RFC 3339, UTC, milliseconds) for a Unix time in ms.
void format_utc_ms(std::int64_t unix_ms, char out[32]);

}  // namespace op
