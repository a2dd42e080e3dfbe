// BSD and macOS part of the sockets (platform/posix/socket_os.h). macOS has neither
// SOCK_NONBLOCK/SOCK_CLOEXEC, accept4 nor MSG_NOSIGNAL: the flags are set with fcntl
// right after the call that makes the descriptor (nothing in this process forks, so the
// moment without FD_CLOEXEC leaks nothing), and SIGPIPE is turned off per socket.
//
// This file also builds on Linux (cmake -DOP_SOCKETS=bsd, `make test-bsd-sockets`), so
// that the whole test suite runs the code macOS will run.
#include "posix/socket_os.h"

#include <cerrno>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "socket.h"

namespace op {
namespace net {

// macOS, OpenBSD and NetBSD let several sockets bind a port with SO_REUSEPORT but do not
// spread connections over them (FreeBSD does only with its own SO_REUSEPORT_LB, unused
// here): workers share one listener instead.
bool reuseport_balances() { return false; }

namespace os {
namespace {

// Makes a fresh descriptor ready for the loop; on failure closes it and returns -1 with
// the failing call's errno.
int prepare(int fd) {
    if (fd < 0) return -1;
    int flags = fcntl(fd, F_GETFL, 0);
    bool ok = flags >= 0 && fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0 && fcntl(fd, F_SETFD, FD_CLOEXEC) == 0;
#ifdef SO_NOSIGPIPE
    // macOS and the BSDs: a send on a connection the peer closed fails with EPIPE instead
    // of raising SIGPIPE. Linux has no SO_NOSIGPIPE; built there (for CI), this path
    // relies on the process ignoring SIGPIPE (sys::ignore_sigpipe, called by main).
    int one = 1;
    ok = ok && setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one) == 0;
#endif
    if (ok) return fd;
    int saved = errno;
    ::close(fd);
    errno = saved;
    return -1;
}

}  // namespace

int open_stream(int family) { return prepare(::socket(family, SOCK_STREAM, 0)); }

int accept_stream(int listener) { return prepare(::accept(listener, nullptr, nullptr)); }

int send_flags() { return 0; }

}  // namespace os
}  // namespace net
}  // namespace op
