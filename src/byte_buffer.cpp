#include "byte_buffer.h"

namespace op {

namespace {
constexpr std::size_t kInitialCapacity = 2048;
}

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
    char* fresh = new char[cap];
    if (used) std::memcpy(fresh, data_ + read_index_, used);
    delete[] data_;
    data_ = fresh;
    capacity_ = cap;
    read_index_ = 0;
    write_index_ = used;
    return data_ + write_index_;
}

bool ByteBuffer::append(const char* p, std::size_t n) {
    if (n == 0) return true;
    char* dst = prepare(n);
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
    delete[] data_;
    data_ = nullptr;
    capacity_ = read_index_ = write_index_ = 0;
}

}  // namespace op
