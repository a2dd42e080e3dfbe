// platform/socket.h beyond what the poller contract tests use: the one listener that
// workers share where SO_REUSEPORT does not balance, non-blocking descriptors, and the
// raw address bytes. Also run over the BSD/macOS sockets (make test-bsd-sockets).
#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "doctest/doctest.h"
#include "loopback.h"
#include "poller.h"

using op::IoStatus;
using op::Poller;
using op::PollEvent;
using op_test::LoopbackListener;
using op_test::LoopbackPair;

namespace {

std::unique_ptr<Poller> make_poller() {
    std::string error;
    std::unique_ptr<Poller> p = Poller::create(error);
    REQUIRE_MESSAGE(p, error);
    return p;
}

bool reported(Poller& p, const void* owner) {
    PollEvent events[8];
    auto w = p.wait(events, 8, 5000);
    for (int i = 0; i < w.count; ++i)
        if (events[i].owner == owner) return true;
    return false;
}

}  // namespace

TEST_CASE("net: the build's socket part is the one OP_SOCKETS chose") {
    // OP_TEST_SOCKETS comes from tests/CMakeLists.txt: "linux" or "bsd". Only the Linux
    // part may claim that SO_REUSEPORT balances; make test-bsd-sockets must really run
    // the BSD part.
    CHECK(op::net::reuseport_balances() == (std::string(OP_TEST_SOCKETS) == "linux"));
}

TEST_CASE("net: one listener, watched by several pollers, gives each connection to one accept") {
    LoopbackListener listener;
    auto a = make_poller();
    auto b = make_poller();
    int tag = 0;
    REQUIRE(a->add(listener.fd, &tag, op::kReadable));
    REQUIRE(b->add(listener.fd, &tag, op::kReadable));
    constexpr int kThreads = 4;
    for (int round = 0; round < 10; ++round) {
        CAPTURE(round);
        op::SocketHandle client = listener.connect();
        CHECK(reported(*a, &tag));  // every worker's loop hears of the connection
        CHECK(reported(*b, &tag));
        std::atomic<int> go{0}, done{0}, accepted{0}, would_block{0};
        std::vector<op::SocketHandle> got(kThreads, op::kInvalidSocket);
        std::vector<std::thread> threads;
        for (int t = 0; t < kThreads; ++t)
            threads.emplace_back([&, t] {
                ++go;
                while (go < kThreads) std::this_thread::yield();  // all race at once
                op::IoResult r = op::net::accept(listener.fd, &got[static_cast<std::size_t>(t)]);
                if (r.status == IoStatus::Ok) ++accepted;
                if (r.status == IoStatus::WouldBlock) ++would_block;
                ++done;
            });
        // A blocking listener would leave the losers in accept() for good: after 5 s,
        // connections free them, so that the test fails instead of hanging.
        for (int i = 0; i < 5000 && done < kThreads; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        std::vector<op::SocketHandle> rescuers;
        if (done < kThreads)
            for (int t = 0; t < kThreads; ++t) rescuers.push_back(listener.connect());
        for (auto& t : threads) t.join();
        CHECK(accepted == 1);
        CHECK(would_block == kThreads - 1);
        for (op::SocketHandle s : got)
            if (s != op::kInvalidSocket) op::net::close(s);
        for (op::SocketHandle s : rescuers) op::net::close(s);
        op::net::close(client);
    }
    a->remove(listener.fd);
    b->remove(listener.fd);
}

TEST_CASE("net: accepted and connecting sockets are non-blocking") {
    LoopbackPair pair;
    CHECK(op_test::read_nothing(pair.server, pair.client).status == IoStatus::WouldBlock);
    CHECK(op_test::read_nothing(pair.client, pair.server).status == IoStatus::WouldBlock);
}

TEST_CASE("net: SockAddr::ip_bytes gives the address in network order") {
    op::SockAddr a;
    std::string error;
    REQUIRE_MESSAGE(op::net::resolve("192.0.2.7", 443, &a, 1, error) == 1, error);
    unsigned char ip[16] = {};
    std::size_t len = 0;
    REQUIRE(a.ip_bytes(ip, len));
    CHECK(len == 4);
    CHECK(ip[0] == 192);
    CHECK(ip[1] == 0);
    CHECK(ip[2] == 2);
    CHECK(ip[3] == 7);
    CHECK(a.to_string() == "192.0.2.7:443");
    CHECK_FALSE(op::SockAddr{}.ip_bytes(ip, len));
}
