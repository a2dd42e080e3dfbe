// One immutable configuration and the router built over it. main publishes a new one on
// SIGHUP (README "Reloading"); each worker adopts it in its own loop thread, and a
// client connection holds the one its exchange started with until the exchange ends, so
// nothing an exchange uses (routes, origins, keys, egress) changes under it.
#pragma once

#include <memory>
#include <utility>

#include "config.h"
#include "router.h"

namespace op {

struct ConfigSnapshot {
    explicit ConfigSnapshot(Config c)
        : config(std::move(c)), router(config.routes, config.default_route ? &*config.default_route : nullptr) {}
    ConfigSnapshot(const ConfigSnapshot&) = delete;
    ConfigSnapshot& operator=(const ConfigSnapshot&) = delete;

    const Config config;
    const Router router;  // points into `config`
};

using SnapshotPtr = std::shared_ptr<const ConfigSnapshot>;

}  // namespace op
