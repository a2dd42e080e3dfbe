// libFuzzer target: the SOCKS5 client handshake (socks5.h) on arbitrary server bytes.
//
// The first input byte picks the setup (bit 0: credentials offered; bits 1-2: the
// destination as a name, IPv4 or IPv6) and a piece size (bits 3-7, 1..32); the rest is
// what the server sends. It is fed whole and in pieces of that size; both runs must end
// the same way (NeedMore, Done or Failed, the same error), produce the same bytes to send
// and, when Done, consume the same number of bytes. Each step must consume at most its
// input, consume all of it when it says NeedMore, and a finished handshake stays finished.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "socks5.h"

namespace {

void require(bool ok) {
    if (!ok) std::abort();
}

using op::socks5::ClientHandshake;

struct Outcome {
    ClientHandshake::Status status = ClientHandshake::Status::NeedMore;
    std::string sent;
    std::string error;
    std::size_t consumed = 0;
};

Outcome run(unsigned setup, std::string_view server, std::size_t piece) {
    op::socks5::Destination d;
    switch ((setup >> 1) & 3) {
        case 0: d.name = "api.example.com"; break;
        case 1: d.ip_len = 4; d.ip[0] = 10; break;
        default: d.ip_len = 16; d.ip[15] = 1; break;
    }
    d.port = 443;
    bool creds = setup & 1;
    ClientHandshake h(creds ? "user" : "", creds ? "secret" : "", d);
    Outcome out;
    require(h.start(out.sent) == ClientHandshake::Status::NeedMore);
    for (std::size_t at = 0; at < server.size(); at += piece) {
        std::string_view in = server.substr(at, piece);
        std::size_t consumed = 0;
        out.status = h.feed(in.data(), in.size(), consumed, out.sent);
        require(consumed <= in.size());
        out.consumed += consumed;
        if (out.status == ClientHandshake::Status::NeedMore) {
            require(consumed == in.size());
            continue;
        }
        if (out.status == ClientHandshake::Status::Failed) require(!h.error().empty());
        // Finished: further bytes change nothing.
        std::size_t again = 0;
        std::string more;
        require(h.feed(in.data(), in.size(), again, more) == out.status);
        require(more.empty() && again == 0);
        out.error = h.error();
        return out;
    }
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    unsigned setup = data[0];
    std::size_t piece = 1 + (setup >> 3);
    std::string_view server(reinterpret_cast<const char*>(data + 1), size - 1);
    Outcome whole = run(setup, server, server.size() ? server.size() : 1);
    Outcome pieces = run(setup, server, piece);
    require(whole.status == pieces.status);
    require(whole.sent == pieces.sent);
    require(whole.error == pieces.error);
    if (whole.status == ClientHandshake::Status::Done) require(whole.consumed == pieces.consumed);
    return 0;
}
