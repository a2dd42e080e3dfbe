// Resolver: answers arrive through Poller::wake(), one per asker; lookups in flight
// for one host:port are shared. Only names in /etc/hosts are looked up ("localhost").
#include <doctest/doctest.h>

#include <algorithm>
#include <string>

#include "poller.h"
#include "resolver.h"
#include "sys.h"

namespace op {
namespace {

// Waits (bounded) until `want` results have come, collecting them.
std::vector<Resolution> collect(Poller& poller, Resolver& resolver, std::size_t want) {
    std::vector<Resolution> got;
    std::int64_t give_up = sys::monotonic_ms() + 10'000;
    while (got.size() < want && sys::monotonic_ms() < give_up) {
        PollEvent events[4];
        PollWait w = poller.wait(events, 4, 200);
        REQUIRE(w.error == 0);
        for (Resolution& r : resolver.take_results(sys::monotonic_ms())) got.push_back(std::move(r));
    }
    return got;
}

}  // namespace

TEST_CASE("resolver: one system lookup for askers of one name in flight, an answer each") {
    std::string error;
    auto poller = Poller::create(error);
    REQUIRE(poller);
    Resolver resolver(poller.get());
    Resolution out;
    std::int64_t now = sys::monotonic_ms();
    CHECK(resolver.lookup(1, "localhost", 443, now, out) == Resolver::Answer::Pending);
    CHECK(resolver.lookup(2, "localhost", 443, now, out) == Resolver::Answer::Pending);
    CHECK(resolver.lookup(3, "localhost", 443, now, out) == Resolver::Answer::Pending);
    CHECK(resolver.lookup(4, "localhost", 8443, now, out) == Resolver::Answer::Pending);  // other port
    CHECK(resolver.lookup_count() == 2);

    std::vector<Resolution> got = collect(*poller, resolver, 4);
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
    CHECK(collect(*poller, resolver, 1).size() == 1);
}

}  // namespace op
