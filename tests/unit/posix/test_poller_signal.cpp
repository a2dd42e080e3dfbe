// The poller contract's one POSIX-only promise: a wake() made by a signal handler ends
// the wait that signal interrupted. Built on POSIX systems only (tests/CMakeLists.txt);
// Windows has no signals, its console control events run on a thread of their own
// (win/test_console_ctrl.cpp).
#include <atomic>
#include <chrono>
#include <csignal>
#include <pthread.h>
#include <thread>

#include "doctest/doctest.h"
#include "poller_backends.h"

using op::Poller;
using op::PollEvent;
using op::PollWait;
using op_test::for_each_backend;

namespace {
std::atomic<Poller*> g_signal_poller{nullptr};
extern "C" void wake_from_signal(int) {
    if (Poller* p = g_signal_poller.load()) p->wake();
}
}  // namespace

TEST_CASE("poller: wake from a signal handler ends the wait of the thread it interrupts") {
    for_each_backend([](Poller& p) {
        g_signal_poller = &p;
        auto previous = std::signal(SIGUSR1, wake_from_signal);
        REQUIRE(bool(previous != SIG_ERR));
        std::atomic<bool> waiting{false};
        PollWait w;
        std::int64_t waited = -1;
        // The signal goes to the waiting thread itself, so that it interrupts the wait:
        // the wait in progress must still come back woken, not empty.
        std::thread waiter([&] {
            PollEvent events[8];
            auto start = std::chrono::steady_clock::now();
            waiting = true;
            w = p.wait(events, 8, 30000);
            waited = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
        });
        for (int i = 0; i < 5000 && !waiting; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        std::this_thread::sleep_for(std::chrono::milliseconds(100));  // into the wait itself
        REQUIRE(pthread_kill(waiter.native_handle(), SIGUSR1) == 0);
        waiter.join();
        std::signal(SIGUSR1, previous);
        g_signal_poller = nullptr;
        CHECK(w.error == 0);
        CHECK(w.woken);
        CHECK(waited < 10000);
    });
}
