// Linux part of the sockets (platform/posix/socket_os.h): a descriptor is non-blocking
// and close-on-exec from the call that makes it, and SIGPIPE is off per send.
#include "posix/socket_os.h"

#include <sys/socket.h>

#include "socket.h"

namespace op {
namespace net {

// Linux hashes incoming connections over every listener bound with SO_REUSEPORT, so
// each worker gets its own listener and no two loops ever race for one connection.
bool reuseport_balances() { return true; }

namespace os {

int open_stream(int family) { return ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0); }

int accept_stream(int listener) { return ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC); }

int send_flags() { return MSG_NOSIGNAL; }

}  // namespace os
}  // namespace net
}  // namespace op
