// SignalTargets: the objects an asynchronous handler reaches (the workers a stop signal
// stops, the access log SIGHUP reopens), published by main while they live.
//
// A POSIX signal handler runs on whichever thread the signal interrupts; on Windows the
// system runs a console control handler (Ctrl-C) on a thread of its own, at the same
// time as main. Either way a handler can be halfway through a call on an object when
// main, its loops ended, destroys it: a worker's loop that has seen its stop request
// may return before the handler's wake-up call on that worker has. So main withdraws
// the objects first, and withdraw() waits while a handler is still inside for_each().
// A handler waits for nothing, so one that interrupts the withdrawing thread itself
// finishes before the wait resumes: there is no deadlock. Lock-free atomics only, as a
// signal handler requires.
#pragma once

#include <atomic>
#include <thread>

namespace op {

template <class T, unsigned Cap>
class SignalTargets {
public:
    // main: from now on handlers reach items[0, n) (at most Cap of them).
    void publish(T* const* items, unsigned n) {
        if (n > Cap) n = Cap;
        for (unsigned i = 0; i < n; ++i) items_[i] = items[i];
        count_.store(n);  // seq_cst: the items are written before any handler sees n
    }

    // A handler: calls f(T&) on each published item and returns how many there were
    // (0 before publish() and once withdraw() has begun).
    template <class F>
    unsigned for_each(F&& f) {
        // Counted in before count_ is read: withdraw() stores 0 to count_ and then reads
        // inside_, so either it waits for this handler or this handler reads 0.
        inside_.fetch_add(1);
        unsigned n = count_.load();
        for (unsigned i = 0; i < n; ++i) f(*items_[i]);
        inside_.fetch_sub(1);
        return n;
    }

    // A handler: calls f(T&) on the first item only; whether there was one.
    template <class F>
    bool with_first(F&& f) {
        inside_.fetch_add(1);
        bool any = count_.load() > 0;
        if (any) f(*items_[0]);
        inside_.fetch_sub(1);
        return any;
    }

    // main, before the items are destroyed: no handler touches them once this returns.
    void withdraw() {
        count_.store(0);
        while (inside_.load() != 0) std::this_thread::yield();
    }

private:
    T* items_[Cap] = {};
    std::atomic<unsigned> count_{0};
    std::atomic<unsigned> inside_{0};
};

}  // namespace op
