// Name resolution off the event loop.
//
// lookup() answers at once from the cache; otherwise it queues the name for the
// resolver thread (one per Resolver, started lazily) and returns Pending. Lookups of
// one host:port already in flight are shared: the later askers wait for the same
// answer, so a burst of requests to a name not yet cached costs one system lookup.
// When the thread is done it posts the result and calls EventLoop::wake(); the loop then
// calls take_results() and hands one Resolution to each asker, by request id (an asker
// that went away is simply not found). Answers are cached for kCacheTtlMs, failures for
// kFailureTtlMs.
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

    // Completed lookups since the last call, one per asker (loop thread only); also
    // fills the cache.
    std::vector<Resolution> take_results(std::int64_t now_ms);

    // System lookups started so far (for tests: shared lookups count once).
    std::uint64_t lookup_count() const { return lookup_count_; }

private:
    struct Job {
        std::string key;
        std::string host;
        std::uint16_t port;
    };
    struct Done {
        std::string key;
        std::vector<SockAddr> addresses;
        std::string error;
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

    // Loop thread only.
    std::unordered_map<std::string, CacheEntry> cache_;
    std::unordered_map<std::string, std::vector<std::uint64_t>> waiting_;  // key -> askers
    std::uint64_t lookup_count_ = 0;
    std::shared_ptr<Shared> shared_ = std::make_shared<Shared>();
};

}  // namespace op
