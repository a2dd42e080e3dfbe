// Keys and failover (README "Keys and failover"): the selection logic, pure and
// per worker. No I/O, no logging; the clock is passed in. ClientConn asks it which
// origin and which server-side key an attempt uses, tells it how an attempt ended, and
// asks whether another attempt may follow.
//
//   keys         an origin's keys are used in turn (one counter per worker); a key
//                answered 401/403 is set aside until the configuration is replaced
//                (a reload makes new ApiKey objects, which are not set aside); a 429
//                sets it aside until its Retry-After. A set-aside key is skipped; when
//                every key of an origin is set aside, the origin counts as failing.
//   origins      an origin that fails (connect, TLS, timeout, a failover status, no
//                usable key) is passed over for a backoff of 1 s, doubling while it
//                keeps failing, up to 60 s; an answer from it clears that. When every
//                candidate is in backoff, the least recently failed one is tried.
//                Keyed by pool key, so the state survives a reload.
//   retry rule   another attempt only while nothing reached the client, the request
//                is still whole in memory (replayable), and attempts < max_attempts.
//
// With no keys and one origin a route never consults any of this (ClientConn checks
// failover_possible() first): the default path has no lookups.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "config.h"

namespace op {

// How an attempt ended, when it did not end with an answer relayed.
enum class AttemptFailure : std::uint8_t {
    Connect,         // refused, unreachable, DNS, the egress proxy
    Tls,             // handshake or verification
    Timeout,         // connect or handshake took too long
    HeadTimeout,     // no response head in time
    Closed,          // the upstream closed without an answer
    Status,          // a status of route.failover.statuses
    KeyRefused,      // 401 or 403 to an injected key
    KeyRateLimited,  // 429 to an injected key
    NoKey,           // every key of the origin is set aside
};
const char* failure_name(AttemptFailure f);  // "connect", "tls", ... for logs

inline constexpr std::int64_t kDefaultRetryAfterMs = 10'000;
inline constexpr std::int64_t kMaxRetryAfterMs = 600'000;
inline constexpr std::int64_t kFirstBackoffMs = 1'000;
inline constexpr std::int64_t kMaxBackoffMs = 60'000;

// A Retry-After value (RFC 9110 10.2.3): delay-seconds or an HTTP-date (IMF-fixdate),
// as milliseconds from now; kDefaultRetryAfterMs when absent or unreadable, at most
// kMaxRetryAfterMs, at least 0.
std::int64_t retry_after_ms(std::string_view value, bool present, std::int64_t now_unix_ms);

// Whether a route may ever try more than one (origin, key): several origins, or keys.
inline bool failover_possible(const Route& r, unsigned origin) {
    return r.origins.size() > 1 || (origin < r.origins.size() && !r.origins[origin].keys.empty());
}

// Whether `status` moves on for this route (a status of its failover set).
bool is_failover_status(const FailoverPolicy& p, int status);

// The retry rule against "already sent".
struct RetryCheck {
    bool response_sent = false;  // any byte of an answer (a head, a keep-alive head) went to the client
    bool replayable = true;      // the whole request is still held (within the replay limit)
    unsigned attempts = 1;       // made so far
    unsigned max_attempts = 1;
};
enum class RetryVerdict : std::uint8_t { Retry, AlreadySent, NotReplayable, OutOfAttempts };
RetryVerdict may_retry(const RetryCheck& c);

// The comparison of a presented access key against the configured ones, in constant
// time over each key's bytes and over every key (no early exit). The index of the
// matching key, or -1.
int match_access_key(const std::vector<AccessKey>& keys, std::string_view presented);

// The credential a client presents: "Authorization: Bearer K", "api-key: K", or (a
// WebSocket upgrade from a browser) the subprotocol "openai-insecure-api-key.K" in
// Sec-WebSocket-Protocol. Empty when none.
std::string_view bearer_token(std::string_view authorization);
std::string_view subprotocol_key(std::string_view sec_websocket_protocol);

// One origin's standing, for choose_origin().
struct OriginStanding {
    bool tried = false;             // already tried in this exchange
    bool down = false;              // in backoff now
    std::int64_t last_failure = 0;  // when it last failed (ms), for the least-recently-failed rule
};
// The origin to try: the first untried one from `start` on (wrapping) that is not down;
// when every untried one is down, the least recently failed of them; -1 when all were
// tried.
int choose_origin(const OriginStanding* origins, unsigned count, unsigned start);

// Per-worker state of keys and origins.
class FailoverState {
public:
    // The key an attempt on `origin` uses: the next in turn (each origin its own turn)
    // that is not set aside at `now_ms`; nullptr when the origin has none or all are set
    // aside.
    const ApiKey* pick_key(const Origin& origin, std::int64_t now_ms);
    // Sets `key` aside: until `until_ms` (429), or for good (401/403: until_ms < 0); a
    // later end never shortens a running set-aside. True when the key was available at
    // `now_ms` (the caller logs it then, once per set-aside).
    bool set_aside(const ApiKey* key, std::int64_t until_ms, std::int64_t now_ms);
    bool key_available(const ApiKey* key, std::int64_t now_ms) const;
    // Takes back a set-aside for good (401/403) of `key`: true when there was one.
    bool restore(const ApiKey* key);
    // When the first of `route`'s set-aside keys comes back (ms, after `now_ms`); 0 when
    // none will before a reload (every one refused) or one is available already.
    std::int64_t first_key_back_ms(const Route& route, std::int64_t now_ms) const;
    // A new configuration was adopted: its keys start fresh. Also what makes the pointer
    // comparison safe: a set-aside key is compared by address (and label), and an address
    // can only be reused once the configuration holding it is freed, which is after the
    // worker adopted the one after it, that is, after this call.
    void forget_keys() {
        aside_.clear();
        turns_.clear();
    }

    bool origin_down(const std::string& pool_key, std::int64_t now_ms) const;
    std::int64_t origin_last_failure(const std::string& pool_key) const;
    // A failure: backoff starts at kFirstBackoffMs and doubles per consecutive failure.
    void origin_failed(const std::string& pool_key, std::int64_t now_ms);
    // An answer came: no backoff any more.
    void origin_ok(const std::string& pool_key) {
        if (!origins_.empty()) origins_.erase(pool_key);
    }
    std::int64_t backoff_until(const std::string& pool_key) const;  // 0: none

private:
    struct SetAside {
        const ApiKey* key;
        std::string label;       // with the pointer: a reused address is not the same key
        std::int64_t until_ms;   // < 0: for good
    };
    struct Health {
        unsigned failures = 0;
        std::int64_t until_ms = 0;
        std::int64_t last_failure = 0;
    };
    const SetAside* find(const ApiKey* key) const;
    std::vector<SetAside> aside_;
    std::unordered_map<std::string, Health> origins_;
    // Each keyed origin's next key, by the origin's address in the configuration (cleared
    // with the set-asides when a new one is adopted: forget_keys()).
    std::unordered_map<const Origin*, unsigned> turns_;
};

}  // namespace op
