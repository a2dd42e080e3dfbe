// Linux part of platform/sys.h: the allocator tuning, which is glibc's (musl has no
// mallopt thresholds to set, hence the one #ifdef).
#include "sys.h"

#ifdef __GLIBC__
#include <malloc.h>

#include <cstdlib>
#include <system_error>
#include <thread>
#include <vector>
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

// After a burst of connections ends, the freed memory is mostly below the heap's top,
// held there by a few live blocks (a pooled connection, the session cache, a stream
// that is still open), so the automatic trim above never sees it: measured with 2,000
// held SSE streams, the RSS stayed at its peak (50 MB, 5.6 times the RSS before) after
// every stream had closed. malloc_trim gives back every free page of every arena
// (madvise), wherever it is, except pages that hold a live block, and this thread's
// tcache (up to 7 freed blocks of each of 64 small sizes, which malloc counts as in use)
// is the last of the burst's blocks, scattered over the heap: it kept 1.5 MB resident
// (RSS 1.19 times the RSS before, against 1.02 times with the tcache off). So the tcache
// is emptied first: its blocks are taken by malloc and freed by a thread that has no
// tcache of its own (it never allocates), which puts them straight back into the
// arena's free lists, where the trim finds them.
void release_free_memory() {
#ifdef __GLIBC__
    constexpr std::size_t kSizes = 64, kPerSize = 7;  // glibc's tcache: bins of 16-byte steps
    std::vector<void*> blocks;
    blocks.reserve(kSizes * kPerSize);
    for (std::size_t i = 0; i < kSizes; ++i)
        for (std::size_t j = 0; j < kPerSize; ++j) blocks.push_back(std::malloc(24 + 16 * i));
    try {
        std::thread([&blocks] {
            for (void* p : blocks) std::free(p);
        }).join();
    } catch (const std::system_error&) {  // no thread: freed here, back into the tcache
        for (void* p : blocks) std::free(p);
    }
    malloc_trim(0);
#endif
}

}  // namespace sys
}  // namespace op
