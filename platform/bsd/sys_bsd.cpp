// macOS and BSD part of platform/sys.h: the allocator. Nothing to tune: the system
// allocators (macOS' libmalloc, FreeBSD's jemalloc, OpenBSD's malloc) have no
// thresholds like glibc's that move with the process's history
// (linux/sys_linux.cpp says what those do).
#include "sys.h"

namespace op {
namespace sys {

void tune_allocator() {}
// Those allocators return free pages to the system by themselves.
void release_free_memory() {}

}  // namespace sys
}  // namespace op
