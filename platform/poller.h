// The event-loop backend contract: level-triggered readiness on sockets.
//
// One implementation per OS, one file each, chosen by the build:
//   platform/linux/poller_epoll.cpp   (Linux, epoll)
//   kqueue (BSD/macOS) and IOCP+AFD poll (Windows) fit the same contract.
// Backends only translate: an error or hang-up is reported as readable and writable,
// so the owner's next read or write surfaces it as a value.
#pragma once

#include <cstdint>
#include <memory>

#include "socket.h"

namespace op {

enum Interest : unsigned { kNone = 0, kReadable = 1, kWritable = 2 };

struct PollEvent {
    void* owner = nullptr;   // the pointer registered with the socket
    unsigned ready = kNone;  // kReadable | kWritable
};

class Poller {
public:
    static std::unique_ptr<Poller> create();
    virtual ~Poller() = default;

    // Registers `s` with the given interest; `owner` comes back in PollEvent.
    virtual bool add(SocketHandle s, void* owner, unsigned interest) = 0;
    virtual bool modify(SocketHandle s, void* owner, unsigned interest) = 0;
    // Must be called before the socket is closed.
    virtual void remove(SocketHandle s) = 0;

    // Waits up to timeout_ms (-1: forever) and fills at most `cap` events.
    // Returns the count (0 on timeout or interruption by a signal).
    virtual int wait(PollEvent* events, int cap, int timeout_ms) = 0;
};

// Wakes a Poller::wait() from another thread (resolver results, signals).
// Registered with the poller like a socket; readable once notify() was called.
class Waker {
public:
    static std::unique_ptr<Waker> create();
    virtual ~Waker() = default;
    virtual SocketHandle handle() const = 0;
    virtual void notify() = 0;   // async-signal-safe and thread-safe
    virtual void drain() = 0;    // consumes pending notifications
};

}  // namespace op
