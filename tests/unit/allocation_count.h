// How many times operator new has run in this test program: a test reads it before
// and after the code it measures, to pin "allocates nothing" on a hot path.
// (allocation_count.cpp replaces the global operator new and delete for the whole
// unit test binary; they only count, then call malloc and free.)
#pragma once

#include <cstddef>

namespace test {
std::size_t allocations();
}  // namespace test
