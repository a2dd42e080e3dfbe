// Name resolution off the event loop.
//
// lookup() answers at once from the cache or for IP literals; otherwise it queues the
// name for the resolver thread (one per Resolver, started lazily) and returns
// Pending. When the thread is done it posts the result and calls EventLoop::wake();
// the loop then calls take_results() and hands each answer to whoever asked, by
// request id (an asker that went away is simply not found). Answers are cached for
// kCacheTtl, failures for a shorter time, so a burst of requests to one host costs
// one lookup.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "event_loop.h"
#include "socket.h"

namespace op {

struct Resolution {
    std::uint64_t request_id = 0;
    std::vector<SockAddr> addresses;  // empty on failure
    std::string error;
};

class Resolver {
public:
    static constexpr std::int64_t kCacheTtlMs = 30'000;
    static constexpr std::int64_t kFailureTtlMs = 2'000;
    static constexpr int kMaxAddresses = 8;

    explicit Resolver(EventLoop* loop) { shared_->loop = loop; }
    ~Resolver();
    Resolver(const Resolver&) = delete;
    Resolver& operator=(const Resolver&) = delete;

    enum class Answer { Ready, Pending };
    // On Ready, `out` holds the result (addresses or an error). On Pending, the result
    // arrives later through take_results() with this request_id.
    Answer lookup(std::uint64_t request_id, const std::string& host, std::uint16_t port, std::int64_t now_ms,
                  Resolution& out);

    // Completed lookups since the last call (loop thread only); also fills the cache.
    std::vector<Resolution> take_results(std::int64_t now_ms);

private:
    struct Job {
        std::uint64_t request_id;
        std::string host;
        std::uint16_t port;
    };
    struct Done {
        Resolution result;
        std::string key;
    };
    struct CacheEntry {
        std::vector<SockAddr> addresses;
        std::string error;
        std::int64_t expires_ms;
    };
    // Shared with the thread, which may outlive the Resolver while stuck in a lookup
    // at exit; it touches the loop only under the lock and only while !stop.
    struct Shared {
        std::mutex mu;
        std::condition_variable cv;
        std::deque<Job> jobs;
        std::vector<Done> done;
        bool stop = false;
        bool started = false;
        EventLoop* loop = nullptr;
    };
    static void thread_main(std::shared_ptr<Shared> shared);

    std::unordered_map<std::string, CacheEntry> cache_;  // loop thread only
    std::shared_ptr<Shared> shared_ = std::make_shared<Shared>();
};

}  // namespace op
