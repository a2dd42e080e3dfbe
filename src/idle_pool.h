// The keyed idle-connection pool's rules (after nginx's upstream keepalive module).
//
// Keyed by origin (scheme, host, port, and upstream proxy). take() returns the most
// recently used idle connection of a key. give_back() keeps at most max_per_key idle
// connections per key and max_total overall: when a bound is exceeded, the least
// recently used connection (of that key, else overall) is evicted and handed back to
// the caller to close. expire() evicts those idle longer than idle_timeout.
// Whether a connection may be given back at all (fully read response, fully sent
// request, no error, no "Connection: close") is the caller's decision; this class
// only keeps the bounds. T is opaque: it is never dereferenced, so the rules are
// unit-tested with plain tokens.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace op {

template <typename T>
class IdlePool {
public:
    struct Limits {
        std::size_t max_total = 100;
        std::size_t max_per_key = 20;
        std::int64_t idle_timeout_ms = 90'000;
    };

    explicit IdlePool(Limits limits) : limits_(limits) {}

    T* take(const std::string& key) {
        auto it = keys_.find(key);
        if (it == keys_.end() || it->second.empty()) return nullptr;
        T* conn = it->second.back().conn;  // most recently used
        it->second.pop_back();
        --total_;
        return conn;
    }

    // Adds `conn` as idle since `now_ms`; appends to `evicted` what must be closed
    // (possibly `conn` itself when a bound is zero).
    void give_back(const std::string& key, T* conn, std::int64_t now_ms, std::vector<T*>& evicted) {
        if (limits_.max_per_key == 0 || limits_.max_total == 0) {
            evicted.push_back(conn);
            return;
        }
        auto& list = keys_[key];
        list.push_back({conn, now_ms});
        ++total_;
        if (list.size() > limits_.max_per_key) {
            evicted.push_back(list.front().conn);
            list.erase(list.begin());
            --total_;
        }
        while (total_ > limits_.max_total) evict_oldest(evicted);
    }

    // Forgets an idle connection that died (became readable or closed). Returns
    // whether it was in the pool.
    bool remove(const std::string& key, T* conn) {
        auto it = keys_.find(key);
        if (it == keys_.end()) return false;
        auto& list = it->second;
        for (auto e = list.begin(); e != list.end(); ++e) {
            if (e->conn == conn) {
                list.erase(e);
                --total_;
                if (list.empty()) keys_.erase(it);
                return true;
            }
        }
        return false;
    }

    void expire(std::int64_t now_ms, std::vector<T*>& evicted) {
        for (auto it = keys_.begin(); it != keys_.end();) {
            auto& list = it->second;
            std::size_t keep_from = 0;
            while (keep_from < list.size() && now_ms - list[keep_from].since_ms >= limits_.idle_timeout_ms) {
                evicted.push_back(list[keep_from].conn);
                ++keep_from;
            }
            list.erase(list.begin(), list.begin() + static_cast<std::ptrdiff_t>(keep_from));
            total_ -= keep_from;
            it = list.empty() ? keys_.erase(it) : std::next(it);
        }
    }

    // Every idle connection, for shutdown.
    void drain(std::vector<T*>& evicted) {
        for (auto& kv : keys_)
            for (auto& e : kv.second) evicted.push_back(e.conn);
        keys_.clear();
        total_ = 0;
    }

    // Every idle connection whose key `drop(key)` accepts (a configuration reload).
    template <typename Pred>
    void drain_if(const Pred& drop, std::vector<T*>& evicted) {
        for (auto it = keys_.begin(); it != keys_.end();) {
            if (!drop(it->first)) {
                ++it;
                continue;
            }
            for (auto& e : it->second) evicted.push_back(e.conn);
            total_ -= it->second.size();
            it = keys_.erase(it);
        }
    }

    // New bounds (a configuration reload): they apply from the next give_back / expire.
    void set_limits(Limits limits) { limits_ = limits; }

    std::size_t size() const { return total_; }
    std::size_t size(const std::string& key) const {
        auto it = keys_.find(key);
        return it == keys_.end() ? 0 : it->second.size();
    }
    const Limits& limits() const { return limits_; }

private:
    struct Entry {
        T* conn;
        std::int64_t since_ms;
    };

    void evict_oldest(std::vector<T*>& evicted) {
        auto oldest = keys_.end();
        for (auto it = keys_.begin(); it != keys_.end(); ++it) {
            if (!it->second.empty() &&
                (oldest == keys_.end() || it->second.front().since_ms < oldest->second.front().since_ms))
                oldest = it;
        }
        if (oldest == keys_.end()) return;
        evicted.push_back(oldest->second.front().conn);
        oldest->second.erase(oldest->second.begin());
        --total_;
        if (oldest->second.empty()) keys_.erase(oldest);
    }

    Limits limits_;
    std::unordered_map<std::string, std::vector<Entry>> keys_;  // back = most recently used
    std::size_t total_ = 0;
};

}  // namespace op
