// The admin listener (-admin-listen): health and Prometheus metrics on their own
// address, never on the public port. One worker's loop serves it (main gives the socket
// to the first worker); each connection answers one request and closes:
//
//   GET /healthz, GET /health  200 "ok" while serving; 503 "shutting down" once a
//                              graceful stop began (the public listener is closed then)
//   GET /metrics               200, Prometheus text format 0.0.4 (metrics.h)
//   anything else              404 (405 for a method other than GET and HEAD)
//
// A scrape renders the merged counters on this loop's thread; it reads the other
// workers' relaxed atomics and takes no lock they take (but the target-name table's,
// which they touch only on a target's first use).
#pragma once

#include <string>

#include "event_loop.h"
#include "metrics.h"
#include "pollable.h"
#include "socket.h"

namespace op {

class AdminListener final : public Pollable {
public:
    // Takes the listening socket; register() polls it (adopt first).
    AdminListener(EventLoop& loop, SocketHandle fd, const MetricsRegistry& registry)
        : loop_(loop), fd_(fd), registry_(registry) {}
    ~AdminListener() override;
    [[nodiscard]] bool watch() { return loop_.add(fd_, this, kReadable); }
    void on_ready(unsigned ready) override;
    // Out of descriptors: the listener rests (not polled) for a moment instead of
    // spinning on a readiness it cannot serve; this ends the rest.
    void on_timeout() override;

private:
    EventLoop& loop_;
    SocketHandle fd_;
    const MetricsRegistry& registry_;
};

class AdminConn final : public Pollable {
public:
    static constexpr std::size_t kMaxRequest = 16 * 1024;
    static constexpr std::int64_t kTimeoutMs = 10'000;

    AdminConn(EventLoop& loop, SocketHandle fd, const MetricsRegistry& registry)
        : loop_(loop), fd_(fd), registry_(registry) {}
    ~AdminConn() override;
    void start();
    void on_ready(unsigned ready) override;
    void on_timeout() override { finish(); }

private:
    void answer();
    void finish();

    EventLoop& loop_;
    SocketHandle fd_;
    const MetricsRegistry& registry_;
    std::string in_;
    std::string out_;
    std::size_t sent_ = 0;
    bool answered_ = false;
};

}  // namespace op
