// What platform/posix/socket_posix.cpp (the common POSIX sockets) asks of the OS part:
// platform/linux/socket_linux.cpp or platform/bsd/socket_bsd.cpp, one of them per build
// (the CMake option OP_SOCKETS). Descriptors come out ready for the event loop, so the
// common part never sets a descriptor flag itself.
#pragma once

namespace op {
namespace net {
namespace os {

// A TCP socket of address family `family`: non-blocking, close-on-exec, and with
// SIGPIPE turned off for it where the OS does that per socket. -1 with errno set when
// the OS refuses.
int open_stream(int family);

// accept(2) on a non-blocking listener: the connection, with the same properties as
// open_stream(). -1 with errno set: EAGAIN/EWOULDBLOCK when none is pending (also for
// each thread but one when several race for one connection).
int accept_stream(int listener);

// Flags for every send(2)/sendmsg(2): MSG_NOSIGNAL where the OS turns SIGPIPE off per
// call instead of per socket.
int send_flags();

}  // namespace os
}  // namespace net
}  // namespace op
