#include "resolver.h"

namespace op {

namespace {
std::string cache_key(const std::string& host, std::uint16_t port) { return host + '\n' + std::to_string(port); }
}  // namespace

Resolver::~Resolver() {
    // A lookup stuck in getaddrinfo cannot be cancelled, so the thread is detached and
    // told to stop; it owns its share of the state.
    {
        std::lock_guard<std::mutex> lock(shared_->mu);
        shared_->stop = true;
        shared_->loop = nullptr;
    }
    shared_->cv.notify_all();
}

Resolver::Answer Resolver::lookup(std::uint64_t request_id, const std::string& host, std::uint16_t port,
                                  std::int64_t now_ms, Resolution& out) {
    out.request_id = request_id;
    std::string key = cache_key(host, port);
    auto it = cache_.find(key);
    if (it != cache_.end() && it->second.expires_ms > now_ms) {
        out.addresses = it->second.addresses;
        out.error = it->second.error;
        return Answer::Ready;
    }
    auto [wait, first] = waiting_.try_emplace(key);
    wait->second.push_back(request_id);
    if (!first) return Answer::Pending;  // already asked: share that answer
    ++lookup_count_;
    {
        std::lock_guard<std::mutex> lock(shared_->mu);
        shared_->jobs.push_back({std::move(key), host, port});
        if (!shared_->started) {
            shared_->started = true;
            std::thread(thread_main, shared_).detach();
        }
    }
    shared_->cv.notify_one();
    return Answer::Pending;
}

std::vector<Resolution> Resolver::take_results(std::int64_t now_ms) {
    std::vector<Done> done;
    {
        std::lock_guard<std::mutex> lock(shared_->mu);
        done.swap(shared_->done);
    }
    std::vector<Resolution> out;
    for (auto& d : done) {
        std::int64_t ttl = d.addresses.empty() ? kFailureTtlMs : kCacheTtlMs;
        auto wait = waiting_.find(d.key);
        if (wait != waiting_.end()) {
            for (std::uint64_t id : wait->second) out.push_back({id, d.addresses, d.error});
            waiting_.erase(wait);
        }
        cache_[d.key] = {std::move(d.addresses), std::move(d.error), now_ms + ttl};
    }
    if (cache_.size() > 4096) {  // bound: drop expired entries, then everything if still large
        for (auto it = cache_.begin(); it != cache_.end();)
            it = it->second.expires_ms <= now_ms ? cache_.erase(it) : std::next(it);
        if (cache_.size() > 4096) cache_.clear();
    }
    return out;
}

void Resolver::thread_main(std::shared_ptr<Shared> shared) {
    std::unique_lock<std::mutex> lock(shared->mu);
    for (;;) {
        shared->cv.wait(lock, [&] { return shared->stop || !shared->jobs.empty(); });
        if (shared->stop) return;
        Job job = std::move(shared->jobs.front());
        shared->jobs.pop_front();
        lock.unlock();
        Done d;
        d.key = std::move(job.key);
        SockAddr addrs[kMaxAddresses];
        int n = net::resolve(job.host, job.port, addrs, kMaxAddresses, d.error);
        d.addresses.assign(addrs, addrs + n);
        lock.lock();
        if (shared->stop) return;
        shared->done.push_back(std::move(d));
        if (shared->loop) shared->loop->wake();
    }
}

}  // namespace op
