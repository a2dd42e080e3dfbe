#include "byte_buffer.h"

#include <utility>

namespace op {

namespace {

constexpr std::size_t kInitialCapacity = 2048;

// Blocks of kInitialCapacity kept for reuse by this thread. A request typically takes
// and releases four or five (client input, the upstream request, the response head,
// the client output); at most kCachedBlocks (128 KiB) stay cached per thread.
constexpr std::size_t kCachedBlocks = 64;

struct BlockCache {
    char* blocks[kCachedBlocks];
    std::size_t count = 0;
    ~BlockCache();
};

// Set once this thread's cache is destroyed (thread or process exit): buffers freed
// after that, by later destructors, go straight back to the allocator. Trivial, so it
// stays valid for as long as the thread does.
thread_local bool t_cache_gone = false;
thread_local BlockCache t_cache;

BlockCache::~BlockCache() {
    while (count > 0) delete[] blocks[--count];
    t_cache_gone = true;
}

char* new_block(std::size_t cap) {
    if (cap == kInitialCapacity && !t_cache_gone && t_cache.count > 0) return t_cache.blocks[--t_cache.count];
    return new char[cap];
}

void free_block(char* p, std::size_t cap) {
    if (!p) return;
    if (cap == kInitialCapacity && !t_cache_gone && t_cache.count < kCachedBlocks) {
        t_cache.blocks[t_cache.count++] = p;
        return;
    }
    delete[] p;
}

}  // namespace

char* ByteBuffer::make_room(std::size_t n) {
    std::size_t used = size();
    if (read_index_ > 0 && capacity_ - used >= n && used <= capacity_ / 2) {
        // Enough room once the consumed prefix is reclaimed: slide the bytes down.
        std::memmove(data_, data_ + read_index_, used);
        read_index_ = 0;
        write_index_ = used;
        return data_ + write_index_;
    }
    if (used + n > kMaxCapacity) return nullptr;
    std::size_t cap = capacity_ ? capacity_ : kInitialCapacity;
    while (cap < used + n) cap *= 2;
    char* fresh = new_block(cap);
    if (used) std::memcpy(fresh, data_ + read_index_, used);
    free_block(data_, capacity_);
    data_ = fresh;
    capacity_ = cap;
    read_index_ = 0;
    write_index_ = used;
    return data_ + write_index_;
}

bool ByteBuffer::append_slow(const char* p, std::size_t n) {
    char* dst = make_room(n);
    if (!dst) return false;
    std::memcpy(dst, p, n);
    write_index_ += n;
    return true;
}

void ByteBuffer::consume(std::size_t n) {
    if (n >= size()) {
        // Drained: give the storage back. A held stream (SSE) spends nearly all its
        // life with empty buffers, so this is what keeps memory per stream small; the
        // allocator makes the next small block cheap.
        release();
        return;
    }
    read_index_ += n;
}

void ByteBuffer::release() {
    free_block(data_, capacity_);
    data_ = nullptr;
    capacity_ = read_index_ = write_index_ = 0;
}

void ByteBuffer::swap(ByteBuffer& other) noexcept {
    std::swap(data_, other.data_);
    std::swap(capacity_, other.capacity_);
    std::swap(read_index_, other.read_index_);
    std::swap(write_index_, other.write_index_);
}

}  // namespace op
