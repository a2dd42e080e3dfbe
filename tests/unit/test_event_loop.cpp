// EventLoop: dispatch, deferred destruction, wake-up, deadlines, and the owner's hooks,
// over real loopback sockets made through the platform API.
#include <chrono>
#include <functional>
#include <string>
#include <thread>

#include "doctest/doctest.h"
#include "event_loop.h"
#include "socket.h"

using namespace op;

namespace {

// A connected pair of loopback sockets: `a` is the accepted side, `b` the client.
struct SocketPair {
    SocketHandle a = kInvalidSocket;
    SocketHandle b = kInvalidSocket;
    SocketPair() {
        std::string error;
        SocketHandle l = net::listen_tcp("127.0.0.1", 0, 4, net::PortShare::Alone, error);
        REQUIRE(l != kInvalidSocket);
        SockAddr addr;
        REQUIRE(net::resolve("127.0.0.1", net::local_port(l), &addr, 1, error) == 1);
        REQUIRE(net::connect_start(addr, &b).status == IoStatus::Ok);
        for (int i = 0; i < 1000 && a == kInvalidSocket; ++i) {
            if (net::accept(l, &a).status != IoStatus::Ok) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        net::close(l);
        REQUIRE(a != kInvalidSocket);
    }
    ~SocketPair() {
        if (a != kInvalidSocket) net::close(a);
        if (b != kInvalidSocket) net::close(b);
    }
};

// Registered with the loop; the sockets stay the SocketPair's.
struct Probe final : Pollable {
    EventLoop& loop;
    SocketHandle fd;
    int* deleted;
    int* dispatched = nullptr;  // on_ready calls, counted across probes
    int ready_calls = 0;
    int timeouts = 0;
    Probe* other = nullptr;  // closed together with this one on the first event
    Probe(EventLoop& l, SocketHandle s, int* d) : loop(l), fd(s), deleted(d) {}
    ~Probe() override {
        loop.remove(fd);
        ++*deleted;
    }
    void on_ready(unsigned) override {
        ++ready_calls;
        if (dispatched) ++*dispatched;
        if (other) loop.destroy_later(other);
        loop.destroy_later(this);
    }
    void on_timeout() override { ++timeouts; }
};

// Ends run() after `turns` turns, or when `done` is set.
struct Owner final : LoopOwner {
    int turns_left;
    int wakes = 0;
    int ticks = 0;
    std::function<bool()> done;
    explicit Owner(int turns) : turns_left(turns) {}
    void on_wake() override { ++wakes; }
    void on_tick() override { ++ticks; }
    bool finished() override { return --turns_left <= 0 || (done && done()); }
};

}  // namespace

TEST_CASE("event loop: a Pollable closed earlier in a batch gets no event, and is deleted after it") {
    std::string error;
    auto loop = EventLoop::create(error);
    REQUIRE(loop);
    SocketPair p1, p2;
    int deleted = 0, dispatched = 0;
    auto* x = new Probe(*loop, p1.a, &deleted);
    auto* y = new Probe(*loop, p2.a, &deleted);
    x->dispatched = y->dispatched = &dispatched;
    x->other = y;
    y->other = x;
    loop->adopt(x);
    loop->adopt(y);
    REQUIRE(loop->add(p1.a, x, kReadable));
    REQUIRE(loop->add(p2.a, y, kReadable));
    // Both readable before the wait: one batch holds both events.
    REQUIRE(net::write(p1.b, "x", 1).status == IoStatus::Ok);
    REQUIRE(net::write(p2.b, "y", 1).status == IoStatus::Ok);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    Owner owner(1);
    CHECK(loop->run(owner) == 0);
    // Whichever came first closed both; the other's event was skipped, not dispatched
    // to a freed object, and both were deleted after the batch.
    CHECK(dispatched == 1);
    CHECK(deleted == 2);
}

TEST_CASE("event loop: wake() from another thread runs on_wake on the loop") {
    std::string error;
    auto loop = EventLoop::create(error);
    REQUIRE(loop);
    Owner owner(1000);
    owner.done = [&owner] { return owner.wakes > 0; };
    std::thread t([&loop] { loop->wake(); });
    CHECK(loop->run(owner) == 0);
    t.join();
    CHECK(owner.wakes == 1);
}

TEST_CASE("event loop: a passed deadline calls on_timeout within a tick, once") {
    std::string error;
    auto loop = EventLoop::create(error);
    REQUIRE(loop);
    SocketPair p;
    int deleted = 0;
    auto* x = new Probe(*loop, p.a, &deleted);
    loop->adopt(x);
    REQUIRE(loop->add(p.a, x, kNone));
    x->deadline_ms = 1;  // long past
    Owner owner(1000);
    owner.done = [&owner] { return owner.ticks >= 3; };
    CHECK(loop->run(owner) == 0);
    CHECK(x->timeouts == 1);
    CHECK(x->deadline_ms == 0);  // reset before the call: a Pollable re-arms it itself
    CHECK(x->ready_calls == 0);
    loop->destroy_all();
    CHECK(deleted == 1);
}
