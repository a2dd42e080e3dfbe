// Incremental decoder for the chunked transfer coding (RFC 9112 section 7.1).
//
// A small state machine that never copies payload: each call to feed() looks at the
// bytes the caller has buffered and returns how many it consumed plus, possibly, a
// view of payload bytes inside that input. Call feed() again with the remaining
// input until it answers NeedMore (no more progress possible without more bytes),
// Done (the last chunk and trailer section have been consumed; bytes after it are not
// part of this message) or Invalid.
//
// Strictness: chunk sizes are 1+ hex digits that fit in 64 bits (leading zeros
// allowed), whitespace after the size (BWS) and chunk extensions are accepted and
// ignored (extensions must hold no control bytes), chunk data must be followed by
// CRLF, and bare CR or bare LF in chunk lines is Invalid (RFC 9112 7.1; a lenient
// reading here is a request-smuggling vector between disagreeing peers). Trailer
// fields are validated like header fields and discarded. A chunk line or trailer line
// longer than kMaxLine bytes is Invalid, so a hostile peer cannot make it buffer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace op {

class ChunkedDecoder {
public:
    enum class Status { NeedMore, Data, Done, Invalid };

    struct Step {
        Status status = Status::NeedMore;
        std::size_t consumed = 0;   // bytes of the input used by this step
        std::string_view data;      // payload when status == Data (a view into the input)
        const char* error = "";     // reason when Invalid
    };

    static constexpr std::size_t kMaxLine = 4096;

    // Consumes at most a prefix of `in`. Returns Data with a non-empty payload view,
    // or NeedMore after consuming every byte it could (consumed may be > 0, e.g. a
    // complete chunk-size line), or Done / Invalid. A Data step's `consumed` covers the
    // payload plus any framing before it and, when already buffered, the CRLF after
    // it; a Done step's covers the final empty line and nothing beyond. Once Done or
    // Invalid, further calls consume nothing and repeat that answer.
    Step feed(std::string_view in);

    bool done() const { return state_ == State::Done; }
    void reset() { *this = ChunkedDecoder{}; }

private:
    enum class State { Size, Data, DataCr, DataLf, Trailer, Done, Invalid };
    // Where the current chunk-size line or trailer line has got to.
    enum class Part { Begin, Digits, Space, Ext, Name, Value };

    // Advance the current line by one byte; false (with error_ set) if it is Invalid.
    bool size_line_byte(char c);
    bool trailer_byte(char c);
    bool fail(const char* why);
    void start_line(State next);

    State state_ = State::Size;
    Part part_ = Part::Begin;
    bool saw_cr_ = false;          // last byte of the current line was CR: LF must follow
    std::size_t line_len_ = 0;     // bytes of the current line seen so far
    std::uint64_t size_ = 0;       // chunk size parsed so far
    std::uint64_t remaining_ = 0;  // payload bytes left in the current chunk
    const char* error_ = "";
};

}  // namespace op
