// The "stream": true scan; the contract is in stream_flag_scan.h.
#include "stream_flag_scan.h"

namespace op {
namespace {

constexpr char kKey[] = "\"stream\"";  // 8 bytes
constexpr char kTrue[] = "true";

bool json_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

}  // namespace

void StreamFlagScan::feed(const char* p, std::size_t n) {
    for (std::size_t i = 0; i < n && !found_; ++i) {
        const char c = p[i];
        if (pos_ < 8) {
            if (c == kKey[pos_]) ++pos_;
            else pos_ = c == '"' ? 1 : 0;  // '"' only starts the key: no other overlap
        } else if (pos_ == 8) {  // the key matched: spaces, then ':'
            if (c == ':') pos_ = 10;
            else if (!json_space(c)) pos_ = c == '"' ? 1 : 0;
        } else if (pos_ == 10) {
            if (c == 't') pos_ = 11;
            else if (!json_space(c)) pos_ = c == '"' ? 1 : 0;
        } else {  // 11..13: in "true"
            if (c == kTrue[pos_ - 10]) {
                if (++pos_ == 14) found_ = true;
            } else {
                pos_ = c == '"' ? 1 : 0;
            }
        }
    }
}

}  // namespace op
