// Whether the tests run under Wine (a Windows build run on Linux by `make test-windows`),
// for the one check where Wine's Winsock differs from Windows' own: see its use.
// Defined in posix/under_wine.cpp (false) and win/under_wine.cpp.
#pragma once

namespace op_test {
bool under_wine();
}  // namespace op_test
