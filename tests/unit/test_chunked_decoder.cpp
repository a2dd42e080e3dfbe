// Tests for chunked_decoder.h: every valid body is decoded whole, split at every
// offset and one byte at a time (each piece in an exact-size heap copy, so ASan sees
// any read past its end); the reassembled payload must match. Invalid bodies must be
// refused however they are split; the chunk writer (http_writer.h) must round-trip through
// the decoder.
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "byte_buffer.h"
#include "chunked_decoder.h"
#include "http_writer.h"
#include "doctest/doctest.h"

using op::ChunkedDecoder;
using Status = op::ChunkedDecoder::Status;

namespace {

struct Outcome {
    Status status = Status::NeedMore;  // NeedMore, Done or Invalid once all pieces are fed
    std::string payload;
    std::size_t consumed = 0;  // total bytes consumed up to Done
};

// Feeds `pieces` in order, each from its own exact-size allocation, and checks the
// per-step contract on the way.
Outcome decode(const std::vector<std::string>& pieces) {
    ChunkedDecoder d;
    Outcome out;
    for (const std::string& piece : pieces) {
        std::unique_ptr<char[]> copy(new char[piece.size() + (piece.empty() ? 1 : 0)]);
        std::memcpy(copy.get(), piece.data(), piece.size());
        std::string_view in(copy.get(), piece.size());
        for (;;) {
            ChunkedDecoder::Step s = d.feed(in);
            REQUIRE(s.consumed <= in.size());
            if (s.status == Status::Invalid) {
                REQUIRE(s.error != nullptr);
                CHECK(std::strlen(s.error) > 0);
                out.status = Status::Invalid;
                return out;
            }
            if (s.status == Status::Data) {
                REQUIRE(!s.data.empty());
                REQUIRE(s.data.data() >= in.data());  // a view into the input, not a copy
                REQUIRE(s.data.data() + s.data.size() <= in.data() + s.consumed);
                out.payload.append(s.data);
            }
            if (s.status == Status::NeedMore) REQUIRE(s.consumed == in.size());
            out.consumed += s.consumed;
            in.remove_prefix(s.consumed);
            if (s.status == Status::Done) {
                CHECK(d.done());
                out.status = Status::Done;
                return out;
            }
            if (s.status == Status::NeedMore) break;
        }
    }
    out.status = Status::NeedMore;
    return out;
}

std::vector<std::string> bytes_of(const std::string& s) {
    std::vector<std::string> v;
    for (char c : s) v.emplace_back(1, c);
    return v;
}

struct ValidCase {
    const char* name;
    std::string encoded;  // the body, possibly followed by bytes of the next message
    std::string payload;
    std::size_t body_len;
};

std::vector<ValidCase> valid_cases() {
    auto c = [](const char* name, const std::string& body, const std::string& payload, const std::string& after = "") {
        return ValidCase{name, body + after, payload, body.size()};
    };
    return {
        c("one chunk", "5\r\nhello\r\n0\r\n\r\n", "hello"),
        c("empty body", "0\r\n\r\n", ""),
        c("several chunks, mixed hex case", "3\r\nabc\r\nA\r\n0123456789\r\n1b\r\n" + std::string(27, 'z') + "\r\n0\r\n\r\n",
          "abc0123456789" + std::string(27, 'z')),
        c("bytes of the next message stay unconsumed", "2\r\nhi\r\n0\r\n\r\n", "hi", "HTTP/1.1 200 OK\r\n"),
        c("leading zeros", "0005\r\nhello\r\n000\r\n\r\n", "hello"),
        c("chunk extensions ignored", "5;name=value;q=\"a b\"\r\nhello\r\n0;last\r\n\r\n", "hello"),
        c("whitespace after the size", "5 \t;x\r\nhello\r\n0  \r\n\r\n", "hello"),
        c("trailer fields validated and dropped", "5\r\nhello\r\n0\r\nX-Checksum: abc\r\nX-Empty:\r\nX-O: \xc3\xa9\r\n\r\n",
          "hello"),
        c("payload holding CRLF and NUL", std::string("6\r\n\r\n\0\r\n\n\r\n0\r\n\r\n", 16), std::string("\r\n\0\r\n\n", 6)),
        c("payload of all byte values", "100\r\n" + [] {
              std::string all;
              for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
              return all;
          }() + "\r\n0\r\n\r\n",
          [] {
              std::string all;
              for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
              return all;
          }()),
    };
}

}  // namespace

TEST_CASE("chunked decoder: valid bodies whole, split at every offset, byte by byte") {
    for (const ValidCase& c : valid_cases()) {
        INFO(c.name);
        Outcome whole = decode({c.encoded});
        REQUIRE(whole.status == Status::Done);
        CHECK(whole.payload == c.payload);
        CHECK(whole.consumed == c.body_len);
        for (std::size_t k = 0; k <= c.encoded.size(); ++k) {
            INFO("split at ", k);
            Outcome split = decode({c.encoded.substr(0, k), c.encoded.substr(k)});
            REQUIRE(split.status == Status::Done);
            CHECK(split.payload == c.payload);
            CHECK(split.consumed == c.body_len);
            if (k < c.body_len) {
                Outcome prefix = decode({c.encoded.substr(0, k)});
                CHECK(prefix.status == Status::NeedMore);
            }
        }
        Outcome bytes = decode(bytes_of(c.encoded));
        REQUIRE(bytes.status == Status::Done);
        CHECK(bytes.payload == c.payload);
        CHECK(bytes.consumed == c.body_len);
    }
}

TEST_CASE("chunked decoder: invalid bodies are refused however they are split") {
    struct Case {
        const char* name;
        std::string encoded;
    };
    std::vector<Case> cases = {
        {"non-hex size", "g\r\nx\r\n0\r\n\r\n"},
        {"size with 0x prefix", "0x5\r\nhello\r\n0\r\n\r\n"},
        {"missing size", "\r\nhello\r\n0\r\n\r\n"},
        {"extension without size", ";x\r\n\r\n"},
        {"negative size", "-5\r\nhello\r\n0\r\n\r\n"},
        {"plus sign", "+5\r\nhello\r\n0\r\n\r\n"},
        {"leading space", " 5\r\nhello\r\n0\r\n\r\n"},
        {"space inside the size", "1 0\r\n" + std::string(16, 'a') + "\r\n0\r\n\r\n"},
        {"size overflowing 64 bits", "10000000000000000\r\n"},
        {"size overflowing 64 bits with leading zeros kept", "0ffffffffffffffff0\r\n"},
        {"data longer than its size", "5\r\nhello!\r\n0\r\n\r\n"},
        {"data not followed by CRLF", "5\r\nhelloXY0\r\n\r\n"},
        {"data followed by CR and no LF", "5\r\nhello\rX0\r\n\r\n"},
        {"bare CR in size line", "5\rhello\r\n0\r\n\r\n"},
        {"bare LF ending the size line", "5\nhello\r\n0\r\n\r\n"},
        {"bare LF after chunk data", "5\r\nhello\n0\r\n\r\n"},
        {"bare LF ending the last chunk line", "5\r\nhello\r\n0\n\r\n"},
        {"bare LF ending the trailer section", "5\r\nhello\r\n0\r\n\n"},
        {"bare LF ending a trailer field", "0\r\nX-A: 1\n\r\n"},
        {"bare LF everywhere", "5\nhello\n0\n\n"},
        {"bare CR after the size digits", "5\r\r\nhello\r\n0\r\n\r\n"},
        {"control byte in extension", "5;a\x01\r\nhello\r\n0\r\n\r\n"},
        {"NUL in extension", std::string("5;\0\r\nhello\r\n0\r\n\r\n", 17)},
        {"trailer without colon", "0\r\nX-A\r\n\r\n"},
        {"trailer with space before colon", "0\r\nX-A : 1\r\n\r\n"},
        {"trailer with empty name", "0\r\n: 1\r\n\r\n"},
        {"trailer obs-fold", "0\r\nX-A: 1\r\n 2\r\n\r\n"},
        {"trailer bare CR", "0\r\nX-A: 1\r2\r\n\r\n"},
        {"trailer control byte", "0\r\nX-A: 1\x7f\r\n\r\n"},
        {"trailer non-token name", "0\r\nX(A): 1\r\n\r\n"},
        {"bare CR ending the trailer", "0\r\n\rX"},
        {"size line too long", "5;" + std::string(ChunkedDecoder::kMaxLine, 'e') + "\r\nhello\r\n0\r\n\r\n"},
        {"trailer line too long", "0\r\nX: " + std::string(ChunkedDecoder::kMaxLine, 'v') + "\r\n\r\n"},
        {"endless zeros in the size", std::string(ChunkedDecoder::kMaxLine + 1, '0')},
    };
    for (const Case& c : cases) {
        INFO(c.name);
        CHECK(decode({c.encoded}).status == Status::Invalid);
        CHECK(decode(bytes_of(c.encoded)).status == Status::Invalid);
        for (std::size_t k = 0; k <= c.encoded.size(); ++k) {
            CHECK(decode({c.encoded.substr(0, k), c.encoded.substr(k)}).status == Status::Invalid);
        }
    }
}

TEST_CASE("chunked decoder: line length limit is exact") {
    std::string ext_ok = "5;" + std::string(ChunkedDecoder::kMaxLine - 2, 'e');  // kMaxLine bytes before CRLF
    CHECK(decode({ext_ok + "\r\nhello\r\n0\r\n\r\n"}).status == Status::Done);
    CHECK(decode({ext_ok + "e\r\nhello\r\n0\r\n\r\n"}).status == Status::Invalid);
    std::string trailer_ok = "X: " + std::string(ChunkedDecoder::kMaxLine - 3, 'v');
    CHECK(decode({"0\r\n" + trailer_ok + "\r\n\r\n"}).status == Status::Done);
    CHECK(decode({"0\r\n" + trailer_ok + "v\r\n\r\n"}).status == Status::Invalid);
    CHECK(decode({"ffffffffffffffff\r\n"}).status == Status::NeedMore);  // the largest size still parses
}

TEST_CASE("chunked decoder: steps, Done is sticky and reset starts over") {
    ChunkedDecoder d;
    std::string in = "4\r\nwxyz\r\n0\r\n\r\nNEXT";
    ChunkedDecoder::Step s = d.feed(in);
    REQUIRE(s.status == Status::Data);
    CHECK(s.data == "wxyz");
    CHECK(s.data.data() == in.data() + 3);
    CHECK(s.consumed == 9);  // the CRLF after the data is taken in the same step
    s = d.feed(std::string_view(in).substr(9));
    CHECK(s.status == Status::Done);
    CHECK(s.consumed == 5);
    CHECK(d.done());
    s = d.feed("NEXT");
    CHECK(s.status == Status::Done);
    CHECK(s.consumed == 0);

    d.reset();
    CHECK_FALSE(d.done());
    s = d.feed("3\r\n");
    CHECK(s.status == Status::NeedMore);
    CHECK(s.consumed == 3);
    s = d.feed("");
    CHECK(s.status == Status::NeedMore);
    CHECK(s.consumed == 0);
    s = d.feed("ab");
    CHECK(s.status == Status::Data);
    CHECK(s.data == "ab");
    s = d.feed("cX");
    CHECK(s.status == Status::Data);
    CHECK(s.data == "c");
    CHECK(s.consumed == 1);
    s = d.feed("X");
    CHECK(s.status == Status::Invalid);
    s = d.feed("\r\n");
    CHECK(s.status == Status::Invalid);  // Invalid is sticky too
    CHECK(s.consumed == 0);
}

TEST_CASE("chunked decoder: round trip through the chunk writer") {
    std::string payload;
    op::ByteBuffer out;
    std::size_t sizes[] = {1, 2, 15, 16, 17, 255, 256, 4095, 4096, 65537};
    for (std::size_t n : sizes) {
        std::string part;
        for (std::size_t i = 0; i < n; ++i) part += static_cast<char>((i * 31 + n) & 0xff);
        payload += part;
        op::write_chunk(out, part);
    }
    op::write_last_chunk(out);
    const std::string encoded(out.view());
    Outcome whole = decode({encoded});
    REQUIRE(whole.status == Status::Done);
    CHECK(whole.payload == payload);
    CHECK(whole.consumed == encoded.size());
    std::vector<std::string> pieces;  // odd-sized pieces that cut every kind of boundary
    for (std::size_t i = 0; i < encoded.size(); i += 7) pieces.push_back(encoded.substr(i, 7));
    Outcome split = decode(pieces);
    REQUIRE(split.status == Status::Done);
    CHECK(split.payload == payload);
}
