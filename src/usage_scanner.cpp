#include "usage_scanner.h"

#include <cstring>

namespace op {

void UsageScanner::reset(Mode mode, bool sse) {
    *this = UsageScanner(mode);
    sse_ = sse;
}

void UsageScanner::reset_structure() {
    in_string_ = false;
    escape_ = 0;
    capture_ = Capture::None;
    depth_ = 0;
    objects_ = 0;
    expect_key_ = false;
    pending_ = Key::None;
    last_key_ = Key::None;
    usage_depth_ = 0;
    in_number_ = false;
}

void UsageScanner::feed(const char* p, std::size_t n) {
    const char* end = p + n;
    while (p < end && !done_) {
        if (in_string_ && capture_ == Capture::None && escape_ == 0) {
            // Skip string content nobody wants up to what can end it.
            while (p < end && *p != '"' && *p != '\\' && *p != '\n') ++p;
            if (p == end) return;
        }
        char c = *p++;
        if (c == '\n') {
            if (sse_) {
                end_number();
                reset_structure();
                continue;
            }
            if (in_string_) {  // cannot be in a JSON string: out of step, resynchronise
                in_string_ = false;
                escape_ = 0;
                capture_ = Capture::None;
                continue;
            }
        }
        if (in_string_) string_byte(c);
        else structural(c);
    }
}

void UsageScanner::string_byte(char c) {
    unsigned char u = static_cast<unsigned char>(c);
    if (escape_ == 1) {
        escape_ = 0;
        switch (c) {
            case 'b': captured('\b'); return;
            case 'f': captured('\f'); return;
            case 'n': captured('\n'); return;
            case 'r': captured('\r'); return;
            case 't': captured('\t'); return;
            case 'u': escape_ = 2; hex_ = 0; return;
            default: captured(u); return;  // '"', '\\', '/', and anything else as itself
        }
    }
    if (escape_ >= 2) {
        unsigned d;
        if (c >= '0' && c <= '9') d = static_cast<unsigned>(c - '0');
        else if (c >= 'a' && c <= 'f') d = static_cast<unsigned>(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') d = static_cast<unsigned>(c - 'A' + 10);
        else {  // malformed escape: take the byte as it is
            escape_ = 0;
            if (c == '"') end_string();
            else captured(u);
            return;
        }
        hex_ = hex_ * 16 + d;
        if (++escape_ == 6) {
            escape_ = 0;
            captured_code_point(hex_);
        }
        return;
    }
    if (c == '\\') {
        escape_ = 1;
        return;
    }
    if (c == '"') {
        end_string();
        return;
    }
    captured(u);
}

void UsageScanner::captured(unsigned char c) {
    if (capture_ == Capture::Key) {
        if (key_len_ < sizeof key_) key_[key_len_++] = static_cast<char>(c);
        else key_long_ = true;
    } else if (capture_ == Capture::Model) {
        if (model_len_ < kMaxModel) model_[model_len_++] = static_cast<char>(c);
        else model_truncated_ = true;
    }
}

void UsageScanner::captured_code_point(unsigned cp) {
    if (capture_ == Capture::None) return;
    if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD;  // surrogate halves are not paired up: replaced
    if (cp < 0x80) {
        captured(static_cast<unsigned char>(cp));
    } else if (cp < 0x800) {
        captured(static_cast<unsigned char>(0xC0 | (cp >> 6)));
        captured(static_cast<unsigned char>(0x80 | (cp & 0x3F)));
    } else {
        captured(static_cast<unsigned char>(0xE0 | (cp >> 12)));
        captured(static_cast<unsigned char>(0x80 | ((cp >> 6) & 0x3F)));
        captured(static_cast<unsigned char>(0x80 | (cp & 0x3F)));
    }
}

namespace {
bool is(const char* key, std::size_t len, const char* name) {
    return std::strlen(name) == len && std::memcmp(key, name, len) == 0;
}
}  // namespace

void UsageScanner::end_string() {
    in_string_ = false;
    Capture was = capture_;
    capture_ = Capture::None;
    if (was == Capture::Key) {
        last_key_ = Key::None;
        if (!key_long_) {
            if (mode_ == Mode::Request) {
                if (depth_ == 1 && is(key_, key_len_, "model")) last_key_ = Key::Model;
            } else if (is(key_, key_len_, "usage")) {
                last_key_ = Key::Usage;
            } else if (usage_depth_ != 0 && depth_ == usage_depth_) {
                if (is(key_, key_len_, "prompt_tokens") || is(key_, key_len_, "input_tokens")) last_key_ = Key::Prompt;
                else if (is(key_, key_len_, "completion_tokens") || is(key_, key_len_, "output_tokens"))
                    last_key_ = Key::Completion;
            }
        }
    } else if (was == Capture::Model) {
        model_found_ = true;
        done_ = true;
    }
}

void UsageScanner::end_number() {
    if (!in_number_) return;
    in_number_ = false;
    if (number_key_ == Key::Prompt) prompt_ = number_;
    else if (number_key_ == Key::Completion) completion_ = number_;
}

void UsageScanner::structural(char c) {
    if (in_number_) {
        if (c >= '0' && c <= '9') {
            if (number_digits_ < 18) {
                number_ = number_ * 10 + (c - '0');
                ++number_digits_;
            }
            return;
        }
        end_number();
    }
    switch (c) {
        case '"':
            in_string_ = true;
            escape_ = 0;
            if (expect_key_ && in_object()) {
                capture_ = Capture::Key;
                key_len_ = 0;
                key_long_ = false;
            } else if (pending_ == Key::Model) {
                capture_ = Capture::Model;
                model_len_ = 0;
                model_truncated_ = false;
            } else {
                capture_ = Capture::None;
            }
            expect_key_ = false;
            pending_ = Key::None;
            return;
        case ':':
            pending_ = last_key_;
            last_key_ = Key::None;
            return;
        case '{':
        case '[':
            ++depth_;
            if (depth_ <= kMaxDepth) {
                std::uint64_t bit = std::uint64_t{1} << (depth_ - 1);
                if (c == '{') objects_ |= bit;
                else objects_ &= ~bit;
            }
            if (c == '{' && pending_ == Key::Usage) usage_depth_ = depth_;
            expect_key_ = c == '{';
            pending_ = Key::None;
            return;
        case '}':
        case ']':
            if (depth_ == usage_depth_) usage_depth_ = 0;
            if (depth_ > 0) --depth_;
            expect_key_ = false;
            pending_ = Key::None;
            return;
        case ',':
            expect_key_ = in_object();
            pending_ = Key::None;
            return;
        default:
            if (c >= '0' && c <= '9' && (pending_ == Key::Prompt || pending_ == Key::Completion)) {
                in_number_ = true;
                number_ = c - '0';
                number_digits_ = 1;
                number_key_ = pending_;
            }
            if (c != ' ' && c != '\t' && c != '\r' && c != '\n') pending_ = Key::None;  // true, null, -1, ...
            return;
    }
}

}  // namespace op
