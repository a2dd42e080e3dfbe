// The proxy's configuration: an immutable value built once from the command line and
// the environment, then passed by const reference. Never a global.
//
// Command line: Go `flag` package syntax, as the original: "-name=value",
// "-name value", "--name=value", "--name value"; boolean flags take no value
// ("-flag", or "-flag=true/false"). "--" ends the flags; a positional argument is an
// error. Environment variables are read through an injected lookup so tests can
// supply their own.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "cors_policy.h"
#include "egress.h"
#include "target.h"

namespace op {

struct ListenAddress {
    std::string host;          // "" = all interfaces (IPv4 and IPv6), else a literal or name
    std::uint16_t port = 9001;
    std::string text;          // as given, for the start log line
};

// A server-side API key of an origin: sent upstream in place of the client's credential.
struct ApiKey {
    std::string label;   // what logs and metrics show; never the secret
    std::string secret;
};

// One upstream origin of a configured target, and how it is reached.
struct Origin {
    Target target;
    std::optional<Egress> egress;  // unset: -upstream-proxy (or direct)
    std::vector<ApiKey> keys;      // used in turn; empty: the client's own credential passes
};

// Where a server-side key goes: "Authorization: Bearer KEY", or "api-key: KEY" (Azure).
enum class KeyHeader : std::uint8_t { Authorization, ApiKey };

// The most origins a target may have: an exchange tracks the ones it tried in 32 bits.
constexpr unsigned kMaxOrigins = 32;

// The largest retry-body-limit: every request in flight may keep that much in memory.
constexpr std::size_t kMaxRetryBodyLimit = 64u << 20;

// When a request moves on to the next origin (README "Failover").
struct FailoverPolicy {
    unsigned max_attempts = 3;                              // attempts in all
    std::vector<int> statuses{429, 500, 502, 503, 504};     // answers that move on
    std::size_t replay_limit = 1u << 20;                    // bodies kept for a retry up to this
    std::chrono::milliseconds head_timeout{0};  // 0: -response-timeout; else the time an attempt
                                                // may wait for the response head before the next origin is tried
};

// A configured target: its name (the Host key of -targets) and its origins, in order of
// preference. -targets and -default-target make one origin without keys; a -config file
// may give several, with keys and egress.
struct Route {
    std::string name;             // lower case; "" for the default target
    std::vector<Origin> origins;  // at least one
    KeyHeader key_header = KeyHeader::Authorization;
    FailoverPolicy failover;
};

// A client access key (-access-keys): requests must present one when any is configured.
struct AccessKey {
    std::string label;  // what logs and metrics show
    std::string key;
};

struct Config {
    ListenAddress listen;                                  // -listen / OPENAI_PROXY_LISTEN
    std::vector<Route> routes;                             // -targets + OPENAI_PROXY_TARGETS (+ -config)
    std::optional<Route> default_route;                    // -default-target / OPENAI_PROXY_DEFAULT_TARGET;
                                                           // api.openai.com when no targets at all
    std::string ca_file;                                   // -ca-file
    std::string tls_cert;                                  // -tls-cert: HTTPS on the listener (with tls_key)
    std::string tls_key;                                   // -tls-key
    std::optional<Egress> upstream_proxy;                  // -upstream-proxy, or local mode's HTTP proxy;
                                                           // never Direct ("direct" leaves it empty)
    bool local_mode = false;                               // ENV=local

    std::size_t buffer_size = 1024;                        // -buffer-size: bytes per first read (client_conn.cpp)
    // Not the original's 100/20: with more than 20 requests in flight to one upstream,
    // those caps close connections that are needed again a moment later, and every
    // request past 20 pays a TLS handshake (README, "Connection pool", has the
    // measurements).
    std::size_t pool_max_idle = 1024;                      // -pool-max-idle (per worker)
    std::size_t pool_max_idle_per_host = 512;              // -pool-max-idle-per-host (per worker)
    std::chrono::seconds pool_idle_timeout{90};            // -pool-idle-timeout
    std::chrono::seconds connect_timeout{10};              // -connect-timeout

    unsigned workers = 0;                                  // -workers: event loops (0 = one per core)
    std::chrono::seconds shutdown_grace{30};               // -shutdown-grace

    // Limits (each answered with its own status).
    std::size_t max_connections = 10000;                   // -max-connections: client connections
    std::uint64_t max_body_bytes = 512ull << 20;           // -max-body-size: request body; beyond: 413
    std::size_t max_header_bytes = 64 * 1024;              // -max-header-size: request head; beyond: 431
    std::size_t max_request_line = 8 * 1024;               // -max-request-line: beyond: 414
    std::size_t max_header_count = 100;                    // -max-header-count: beyond: 431
    std::size_t max_header_line = 16 * 1024;               // -max-header-line: one field line; beyond: 431

    // Timeouts: idle and per phase, never a total one.
    std::chrono::seconds header_timeout{30};               // -header-timeout: client head read
    std::chrono::seconds keepalive_timeout{75};            // -keepalive-timeout: idle client between requests
    std::chrono::seconds tls_timeout{10};                  // -tls-timeout: upstream TLS handshake
    std::chrono::seconds response_timeout{600};            // -response-timeout: waiting for the response head
    std::chrono::seconds idle_timeout{600};                // -idle-timeout: no byte either way mid-exchange

    // Who may choose an upstream with X-Target-Host.
    std::vector<std::string> allow_hosts;                  // -allow-hosts: names and *.suffix patterns
    bool allow_private = false;                            // -allow-private: lift the address rule
    bool disable_target_header = false;                    // -disable-target-header

    // Browsers and CDNs (README "CORS" and "Keep-alive through CDNs"); all off by default.
    CorsPolicy cors;                                       // -cors-origins / OPENAI_PROXY_CORS_ORIGINS
    std::chrono::milliseconds sse_keepalive{0};            // -sse-keepalive: comment after this silence
    std::chrono::milliseconds json_keepalive{0};           // -json-keepalive: 200 head + whitespace
    // Observability (README, "Metrics and health", "Access log"); both off by default.
    std::optional<ListenAddress> admin_listen;             // -admin-listen: /healthz and /metrics
    std::string access_log;                                // -access-log: a path, or "-" (stdout)
    std::string access_keys_file;         // -access-keys FILE (env OPENAI_PROXY_ACCESS_KEYS): "label = key" lines
    std::vector<AccessKey> access_keys;   // loaded from it; non-empty = every request must present one
    bool allow_anonymous = false;         // -allow-anonymous: serve injected keys without access keys beyond loopback
    std::string config_file;              // -config FILE (env OPENAI_PROXY_CONFIG)
};

using EnvLookup = std::function<const char*(const char* name)>;

struct ConfigResult {
    Config config;
    std::vector<std::string> errors;  // every problem found, one line each; empty = OK
    bool show_help = false;           // -h / -help / --help
    bool show_version = false;        // -version / --version
    bool check_only = false;          // -check-config: validate, print a summary, exit
};

// Reads a whole file: false and `error` (the system's reason, e.g. "No such file or
// directory") when it cannot. Injected so that tests can supply files of their own.
using ReadFile = std::function<bool(const std::string& path, std::string& text, std::string& error)>;
bool read_file_text(const std::string& path, std::string& text, std::string& error);

// Parses argv[1..argc), the environment and the -config file (with the key files and the
// access keys it names), in that order of precedence. Never exits, never prints; every
// problem is in `errors`, those of a file as "file:line: what is wrong".
ConfigResult parse_config(int argc, const char* const* argv, const EnvLookup& env);
ConfigResult parse_config(int argc, const char* const* argv, const EnvLookup& env, const ReadFile& read);

// "configuration OK: 2 targets, 3 origins, 4 keys, 2 access keys" (the default target
// counts as a target), for -check-config and the reload log line.
std::string config_summary(const Config& c, const char* lead = "configuration OK");

// The safe default: "" when `c` may run, else why not (server-side keys, no access keys,
// a listen address beyond loopback, no -allow-anonymous). parse_config checks it; a
// reload checks it again against the listen address actually kept.
std::string safe_default_error(const Config& c);

// Whether `a` accepts only loopback connections: 127.0.0.0/8, [::1] or "localhost"
// (by name: nothing is resolved). ":9001" and "0.0.0.0:9001" are not.
bool listen_is_loopback(const ListenAddress& a);

// The -h text: every option with its env var and default, one per line.
std::string usage_text(const char* program_name);

// The version string printed by --version, e.g. "openai-proxy 1.0.0".
const char* version_text();

// Parses "host:port", ":port", "[v6]:port" (Go's net.Listen syntax).
bool parse_listen_address(std::string_view text, ListenAddress& out, std::string& error);

}  // namespace op
