#include "under_wine.h"

#include <windows.h>

namespace op_test {
// Wine's ntdll exports wine_get_version; Windows' does not.
bool under_wine() {
    HMODULE ntdll = GetModuleHandleA("ntdll.dll");
    return ntdll && GetProcAddress(ntdll, "wine_get_version") != nullptr;
}
}  // namespace op_test
