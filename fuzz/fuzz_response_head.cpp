// libFuzzer target: parse_response_head on arbitrary bytes.
//
// Invariants: Complete means 0 < consumed <= size, views inside the head, a status in
// 100..999, a consistent body kind, and the same answer for the head alone while one
// byte less is Incomplete, as are shorter cuts (around the status line's end and at a
// few fractions of the head: the early refusal of a status line that cannot become
// valid never refuses one that did); Invalid is always 502 with a non-empty reason.
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
    op::ResponseHead head;
    op::ParseResult r = op::parse_response_head(in, limits, head);
    require(r.error != nullptr);
    if (r.status == op::ParseStatus::Invalid) {
        require(r.error_status == 502);
        require(std::strlen(r.error) > 0);
        return;
    }
    if (r.status == op::ParseStatus::Incomplete) return;
    require(r.consumed > 0 && r.consumed <= in.size() && r.consumed <= limits.max_head_bytes);
    std::string_view h = in.substr(0, r.consumed);
    require(head.status >= 100 && head.status <= 999);
    require(inside(head.reason, h));
    require(head.field_count <= limits.max_fields && head.field_count <= op::kMaxHeaderFields);
    for (std::size_t i = 0; i < head.field_count; ++i) {
        require(!head.fields[i].name.empty() && inside(head.fields[i].name, h));
        require(inside(head.fields[i].value, h));
    }
    op::BodyKind kind = head.body_kind(false);
    require(head.body_kind(true) == op::BodyKind::None);
    if (kind == op::BodyKind::Chunked) require(head.chunked && !head.has_content_length);
    if (kind == op::BodyKind::ContentLength) require(head.has_content_length && head.content_length > 0);
    (void)head.keep_alive();

    op::ResponseHead again;
    op::ParseResult exact = op::parse_response_head(h, limits, again);
    require(exact.status == op::ParseStatus::Complete && exact.consumed == r.consumed);
    require(op::parse_response_head(h.substr(0, h.size() - 1), limits, again).status == op::ParseStatus::Incomplete);
    const std::size_t first_lf = h.find('\n');
    const std::size_t cuts[] = {1, 9, 12, 13, first_lf, first_lf + 1, h.size() / 4, h.size() / 2, h.size() * 3 / 4};
    for (std::size_t k : cuts) {
        if (k == 0 || k >= h.size()) continue;
        require(op::parse_response_head(h.substr(0, k), limits, again).status == op::ParseStatus::Incomplete);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    check(in, op::HeadLimits{});
    op::HeadLimits tight;
    tight.max_head_bytes = 200;
    tight.max_field_line = 40;
    tight.max_fields = 3;
    check(in, tight);
    return 0;
}
