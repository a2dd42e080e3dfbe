// Linux part of platform/sys.h: the allocator tuning, which is glibc's (musl has no
// mallopt thresholds to set, hence the one #ifdef).
#include "sys.h"

#ifdef __GLIBC__
#include <malloc.h>
#endif

namespace op {
namespace sys {

// glibc's malloc returns free memory at the top of a heap to the system once more than
// M_TRIM_THRESHOLD is free there, and maps large blocks with mmap; left alone, both
// thresholds move with the process's history (they rise when a mapped block is freed).
// A 1 MiB upload cycles buffers of 64 KiB and more (client input, TLS output). Measured
// after a few small-POST runs, in a process whose thresholds had not risen: every upload
// shrank and regrew the heap, 2 brk calls and ~17 page faults per upload and about 15%
// more system time. Fixed thresholds keep up to 2 MiB free per heap (one per worker
// thread) and map only blocks above 1 MiB, whatever ran before.
void tune_allocator() {
#ifdef __GLIBC__
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
    mallopt(M_TRIM_THRESHOLD, 2 << 20);
#endif
}

}  // namespace sys
}  // namespace op
