// SOCKS5 client handshake; the contract is in socks5.h.
#include "socks5.h"

#include <cstring>
#include <utility>

namespace op::socks5 {
namespace {

constexpr unsigned char kVersion = 5;
constexpr unsigned char kAuthVersion = 1;  // RFC 1929
constexpr unsigned char kNoAuth = 0x00;
constexpr unsigned char kUserPass = 0x02;
constexpr unsigned char kNoAcceptable = 0xFF;
constexpr unsigned char kConnect = 1;
constexpr unsigned char kIPv4 = 1, kName = 3, kIPv6 = 4;

std::string hex_byte(unsigned v) {
    const char* digits = "0123456789abcdef";
    std::string s = "0x";
    s += digits[(v >> 4) & 15];
    s += digits[v & 15];
    return s;
}

}  // namespace

const char* reply_text(unsigned rep) {
    switch (rep) {
        case 0: return "succeeded";
        case 1: return "general SOCKS server failure";
        case 2: return "connection not allowed by ruleset";
        case 3: return "network unreachable";
        case 4: return "host unreachable";
        case 5: return "connection refused by destination";
        case 6: return "TTL expired";
        case 7: return "command not supported";
        case 8: return "address type not supported";
        default: return "unassigned reply code";
    }
}

ClientHandshake::ClientHandshake(std::string_view user, std::string_view password, Destination destination)
    : user_(user), password_(password), dest_(std::move(destination)) {}

ClientHandshake::Status ClientHandshake::fail(std::string message) {
    step_ = Step::Failed;
    error_ = std::move(message);
    return Status::Failed;
}

ClientHandshake::Status ClientHandshake::start(std::string& out) {
    if (step_ != Step::Greeting) return fail("socks5: handshake started twice");
    bool credentials = !user_.empty() || !password_.empty();
    if (credentials && (user_.empty() || user_.size() > 255 || password_.size() > 255))
        return fail("socks5: user name must be 1-255 bytes and password at most 255 (RFC 1929)");
    if (dest_.name.empty() ? (dest_.ip_len != 4 && dest_.ip_len != 16) : dest_.name.size() > 255)
        return fail("socks5: destination name longer than 255 bytes");
    out += static_cast<char>(kVersion);
    if (credentials) {
        out += static_cast<char>(2);
        out += static_cast<char>(kNoAuth);
        out += static_cast<char>(kUserPass);
    } else {
        out += static_cast<char>(1);
        out += static_cast<char>(kNoAuth);
    }
    step_ = Step::Method;
    return Status::NeedMore;
}

void ClientHandshake::append_connect(std::string& out) const {
    out += static_cast<char>(kVersion);
    out += static_cast<char>(kConnect);
    out += '\0';
    if (!dest_.name.empty()) {
        out += static_cast<char>(kName);
        out += static_cast<char>(dest_.name.size());
        out += dest_.name;
    } else {
        out += static_cast<char>(dest_.ip_len == 4 ? kIPv4 : kIPv6);
        out.append(reinterpret_cast<const char*>(dest_.ip), dest_.ip_len);
    }
    out += static_cast<char>(dest_.port >> 8);
    out += static_cast<char>(dest_.port & 0xFF);
}

ClientHandshake::Status ClientHandshake::feed(const char* data, std::size_t len, std::size_t& consumed,
                                              std::string& out) {
    consumed = 0;
    if (step_ == Step::Failed) return Status::Failed;
    if (step_ == Step::Done) return Status::Done;
    if (step_ == Step::Greeting) return fail("socks5: handshake not started");
    // One byte at a time: the messages are a few bytes long (a reply at most 262), and
    // each byte can decide what follows (a failure code, the address type, a length).
    while (consumed < len) {
        buf_[have_++] = static_cast<unsigned char>(data[consumed++]);
        if (step_ == Step::Reply) {
            if (have_ == 1 && buf_[0] != kVersion)
                return fail("socks5 proxy sent an invalid reply (version " + std::to_string(buf_[0]) + ")");
            // A failure is reported as soon as its code is known: servers often close
            // right after it, or send it short.
            if (have_ == 2 && buf_[1] != 0) {
                unsigned rep = buf_[1];
                return fail(std::string("socks5 proxy refused: ") + reply_text(rep) + " (REP " + std::to_string(rep) +
                            ")");
            }
            if (have_ < 4) continue;
            unsigned char atyp = buf_[3];
            std::size_t total = 0;
            if (atyp == kIPv4) total = 4 + 4 + 2;
            else if (atyp == kIPv6) total = 4 + 16 + 2;
            else if (atyp == kName) total = have_ >= 5 ? 4 + 1 + std::size_t{buf_[4]} + 2 : 0;
            else return fail("socks5 proxy sent an invalid reply (address type " + std::to_string(atyp) + ")");
            if (total != 0 && have_ == total) {
                have_ = 0;
                step_ = Step::Done;
                return Status::Done;
            }
            continue;
        }
        if (have_ < 2) continue;
        have_ = 0;
        unsigned char ver = buf_[0], code = buf_[1];
        if (step_ == Step::Method) {
            if (ver != kVersion)
                return fail(ver == 0 || ver == 4 ? std::string("socks5 proxy answered as SOCKS4, not SOCKS5")
                                                 : "not a SOCKS5 proxy (it answered version " + std::to_string(ver) + ")");
            bool credentials = !user_.empty() || !password_.empty();
            if (code == kNoAuth) {
                append_connect(out);
                step_ = Step::Reply;
            } else if (code == kUserPass && credentials) {
                authenticated_ = true;
                out += static_cast<char>(kAuthVersion);
                out += static_cast<char>(user_.size());
                out += user_;
                out += static_cast<char>(password_.size());
                out += password_;
                step_ = Step::Auth;
            } else if (code == kNoAcceptable || code == kUserPass) {
                return fail(credentials ? "socks5 proxy accepts none of the offered authentication methods"
                                        : "socks5 proxy requires a user and password (none configured)");
            } else {
                return fail("socks5 proxy chose an authentication method that was not offered (" + hex_byte(code) + ")");
            }
        } else {  // Step::Auth
            // RFC 1929 says VER 1; some servers answer 5. Either is taken.
            if (ver != kAuthVersion && ver != kVersion)
                return fail("socks5 proxy sent an invalid authentication reply (version " + std::to_string(ver) + ")");
            if (code != 0)
                return fail("socks5 proxy: authentication failed (user or password rejected, status " +
                            std::to_string(code) + ")");
            append_connect(out);
            step_ = Step::Reply;
        }
    }
    return Status::NeedMore;
}

}  // namespace op::socks5
