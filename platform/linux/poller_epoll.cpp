// Linux backend of platform/poller.h: level-triggered epoll, eventfd waker.
#include "poller.h"

#include <cerrno>
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
    EpollPoller() : epfd_(epoll_create1(EPOLL_CLOEXEC)) {}
    ~EpollPoller() override {
        if (epfd_ >= 0) ::close(epfd_);
    }
    bool ok() const { return epfd_ >= 0; }

    bool add(SocketHandle s, void* owner, unsigned interest) override { return ctl(EPOLL_CTL_ADD, s, owner, interest); }
    bool modify(SocketHandle s, void* owner, unsigned interest) override { return ctl(EPOLL_CTL_MOD, s, owner, interest); }
    void remove(SocketHandle s) override { epoll_ctl(epfd_, EPOLL_CTL_DEL, static_cast<int>(s), nullptr); }

    int wait(PollEvent* events, int cap, int timeout_ms) override {
        epoll_event raw[256];
        if (cap > 256) cap = 256;
        int n = epoll_wait(epfd_, raw, cap, timeout_ms);
        if (n < 0) return 0;  // EINTR: the caller re-checks its state
        for (int i = 0; i < n; ++i) {
            unsigned ready = 0;
            // Errors and hang-ups surface through the next read or write.
            if (raw[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) ready |= kReadable;
            if (raw[i].events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) ready |= kWritable;
            events[i].owner = raw[i].data.ptr;
            events[i].ready = ready;
        }
        return n;
    }

private:
    bool ctl(int op, SocketHandle s, void* owner, unsigned interest) {
        epoll_event ev{};
        ev.events = to_epoll(interest);
        ev.data.ptr = owner;
        return epoll_ctl(epfd_, op, static_cast<int>(s), &ev) == 0;
    }
    int epfd_;
};

class EventFdWaker final : public Waker {
public:
    EventFdWaker() : fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}
    ~EventFdWaker() override {
        if (fd_ >= 0) ::close(fd_);
    }
    SocketHandle handle() const override { return fd_; }
    void notify() override {
        std::uint64_t one = 1;
        ssize_t r = ::write(fd_, &one, sizeof one);
        (void)r;  // EAGAIN means a notification is already pending
    }
    void drain() override {
        std::uint64_t v;
        while (::read(fd_, &v, sizeof v) > 0) {
        }
    }

private:
    int fd_;
};

}  // namespace

std::unique_ptr<Poller> Poller::create() {
    auto p = std::make_unique<EpollPoller>();
    if (!p->ok()) return nullptr;
    return p;
}

std::unique_ptr<Waker> Waker::create() { return std::make_unique<EventFdWaker>(); }

}  // namespace op
