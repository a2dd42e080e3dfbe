// Tests for failover.h: keys in turn, set-aside and return, origin backoff and the
// least-recently-failed rule, the retry rule against "already sent", Retry-After, the
// access-key comparison and the credential forms, and the request head's credential edit.
#include <algorithm>
#include <string>
#include <vector>

#include "byte_buffer.h"
#include "config.h"
#include "doctest/doctest.h"
#include "failover.h"
#include "http_head.h"
#include "http_writer.h"
#include "target_spec.h"

using op::AccessKey;
using op::ApiKey;
using op::AttemptFailure;
using op::FailoverState;
using op::Origin;
using op::OriginStanding;
using op::RetryCheck;
using op::RetryVerdict;
using op::Route;

namespace {

Origin origin_with_keys(const char* spec, std::vector<ApiKey> keys) {
    return Origin{test::target(spec), std::nullopt, std::move(keys)};
}

}  // namespace

TEST_CASE("keys are used in turn, and a set-aside key is skipped until it returns") {
    FailoverState fs;
    Origin o = origin_with_keys("https://a.example", {{"k1", "s1"}, {"k2", "s2"}, {"k3", "s3"}});
    std::vector<std::string> seen;
    for (int i = 0; i < 6; ++i) seen.push_back(fs.pick_key(o, 0)->label);
    CHECK(seen == std::vector<std::string>{"k1", "k2", "k3", "k1", "k2", "k3"});

    // k2 rate-limited until t=5000: skipped before, back at 5000.
    CHECK(fs.set_aside(&o.keys[1], 5000, 100));
    CHECK_FALSE(fs.set_aside(&o.keys[1], 3000, 200));  // already aside: not logged again, not shortened
    CHECK_FALSE(fs.key_available(&o.keys[1], 4999));
    seen.clear();
    for (int i = 0; i < 4; ++i) seen.push_back(fs.pick_key(o, 1000)->label);
    CHECK(std::count(seen.begin(), seen.end(), "k2") == 0);
    CHECK(fs.key_available(&o.keys[1], 5000));
    bool k2_back = false;
    for (int i = 0; i < 3; ++i) k2_back = k2_back || fs.pick_key(o, 5000)->label == "k2";
    CHECK(k2_back);

    // k1 refused (401): aside for good, whatever the clock says.
    CHECK(fs.set_aside(&o.keys[0], -1, 6000));
    CHECK_FALSE(fs.key_available(&o.keys[0], 1'000'000'000));
    // A 429 later does not bring a refused key back.
    fs.set_aside(&o.keys[0], 7000, 6500);
    CHECK_FALSE(fs.key_available(&o.keys[0], 8000));
    // Every key aside: none to pick (the origin then counts as failing).
    fs.set_aside(&o.keys[1], -1, 6000);
    fs.set_aside(&o.keys[2], 9000, 6000);
    CHECK(fs.pick_key(o, 8000) == nullptr);
    CHECK(fs.pick_key(o, 9000)->label == "k3");
    // An origin without keys has none to pick.
    Origin bare = origin_with_keys("https://b.example", {});
    CHECK(fs.pick_key(bare, 0) == nullptr);
}

TEST_CASE("each origin's keys take their own turn") {
    // Requests alternating between two targets (or one failover touching two origins)
    // used to share one counter: each origin then only ever sent one of its two keys.
    FailoverState fs;
    Origin a = origin_with_keys("https://a.example", {{"a1", "s1"}, {"a2", "s2"}});
    Origin b = origin_with_keys("https://b.example", {{"b1", "s3"}, {"b2", "s4"}});
    std::vector<std::string> seen;
    for (int i = 0; i < 4; ++i) {
        seen.push_back(fs.pick_key(a, 0)->label);
        seen.push_back(fs.pick_key(b, 0)->label);
    }
    CHECK(seen == std::vector<std::string>{"a1", "b1", "a2", "b2", "a1", "b1", "a2", "b2"});
    // A new configuration starts every origin's turn afresh.
    fs.forget_keys();
    CHECK(fs.pick_key(a, 0)->label == "a1");
}

TEST_CASE("when the first set-aside key of a route comes back") {
    FailoverState fs;
    Route r;
    r.origins.push_back(origin_with_keys("https://a.example", {{"a1", "s1"}, {"a2", "s2"}}));
    r.origins.push_back(origin_with_keys("https://b.example", {{"b1", "s3"}}));
    CHECK(fs.first_key_back_ms(r, 0) == 0);  // all available
    fs.set_aside(&r.origins[0].keys[0], 9000, 0);
    fs.set_aside(&r.origins[0].keys[1], -1, 0);
    CHECK(fs.first_key_back_ms(r, 0) == 0);  // b1 still is
    fs.set_aside(&r.origins[1].keys[0], 5000, 0);
    CHECK(fs.first_key_back_ms(r, 100) == 5000);  // b1 first, then a1; a2 never
    CHECK(fs.first_key_back_ms(r, 5000) == 0);    // b1 is back
    fs.set_aside(&r.origins[1].keys[0], -1, 6000);
    fs.set_aside(&r.origins[0].keys[0], -1, 6000);
    CHECK(fs.first_key_back_ms(r, 6000) == 0);  // every one refused: none comes back before a reload
}

TEST_CASE("a reload's new key objects are not set aside") {
    FailoverState fs;
    std::vector<ApiKey> before{{"k1", "s1"}};
    CHECK(fs.set_aside(&before[0], -1, 0));
    std::vector<ApiKey> after{{"other", "s9"}};  // may reuse the address; not the same key
    CHECK(fs.key_available(&after[0], 0));
}

TEST_CASE("origin backoff grows while it keeps failing, and an answer clears it") {
    FailoverState fs;
    const std::string a = "https://a.example:443";
    CHECK_FALSE(fs.origin_down(a, 0));
    fs.origin_failed(a, 1000);
    CHECK(fs.origin_down(a, 1999));
    CHECK_FALSE(fs.origin_down(a, 2000));  // 1 s
    fs.origin_failed(a, 2000);
    CHECK(fs.backoff_until(a) == 4000);  // 2 s
    fs.origin_failed(a, 4000);
    CHECK(fs.backoff_until(a) == 8000);  // 4 s
    for (int i = 0; i < 20; ++i) fs.origin_failed(a, 10000);
    CHECK(fs.backoff_until(a) == 10000 + op::kMaxBackoffMs);  // capped at 60 s
    CHECK(fs.origin_last_failure(a) == 10000);
    fs.origin_ok(a);
    CHECK_FALSE(fs.origin_down(a, 10001));
    fs.origin_failed(a, 20000);
    CHECK(fs.backoff_until(a) == 21000);  // starts over
}

TEST_CASE("choose_origin: in order from the start, down ones passed over, else the least recently failed") {
    OriginStanding o[3];
    CHECK(op::choose_origin(o, 3, 0) == 0);
    CHECK(op::choose_origin(o, 3, 2) == 2);
    o[0].down = true;
    o[0].last_failure = 500;
    CHECK(op::choose_origin(o, 3, 0) == 1);
    o[1].tried = true;
    CHECK(op::choose_origin(o, 3, 0) == 2);
    o[2].down = true;
    o[2].last_failure = 100;
    CHECK(op::choose_origin(o, 3, 0) == 2);  // all untried are down: the least recently failed
    o[2].tried = true;
    CHECK(op::choose_origin(o, 3, 0) == 0);
    o[0].tried = true;
    CHECK(op::choose_origin(o, 3, 0) == -1);  // every one tried
}

TEST_CASE("the retry rule: nothing sent, replayable, attempts left") {
    RetryCheck c;
    c.max_attempts = 3;
    CHECK(op::may_retry(c) == RetryVerdict::Retry);
    c.attempts = 3;
    CHECK(op::may_retry(c) == RetryVerdict::OutOfAttempts);
    c.attempts = 2;
    c.replayable = false;
    CHECK(op::may_retry(c) == RetryVerdict::NotReplayable);
    c.response_sent = true;  // a stream whose head went out, or a -json-keepalive head
    CHECK(op::may_retry(c) == RetryVerdict::AlreadySent);
    c.replayable = true;
    CHECK(op::may_retry(c) == RetryVerdict::AlreadySent);
    RetryCheck one;  // attempts = 1 (max 1): no failover
    CHECK(op::may_retry(one) == RetryVerdict::OutOfAttempts);
}

TEST_CASE("failover statuses and whether a route can fail over at all") {
    Route r;
    r.origins.push_back(origin_with_keys("https://a.example", {}));
    CHECK_FALSE(op::failover_possible(r, 0));  // one origin, no keys: the default path
    r.origins[0].keys.push_back({"k", "s"});
    CHECK(op::failover_possible(r, 0));
    r.origins[0].keys.clear();
    r.origins.push_back(origin_with_keys("https://b.example", {}));
    CHECK(op::failover_possible(r, 0));
    CHECK(op::is_failover_status(r.failover, 503));
    CHECK(op::is_failover_status(r.failover, 429));
    CHECK_FALSE(op::is_failover_status(r.failover, 400));
    CHECK_FALSE(op::is_failover_status(r.failover, 401));
    CHECK_FALSE(op::is_failover_status(r.failover, 200));
}

TEST_CASE("Retry-After: seconds, HTTP date, default and cap") {
    CHECK(op::retry_after_ms("", false, 0) == op::kDefaultRetryAfterMs);
    CHECK(op::retry_after_ms("3", true, 0) == 3000);
    CHECK(op::retry_after_ms("0", true, 0) == 0);
    CHECK(op::retry_after_ms("100000", true, 0) == op::kMaxRetryAfterMs);
    CHECK(op::retry_after_ms("99999999999999999999", true, 0) == op::kMaxRetryAfterMs);
    CHECK(op::retry_after_ms("soon", true, 0) == op::kDefaultRetryAfterMs);
    CHECK(op::retry_after_ms("-5", true, 0) == op::kDefaultRetryAfterMs);
    // Sun, 06 Nov 1994 08:49:37 GMT = 784111777 s
    const std::int64_t t = 784111777LL * 1000;
    CHECK(op::retry_after_ms("Sun, 06 Nov 1994 08:49:37 GMT", true, t - 20'000) == 20'000);
    CHECK(op::retry_after_ms("Sun, 06 Nov 1994 08:49:37 GMT", true, t + 5'000) == 0);  // in the past
    CHECK(op::retry_after_ms("Thu, 01 Jan 1970 00:00:10 GMT", true, 0) == 10'000);
    CHECK(op::retry_after_ms("Sun, 06 Nov 1994 08:49:37 UTC", true, t) == op::kDefaultRetryAfterMs);
}

TEST_CASE("access keys: every key compared, the matching one's index") {
    std::vector<AccessKey> keys{{"alice", "ak-alice-1234"}, {"bob", "ak-bob-5678"}, {"empty", ""}};
    CHECK(op::match_access_key(keys, "ak-alice-1234") == 0);
    CHECK(op::match_access_key(keys, "ak-bob-5678") == 1);
    CHECK(op::match_access_key(keys, "ak-bob-567") == -1);    // a prefix
    CHECK(op::match_access_key(keys, "ak-bob-56789") == -1);  // longer
    CHECK(op::match_access_key(keys, "ak-bob-5679") == -1);
    CHECK(op::match_access_key(keys, "") == -1);  // an empty key never matches
    CHECK(op::match_access_key({}, "x") == -1);
}

TEST_CASE("the credential a client presents") {
    CHECK(op::bearer_token("Bearer sk-1") == "sk-1");
    CHECK(op::bearer_token("bearer  sk-1") == "sk-1");
    CHECK(op::bearer_token("Basic abc") == "");
    CHECK(op::bearer_token("Bearer") == "");
    CHECK(op::subprotocol_key("realtime, openai-insecure-api-key.sk-2, openai-beta.realtime-v1") == "sk-2");
    CHECK(op::subprotocol_key("realtime") == "");
    CHECK(op::subprotocol_key("openai-insecure-api-key.") == "");
}

TEST_CASE("the upstream head: client credentials dropped, the server key injected after Host") {
    const std::string text =
        "GET /v1/realtime HTTP/1.1\r\nHost: proxy\r\nAuthorization: Bearer ak-alice\r\napi-key: ak-alice\r\n"
        "Sec-WebSocket-Protocol: realtime, openai-insecure-api-key.ak-alice, openai-beta.realtime-v1\r\n"
        "X-Other: 1\r\n\r\n";
    op::RequestHead head;
    REQUIRE(op::parse_request_head(text, op::HeadLimits{}, head).status == op::ParseStatus::Complete);
    op::CredentialEdit edit;
    edit.strip = true;
    edit.name = "Authorization";
    edit.prefix = "Bearer ";
    edit.secret = "sk-server";
    op::ByteBuffer out;
    op::write_request_head(out, head, op::OutgoingTarget{false, "/v1/realtime"}, "api.example", {}, &edit);
    std::string got(out.view());
    CHECK(got ==
          "GET /v1/realtime HTTP/1.1\r\nHost: api.example\r\nAuthorization: Bearer sk-server\r\n"
          "Sec-WebSocket-Protocol: realtime, openai-beta.realtime-v1\r\nX-Other: 1\r\n\r\n");
    CHECK(got.find("ak-alice") == std::string::npos);

    // Strip only (access keys, no server key), api-key style untouched elsewhere.
    op::CredentialEdit strip;
    strip.strip = true;
    op::ByteBuffer out2;
    op::write_request_head(out2, head, op::OutgoingTarget{false, "/x"}, "h", {}, &strip);
    CHECK(std::string(out2.view()) == "GET /x HTTP/1.1\r\nHost: h\r\nSec-WebSocket-Protocol: realtime, "
                                      "openai-beta.realtime-v1\r\nX-Other: 1\r\n\r\n");
    // Without an edit, everything passes as before.
    op::ByteBuffer out3;
    op::write_request_head(out3, head, op::OutgoingTarget{false, "/x"}, "h");
    CHECK(std::string(out3.view()).find("Authorization: Bearer ak-alice") != std::string::npos);
}

TEST_CASE("failure names are short phrases for the log") {
    CHECK(std::string(op::failure_name(AttemptFailure::Connect)) == "connect failed");
    CHECK(std::string(op::failure_name(AttemptFailure::KeyRateLimited)) == "key rate-limited");
}
