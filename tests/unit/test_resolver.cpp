// Resolver: answers arrive through EventLoop::wake(), one per asker; lookups in flight
// for one host:port are shared. Only names in /etc/hosts are looked up ("localhost").
#include <doctest/doctest.h>

#include <algorithm>
#include <string>

#include "event_loop.h"
#include "resolver.h"
#include "sys.h"

namespace op {
namespace {

// Runs the loop (bounded) until `want` results have come, collecting them.
struct Collector final : LoopOwner {
    Resolver& resolver;
    std::size_t want;
    std::int64_t give_up = sys::monotonic_ms() + 10'000;
    std::vector<Resolution> got;
    Collector(Resolver& r, std::size_t n) : resolver(r), want(n) {}
    void on_wake() override {
        for (Resolution& r : resolver.take_results(sys::monotonic_ms())) got.push_back(std::move(r));
    }
    void on_tick() override {}
    bool finished() override { return got.size() >= want || sys::monotonic_ms() > give_up; }
};

std::vector<Resolution> collect(EventLoop& loop, Resolver& resolver, std::size_t want) {
    Collector c(resolver, want);
    REQUIRE(loop.run(c) == 0);
    return std::move(c.got);
}

}  // namespace

TEST_CASE("resolver: one system lookup for askers of one name in flight, an answer each") {
    std::string error;
    auto loop = EventLoop::create(error);
    REQUIRE(loop);
    Resolver resolver(loop.get());
    Resolution out;
    std::int64_t now = sys::monotonic_ms();
    CHECK(resolver.lookup(1, "localhost", 443, now, out) == Resolver::Answer::Pending);
    CHECK(resolver.lookup(2, "localhost", 443, now, out) == Resolver::Answer::Pending);
    CHECK(resolver.lookup(3, "localhost", 443, now, out) == Resolver::Answer::Pending);
    CHECK(resolver.lookup(4, "localhost", 8443, now, out) == Resolver::Answer::Pending);  // other port
    CHECK(resolver.lookup_count() == 2);

    std::vector<Resolution> got = collect(*loop, resolver, 4);
    REQUIRE(got.size() == 4);
    std::sort(got.begin(), got.end(), [](const Resolution& a, const Resolution& b) { return a.request_id < b.request_id; });
    for (std::uint64_t id = 1; id <= 4; ++id) {
        const Resolution& r = got[id - 1];
        CHECK(r.request_id == id);
        REQUIRE_MESSAGE(!r.addresses.empty(), r.error);
        std::string first = r.addresses.front().to_string();
        CHECK(first == (id == 4 ? "127.0.0.1:8443" : "127.0.0.1:443"));
    }

    // Cached now: answered at once, with no new lookup.
    CHECK(resolver.lookup(5, "localhost", 443, sys::monotonic_ms(), out) == Resolver::Answer::Ready);
    CHECK(out.request_id == 5);
    CHECK(!out.addresses.empty());
    CHECK(resolver.lookup_count() == 2);
    // Past the cache's lifetime the name is looked up again.
    CHECK(resolver.lookup(6, "localhost", 443, sys::monotonic_ms() + Resolver::kCacheTtlMs + 1, out) ==
          Resolver::Answer::Pending);
    CHECK(resolver.lookup_count() == 3);
    CHECK(collect(*loop, resolver, 1).size() == 1);
}

}  // namespace op
