// Whether a JSON request body sets "stream": true, found by a scan of the bytes as they
// pass through the relay (-json-keepalive must not answer a streamed request with a
// JSON head). A state machine over the pattern
//     '"stream"' whitespace* ':' whitespace* 'true'
// fed piece by piece, so a split anywhere is the same as the whole body: no copy, no
// allocation, no JSON parse, O(1) per byte.
//
// It errs on the safe side: a key "stream" set to true at any depth counts (a false
// "yes" only means no keep-alive for that request). Inside a JSON string a quote is
// escaped (\"stream\"), so text that merely mentions the key does not match. A key
// written with escapes ("str\u0065am") is not recognised.
#pragma once

#include <cstddef>

namespace op {

class StreamFlagScan {
public:
    void reset() {
        pos_ = 0;
        found_ = false;
    }
    void feed(const char* p, std::size_t n);
    bool found() const { return found_; }

private:
    // 0..8: that many bytes of "\"stream\"" matched (8: the key, spaces may follow);
    // 10: after ':'; 11..13: "t", "tr", "tru" matched; 14: "true".
    unsigned pos_ = 0;
    bool found_ = false;
};

}  // namespace op
