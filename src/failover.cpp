// Keys and failover selection; the contract is in failover.h.
#include "failover.h"

#include <algorithm>
#include <cstring>

#include "http_head.h"

namespace op {

const char* failure_name(AttemptFailure f) {
    switch (f) {
        case AttemptFailure::Connect: return "connect failed";
        case AttemptFailure::Tls: return "TLS failed";
        case AttemptFailure::Timeout: return "connect timeout";
        case AttemptFailure::HeadTimeout: return "no response head in time";
        case AttemptFailure::Closed: return "closed without an answer";
        case AttemptFailure::Status: return "status";
        case AttemptFailure::KeyRefused: return "key refused";
        case AttemptFailure::KeyRateLimited: return "key rate-limited";
        case AttemptFailure::NoKey: return "every key set aside";
    }
    return "?";
}

namespace {

bool all_digits(std::string_view s) {
    if (s.empty()) return false;
    for (char c : s)
        if (c < '0' || c > '9') return false;
    return true;
}

// Days since 1970-01-01 of a civil date (proleptic Gregorian).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

int two(std::string_view s, std::size_t at) {
    if (at + 2 > s.size() || s[at] < '0' || s[at] > '9' || s[at + 1] < '0' || s[at + 1] > '9') return -1;
    return (s[at] - '0') * 10 + (s[at + 1] - '0');
}

// IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" -> Unix ms; false when not one.
bool parse_imf_fixdate(std::string_view s, std::int64_t& out_ms) {
    if (s.size() != 29 || s[3] != ',' || s[4] != ' ' || s[7] != ' ' || s[11] != ' ' || s[16] != ' ' ||
        s[19] != ':' || s[22] != ':' || s[25] != ' ' || s.substr(26) != "GMT")
        return false;
    static const char kMonths[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    int month = -1;
    for (int i = 0; i < 12; ++i)
        if (s.substr(8, 3) == std::string_view(kMonths + 3 * i, 3)) month = i + 1;
    int day = two(s, 5), hi = two(s, 12), lo = two(s, 14), h = two(s, 17), mi = two(s, 20), sec = two(s, 23);
    if (month < 0 || day < 1 || day > 31 || hi < 0 || lo < 0 || h < 0 || h > 23 || mi < 0 || mi > 59 || sec < 0 ||
        sec > 60)
        return false;
    std::int64_t days = days_from_civil(hi * 100 + lo, static_cast<unsigned>(month), static_cast<unsigned>(day));
    out_ms = ((days * 24 + h) * 60 + mi) * 60'000 + static_cast<std::int64_t>(sec) * 1000;
    return true;
}

}  // namespace

std::int64_t retry_after_ms(std::string_view v, bool present, std::int64_t now_unix_ms) {
    if (!present) return kDefaultRetryAfterMs;
    std::int64_t ms = 0;
    if (all_digits(v)) {
        ms = v.size() > 7 ? kMaxRetryAfterMs : static_cast<std::int64_t>(std::stol(std::string(v))) * 1000;
    } else {
        std::int64_t at = 0;
        if (!parse_imf_fixdate(v, at)) return kDefaultRetryAfterMs;
        ms = at - now_unix_ms;
    }
    if (ms < 0) ms = 0;
    return ms > kMaxRetryAfterMs ? kMaxRetryAfterMs : ms;
}

bool is_failover_status(const FailoverPolicy& p, int status) {
    for (int s : p.statuses)
        if (s == status) return true;
    return false;
}

RetryVerdict may_retry(const RetryCheck& c) {
    if (c.response_sent) return RetryVerdict::AlreadySent;
    if (c.attempts >= c.max_attempts) return RetryVerdict::OutOfAttempts;
    if (!c.replayable) return RetryVerdict::NotReplayable;
    return RetryVerdict::Retry;
}

int match_access_key(const std::vector<AccessKey>& keys, std::string_view presented) {
    // Every key is compared over its whole length whatever the presented bytes: the time
    // depends on the configured keys' lengths only, not on where a guess goes wrong.
    int found = -1;
    const std::size_t n = presented.size();
    for (std::size_t k = 0; k < keys.size(); ++k) {
        const std::string& key = keys[k].key;
        unsigned diff = static_cast<unsigned>(key.size() != n) | static_cast<unsigned>(key.empty());
        for (std::size_t i = 0; i < key.size(); ++i) {
            unsigned char p = i < n ? static_cast<unsigned char>(presented[i]) : 0;
            diff |= static_cast<unsigned>(p ^ static_cast<unsigned char>(key[i]));
        }
        // Branch-free select of the first match.
        unsigned match = static_cast<unsigned>(diff == 0) & static_cast<unsigned>(found < 0);
        int mask = -static_cast<int>(match);
        found = (found & ~mask) | (static_cast<int>(k) & mask);
    }
    return found;
}

std::string_view bearer_token(std::string_view v) {
    if (v.size() < 7 || !iequals(v.substr(0, 6), "bearer") || (v[6] != ' ' && v[6] != '\t')) return {};
    v.remove_prefix(7);
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    return v;
}

std::string_view subprotocol_key(std::string_view v) {
    constexpr std::string_view kPrefix = "openai-insecure-api-key.";
    while (!v.empty()) {
        std::size_t comma = v.find(',');
        std::string_view item = v.substr(0, comma);
        while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
        while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
        if (item.size() > kPrefix.size() && item.substr(0, kPrefix.size()) == kPrefix)
            return item.substr(kPrefix.size());
        if (comma == std::string_view::npos) break;
        v.remove_prefix(comma + 1);
    }
    return {};
}

int choose_origin(const OriginStanding* origins, unsigned count, unsigned start) {
    int fallback = -1;
    for (unsigned step = 0; step < count; ++step) {
        unsigned i = (start + step) % count;
        const OriginStanding& o = origins[i];
        if (o.tried) continue;
        if (!o.down) return static_cast<int>(i);
        if (fallback < 0 || o.last_failure < origins[fallback].last_failure) fallback = static_cast<int>(i);
    }
    return fallback;
}

const FailoverState::SetAside* FailoverState::find(const ApiKey* key) const {
    for (const SetAside& s : aside_)
        if (s.key == key && s.label == key->label) return &s;
    return nullptr;
}

bool FailoverState::key_available(const ApiKey* key, std::int64_t now_ms) const {
    if (aside_.empty()) return true;
    const SetAside* s = find(key);
    return !s || (s->until_ms >= 0 && s->until_ms <= now_ms);
}

bool FailoverState::restore(const ApiKey* key) {
    for (auto it = aside_.begin(); it != aside_.end(); ++it) {
        if (it->key == key && it->label == key->label && it->until_ms < 0) {
            aside_.erase(it);
            return true;
        }
    }
    return false;
}

std::int64_t FailoverState::first_key_back_ms(const Route& route, std::int64_t now_ms) const {
    std::int64_t first = 0;
    for (const Origin& o : route.origins) {
        for (const ApiKey& k : o.keys) {
            const SetAside* s = find(&k);
            if (!s || (s->until_ms >= 0 && s->until_ms <= now_ms)) return 0;  // available now
            if (s->until_ms >= 0 && (first == 0 || s->until_ms < first)) first = s->until_ms;
        }
    }
    return first;
}

const ApiKey* FailoverState::pick_key(const Origin& origin, std::int64_t now_ms) {
    const std::size_t n = origin.keys.size();
    if (n == 0) return nullptr;
    const unsigned first = turns_[&origin]++;
    for (std::size_t step = 0; step < n; ++step) {
        const ApiKey* k = &origin.keys[(first + step) % n];
        if (key_available(k, now_ms)) return k;
    }
    return nullptr;
}

bool FailoverState::set_aside(const ApiKey* key, std::int64_t until_ms, std::int64_t now_ms) {
    for (SetAside& s : aside_) {
        if (s.key == key && s.label == key->label) {
            bool was_available = s.until_ms >= 0 && s.until_ms <= now_ms;
            if (s.until_ms >= 0 && (until_ms < 0 || until_ms > s.until_ms)) s.until_ms = until_ms;
            return was_available;
        }
    }
    if (aside_.size() >= 4096) aside_.erase(aside_.begin());  // bounded: keys of many reloads
    aside_.push_back({key, key->label, until_ms});
    return true;
}

bool FailoverState::origin_down(const std::string& pool_key, std::int64_t now_ms) const {
    if (origins_.empty()) return false;
    auto it = origins_.find(pool_key);
    return it != origins_.end() && it->second.until_ms > now_ms;
}

std::int64_t FailoverState::origin_last_failure(const std::string& pool_key) const {
    auto it = origins_.find(pool_key);
    return it == origins_.end() ? 0 : it->second.last_failure;
}

std::int64_t FailoverState::backoff_until(const std::string& pool_key) const {
    auto it = origins_.find(pool_key);
    return it == origins_.end() ? 0 : it->second.until_ms;
}

void FailoverState::origin_failed(const std::string& pool_key, std::int64_t now_ms) {
    Health& h = origins_[pool_key];
    if (h.failures < 16) ++h.failures;
    std::int64_t backoff = kFirstBackoffMs << (h.failures - 1);
    if (backoff > kMaxBackoffMs) backoff = kMaxBackoffMs;
    h.until_ms = now_ms + backoff;
    h.last_failure = now_ms;
}

}  // namespace op
