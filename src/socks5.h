// The client side of a SOCKS5 handshake (RFC 1928, with RFC 1929 username/password
// authentication), as a pure codec: no sockets, no clock. UpstreamConn writes what it
// produces and feeds it what the server sends, in whatever pieces the network delivers.
//
//   start()  -> greeting: VER 5, NMETHODS, METHODS (0x00 "no authentication", and 0x02
//               "username/password" when credentials are given)
//   server   <- method choice (VER 5, METHOD)
//     0x02   -> RFC 1929 request: VER 1, ULEN, UNAME, PLEN, PASSWD
//     server <- VER 1, STATUS (0: success)
//            -> CONNECT: VER 5, CMD 1, RSV 0, ATYP (1 IPv4, 3 name, 4 IPv6), DST.ADDR, DST.PORT
//   server   <- reply: VER 5, REP, RSV, ATYP, BND.ADDR (4, 16, or 1 + length bytes), BND.PORT
//
// Every failure ends the handshake with a one-line message for the client's 502 and the
// log: "socks5 proxy refused: connection refused by destination (REP 5)", "socks5
// proxy: authentication failed (user or password rejected, status 1)", ...
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace op::socks5 {

// Where the SOCKS server should connect: a name it resolves (socks5h, ATYP 3), or an
// address resolved here (socks5, ATYP 1 or 4).
struct Destination {
    std::string name;            // non-empty: by name (1-255 bytes)
    unsigned char ip[16] = {};   // else: 4 (IPv4) or 16 (IPv6) bytes, network order
    std::size_t ip_len = 0;
    std::uint16_t port = 0;
};

// The text of a reply code: "connection refused by destination", ... ("unassigned
// reply code" for those RFC 1928 does not define).
const char* reply_text(unsigned rep);

class ClientHandshake {
public:
    enum class Status { NeedMore, Done, Failed };

    // `user` empty and `password` empty: no authentication is offered. Lengths are
    // checked by start() (RFC 1929: user 1-255 bytes, password 0-255; a name 1-255).
    ClientHandshake(std::string_view user, std::string_view password, Destination destination);

    // Appends the greeting to `out`. Failed (with error()) when the credentials or the
    // destination cannot be encoded.
    Status start(std::string& out);

    // Takes bytes from the server. Returns NeedMore (all of `len` used; whatever must be
    // sent next was appended to `out`), Done (the tunnel is open; `consumed` says how
    // many bytes the reply took: any beyond are the destination's), or Failed.
    Status feed(const char* data, std::size_t len, std::size_t& consumed, std::string& out);

    const std::string& error() const { return error_; }
    // The server asked for username/password authentication (for tests and logs).
    bool authenticated() const { return authenticated_; }

private:
    enum class Step { Greeting, Method, Auth, Reply, Done, Failed };
    Status fail(std::string message);
    void append_connect(std::string& out) const;

    std::string user_, password_;
    Destination dest_;
    Step step_ = Step::Greeting;
    bool authenticated_ = false;
    unsigned char buf_[4 + 1 + 255 + 2] = {};  // the longest message: a reply with a name
    std::size_t have_ = 0;
    std::string error_;
};

}  // namespace op::socks5
