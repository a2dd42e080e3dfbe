// The event-loop backend contract: level-triggered readiness on sockets, and a wake-up
// that another thread or a signal handler can send.
//
// One implementation per OS, one file each, chosen by the build (platform/README.md).
// Every backend keeps these promises, and tests/unit/test_poller.cpp checks them on each
// backend the build has:
//   - Level-triggered: a socket that is readable (or writable) is reported by every
//     wait() while it stays so and its interest includes that bit.
//   - modify() changes the interest at once: the next wait() reports only what is asked;
//     with kNone, nothing at all, not even an error.
//   - An error, a reset or the peer's close is reported as readable and writable, so that
//     the owner's next read or write surfaces it as a value: an error or a reset whatever
//     the interest beyond kNone, the peer's close (end of stream) when the interest
//     includes kReadable (with kWritable alone the socket just stays writable: a peer
//     that closed its sending side may still be reading).
//   - A wait() that a signal interrupts still reports a wake() made by its handler.
//   - After remove() returns, no later wait() reports that owner, even where the OS
//     delivers cancellations late (completion ports): the backend drops them.
//   - wake() makes the wait() in progress, or the next one, return with woken set.
//     Wake-ups coalesce: several before one wait() are reported once.
// Errors are values: add()/modify() say whether the OS took the change, and wait()
// returns a failure of the backend itself (never an interruption by a signal, which is
// a return with no events) as an error code for the loop to log and act on.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "socket.h"

namespace op {

enum Interest : unsigned { kNone = 0, kReadable = 1, kWritable = 2 };

struct PollEvent {
    void* owner = nullptr;   // the pointer registered with the socket
    unsigned ready = kNone;  // kReadable | kWritable
};

struct PollWait {
    int count = 0;       // events filled in
    bool woken = false;  // wake() was called since the last wait() that said so
    int error = 0;       // non-zero: the backend failed (platform error code); count is 0
};

class Poller {
public:
    // nullptr and `error` set when the OS refuses (e.g. out of descriptors).
    static std::unique_ptr<Poller> create(std::string& error);
    virtual ~Poller() = default;

    // Registers `s` with the given interest; `owner` comes back in PollEvent. false when
    // the OS refused (the socket is then not registered).
    virtual bool add(SocketHandle s, void* owner, unsigned interest) = 0;
    // false when the OS refused; the previous interest may still be in force.
    virtual bool modify(SocketHandle s, void* owner, unsigned interest) = 0;
    // Must be called before the socket is closed.
    virtual void remove(SocketHandle s) = 0;
    // Instead of remove(), when the socket is closed right after and this process holds
    // no other descriptor of it (no dup(), no fork()): connections, not listeners. Where
    // the last close ends the registration by itself (epoll, kqueue), no system call is
    // made, as nginx does; one system call fewer at every close, and none between a
    // client leaving and the upstream's close.
    virtual void forget(SocketHandle s) { remove(s); }

    // Thread-safe and async-signal-safe.
    virtual void wake() = 0;

    // Waits up to timeout_ms (-1: forever) and fills at most `cap` events.
    virtual PollWait wait(PollEvent* events, int cap, int timeout_ms) = 0;
};

}  // namespace op
