// A growable byte queue with reader and writer indexes (muduo style):
//
//   +-------------------+------------------+------------------+
//   | consumed (free)   |  readable bytes  |  writable space  |
//   +-------------------+------------------+------------------+
//   0             read_index_        write_index_         capacity_
//
// Storage is allocated on first use and released whenever the buffer becomes empty,
// so idle connections and quiet streams hold no buffer memory. Released blocks of the
// initial size go to a small per-thread cache (each worker is one thread), so the
// allocate/release cycle of every request costs a pointer push and pop, not malloc.
// Every owner states its own bound (high-water mark); the buffer itself only refuses
// to grow beyond kMaxCapacity (append() returns false).
#pragma once

#include <cstddef>
#include <cstring>
#include <string_view>

namespace op {

class ByteBuffer {
public:
    static constexpr std::size_t kMaxCapacity = 256 * 1024 * 1024;

    ByteBuffer() = default;
    ~ByteBuffer() { release(); }
    ByteBuffer(const ByteBuffer&) = delete;
    ByteBuffer& operator=(const ByteBuffer&) = delete;

    std::size_t size() const { return write_index_ - read_index_; }
    bool empty() const { return write_index_ == read_index_; }
    const char* data() const { return data_ + read_index_; }
    std::string_view view() const { return {data(), size()}; }

    // Makes room for at least n more bytes and returns where to write them;
    // nullptr if that would exceed kMaxCapacity. The common case (room enough) is
    // inline: append() runs dozens of times per proxied request.
    char* prepare(std::size_t n) {
        if (capacity_ - write_index_ >= n) return data_ + write_index_;
        return make_room(n);
    }
    void commit(std::size_t n) { write_index_ += n; }

    bool append(const char* p, std::size_t n) {
        if (n == 0) return true;
        if (n > capacity_ - write_index_) return append_slow(p, n);
        std::memcpy(data_ + write_index_, p, n);  // the common case, inline: it fits
        write_index_ += n;
        return true;
    }
    bool append(std::string_view s) { return append(s.data(), s.size()); }

    // Keeps only the first n readable bytes (n <= size()).
    void truncate(std::size_t n) {
        if (n < size()) write_index_ = read_index_ + n;
        if (empty()) release();
    }
    // Drops n readable bytes from the front.
    void consume(std::size_t n);
    void clear() { consume(size()); }
    // Frees storage (used when a connection goes idle).
    void release();
    // Exchanges contents and storage with `other` (no copy).
    void swap(ByteBuffer& other) noexcept;
    std::size_t capacity() const { return capacity_; }

private:
    char* make_room(std::size_t n);
    bool append_slow(const char* p, std::size_t n);

    char* data_ = nullptr;
    std::size_t capacity_ = 0;
    std::size_t read_index_ = 0;
    std::size_t write_index_ = 0;
};

}  // namespace op
