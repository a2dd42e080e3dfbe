// macOS and BSD backend of platform/poller.h: kqueue.
//
// Every registered socket has both filters, EVFILT_READ and EVFILT_WRITE, at all times,
// each enabled or disabled by the interest: no per-socket state is kept here, and with
// kNone both are disabled, so nothing at all is reported (a disabled filter reports
// neither data nor EV_EOF). Neither filter has EV_CLEAR: kqueue then re-checks the
// socket at every kevent() and reports it for as long as it stays ready (level-
// triggered, like epoll without EPOLLET).
//
// Interest changes are applied at once, not batched into the next wait: add() and
// modify() must say whether the OS took them, and a change batched into the wait could
// only fail there, with no caller to tell. Both filters go in one kevent() call; with
// EV_RECEIPT each change comes back as its own result (data: 0 or an errno), so a
// failure of the first does not skip the second, and no pending event is taken off the
// queue by these calls (every output slot holds a receipt).
//
// What kqueue reports, translated (kqueue(2)): EV_EOF on EVFILT_READ is the peer's close
// (FIN) or a reset, on EVFILT_WRITE a connection that can send no more (reset, or an
// error), both reported as readable and writable so that the owner's next read or write
// gives Eof or Error. A FIN alone does not set EV_EOF on EVFILT_WRITE: with kWritable
// only, the socket just stays writable, as the contract says. The two filters of one
// socket come back as two kevents; they are merged into one PollEvent per owner.
//
// wake(): EVFILT_USER with EV_CLEAR, triggered with NOTE_TRIGGER (one kevent() call,
// which is thread-safe and makes no allocation: fine in a signal handler). Any number of
// triggers before a wait are reported once. Where EVFILT_USER does not exist (OpenBSD),
// a non-blocking pipe watched with EVFILT_READ does the same.
#include "poller.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/event.h>
#include <sys/time.h>
#include <sys/types.h>
#include <unistd.h>

namespace op {
namespace {

#ifdef EVFILT_USER
// The identifier of the wake-up event (EVFILT_USER has its own name space).
constexpr uintptr_t kWakeIdent = 0;
#endif

// kevent's udata is a pointer on macOS and FreeBSD but intptr_t on NetBSD before 10.
template <class U>
U to_udata(void* p) {
    return (U)(p);
}

void set_change(struct kevent& ev, int fd, short filter, unsigned short flags, void* owner) {
    EV_SET(&ev, static_cast<uintptr_t>(fd), filter, flags, 0, 0,
           to_udata<decltype(ev.udata)>(owner));
}

class KqueuePoller final : public Poller {
public:
    KqueuePoller(int kq, int pipe_read, int pipe_write) : kq_(kq), pipe_read_(pipe_read), pipe_write_(pipe_write) {}
    ~KqueuePoller() override {
        if (pipe_read_ >= 0) ::close(pipe_read_);
        if (pipe_write_ >= 0) ::close(pipe_write_);
        ::close(kq_);
    }

    bool add(SocketHandle s, void* owner, unsigned interest) override {
        if (apply(static_cast<int>(s), owner, interest)) return true;
        remove(s);  // one filter may have been taken: the socket is then not registered
        return false;
    }
    bool modify(SocketHandle s, void* owner, unsigned interest) override {
        return apply(static_cast<int>(s), owner, interest);
    }
    // kqueue(2): closing a descriptor removes every kevent that refers to it, pending
    // activations included.
    void forget(SocketHandle) override {}
    void remove(SocketHandle s) override {
        // Deleting a knote also takes its pending activation off the queue: no later
        // kevent() reports it. ENOENT (never added, or a failed add) is no error here.
        struct kevent changes[2];
        set_change(changes[0], static_cast<int>(s), EVFILT_READ, EV_DELETE, nullptr);
        set_change(changes[1], static_cast<int>(s), EVFILT_WRITE, EV_DELETE, nullptr);
        int results[2];
        submit(changes, results);
    }

    void wake() override {
        int saved = errno;  // a signal handler must leave errno as it found it
        if (pipe_write_ >= 0) {
            char one = 1;
            ssize_t r = ::write(pipe_write_, &one, 1);
            (void)r;  // EAGAIN: the pipe is full, so a wake-up is pending anyway
        } else {
#ifdef EVFILT_USER
            struct kevent ev;
            EV_SET(&ev, kWakeIdent, EVFILT_USER, 0, NOTE_TRIGGER, 0, to_udata<decltype(ev.udata)>(nullptr));
            // No output slots and a zero timeout: the change is applied, nothing waited for.
            const timespec zero{};
            ::kevent(kq_, &ev, 1, nullptr, 0, &zero);
#endif
        }
        errno = saved;
    }

    PollWait wait(PollEvent* events, int cap, int timeout_ms) override {
        struct kevent raw[256];
        if (cap > 256) cap = 256;
        PollWait out;
        if (cap <= 0) return out;
        timespec ts{};
        timespec* timeout = nullptr;
        if (timeout_ms >= 0) {
            ts.tv_sec = timeout_ms / 1000;
            ts.tv_nsec = static_cast<long>(timeout_ms % 1000) * 1000000L;
            timeout = &ts;
        }
        int n = ::kevent(kq_, nullptr, 0, raw, cap, timeout);
        // A signal interrupted the wait: its handler may have called wake(), which this
        // wait must report, so look once more without blocking.
        if (n < 0 && errno == EINTR) {
            timespec zero{};
            n = ::kevent(kq_, nullptr, 0, raw, cap, &zero);
        }
        if (n < 0) {
            if (errno != EINTR) out.error = errno;
            return out;
        }
        for (int i = 0; i < n; ++i) {
            const struct kevent& ev = raw[i];
            if (is_wake(ev)) {
                if (pipe_read_ >= 0) {
                    char buf[64];
                    while (::read(pipe_read_, buf, sizeof buf) > 0) {
                    }
                }
                out.woken = true;
                continue;
            }
            unsigned ready = 0;
            if (ev.filter == EVFILT_READ) ready |= kReadable;
            if (ev.filter == EVFILT_WRITE) ready |= kWritable;
            // The peer's close, a reset, an error: the next read or write tells which.
            if (ev.flags & (EV_EOF | EV_ERROR)) ready |= kReadable | kWritable;
            void* owner = (void*)(ev.udata);
            // The other filter of the same socket, earlier in this batch: one event.
            int j = 0;
            while (j < out.count && events[j].owner != owner) ++j;
            if (j == out.count) {
                events[j].owner = owner;
                events[j].ready = 0;
                ++out.count;
            }
            events[j].ready |= ready;
        }
        return out;
    }

private:
    bool is_wake(const struct kevent& ev) const {
        if (pipe_read_ >= 0) return ev.filter == EVFILT_READ && ev.ident == static_cast<uintptr_t>(pipe_read_);
#ifdef EVFILT_USER
        return ev.filter == EVFILT_USER;
#else
        return false;
#endif
    }

    // Both filters of `fd`, each enabled or disabled by the interest, with `owner` as
    // udata (EV_ADD on a filter already there updates it: the owner may change).
    bool apply(int fd, void* owner, unsigned interest) {
        struct kevent changes[2];
        unsigned short read_on = (interest & kReadable) ? EV_ENABLE : EV_DISABLE;
        unsigned short write_on = (interest & kWritable) ? EV_ENABLE : EV_DISABLE;
        set_change(changes[0], fd, EVFILT_READ, static_cast<unsigned short>(EV_ADD | read_on), owner);
        set_change(changes[1], fd, EVFILT_WRITE, static_cast<unsigned short>(EV_ADD | write_on), owner);
        int results[2];
        submit(changes, results);
        if (results[0] == 0 && results[1] == 0) return true;
        errno = results[0] != 0 ? results[0] : results[1];
        return false;
    }

    // Applies two changes, each on its own even when the other fails; results[i] is 0 or
    // the errno of change i.
    void submit(struct kevent (&changes)[2], int (&results)[2]) {
#ifdef EV_RECEIPT
        for (struct kevent& c : changes) c.flags |= EV_RECEIPT;
        struct kevent receipts[2];
        timespec zero{};
        int n = ::kevent(kq_, changes, 2, receipts, 2, &zero);
        if (n < 0) {
            results[0] = results[1] = errno;
            return;
        }
        results[0] = results[1] = EINVAL;  // no receipt: treat as refused
        for (int i = 0; i < n; ++i) {
            if (!(receipts[i].flags & EV_ERROR)) continue;  // not a receipt (cannot happen)
            int k = receipts[i].filter == changes[0].filter ? 0 : 1;
            results[k] = static_cast<int>(receipts[i].data);
        }
#else
        // One call per change: without receipts, a failed change ends the call.
        const timespec zero{};
        for (int i = 0; i < 2; ++i)
            results[i] = ::kevent(kq_, &changes[i], 1, nullptr, 0, &zero) == 0 ? 0 : errno;
#endif
    }

    int kq_;
    int pipe_read_;   // -1 with EVFILT_USER
    int pipe_write_;  // -1 with EVFILT_USER
};

bool set_cloexec(int fd) { return fcntl(fd, F_SETFD, FD_CLOEXEC) == 0; }

#ifndef EVFILT_USER
bool set_nonblock(int fd) {
    int flags = fcntl(fd, F_GETFL, 0);
    return flags >= 0 && fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0;
}
#endif

}  // namespace

std::unique_ptr<Poller> Poller::create(std::string& error) {
    int kq = ::kqueue();
    if (kq < 0 || !set_cloexec(kq)) {
        error = std::string("kqueue: ") + std::strerror(errno);
        if (kq >= 0) ::close(kq);
        return nullptr;
    }
    struct kevent ev;
    const timespec zero{};  // registration only: never wait
#ifdef EVFILT_USER
    EV_SET(&ev, kWakeIdent, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, to_udata<decltype(ev.udata)>(nullptr));
    if (::kevent(kq, &ev, 1, nullptr, 0, &zero) != 0) {
        error = std::string("kevent(EVFILT_USER): ") + std::strerror(errno);
        ::close(kq);
        return nullptr;
    }
    return std::make_unique<KqueuePoller>(kq, -1, -1);
#else
    int fds[2];
    if (::pipe(fds) != 0) {
        error = std::string("pipe: ") + std::strerror(errno);
        ::close(kq);
        return nullptr;
    }
    auto p = std::make_unique<KqueuePoller>(kq, fds[0], fds[1]);  // closes all three
    if (!set_cloexec(fds[0]) || !set_cloexec(fds[1]) || !set_nonblock(fds[0]) || !set_nonblock(fds[1])) {
        error = std::string("fcntl(wake-up pipe): ") + std::strerror(errno);
        return nullptr;
    }
    EV_SET(&ev, static_cast<uintptr_t>(fds[0]), EVFILT_READ, EV_ADD, 0, 0, to_udata<decltype(ev.udata)>(nullptr));
    if (::kevent(kq, &ev, 1, nullptr, 0, &zero) != 0) {
        error = std::string("kevent(wake-up pipe): ") + std::strerror(errno);
        return nullptr;
    }
    return p;
#endif
}

}  // namespace op
