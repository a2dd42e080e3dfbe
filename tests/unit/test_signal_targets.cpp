#include <atomic>
#include <chrono>
#include <memory>
#include <thread>

#include "doctest/doctest.h"
#include "signal_targets.h"

using op::SignalTargets;

namespace {

struct Item {
    std::atomic<int> calls{0};
};

using Clock = std::chrono::steady_clock;

// Spins (yielding) until flag is set or `limit` has passed; whether it was set.
bool wait_for(const std::atomic<bool>& flag, std::chrono::milliseconds limit) {
    const auto end = Clock::now() + limit;
    while (!flag.load()) {
        if (Clock::now() > end) return false;
        std::this_thread::yield();
    }
    return true;
}

}  // namespace

TEST_CASE("signal targets: reached only between publish and withdraw") {
    Item a, b;
    Item* items[] = {&a, &b};
    SignalTargets<Item, 4> targets;
    auto call = [](Item& i) { i.calls++; };

    CHECK(targets.for_each(call) == 0);
    CHECK_FALSE(targets.with_first(call));

    targets.publish(items, 2);
    CHECK(targets.for_each(call) == 2);
    CHECK(targets.with_first(call));
    CHECK(a.calls == 2);
    CHECK(b.calls == 1);

    targets.withdraw();
    CHECK(targets.for_each(call) == 0);
    CHECK_FALSE(targets.with_first(call));
    CHECK(a.calls == 2);
    CHECK(b.calls == 1);
}

TEST_CASE("signal targets: publish keeps at most the capacity") {
    Item a, b, c;
    Item* items[] = {&a, &b, &c};
    SignalTargets<Item, 2> targets;
    targets.publish(items, 3);
    CHECK(targets.for_each([](Item& i) { i.calls++; }) == 2);
    CHECK(c.calls == 0);
}

// What a Ctrl-C on Windows does: the handler runs on a thread of its own, and may still be
// inside a call on a worker when main, that worker's loop ended, would destroy it.
TEST_CASE("signal targets: withdraw waits for a handler still inside a call") {
    Item item;
    Item* items[] = {&item};
    SignalTargets<Item, 4> targets;
    targets.publish(items, 1);

    std::atomic<bool> in_call{false}, release{false}, withdrawn{false};
    std::thread handler([&] {
        targets.for_each([&](Item& i) {
            in_call = true;
            wait_for(release, std::chrono::seconds(10));
            i.calls++;
        });
    });
    REQUIRE(wait_for(in_call, std::chrono::seconds(10)));
    std::thread owner([&] {
        targets.withdraw();
        withdrawn = true;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    CHECK_FALSE(withdrawn.load());  // the handler is still inside
    release = true;
    handler.join();
    owner.join();
    CHECK(withdrawn.load());
    CHECK(item.calls == 1);
    CHECK(targets.for_each([](Item& i) { i.calls++; }) == 0);
}

// Objects published, withdrawn and freed over and over while a handler thread keeps
// calling into them: a call on a freed object is what AddressSanitizer reports.
TEST_CASE("signal targets: a handler never reaches a withdrawn and freed object") {
    SignalTargets<Item, 2> targets;
    std::atomic<bool> stop{false};
    std::atomic<long> reached{0};
    std::thread handler([&] {
        while (!stop.load()) {
            targets.for_each([&](Item& i) {
                i.calls++;
                reached++;
            });
        }
    });
    const auto end = Clock::now() + std::chrono::seconds(2);
    int rounds = 0;
    for (; rounds < 2000 && Clock::now() < end; ++rounds) {
        auto a = std::make_unique<Item>();
        auto b = std::make_unique<Item>();
        Item* items[] = {a.get(), b.get()};
        targets.publish(items, 2);
        std::this_thread::yield();
        targets.withdraw();
        // Freed here; the handler may only reach the next round's objects.
    }
    stop = true;
    handler.join();
    CHECK(rounds > 0);
    MESSAGE("rounds: " << rounds << ", calls reached: " << reached.load());
}
