#include "doctest/doctest.h"
#include "idle_pool.h"

using op::IdlePool;

namespace {
int a, b, c, d;  // distinct addresses used as connection tokens
using Pool = IdlePool<int>;
Pool::Limits limits(std::size_t total, std::size_t per_key, std::int64_t timeout_ms) {
    Pool::Limits l;
    l.max_total = total;
    l.max_per_key = per_key;
    l.idle_timeout_ms = timeout_ms;
    return l;
}
}  // namespace

TEST_CASE("idle pool: take returns the most recently used connection of the key") {
    Pool pool(limits(10, 10, 1000));
    std::vector<int*> evicted;
    CHECK(pool.take("https://x:443") == nullptr);
    pool.give_back("https://x:443", &a, 1, evicted);
    pool.give_back("https://x:443", &b, 2, evicted);
    pool.give_back("https://y:443", &c, 3, evicted);
    CHECK(evicted.empty());
    CHECK(pool.size() == 3);
    CHECK(pool.take("https://x:443") == &b);
    CHECK(pool.take("https://x:443") == &a);
    CHECK(pool.take("https://x:443") == nullptr);
    CHECK(pool.take("https://y:443") == &c);
    CHECK(pool.size() == 0);
}

TEST_CASE("idle pool: per-key bound evicts that key's least recently used") {
    Pool pool(limits(10, 2, 1000));
    std::vector<int*> evicted;
    pool.give_back("k", &a, 1, evicted);
    pool.give_back("k", &b, 2, evicted);
    pool.give_back("other", &d, 3, evicted);
    pool.give_back("k", &c, 4, evicted);
    REQUIRE(evicted.size() == 1);
    CHECK(evicted[0] == &a);
    CHECK(pool.size("k") == 2);
    CHECK(pool.size() == 3);
}

TEST_CASE("idle pool: total bound evicts the oldest idle connection of any key") {
    Pool pool(limits(2, 5, 1000));
    std::vector<int*> evicted;
    pool.give_back("k1", &a, 1, evicted);
    pool.give_back("k2", &b, 2, evicted);
    pool.give_back("k3", &c, 3, evicted);
    REQUIRE(evicted.size() == 1);
    CHECK(evicted[0] == &a);
    CHECK(pool.size() == 2);
    CHECK(pool.take("k1") == nullptr);
}

TEST_CASE("idle pool: zero bounds keep nothing") {
    Pool pool(limits(0, 20, 1000));
    std::vector<int*> evicted;
    pool.give_back("k", &a, 1, evicted);
    CHECK(evicted.size() == 1);
    CHECK(pool.size() == 0);
}

TEST_CASE("idle pool: expire closes connections idle for the timeout, keeps fresher ones") {
    Pool pool(limits(10, 10, 90'000));
    std::vector<int*> evicted;
    pool.give_back("k", &a, 0, evicted);
    pool.give_back("k", &b, 50'000, evicted);
    pool.give_back("j", &c, 10'000, evicted);
    pool.expire(89'999, evicted);
    CHECK(evicted.empty());
    pool.expire(100'000, evicted);
    REQUIRE(evicted.size() == 2);
    CHECK(pool.size() == 1);
    CHECK(pool.take("k") == &b);
}

TEST_CASE("idle pool: remove forgets a dead idle connection") {
    Pool pool(limits(10, 10, 1000));
    std::vector<int*> evicted;
    pool.give_back("k", &a, 1, evicted);
    pool.give_back("k", &b, 2, evicted);
    CHECK(pool.remove("k", &a));
    CHECK_FALSE(pool.remove("k", &a));
    CHECK_FALSE(pool.remove("nokey", &b));
    CHECK(pool.size() == 1);
    CHECK(pool.take("k") == &b);
    CHECK(pool.take("k") == nullptr);
}

TEST_CASE("idle pool: drain returns everything") {
    Pool pool(limits(10, 10, 1000));
    std::vector<int*> evicted;
    pool.give_back("k", &a, 1, evicted);
    pool.give_back("j", &b, 2, evicted);
    pool.drain(evicted);
    CHECK(evicted.size() == 2);
    CHECK(pool.size() == 0);
}

TEST_CASE("idle pool: a reload drains the keys it drops and sets new bounds") {
    Pool pool(limits(10, 10, 1000));
    std::vector<int*> evicted;
    pool.give_back("https://x:443", &a, 1, evicted);
    pool.give_back("https://x:443", &b, 2, evicted);
    pool.give_back("https://y:443", &c, 3, evicted);
    pool.drain_if([](const std::string& key) { return key == "https://x:443"; }, evicted);
    CHECK(evicted.size() == 2);
    CHECK(pool.size() == 1);
    CHECK(pool.size("https://x:443") == 0);
    CHECK(pool.take("https://y:443") == &c);
    evicted.clear();
    pool.set_limits(limits(10, 1, 1000));
    pool.give_back("https://y:443", &c, 4, evicted);
    pool.give_back("https://y:443", &d, 5, evicted);
    REQUIRE(evicted.size() == 1);  // the new per-key bound
    CHECK(evicted[0] == &c);
}
