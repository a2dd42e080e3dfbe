#include "allocation_count.h"

#include <cstdlib>
#include <new>

namespace {
std::size_t g_allocations = 0;  // the unit tests run on one thread
}  // namespace

namespace test {
std::size_t allocations() { return g_allocations; }
}  // namespace test

void* operator new(std::size_t n) {
    ++g_allocations;
    if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
    throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
