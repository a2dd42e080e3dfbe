// libFuzzer target: the scanners that read bodies as they pass (the access log's
// UsageScanner, -json-keepalive's StreamFlagScan) on arbitrary bytes.
//
// The first input byte picks a piece size (1..64) and, in its top bits, the scanner's mode
// (request, response, response as SSE); the rest is the body. Each scanner is fed the body
// whole and in pieces of that size: both runs must end with the same findings, since a
// body arrives split wherever TCP splits it. The model kept never exceeds its bound.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "stream_flag_scan.h"
#include "usage_scanner.h"

namespace {

void require(bool ok) {
    if (!ok) std::abort();
}

struct Findings {
    bool has_model, truncated, stream;
    std::string_view model;
    std::int64_t prompt, completion;
};

Findings scan(op::UsageScanner& u, op::StreamFlagScan& f, op::UsageScanner::Mode mode, bool sse,
              std::string_view body, std::size_t piece) {
    u.reset(mode, sse);
    f.reset();
    for (std::size_t at = 0; at < body.size(); at += piece) {
        std::string_view in = body.substr(at, piece);
        u.feed(in);
        f.feed(in.data(), in.size());
    }
    require(u.model().size() <= op::UsageScanner::kMaxModel);
    return {u.has_model(), u.model_truncated(), f.found(), u.model(), u.prompt_tokens(), u.completion_tokens()};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const std::size_t piece = (data[0] & 0x3f) + 1;
    const unsigned kind = (data[0] >> 6) % 3;
    const auto mode = kind == 0 ? op::UsageScanner::Mode::Request : op::UsageScanner::Mode::Response;
    const bool sse = kind == 2;
    std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);

    static op::UsageScanner whole_u, split_u;
    static op::StreamFlagScan whole_f, split_f;
    Findings a = scan(whole_u, whole_f, mode, sse, body, body.size() ? body.size() : 1);
    Findings b = scan(split_u, split_f, mode, sse, body, piece);
    require(a.has_model == b.has_model && a.truncated == b.truncated && a.stream == b.stream);
    require(a.model == b.model);
    require(a.prompt == b.prompt && a.completion == b.completion);
    return 0;
}
