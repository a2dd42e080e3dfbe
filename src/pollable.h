// Anything registered with the loop: a listener, a client or an upstream connection.
//
// Lifetime rule: nothing is destroyed inside its own callback. A Pollable that is done
// calls Server::destroy_later(), which marks it closed (so events still queued for it
// in the current dispatch batch are skipped) and deletes it after the batch.
#pragma once

#include <cstdint>

namespace op {

class Pollable {
public:
    virtual ~Pollable() = default;
    // Level-triggered readiness (kReadable / kWritable bits).
    virtual void on_ready(unsigned ready) = 0;
    // deadline_ms passed (checked a few times a second by the loop).
    virtual void on_timeout() {}
    // Shutdown: close now if between exchanges; returns whether it did.
    virtual bool close_if_idle() { return false; }

    bool closed = false;
    std::int64_t deadline_ms = 0;  // 0 = no deadline

    // Intrusive registry of live Pollables (for deadlines and shutdown).
    Pollable* prev_live = nullptr;
    Pollable* next_live = nullptr;
};

}  // namespace op
