// The poller backends this build has, for the contract tests (test_poller.cpp and the
// per-OS tests beside it).
#pragma once

#include <memory>
#include <string>

#include "doctest/doctest.h"
#include "poller.h"

namespace op_test {

// Every backend this build has, each by its factory. One per OS today, behind
// Poller::create: epoll on Linux, kqueue on macOS and the BSDs, IOCP on Windows
// (OP_TEST_POLLER, from tests/CMakeLists.txt, names its file); a backend built beside it
// (a poll() fallback) is one more line here, and every contract test runs on it too.
struct Backend {
    const char* name;
    std::unique_ptr<op::Poller> (*create)(std::string& error);
};
inline const Backend kBackends[] = {
    {"Poller::create: " OP_TEST_POLLER, &op::Poller::create},
};

template <class Body>
void for_each_backend(Body body) {
    for (const Backend& b : kBackends) {
        INFO("backend: " << b.name);
        std::string error;
        std::unique_ptr<op::Poller> p = b.create(error);
        REQUIRE_MESSAGE(p, error);
        body(*p);
    }
}

}  // namespace op_test
