// libFuzzer target: parse_request_head on arbitrary bytes.
//
// Invariants checked (a failure aborts, which libFuzzer reports as a crash):
//   - Complete: 0 < consumed <= size; every view lies inside the head; field_count is
//     within the limit; the same head cut one byte short is Incomplete, and cut exactly
//     at `consumed` is Complete again with the same length (the answer depends only on
//     the head's own bytes); shorter cuts (around the start line's end, and at a few
//     fractions of the head) are Incomplete too: the early refusal of a start line that
//     cannot become valid never refuses one that did.
//   - Invalid: one of the documented statuses and a non-empty reason.
//   - the answer is the same under a second, tighter set of limits unless a limit is hit.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "http_head.h"

namespace {

void require(bool ok) {
    if (!ok) std::abort();
}

bool inside(std::string_view part, std::string_view whole) {
    return part.empty() || (part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size());
}

void check(std::string_view in, const op::HeadLimits& limits) {
    op::RequestHead head;
    op::ParseResult r = op::parse_request_head(in, limits, head);
    require(r.error != nullptr);
    if (r.status == op::ParseStatus::Invalid) {
        int s = r.error_status;
        require(s == 400 || s == 414 || s == 431 || s == 501 || s == 505);
        require(std::strlen(r.error) > 0);
        return;
    }
    if (r.status == op::ParseStatus::Incomplete) return;
    require(r.consumed > 0 && r.consumed <= in.size());
    require(r.consumed <= limits.max_head_bytes);
    std::string_view h = in.substr(0, r.consumed);
    require(!head.method.empty() && inside(head.method, h));
    require(!head.target.empty() && inside(head.target, h));
    require(inside(head.host, h));
    require(head.version_minor == 0 || head.version_minor == 1);
    require(head.version_minor == 0 || head.has_host);
    require(head.field_count <= limits.max_fields && head.field_count <= op::kMaxHeaderFields);
    for (std::size_t i = 0; i < head.field_count; ++i) {
        require(!head.fields[i].name.empty() && inside(head.fields[i].name, h));
        require(inside(head.fields[i].value, h));
    }
    require(!(head.chunked && head.has_content_length));
    (void)head.body_kind();
    (void)head.keep_alive();

    op::RequestHead again;
    op::ParseResult exact = op::parse_request_head(h, limits, again);
    require(exact.status == op::ParseStatus::Complete && exact.consumed == r.consumed);
    op::ParseResult shorter = op::parse_request_head(h.substr(0, h.size() - 1), limits, again);
    require(shorter.status == op::ParseStatus::Incomplete);
    const std::size_t first_lf = h.find('\n');
    const std::size_t cuts[] = {1, 2, 3, first_lf, first_lf + 1, h.size() / 4, h.size() / 2, h.size() * 3 / 4};
    for (std::size_t k : cuts) {
        if (k == 0 || k >= h.size()) continue;
        require(op::parse_request_head(h.substr(0, k), limits, again).status == op::ParseStatus::Incomplete);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    check(in, op::HeadLimits{});
    op::HeadLimits tight;
    tight.max_head_bytes = 256;
    tight.max_request_line = 64;
    tight.max_field_line = 48;
    tight.max_fields = 4;
    check(in, tight);
    return 0;
}
