// Linux backend of platform/poller.h: level-triggered epoll; wake() writes an eventfd
// registered in the same epoll set. A socket whose interest is kNone is taken out of the
// set, because epoll reports EPOLLERR and EPOLLHUP whatever a registration asks for.
#include "poller.h"

#include <cerrno>
#include <cstring>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

namespace op {
namespace {

unsigned to_epoll(unsigned interest) {
    return ((interest & kReadable) ? EPOLLIN | EPOLLRDHUP : 0u) | ((interest & kWritable) ? EPOLLOUT : 0u);
}

class EpollPoller final : public Poller {
public:
    EpollPoller(int epfd, int wakefd) : epfd_(epfd), wakefd_(wakefd) {}
    ~EpollPoller() override {
        ::close(wakefd_);
        ::close(epfd_);
    }

    bool add(SocketHandle s, void* owner, unsigned interest) override {
        if (!ctl(EPOLL_CTL_ADD, s, owner, interest)) return false;
        return interest != kNone || ctl(EPOLL_CTL_DEL, s, owner, kNone);
    }
    bool modify(SocketHandle s, void* owner, unsigned interest) override {
        if (interest == kNone) return ctl(EPOLL_CTL_DEL, s, owner, kNone) || errno == ENOENT;
        // ENOENT: out of the set since an earlier kNone.
        return ctl(EPOLL_CTL_MOD, s, owner, interest) || (errno == ENOENT && ctl(EPOLL_CTL_ADD, s, owner, interest));
    }
    void remove(SocketHandle s) override { epoll_ctl(epfd_, EPOLL_CTL_DEL, static_cast<int>(s), nullptr); }
    // epoll(7): a registration ends when every descriptor of the open file is closed; our
    // connections have one. Events of this socket already taken by the current wait()
    // still arrive, as after remove(): their owner is destroyed only after the batch.
    void forget(SocketHandle) override {}

    void wake() override {
        std::uint64_t one = 1;
        ssize_t r = ::write(wakefd_, &one, sizeof one);
        (void)r;  // EAGAIN: the counter is saturated, so a wake-up is pending anyway
    }

    PollWait wait(PollEvent* events, int cap, int timeout_ms) override {
        epoll_event raw[256];
        if (cap > 256) cap = 256;
        PollWait out;
        int n = epoll_wait(epfd_, raw, cap, timeout_ms);
        // A signal interrupted the wait: its handler may have called wake(), which this
        // wait must report, so look once more without blocking.
        if (n < 0 && errno == EINTR) n = epoll_wait(epfd_, raw, cap, 0);
        if (n < 0) {
            if (errno != EINTR) out.error = errno;
            return out;
        }
        for (int i = 0; i < n; ++i) {
            if (raw[i].data.ptr == this) {  // the eventfd: see create()
                std::uint64_t v;
                while (::read(wakefd_, &v, sizeof v) > 0) {
                }
                out.woken = true;
                continue;
            }
            unsigned ready = 0;
            // Errors and hang-ups (EPOLLRDHUP: the peer closed; asked with kReadable)
            // surface through the next read or write, whichever the owner does.
            if (raw[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) ready |= kReadable;
            if (raw[i].events & (EPOLLOUT | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) ready |= kWritable;
            events[out.count].owner = raw[i].data.ptr;
            events[out.count].ready = ready;
            ++out.count;
        }
        return out;
    }

private:
    bool ctl(int op, SocketHandle s, void* owner, unsigned interest) {
        epoll_event ev{};
        ev.events = to_epoll(interest);
        ev.data.ptr = owner;
        return epoll_ctl(epfd_, op, static_cast<int>(s), &ev) == 0;
    }
    int epfd_;
    int wakefd_;
};

}  // namespace

std::unique_ptr<Poller> Poller::create(std::string& error) {
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) {
        error = std::string("epoll_create1: ") + std::strerror(errno);
        return nullptr;
    }
    int wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wakefd < 0) {
        error = std::string("eventfd: ") + std::strerror(errno);
        ::close(epfd);
        return nullptr;
    }
    auto p = std::make_unique<EpollPoller>(epfd, wakefd);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = p.get();  // no owner is the poller itself
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, wakefd, &ev) != 0) {
        error = std::string("epoll_ctl(eventfd): ") + std::strerror(errno);
        return nullptr;
    }
    return p;
}

}  // namespace op
