#include "event_loop.h"

#include <cassert>

#include "log.h"
#include "sys.h"

namespace op {

std::unique_ptr<EventLoop> EventLoop::create(std::string& error) {
    std::unique_ptr<Poller> poller = Poller::create(error);
    if (!poller) return nullptr;
    return std::unique_ptr<EventLoop>(new EventLoop(std::move(poller)));
}

EventLoop::~EventLoop() { destroy_all(); }

void EventLoop::destroy_all() {
    // Deleting a Pollable touches only its own socket and the services it was given.
    reap();
    while (live_) {
        Pollable* p = live_;
        live_ = p->next_live;
        delete p;
    }
}

void EventLoop::adopt(Pollable* p) {
    assert(p->next_live == nullptr && p->prev_live == nullptr && p != live_);  // adopted once
    p->next_live = live_;
    p->prev_live = nullptr;
    if (live_) live_->prev_live = p;
    live_ = p;
}

void EventLoop::destroy_later(Pollable* p) {
    if (p->closed) return;
    p->closed = true;
    graveyard_.push_back(p);
}

void EventLoop::reap() {
    for (Pollable* p : graveyard_) {
        if (p->prev_live) p->prev_live->next_live = p->next_live;
        else if (live_ == p) live_ = p->next_live;
        if (p->next_live) p->next_live->prev_live = p->prev_live;
        delete p;
    }
    graveyard_.clear();
}

void EventLoop::close_idle() {
    for (Pollable* p = live_; p; p = p->next_live)
        if (!p->closed) p->close_if_idle();
}

void EventLoop::check_deadlines() {
    for (Pollable* p = live_; p; p = p->next_live) {
        if (p->closed) continue;
        if (p->deadline_ms != 0 && p->deadline_ms <= now_ms_) {
            p->deadline_ms = 0;
            p->on_timeout();
        }
    }
}

int EventLoop::run(LoopOwner& owner) {
    PollEvent events[256];
    now_ms_ = sys::monotonic_ms();
    std::int64_t next_tick_ms = now_ms_ + kTickMs;
    for (;;) {
        int timeout = static_cast<int>(next_tick_ms - now_ms_);
        if (timeout < 0) timeout = 0;
        PollWait w = poller_->wait(events, 256, timeout);
        now_ms_ = sys::monotonic_ms();
        if (w.error != 0) {
            // The backend itself failed (an interruption is not an error): nothing can
            // be served by this loop any more.
            log_line("Error: event loop failed: %s", net::error_text(w.error).c_str());
            return 1;
        }
        if (w.woken) owner.on_wake();
        for (int i = 0; i < w.count; ++i) {
            auto* p = static_cast<Pollable*>(events[i].owner);
            if (!p->closed) p->on_ready(events[i].ready);  // closed earlier in this batch: skip
        }
        reap();
        if (now_ms_ >= next_tick_ms) {
            owner.on_tick();
            check_deadlines();
            reap();
            next_tick_ms = now_ms_ + kTickMs;
        }
        if (owner.finished()) return 0;
    }
}

}  // namespace op
