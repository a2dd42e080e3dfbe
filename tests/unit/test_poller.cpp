// The contract of platform/poller.h, checked on every backend this build has
// (poller_backends.h), over real loopback sockets; on Windows under Wine too (`make
// test-windows`). The wake from a signal handler is in posix/test_poller_signal.cpp,
// POSIX builds only. Waits that must report something get seconds (they return at once
// when the backend is right); waits that must report nothing get 50 ms.
#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <thread>

#include "doctest/doctest.h"
#include "loopback.h"
#include "poller.h"
#include "poller_backends.h"
#include "sys.h"
#include "under_wine.h"

using op::IoStatus;
using op::kNone;
using op::kReadable;
using op::kWritable;
using op::Poller;
using op::PollEvent;
using op::PollWait;
using op_test::LoopbackPair;
using op_test::for_each_backend;

namespace {

constexpr int kReported = 5000;   // ms: a wait that must report returns long before
constexpr int kQuiet = 50;        // ms: a wait that must report nothing

std::int64_t elapsed_ms(std::chrono::steady_clock::time_point since) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - since).count();
}

// What one wait() reported for `owner` (kNone: not reported).
unsigned ready_for(Poller& p, const void* owner, int timeout_ms) {
    PollEvent events[8];
    PollWait w = p.wait(events, 8, timeout_ms);
    REQUIRE(w.error == 0);
    unsigned ready = kNone;
    for (int i = 0; i < w.count; ++i)
        if (events[i].owner == owner) ready |= events[i].ready;
    return ready;
}

void send_bytes(op::SocketHandle s, const char* data, std::size_t len) {
    op::IoResult r = op::net::write(s, data, len);
    REQUIRE(r.status == IoStatus::Ok);
    REQUIRE(r.bytes == len);
}

// For news that arrives on its own time (the peer's FIN or RST) at a socket that may
// already be reported for something else (writable): waits, up to kReported ms, for a
// report of `owner` equal to `expected`, and returns the last report.
unsigned ready_when(Poller& p, const void* owner, unsigned expected) {
    unsigned ready = kNone;
    auto start = std::chrono::steady_clock::now();
    do {
        ready = ready_for(p, owner, kReported);
        if (ready == expected) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    } while (elapsed_ms(start) < kReported);
    return ready;
}

// Registers `pair.server` for reading as `owner`, sends it `data`, and checks that the
// next wait reports it readable.
void readable_server(Poller& p, LoopbackPair& pair, void* owner, const char* data) {
    REQUIRE(p.add(pair.server, owner, kReadable));
    send_bytes(pair.client, data, std::strlen(data));
    CHECK(ready_for(p, owner, kReported) == kReadable);
}


}  // namespace

TEST_CASE("poller: a readable socket is reported by every wait until it is drained") {
    for_each_backend([](Poller& p) {
        LoopbackPair pair;
        int tag = 0;
        readable_server(p, pair, &tag, "hello");
        CHECK(ready_for(p, &tag, kReported) == kReadable);  // not read: reported again
        char buf[8];
        REQUIRE(op::net::read(pair.server, buf, 2).bytes == 2);
        CHECK(ready_for(p, &tag, kReported) == kReadable);  // partly read: still reported
        REQUIRE(op::net::read(pair.server, buf, sizeof buf).bytes == 3);
        CHECK(op::net::read(pair.server, buf, sizeof buf).status == IoStatus::WouldBlock);
        CHECK(ready_for(p, &tag, kQuiet) == kNone);
        p.remove(pair.server);
    });
}

TEST_CASE("poller: a writable socket is reported by every wait") {
    for_each_backend([](Poller& p) {
        LoopbackPair pair;
        int tag = 0;
        REQUIRE(p.add(pair.client, &tag, kWritable));
        for (int i = 0; i < 3; ++i) CHECK(ready_for(p, &tag, kReported) == kWritable);
        p.remove(pair.client);
    });
}

TEST_CASE("poller: modify changes the interest for the next wait") {
    for_each_backend([](Poller& p) {
        LoopbackPair pair;
        int tag = 0;
        readable_server(p, pair, &tag, "x");  // and writable, as any fresh connection
        REQUIRE(p.modify(pair.server, &tag, kWritable));
        CHECK(ready_for(p, &tag, kReported) == kWritable);
        REQUIRE(p.modify(pair.server, &tag, kNone));
        CHECK(ready_for(p, &tag, kQuiet) == kNone);
        REQUIRE(p.modify(pair.server, &tag, kReadable | kWritable));
        CHECK(ready_for(p, &tag, kReported) == (kReadable | kWritable));
        int other = 0;  // the owner may change with the interest
        REQUIRE(p.modify(pair.server, &other, kReadable));
        PollEvent events[8];
        PollWait w = p.wait(events, 8, kReported);
        REQUIRE(w.count == 1);
        CHECK(events[0].owner == &other);
        CHECK(events[0].ready == kReadable);
        p.remove(pair.server);
    });
}

TEST_CASE("poller: the peer's close is reported as readable and writable, then read gives Eof") {
    op::sys::ignore_sigpipe();  // as main does; see net::write
    for (unsigned interest : {unsigned(kReadable), unsigned(kReadable | kWritable)}) {
        CAPTURE(interest);
        for_each_backend([interest](Poller& p) {
            LoopbackPair pair;
            int tag = 0;
            REQUIRE(p.add(pair.server, &tag, interest));
            if (interest == kReadable) CHECK(ready_for(p, &tag, kQuiet) == kNone);
            pair.close_client();
            CHECK(ready_when(p, &tag, kReadable | kWritable) == (kReadable | kWritable));
            char buf[8];
            CHECK(op::net::read(pair.server, buf, sizeof buf).status == IoStatus::Eof);
            p.remove(pair.server);
        });
    }
}

TEST_CASE("poller: a reset is reported as readable and writable whatever the interest") {
    op::sys::ignore_sigpipe();  // as main does; see net::write
    for (unsigned interest : {unsigned(kReadable), unsigned(kWritable), unsigned(kReadable | kWritable)}) {
        CAPTURE(interest);
        for_each_backend([interest](Poller& p) {
            LoopbackPair pair;
            int tag = 0;
            REQUIRE(p.add(pair.client, &tag, interest));
            pair.reset_from_server();
            CHECK(ready_when(p, &tag, kReadable | kWritable) == (kReadable | kWritable));
            char buf[8];
            op::IoResult r = interest == kWritable ? op::net::write(pair.client, "y", 1)
                                                   : op::net::read(pair.client, buf, sizeof buf);
            if (interest != kWritable && op_test::under_wine()) {
                // Wine's recv() on a reset connection returns 0 (its server has already
                // taken the socket's pending error), where Windows and Linux fail with
                // a reset: only Eof is told apart from Error here. The report above is
                // checked all the same, and the write case below.
                MESSAGE("under Wine: recv after a reset gives end of stream, not WSAECONNRESET");
                CHECK(r.status != IoStatus::Ok);
                CHECK(r.status != IoStatus::WouldBlock);
            } else {
                CHECK(r.status == IoStatus::Error);
            }
            p.remove(pair.client);
        });
    }
}

TEST_CASE("poller: kNone reports nothing, not even a reset, until interest returns") {
    op::sys::ignore_sigpipe();  // as main does; see net::write
    for_each_backend([](Poller& p) {
        LoopbackPair pair;
        int tag = 0;
        REQUIRE(p.add(pair.client, &tag, kReadable));
        REQUIRE(p.modify(pair.client, &tag, kNone));
        pair.reset_from_server();
        CHECK(ready_for(p, &tag, kQuiet) == kNone);
        CHECK(ready_for(p, &tag, kQuiet) == kNone);
        REQUIRE(p.modify(pair.client, &tag, kReadable));
        CHECK(ready_when(p, &tag, kReadable | kWritable) == (kReadable | kWritable));
        p.remove(pair.client);
    });
}

TEST_CASE("poller: after remove, no wait reports the owner, even with an event pending") {
    for_each_backend([](Poller& p) {
        LoopbackPair a, b;
        int tag_a = 0, tag_b = 0;
        readable_server(p, a, &tag_a, "x");  // pending, and known to be
        readable_server(p, b, &tag_b, "x");
        p.remove(a.server);
        // b stays readable and registered, so these waits do return: without a.
        for (int i = 0; i < 3; ++i) {
            PollEvent events[8];
            PollWait w = p.wait(events, 8, kReported);
            REQUIRE(w.count == 1);
            CHECK(events[0].owner == &tag_b);
        }
        p.remove(b.server);
        CHECK(ready_for(p, &tag_b, kQuiet) == kNone);
    });
}

TEST_CASE("poller: after forget and close, no wait reports the owner, and the number can be added again") {
    // forget() is remove() for a socket closed next; epoll and kqueue make no system call
    // and rely on the close, so this checks that the close really ends the registration.
    for_each_backend([](Poller& p) {
        LoopbackPair a, b;
        int tag_a = 0, tag_b = 0, tag_c = 0;
        readable_server(p, a, &tag_a, "x");  // pending, and known to be
        readable_server(p, b, &tag_b, "x");
        p.forget(a.server);
        a.close_server();
        for (int i = 0; i < 3; ++i) {
            PollEvent events[8];
            PollWait w = p.wait(events, 8, kReported);
            REQUIRE(w.count == 1);
            CHECK(events[0].owner == &tag_b);
        }
        // A new socket (on POSIX, usually under the closed one's number) registers anew.
        LoopbackPair c;
        readable_server(p, c, &tag_c, "y");
        p.remove(b.server);
        CHECK(ready_for(p, &tag_c, kReported) == kReadable);
        CHECK(ready_for(p, &tag_a, kQuiet) == kNone);
        p.remove(c.server);
    });
}

TEST_CASE("poller: add and modify say false when the OS refuses") {
    for_each_backend([](Poller& p) {
        op::SocketHandle closed;
        {
            LoopbackPair pair;
            closed = pair.client;  // closed when the pair goes; nothing else opens one meanwhile
        }
        int tag = 0;
        CHECK_FALSE(p.add(closed, &tag, kReadable));
        CHECK_FALSE(p.modify(closed, &tag, kReadable));
        CHECK_FALSE(p.modify(closed, &tag, kNone));
    });
}

TEST_CASE("poller: wake from another thread ends a wait in progress; wake-ups coalesce") {
    for_each_backend([](Poller& p) {
        auto start = std::chrono::steady_clock::now();
        std::thread waker([&p] {
            std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the wait has begun
            p.wake();
        });
        PollEvent events[8];
        PollWait w = p.wait(events, 8, 30000);
        waker.join();
        CHECK(w.woken);
        CHECK(w.count == 0);
        CHECK(elapsed_ms(start) < 10000);
        CHECK_FALSE(p.wait(events, 8, kQuiet).woken);  // said once

        p.wake();
        p.wake();
        p.wake();
        CHECK(p.wait(events, 8, kReported).woken);
        CHECK_FALSE(p.wait(events, 8, kQuiet).woken);
    });
}

TEST_CASE("poller: wake comes with the events of the same wait") {
    for_each_backend([](Poller& p) {
        LoopbackPair pair;
        int tag = 0;
        readable_server(p, pair, &tag, "x");
        p.wake();
        PollEvent events[8];
        PollWait w = p.wait(events, 8, kReported);
        CHECK(w.woken);
        REQUIRE(w.count == 1);
        CHECK(events[0].owner == &tag);
        p.remove(pair.server);
    });
}
