// Windows backend of platform/poller.h: an I/O completion port, with readiness asked of
// the AFD driver (the kernel side of Winsock) through IOCTL_AFD_POLL, the approach of
// wepoll and of libuv's poll handles.
//
// Why AFD and not WSAPoll or select: those scan every socket on every call and cap
// nothing well at thousands of connections; a completion port returns only what
// happened. But a port reports completed I/O, not readiness, and Winsock has no
// readiness operation to complete on it. AFD has one: IOCTL_AFD_POLL, issued on a
// handle to the \Device\Afd driver associated with the port, completes (a packet on
// the port) as soon as one of the asked events holds for the socket, at once if it
// already does. It is undocumented but stable since Windows XP, and what every
// readiness library on Windows builds on.
//
// How that becomes level-triggered (poller.h): one poll at most in flight per socket;
// when its packet is dequeued, its events are reported (as the interest filters them)
// and the socket is queued to be polled again at the start of the next wait(). A socket
// that is still readable then completes that new poll at once and is reported again, as
// epoll reports it again. modify() only queues the socket: the poll in flight is kept
// when it watches every event now asked (what it reports beyond is filtered out), and
// cancelled otherwise, the new poll following its cancellation's packet.
//
// remove(): the kernel writes into a poll's status block until its packet is queued, so
// the per-socket state outlives remove() while a poll is in flight: it is marked
// removed, its poll cancelled, and it is freed when its packet comes, reporting
// nothing. wake(): a packet of its own posted with PostQueuedCompletionStatus.
#include "poller.h"

#include <winsock2.h>
#include <mswsock.h>
#include <windows.h>
#include <winternl.h>

#include <atomic>
#include <cstdint>
#include <unordered_map>
#include <vector>

// Exported by ntdll since Vista, declared by the DDK but not by mingw's winternl.h.
extern "C" NTSTATUS NTAPI NtCancelIoFileEx(HANDLE file, PIO_STATUS_BLOCK request, PIO_STATUS_BLOCK status);

namespace op {
namespace {

// The AFD poll interface (ReactOS's and Wine's afd headers name the same values).
constexpr ULONG kIoctlAfdPoll = 0x00012024;
constexpr ULONG kAfdPollReceive = 0x0001;      // data to read
constexpr ULONG kAfdPollSend = 0x0004;         // room to write
constexpr ULONG kAfdPollDisconnect = 0x0008;   // the peer's FIN
constexpr ULONG kAfdPollAbort = 0x0010;        // reset
constexpr ULONG kAfdPollLocalClose = 0x0020;   // this socket was closed
constexpr ULONG kAfdPollAccept = 0x0080;       // a connection to accept
constexpr ULONG kAfdPollConnectFail = 0x0100;  // a non-blocking connect failed

struct AfdPollHandleInfo {
    HANDLE handle;
    ULONG events;
    NTSTATUS status;
};

struct AfdPollInfo {
    LARGE_INTEGER timeout;
    ULONG number_of_handles;
    ULONG exclusive;
    AfdPollHandleInfo handles[1];
};

constexpr NTSTATUS kStatusPending = 0x00000103;
constexpr NTSTATUS kStatusCancelled = static_cast<NTSTATUS>(0xC0000120);

constexpr ULONG_PTR kPollKey = 0;  // packets of AFD polls
constexpr ULONG_PTR kWakeKey = 1;  // wake()'s packet

// What to ask AFD for: errors always (they are reported whatever the interest beyond
// kNone); the peer's close with kReadable, which then reports it readable and writable.
ULONG afd_events(unsigned interest) {
    ULONG ev = kAfdPollAbort | kAfdPollConnectFail | kAfdPollLocalClose;
    if (interest & kReadable) ev |= kAfdPollReceive | kAfdPollAccept | kAfdPollDisconnect;
    if (interest & kWritable) ev |= kAfdPollSend;
    return ev;
}

// One registered socket.
struct SockState {
    IO_STATUS_BLOCK iosb{};  // the poll in flight's status, written by the kernel
    AfdPollInfo info{};      // its input and output, likewise
    HANDLE base = nullptr;   // the base provider's socket, the one AFD knows
    SocketHandle socket = kInvalidSocket;
    void* owner = nullptr;
    unsigned interest = kNone;
    ULONG polled_events = 0;  // what the poll in flight asks
    bool in_flight = false;   // a poll was issued and its packet not yet dequeued
    bool cancelling = false;  // NtCancelIoFileEx was called on it
    bool queued = false;      // in the update list, to be (re)polled by the next wait()
    bool removed = false;     // remove() was called: freed once neither in flight nor queued
};

class IocpPoller final : public Poller {
public:
    IocpPoller(HANDLE port, HANDLE afd) : port_(port), afd_(afd) {}

    ~IocpPoller() override {
        // Polls still in flight must finish before their states are freed: all are
        // cancelled, and their packets drained for a while. A state whose packet does
        // not come is leaked rather than freed under the kernel.
        std::size_t in_flight = 0;
        for (auto& [s, st] : sockets_) {
            st->removed = true;
            if (st->in_flight) ++in_flight;
        }
        for (SockState* st : zombies_) in_flight += st->in_flight ? 1 : 0;
        if (in_flight > 0) NtCancelIoFileEx(afd_, nullptr, &cancel_iosb_);  // every request of this handle
        std::int64_t deadline = static_cast<std::int64_t>(GetTickCount64()) + 1000;
        while (in_flight > 0) {
            OVERLAPPED_ENTRY entries[64];
            ULONG n = 0;
            std::int64_t left = deadline - static_cast<std::int64_t>(GetTickCount64());
            if (left <= 0 || !GetQueuedCompletionStatusEx(port_, entries, 64, &n, static_cast<DWORD>(left), FALSE))
                break;
            for (ULONG i = 0; i < n; ++i) {
                if (entries[i].lpCompletionKey != kPollKey) continue;
                static_cast<SockState*>(static_cast<void*>(entries[i].lpOverlapped))->in_flight = false;
                --in_flight;
            }
        }
        for (auto& [s, st] : sockets_)
            if (!st->in_flight) delete st;
        for (SockState* st : zombies_)
            if (!st->in_flight) delete st;
        CloseHandle(afd_);
        CloseHandle(port_);
    }

    bool add(SocketHandle s, void* owner, unsigned interest) override {
        if (sockets_.count(s)) return false;  // as epoll's EEXIST
        HANDLE base = base_handle(s);
        if (!base) return false;  // not a socket (closed, say)
        auto* st = new SockState;
        st->base = base;
        st->socket = s;
        st->owner = owner;
        st->interest = interest;
        // The first poll starts now rather than with the next wait(), so that a handle
        // AFD refuses (not a socket, or closed: Wine's SIO_BASE_HANDLE does not check)
        // makes add() say false, as epoll_ctl does. It is reported by the next wait().
        bool ok = interest == kNone ? is_socket(s) : start_poll(st);
        if (!ok) {
            delete st;
            return false;
        }
        sockets_.emplace(s, st);
        return true;
    }

    bool modify(SocketHandle s, void* owner, unsigned interest) override {
        auto it = sockets_.find(s);
        if (it == sockets_.end()) return false;  // never added, or removed: as epoll's ENOENT
        SockState* st = it->second;
        st->owner = owner;
        st->interest = interest;
        enqueue(st);
        return true;
    }

    void remove(SocketHandle s) override {
        auto it = sockets_.find(s);
        if (it == sockets_.end()) return;
        SockState* st = it->second;
        sockets_.erase(it);
        st->removed = true;
        // Cancelled so that its packet comes soon (the socket's close would also end
        // it, with kAfdPollLocalClose); the state waits for it among the zombies.
        if (st->in_flight && !st->cancelling) {
            NtCancelIoFileEx(afd_, &st->iosb, &cancel_iosb_);
            st->cancelling = true;
        }
        if (st->in_flight || st->queued) {
            zombies_.push_back(st);
        } else {
            delete st;
        }
    }

    void wake() override {
        // One packet for any number of wake-ups until a wait() takes it (coalescing,
        // and the port's queue never grows with them).
        if (!wake_posted_.exchange(true)) PostQueuedCompletionStatus(port_, 0, kWakeKey, nullptr);
    }

    PollWait wait(PollEvent* events, int cap, int timeout_ms) override {
        PollWait out;
        const std::int64_t start = static_cast<std::int64_t>(GetTickCount64());
        for (;;) {
            submit_updates(events, cap, out);
            DWORD ms = INFINITE;
            if (out.count > 0) {
                ms = 0;  // a poll that failed to start is reported now: only collect what is there
            } else if (timeout_ms >= 0) {
                std::int64_t left = start + timeout_ms - static_cast<std::int64_t>(GetTickCount64());
                ms = left > 0 ? static_cast<DWORD>(left) : 0;
            }
            OVERLAPPED_ENTRY entries[256];
            ULONG room = static_cast<ULONG>(cap - out.count);
            if (room > 256) room = 256;
            ULONG n = 0;
            if (room > 0 && !GetQueuedCompletionStatusEx(port_, entries, room, &n, ms, FALSE)) {
                DWORD e = GetLastError();
                // WAIT_TIMEOUT: nothing came in time. WAIT_IO_COMPLETION cannot happen
                // (not alertable) but is no failure either.
                if (e != WAIT_TIMEOUT && e != WAIT_IO_COMPLETION) {
                    out.error = static_cast<int>(e);
                    out.count = 0;
                    return out;
                }
                n = 0;
            }
            for (ULONG i = 0; i < n; ++i) {
                if (entries[i].lpCompletionKey == kWakeKey) {
                    // Cleared before it is reported: a wake() from now on posts again
                    // and reaches the next wait.
                    wake_posted_.store(false);
                    out.woken = true;
                    continue;
                }
                completed(static_cast<SockState*>(static_cast<void*>(entries[i].lpOverlapped)), events, out);
            }
            if (out.count > 0 || out.woken || timeout_ms == 0) return out;
            // Only packets that report nothing came (cancellations, events the interest
            // no longer asks for): the wait goes on for the rest of its time, after the
            // sockets they concern are polled again.
            if (timeout_ms > 0 && static_cast<std::int64_t>(GetTickCount64()) - start >= timeout_ms) return out;
        }
    }

private:
    // SIO_BASE_HANDLE gives the socket of the base provider, under any layered service
    // providers (LSPs) installed over it: AFD only knows that one. When an LSP refuses
    // it, SIO_BSP_HANDLE_POLL asks that LSP for the handle meant for polling. nullptr if
    // `s` is not a socket.
    static HANDLE base_handle(SocketHandle s) {
        for (DWORD ioctl : {static_cast<DWORD>(SIO_BASE_HANDLE), static_cast<DWORD>(SIO_BSP_HANDLE_POLL)}) {
            SOCKET base = INVALID_SOCKET;
            DWORD bytes = 0;
            if (WSAIoctl(static_cast<SOCKET>(s), ioctl, nullptr, 0, &base, sizeof base, &bytes, nullptr, nullptr) == 0 &&
                base != INVALID_SOCKET)
                return reinterpret_cast<HANDLE>(base);
            if (WSAGetLastError() == WSAENOTSOCK) return nullptr;  // no point asking again
        }
        return nullptr;
    }

    // For add() with kNone, which starts no poll: whether `s` is an open socket.
    static bool is_socket(SocketHandle s) {
        int type = 0;
        int len = sizeof type;
        return getsockopt(static_cast<SOCKET>(s), SOL_SOCKET, SO_TYPE, reinterpret_cast<char*>(&type), &len) == 0;
    }

    void enqueue(SockState* st) {
        if (st->queued) return;
        st->queued = true;
        updates_.push_back(st);
    }

    // Issues the poll for `st`'s interest. false when AFD refuses it outright (then no
    // packet will come).
    bool start_poll(SockState* st) {
        const ULONG want = afd_events(st->interest);
        st->info.timeout.QuadPart = INT64_MAX;  // never: the poll ends by an event or a cancel
        st->info.number_of_handles = 1;
        st->info.exclusive = FALSE;  // other pollers (workers sharing a listener) poll the same socket
        st->info.handles[0].handle = st->base;
        st->info.handles[0].events = want;
        st->info.handles[0].status = 0;
        st->iosb.Status = kStatusPending;
        // The state's address rides on the packet as its lpOverlapped (ApcContext).
        NTSTATUS rc = NtDeviceIoControlFile(afd_, nullptr, nullptr, st, &st->iosb, kIoctlAfdPoll, &st->info,
                                            sizeof st->info, &st->info, sizeof st->info);
        if (rc != kStatusPending && !NT_SUCCESS(rc)) return false;
        // Pending, or done already (a socket ready now): either way a packet comes.
        st->in_flight = true;
        st->cancelling = false;
        st->polled_events = want;
        return true;
    }

    // Frees a removed state once the kernel and the update list are done with it.
    void release_if_done(SockState* st) {
        if (!st->removed || st->in_flight || st->queued) return;
        for (auto it = zombies_.begin(); it != zombies_.end(); ++it) {
            if (*it == st) {
                *it = zombies_.back();
                zombies_.pop_back();
                break;
            }
        }
        delete st;
    }

    // Starts the polls the update list asks for. A poll that fails to start (the socket
    // is no longer one AFD knows: closed without remove()) is reported as an error,
    // readable and writable, so that the owner's next call surfaces it.
    void submit_updates(PollEvent* events, int cap, PollWait& out) {
        std::vector<SockState*> list;
        list.swap(updates_);
        for (SockState* st : list) {
            st->queued = false;
            if (st->removed) {
                release_if_done(st);
                continue;
            }
            // kNone: no poll. One in flight is left to finish; it reports nothing then
            // (completed() filters by the interest) and is not renewed.
            if (st->interest == kNone) continue;
            if (st->in_flight) {
                const ULONG want = afd_events(st->interest);
                // The poll in flight watches every event now asked: kept; what it may
                // report beyond them is filtered out when it completes.
                if ((want & ~st->polled_events) == 0) continue;
                // It misses one: cancelled, and its packet (cancelled or not) brings
                // the socket back here for a poll with the new events.
                if (!st->cancelling) {
                    NtCancelIoFileEx(afd_, &st->iosb, &cancel_iosb_);
                    st->cancelling = true;
                }
                continue;
            }
            if (start_poll(st)) continue;
            if (out.count < cap) {  // failed outright: no packet will come
                events[out.count].owner = st->owner;
                events[out.count].ready = kReadable | kWritable;
                ++out.count;
            }
            enqueue_later_.push_back(st);
        }
        // Failed sockets are tried again by the next wait (level-triggered: the error
        // stays until the owner removes the socket).
        for (SockState* st : enqueue_later_) enqueue(st);
        enqueue_later_.clear();
    }

    // A poll's packet was dequeued: reports what it found, as the interest filters it,
    // and queues the socket to be polled again.
    void completed(SockState* st, PollEvent* events, PollWait& out) {
        st->in_flight = false;
        st->cancelling = false;
        if (st->removed) {  // a late packet for a removed socket: dropped (poller.h)
            release_if_done(st);
            return;
        }
        unsigned ready = kNone;
        const NTSTATUS status = st->iosb.Status;
        if (status == kStatusCancelled) {
            // Cancelled by modify() for other events: nothing to report.
        } else if (!NT_SUCCESS(status)) {
            // AFD failed the poll itself (the socket went away under it): an error.
            ready = kReadable | kWritable;
        } else if (st->info.number_of_handles >= 1) {
            const ULONG ev = st->info.handles[0].events;
            if (ev & kAfdPollLocalClose) {
                // Closed without remove(): nothing more will ever come for it. Forgotten,
                // as epoll forgets a closed descriptor (unless the handle's value already
                // names a new socket, registered since).
                auto it = sockets_.find(st->socket);
                if (it != sockets_.end() && it->second == st) sockets_.erase(it);
                st->removed = true;
                zombies_.push_back(st);
                release_if_done(st);
                return;
            }
            if (ev & (kAfdPollAbort | kAfdPollConnectFail)) ready |= kReadable | kWritable;  // reset, failed connect
            if ((ev & kAfdPollDisconnect) && (st->interest & kReadable)) ready |= kReadable | kWritable;  // peer's FIN
            if ((ev & (kAfdPollReceive | kAfdPollAccept)) && (st->interest & kReadable)) ready |= kReadable;
            if ((ev & kAfdPollSend) && (st->interest & kWritable)) ready |= kWritable;
        }
        if (st->interest == kNone) return;  // reports nothing at all, and is not polled again
        enqueue(st);
        if (ready == kNone) return;
        events[out.count].owner = st->owner;
        events[out.count].ready = ready;
        ++out.count;
    }

    HANDLE port_;
    HANDLE afd_;
    std::atomic<bool> wake_posted_{false};
    std::unordered_map<SocketHandle, SockState*> sockets_;
    std::vector<SockState*> updates_;        // to be polled by the next wait()
    std::vector<SockState*> enqueue_later_;  // scratch for submit_updates()
    std::vector<SockState*> zombies_;        // removed, waiting for their packet
    IO_STATUS_BLOCK cancel_iosb_{};          // NtCancelIoFileEx's own status (unused)
};

// A handle to the AFD driver for polling: any name under \Device\Afd opens it.
HANDLE open_afd(NTSTATUS& status) {
    static const wchar_t kName[] = L"\\Device\\Afd\\OpenAiProxy";
    UNICODE_STRING name;
    name.Buffer = const_cast<wchar_t*>(kName);
    name.Length = sizeof kName - sizeof kName[0];
    name.MaximumLength = sizeof kName;
    OBJECT_ATTRIBUTES attributes;
    InitializeObjectAttributes(&attributes, &name, 0, nullptr, nullptr);
    IO_STATUS_BLOCK iosb;
    HANDLE afd = nullptr;
    status = NtCreateFile(&afd, SYNCHRONIZE, &attributes, &iosb, nullptr, 0, FILE_SHARE_READ | FILE_SHARE_WRITE,
                          FILE_OPEN, 0, nullptr, 0);
    return NT_SUCCESS(status) ? afd : nullptr;
}

}  // namespace

std::unique_ptr<Poller> Poller::create(std::string& error) {
    HANDLE port = CreateIoCompletionPort(INVALID_HANDLE_VALUE, nullptr, 0, 1);  // one thread waits on it
    if (!port) {
        error = "CreateIoCompletionPort: " + net::error_text(static_cast<int>(GetLastError()));
        return nullptr;
    }
    NTSTATUS status = 0;
    HANDLE afd = open_afd(status);
    if (!afd) {
        error = "cannot open \\Device\\Afd: " + net::error_text(static_cast<int>(RtlNtStatusToDosError(status)));
        CloseHandle(port);
        return nullptr;
    }
    if (!CreateIoCompletionPort(afd, port, kPollKey, 0)) {
        error = "CreateIoCompletionPort(\\Device\\Afd): " + net::error_text(static_cast<int>(GetLastError()));
        CloseHandle(afd);
        CloseHandle(port);
        return nullptr;
    }
    // Completions are taken from the port only: the kernel need not also signal the
    // AFD handle as an event object on each one.
    SetFileCompletionNotificationModes(afd, FILE_SKIP_SET_EVENT_ON_HANDLE);
    return std::make_unique<IocpPoller>(port, afd);
}

}  // namespace op
