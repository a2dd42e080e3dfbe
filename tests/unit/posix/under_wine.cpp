#include "under_wine.h"

namespace op_test {
bool under_wine() { return false; }
}  // namespace op_test
