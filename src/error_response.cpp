#include "error_response.h"

#include "byte_buffer.h"

namespace op {

const char* reason_phrase(int status) {
    switch (status) {
        case 400: return "Bad Request";
        case 403: return "Forbidden";
        case 404: return "Not Found";
        case 405: return "Method Not Allowed";
        case 408: return "Request Timeout";
        case 411: return "Length Required";
        case 413: return "Content Too Large";
        case 414: return "URI Too Long";
        case 431: return "Request Header Fields Too Large";
        case 500: return "Internal Server Error";
        case 501: return "Not Implemented";
        case 502: return "Bad Gateway";
        case 503: return "Service Unavailable";
        case 504: return "Gateway Timeout";
        case 505: return "HTTP Version Not Supported";
        default: return "Error";
    }
}

namespace {
bool needs_escape(unsigned char c) { return c == '"' || c == '\\' || c < 0x20 || c == 0x7f; }
}  // namespace

std::size_t json_escaped_size(std::string_view s) {
    std::size_t n = s.size();
    for (unsigned char c : s) {
        if (needs_escape(c)) n += c == '"' || c == '\\' ? 1 : 5;  // a backslash, or "\u00XX" for one byte
    }
    return n;
}

void append_json_escaped(ByteBuffer& out, std::string_view s) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::size_t run = 0;  // start of the bytes not yet written
    for (std::size_t i = 0; i < s.size(); ++i) {
        const unsigned char c = static_cast<unsigned char>(s[i]);
        if (!needs_escape(c)) continue;
        out.append(s.data() + run, i - run);
        run = i + 1;
        if (c == '"' || c == '\\') {
            const char esc[2] = {'\\', static_cast<char>(c)};
            out.append(esc, sizeof esc);
        } else {
            const char esc[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xf]};
            out.append(esc, sizeof esc);
        }
    }
    out.append(s.data() + run, s.size() - run);
}

}  // namespace op
