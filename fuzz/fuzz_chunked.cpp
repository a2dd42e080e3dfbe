// libFuzzer target: ChunkedDecoder on arbitrary bytes.
//
// The first input byte picks a piece size (1..256); the rest is the body. The body is
// decoded whole and in pieces of that size; both runs must end the same way (Done,
// NeedMore or Invalid), reassemble the same payload and, when Done, consume the same
// number of bytes. Each step must consume at most its input, return payload views
// inside what it consumed, consume everything when it says NeedMore, and make
// progress (so a hostile body can never spin the caller's loop).
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "chunked_decoder.h"
#include "http_writer.h"

namespace {

void require(bool ok) {
    if (!ok) std::abort();
}

struct Outcome {
    op::ChunkedDecoder::Status status = op::ChunkedDecoder::Status::NeedMore;
    std::string payload;
    std::size_t consumed = 0;
};

Outcome decode(std::string_view body, std::size_t piece) {
    using Status = op::ChunkedDecoder::Status;
    op::ChunkedDecoder d;
    Outcome out;
    for (std::size_t at = 0; at < body.size(); at += piece) {
        std::string_view in = body.substr(at, piece);
        for (;;) {
            op::ChunkedDecoder::Step s = d.feed(in);
            require(s.consumed <= in.size());
            require(s.error != nullptr);
            if (s.status == Status::Invalid) {
                out.status = Status::Invalid;
                return out;
            }
            if (s.status == Status::Data) {
                require(!s.data.empty());
                require(s.data.data() >= in.data() && s.data.data() + s.data.size() <= in.data() + s.consumed);
                out.payload.append(s.data);
            } else if (s.status == Status::NeedMore) {
                require(s.consumed == in.size());
            }
            out.consumed += s.consumed;
            in.remove_prefix(s.consumed);
            if (s.status == Status::Done) {
                require(d.done());
                require(d.feed(in).consumed == 0);
                out.status = Status::Done;
                return out;
            }
            if (s.status == Status::NeedMore) break;
        }
    }
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    std::size_t piece = static_cast<std::size_t>(data[0]) + 1;
    std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
    Outcome whole = decode(body, body.size() == 0 ? 1 : body.size());
    Outcome pieces = decode(body, piece);
    require(whole.status == pieces.status);
    require(whole.payload == pieces.payload);
    if (whole.status == op::ChunkedDecoder::Status::Done) require(whole.consumed == pieces.consumed);

    char hdr[op::kMaxChunkHeader];
    std::size_t len = op::chunk_header(hdr, size);
    require(len >= 3 && len <= op::kMaxChunkHeader && hdr[len - 2] == '\r' && hdr[len - 1] == '\n');
    return 0;
}
