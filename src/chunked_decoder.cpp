// Chunked transfer coding (RFC 9112 section 7.1); the contract is in chunked_decoder.h.
//
// Every line (chunk size, trailer field) is parsed one byte at a time with its state
// kept in the decoder, so feed() never needs a line to arrive whole and never buffers:
// NeedMore always means "all input consumed". Payload is handed back as a view of the
// caller's bytes, as large as the chunk and the input allow.
#include "chunked_decoder.h"

#include "http_chars.h"

namespace op {
namespace {
using http_chars::hex_value;
using http_chars::is_ows;
using http_chars::is_tchar;
using http_chars::is_value_char;
}  // namespace

bool ChunkedDecoder::fail(const char* why) {
    state_ = State::Invalid;
    error_ = why;
    return false;
}

void ChunkedDecoder::start_line(State next) {
    state_ = next;
    part_ = Part::Begin;
    saw_cr_ = false;
    line_len_ = 0;
    size_ = 0;
}

// chunk-size [BWS] [chunk-ext] CRLF
bool ChunkedDecoder::size_line_byte(char c) {
    if (saw_cr_ && c != '\n') return fail("bare CR in chunk size line");
    if (c == '\n' && !saw_cr_) return fail("bare LF in chunk size line");
    if (c == '\n') {
        if (part_ == Part::Begin) return fail("missing chunk size");
        if (size_ == 0) {
            start_line(State::Trailer);
        } else {
            remaining_ = size_;
            state_ = State::Data;
        }
        return true;
    }
    if (c == '\r') {
        saw_cr_ = true;
        return part_ != Part::Begin || fail("missing chunk size");
    }
    if (++line_len_ > kMaxLine) return fail("chunk size line too long");  // CR and LF not counted
    switch (part_) {
        case Part::Begin:
        case Part::Digits: {
            int d = hex_value(c);
            if (d >= 0) {
                if (size_ >> 60 != 0) return fail("chunk size overflows 64 bits");
                size_ = size_ * 16 + static_cast<unsigned>(d);
                part_ = Part::Digits;
                return true;
            }
            if (part_ == Part::Begin) return fail("missing chunk size");
            if (is_ows(c)) {
                part_ = Part::Space;
                return true;
            }
            if (c == ';') {
                part_ = Part::Ext;
                return true;
            }
            return fail("invalid chunk size");
        }
        case Part::Space:
            if (is_ows(c)) return true;
            if (c == ';') {
                part_ = Part::Ext;
                return true;
            }
            return fail("invalid chunk size");
        case Part::Ext:
            return is_value_char(c) || fail("control byte in chunk extension");
        default:
            return fail("invalid chunk size");
    }
}

// trailer-section = *( field-line CRLF ) CRLF; the fields are checked, then dropped.
bool ChunkedDecoder::trailer_byte(char c) {
    if (saw_cr_ && c != '\n') return fail("bare CR in trailer");
    if (c == '\n' && !saw_cr_) return fail("bare LF in trailer");
    if (c == '\n') {
        if (part_ == Part::Begin) {
            state_ = State::Done;
        } else if (part_ == Part::Name) {
            return fail("trailer field without colon");
        } else {
            start_line(State::Trailer);
        }
        return true;
    }
    if (c == '\r') {
        saw_cr_ = true;
        return true;
    }
    if (++line_len_ > kMaxLine) return fail("trailer line too long");
    switch (part_) {
        case Part::Begin:
            if (is_tchar(c)) {
                part_ = Part::Name;
                return true;
            }
            if (c == ':') return fail("empty trailer field name");
            if (is_ows(c)) return fail("obsolete line folding in trailer");
            return fail("invalid trailer field name");
        case Part::Name:
            if (is_tchar(c)) return true;
            if (c == ':') {
                part_ = Part::Value;
                return true;
            }
            return fail("invalid trailer field name");
        case Part::Value:
            return is_value_char(c) || fail("control byte in trailer field");
        default:
            return fail("invalid trailer");
    }
}

ChunkedDecoder::Step ChunkedDecoder::feed(std::string_view in) {
    Step step;
    std::size_t pos = 0;
    const std::size_t n = in.size();
    while (state_ != State::Done && state_ != State::Invalid && pos < n) {
        switch (state_) {
            case State::Data: {
                std::size_t take = n - pos;
                if (remaining_ < take) take = static_cast<std::size_t>(remaining_);
                step.status = Status::Data;
                step.data = in.substr(pos, take);
                pos += take;
                remaining_ -= take;
                if (remaining_ == 0) {
                    state_ = State::DataCr;
                    // Take the CRLF now if it is here, sparing the caller a call; a wrong
                    // byte is left for the next call to report.
                    if (pos < n && in[pos] == '\r') {
                        state_ = State::DataLf;
                        ++pos;
                    }
                    if (state_ == State::DataLf && pos < n && in[pos] == '\n') {
                        start_line(State::Size);
                        ++pos;
                    }
                }
                step.consumed = pos;
                return step;
            }
            case State::DataCr:
                if (in[pos] == '\r') {
                    state_ = State::DataLf;
                } else if (in[pos] == '\n') {
                    fail("bare LF after chunk data");
                } else {
                    fail("chunk data not followed by CRLF");
                }
                break;
            case State::DataLf:
                if (in[pos] == '\n') {
                    start_line(State::Size);
                } else {
                    fail("bare CR after chunk data");
                }
                break;
            case State::Size:
                size_line_byte(in[pos]);
                break;
            case State::Trailer:
                trailer_byte(in[pos]);
                break;
            case State::Done:
            case State::Invalid:
                break;
        }
        if (state_ != State::Invalid) ++pos;
    }
    if (state_ == State::Invalid) {
        step.status = Status::Invalid;
        step.error = error_;
        step.consumed = 0;
        return step;
    }
    step.status = state_ == State::Done ? Status::Done : Status::NeedMore;
    step.consumed = pos;
    return step;
}

}  // namespace op
