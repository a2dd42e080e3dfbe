#include "error_response.h"

#include <cstdio>

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

void append_json_escaped(std::string& out, std::string_view s) {
    for (unsigned char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c < 0x20 || c == 0x7f) {
            char esc[8];
            std::snprintf(esc, sizeof esc, "\\u%04x", c);
            out += esc;
        } else {
            out += static_cast<char>(c);
        }
    }
}

std::string render_error_response(const ProxyError& e, bool close) {
    std::string body = "{\"error\":{\"message\":\"";
    append_json_escaped(body, e.message);
    body += "\",\"type\":\"";
    append_json_escaped(body, e.type);
    body += "\",\"code\":\"";
    append_json_escaped(body, e.code);
    body += "\"}}\n";
    char head[256];
    int n = std::snprintf(head, sizeof head,
                          "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n%s\r\n",
                          e.status, reason_phrase(e.status), body.size(), close ? "Connection: close\r\n" : "");
    std::string out(head, static_cast<std::size_t>(n));
    out += body;
    return out;
}

}  // namespace op
