// Cross-origin resource sharing (CORS, the Fetch standard): which browser origins may
// call the proxy from a page, and what a preflight is granted. README "CORS" says what a
// front-end developer sees; this header is the rule.
//
// Contract: a CorsPolicy is part of Config: built once by parse_cors_origins() (every
// bad entry is an error at start-up), then only read. Off by default (`enabled` false):
// the proxy then adds nothing and forwards OPTIONS like any request.
//
// Origins are compared as browsers serialise them: scheme "://" host [":" port], the
// scheme and host in lower case, no default port (80 for http, 443 for https), no path.
// Configured entries are normalised to that form once; a request's Origin is compared
// with them case-insensitively, so nothing here allocates per request.
//
// With "*" every origin is allowed and echoed back (Access-Control-Allow-Origin: <the
// request's Origin>, never a literal "*"), but without Access-Control-Allow-Credentials,
// so that no page can send the proxy's cookies (a gateway's login cookie in front of it)
// and read the answer. An explicit list also grants credentials: those origins are
// trusted. Either way every answer carries "Vary: Origin".
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace op {

struct CorsPolicy {
    bool enabled = false;              // -cors-origins given
    bool any_origin = false;           // "*"
    std::vector<std::string> origins;  // normalised, when not any_origin

    // Whether a request with this Origin field value is granted access.
    bool allows(std::string_view origin) const;
    // Whether granted answers say "Access-Control-Allow-Credentials: true".
    bool credentials() const { return enabled && !any_origin; }
};

// Parses "*" or "origin,origin,..." (spaces around entries allowed) into `out`.
// On a bad entry returns false with `why` naming it and the reason.
bool parse_cors_origins(std::string_view text, CorsPolicy& out, std::string& why);

// Normalises one origin ("HTTPS://Example.COM:443" -> "https://example.com"); false
// with a reason when it is not scheme://host[:port].
bool normalize_origin(std::string_view text, std::string& out, std::string& why);

// Whether a preflight may grant the request header `name` (case-insensitive): the
// fields the OpenAI SDKs and compatible clients send: Authorization, Content-Type,
// Accept, Accept-Language, Content-Language, OpenAI-Organization, OpenAI-Project,
// OpenAI-Beta, api-key (Azure), Idempotency-Key, X-Target-Host (this proxy's own
// routing, still under -allow-hosts and the open-relay rule) and the x-stainless-*
// family (the SDKs' runtime, retry and timeout fields). Anything else is not granted,
// and the browser then refuses to send the request.
bool cors_header_allowed(std::string_view name);

// What one answer of the proxy carries: ClientConn decides, http_writer writes.
// A null `const CorsAnswer*` means CORS is off.
struct CorsAnswer {
    std::string_view allow_origin;  // the request's Origin when granted; empty: not granted
    bool credentials = false;       // Access-Control-Allow-Credentials: true
};

// The fixed parts of the answers.
inline constexpr std::string_view kCorsAllowMethods = "GET, POST, PUT, PATCH, DELETE, OPTIONS";
// Chromium caps a preflight's cache at 2 h; Firefox at 24 h.
inline constexpr std::string_view kCorsMaxAge = "7200";
// Listed, not "*": a credentialed request does not honour "*".
inline constexpr std::string_view kCorsExposeHeaders =
    "x-request-id, openai-processing-ms, openai-version, openai-organization, openai-project, "
    "x-ratelimit-limit-requests, x-ratelimit-limit-tokens, x-ratelimit-remaining-requests, "
    "x-ratelimit-remaining-tokens, x-ratelimit-reset-requests, x-ratelimit-reset-tokens, "
    "retry-after, retry-after-ms";

}  // namespace op
