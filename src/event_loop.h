// One event loop: readiness dispatch, a wake-up other threads and signal handlers may
// send, coarse deadlines, and deferred destruction. It knows nothing of HTTP or of
// what its Pollables are; whoever runs it supplies the policy through LoopOwner.
//
// One turn of run():
//   wait for readiness (at most until the next tick)
//   if woken: owner.on_wake()
//   dispatch each event to its Pollable, skipping those closed earlier in the batch
//   delete what was closed (destroy_later)
//   every kTickMs: owner.on_tick(), then on_timeout() for each live Pollable whose
//     deadline passed, then delete what that closed
//   return 0 once owner.finished(); return 1 (after logging) if the backend fails
//
// Ownership: the loop owns every Pollable given to adopt(). It deletes one after the
// batch in which destroy_later() was called for it, and deletes the rest when the loop
// itself is destroyed. Not thread-safe, except wake().
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "pollable.h"
#include "poller.h"

namespace op {

// The policy of whoever runs the loop.
class LoopOwner {
public:
    virtual void on_wake() = 0;    // wake() was called since the last turn
    virtual void on_tick() = 0;    // every kTickMs, before deadlines are checked
    virtual bool finished() = 0;   // asked after every turn: true ends run() with 0

protected:
    ~LoopOwner() = default;
};

class EventLoop {
public:
    static constexpr int kTickMs = 250;  // deadline resolution

    // nullptr and `error` set when the OS refuses a poller (e.g. out of descriptors).
    static std::unique_ptr<EventLoop> create(std::string& error);
    ~EventLoop();
    EventLoop(const EventLoop&) = delete;
    EventLoop& operator=(const EventLoop&) = delete;

    // The time of the current turn (monotonic), read once per wait.
    std::int64_t now_ms() const { return now_ms_; }

    // Registration. add() and modify() return false when the OS refused (see poller.h):
    // the caller decides what that means for its connection, never ignores it.
    [[nodiscard]] bool add(SocketHandle s, Pollable* p, unsigned interest) { return poller_->add(s, p, interest); }
    [[nodiscard]] bool modify(SocketHandle s, Pollable* p, unsigned interest) {
        return poller_->modify(s, p, interest);
    }
    void remove(SocketHandle s) { poller_->remove(s); }
    void forget(SocketHandle s) { poller_->forget(s); }  // a connection's socket, closed next

    // Takes ownership of `p` and joins it to the live list (deadlines, close_idle()).
    void adopt(Pollable* p);
    // Marks p closed (events still queued for it in this batch are skipped) and deletes
    // it after the batch. Idempotent. The only way a Pollable ends while the loop runs.
    void destroy_later(Pollable* p);
    // Asks every live Pollable to close if it is between two pieces of work
    // (Pollable::close_if_idle), for a graceful stop.
    void close_idle();
    // Deletes every Pollable now: for the owner's destructor, before the services the
    // Pollables use go away.
    void destroy_all();

    // Thread-safe and async-signal-safe: the current or next wait returns, and the
    // owner's on_wake() runs on the loop thread.
    void wake() { poller_->wake(); }

    int run(LoopOwner& owner);

private:
    explicit EventLoop(std::unique_ptr<Poller> poller) : poller_(std::move(poller)) {}
    void check_deadlines();
    void reap();

    std::unique_ptr<Poller> poller_;
    Pollable* live_ = nullptr;  // intrusive list head
    std::vector<Pollable*> graveyard_;
    std::int64_t now_ms_ = 0;
};

}  // namespace op
