// Anything registered with the loop: a listener, a client or an upstream connection.
//
// Lifetime rule: nothing is destroyed inside its own callback. The EventLoop owns every
// Pollable it adopted; one that is done calls EventLoop::destroy_later(), which marks it
// closed (so events still queued for it in the current dispatch batch are skipped) and
// deletes it after the batch. Its destructor releases only what it holds itself (its
// socket and registration, a lookup it waits for), never calls into whoever it serves.
#pragma once

#include <cstdint>

namespace op {

class Pollable {
public:
    virtual ~Pollable() = default;
    // Level-triggered readiness (kReadable / kWritable bits).
    virtual void on_ready(unsigned ready) = 0;
    // deadline_ms passed (checked every EventLoop::kTickMs); the loop has reset it to 0.
    virtual void on_timeout() {}
    // Shutdown: close now if between exchanges; returns whether it did.
    virtual bool close_if_idle() { return false; }

    bool closed = false;
    std::int64_t deadline_ms = 0;  // 0 = no deadline

    // The loop's intrusive list of live Pollables (for deadlines and close_idle).
    Pollable* prev_live = nullptr;
    Pollable* next_live = nullptr;
};

}  // namespace op
