#include "usage_scanner.h"

#include <cstring>

namespace op {

// The per-byte steps, inlined into feed() (the scanner's loop: keeping them calls costs
// about a third of its time, measured with callgrind).
#define OP_SCANNER_INLINE __attribute__((always_inline)) inline

namespace {
// Bytes that end a run of plain string content.
struct RunEnds {
    bool table[256] = {};
    constexpr RunEnds() {
        table[static_cast<unsigned char>('"')] = true;
        table[static_cast<unsigned char>('\\')] = true;
        table[static_cast<unsigned char>('\n')] = true;
    }
    constexpr bool operator[](unsigned char c) const { return table[c]; }
};
constexpr RunEnds kEndsRun;

// Whether an odd number of backslashes ends just before base[pos] (the byte there is
// then escaped); `prior_odd`: the same for the bytes before base[0].
bool backslashes_before(const char* base, std::size_t pos, bool prior_odd) {
    std::size_t k = 0;
    while (k < pos && base[pos - 1 - k] == '\\') ++k;
    return (k == pos) ? ((k & 1) != 0) != prior_odd : (k & 1) != 0;
}

// The 8 bytes at p as a number, the first byte lowest.
inline std::uint64_t load_le(const char* p) {
    std::uint64_t w;
    std::memcpy(&w, p, 8);
    if (__BYTE_ORDER__ == __ORDER_BIG_ENDIAN__) w = __builtin_bswap64(w);  // the MIPS routers
    return w;
}

// For the 8 bytes at p (a word at a time: most of a body is string content, and this is
// the scanner's inner loop): a mask whose lowest set bit is in the first byte that is one
// of those, or 0. (Bits above the first hit may be false; the lowest one never is.)
inline std::uint64_t run_end_mask(const char* p) {
    const std::uint64_t w = load_le(p);
    constexpr std::uint64_t kOnes = 0x0101010101010101ull, kHighs = 0x8080808080808080ull;
    auto zero_byte = [](std::uint64_t v) { return (v - kOnes) & ~v & kHighs; };
    return zero_byte(w ^ (kOnes * '"')) | zero_byte(w ^ (kOnes * '\\')) | zero_byte(w ^ (kOnes * '\n'));
}
}  // namespace

void UsageScanner::reset(Mode mode, bool sse) {
    // Field by field: the two buffers need no clearing (only their first *_len_ bytes
    // are ever read), and copying a fresh object costs more than the scan of a small body.
    mode_ = mode;
    sse_ = sse;
    phase_ = Phase::Search;
    window_len_ = 0;
    window_odd_ = false;
    done_ = false;
    hex_ = 0;
    number_ = 0;
    number_digits_ = 0;
    number_key_ = Key::None;
    key_len_ = 0;
    key_long_ = false;
    model_len_ = 0;
    model_found_ = false;
    model_truncated_ = false;
    prompt_ = -1;
    completion_ = -1;
    reset_structure();
}

bool UsageScanner::window_trailing_odd() const {
    return backslashes_before(window_, window_len_, window_odd_);
}

void UsageScanner::remember(const char* p, std::size_t n) {
    constexpr std::size_t kKeep = sizeof window_;
    bool prior = window_len_ == 0 ? window_odd_ : window_trailing_odd();  // at p[0]
    if (n >= kKeep) {
        window_odd_ = backslashes_before(p, n - kKeep, prior);
        std::memcpy(window_, p + n - kKeep, kKeep);
        window_len_ = kKeep;
        return;
    }
    char joined[2 * kKeep];
    std::memcpy(joined, window_, window_len_);
    std::memcpy(joined + window_len_, p, n);
    std::size_t total = window_len_ + n;
    std::size_t drop = total > kKeep ? total - kKeep : 0;
    window_odd_ = backslashes_before(joined, drop, window_odd_);
    std::memmove(window_, joined + drop, total - drop);
    window_len_ = total - drop;
}

void UsageScanner::enter_usage() {
    reset_structure();
    phase_ = Phase::InUsage;
    depth_ = 1;
    objects_ = 1;
    usage_depth_ = 1;
    expect_key_ = true;
}

void UsageScanner::reset_structure() {
    if (mode_ == Mode::Response) phase_ = Phase::Search;
    in_string_ = false;
    escape_ = 0;
    high_ = 0;
    capture_ = Capture::None;
    depth_ = 0;
    objects_ = 0;
    expect_key_ = false;
    pending_ = Key::None;
    last_key_ = Key::None;
    usage_depth_ = 0;
    in_number_ = false;
}


OP_SCANNER_INLINE void UsageScanner::string_byte(char c) {
    unsigned char u = static_cast<unsigned char>(c);
    // A high surrogate waits for "\u" and a low one; anything else leaves it unpaired.
    if (high_ != 0 && !(escape_ == 0 && c == '\\') && !(escape_ == 1 && c == 'u') && escape_ < 2) flush_high();
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

void UsageScanner::flush_high() {
    high_ = 0;
    captured_code_point(0xFFFD);  // an unpaired surrogate half: replaced
}

// A \uXXXX escape's code point, as UTF-8; a surrogate pair (\uD83D\uDE80) is one code
// point beyond U+FFFF (RFC 8259 section 7), an unpaired half U+FFFD.
void UsageScanner::captured_code_point(unsigned cp) {
    if (capture_ == Capture::None) {
        high_ = 0;
        return;
    }
    if (cp >= 0xD800 && cp <= 0xDBFF) {  // high half: the low one should follow
        if (high_ != 0) flush_high();
        high_ = cp;
        return;
    }
    if (cp >= 0xDC00 && cp <= 0xDFFF) {
        if (high_ == 0) {
            cp = 0xFFFD;
        } else {
            cp = 0x10000 + ((high_ - 0xD800) << 10) + (cp - 0xDC00);
            high_ = 0;
        }
    } else if (high_ != 0) {
        flush_high();
    }
    if (cp >= 0x10000) {
        captured(static_cast<unsigned char>(0xF0 | (cp >> 18)));
        captured(static_cast<unsigned char>(0x80 | ((cp >> 12) & 0x3F)));
        captured(static_cast<unsigned char>(0x80 | ((cp >> 6) & 0x3F)));
        captured(static_cast<unsigned char>(0x80 | (cp & 0x3F)));
        return;
    }
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
template <std::size_t N>
bool is(const char* key, std::size_t len, const char (&name)[N]) {
    return len == N - 1 && std::memcmp(key, name, N - 1) == 0;  // sizes known: inlined compares
}
}  // namespace

// Which member a name (escapes decoded) is, at the depth where names matter.
OP_SCANNER_INLINE UsageScanner::Key UsageScanner::classify(const char* key, std::size_t len) const {
    if (mode_ == Mode::Request) return depth_ == 1 && is(key, len, "model") ? Key::Model : Key::None;
    if (usage_depth_ == 0 || depth_ != usage_depth_) return Key::None;  // the usage object's own members only
    switch (len) {  // the length first: most names are none of these
        case 12: return is(key, len, "input_tokens") ? Key::Prompt : Key::None;
        case 13:
            if (is(key, len, "prompt_tokens")) return Key::Prompt;
            return is(key, len, "output_tokens") ? Key::Completion : Key::None;
        case 17: return is(key, len, "completion_tokens") ? Key::Completion : Key::None;
        default: return Key::None;
    }
}

OP_SCANNER_INLINE void UsageScanner::end_string() {
    if (high_ != 0) flush_high();
    in_string_ = false;
    Capture was = capture_;
    capture_ = Capture::None;
    if (was == Capture::Key) {
        last_key_ = key_long_ ? Key::None : classify(key_, key_len_);
    } else if (was == Capture::Model) {
        model_found_ = true;
        done_ = true;
    }
}

OP_SCANNER_INLINE void UsageScanner::end_number() {
    if (!in_number_) return;
    in_number_ = false;
    if (number_key_ == Key::Prompt) prompt_ = number_;
    else if (number_key_ == Key::Completion) completion_ = number_;
}

OP_SCANNER_INLINE void UsageScanner::structural(char c) {
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
            last_key_ = Key::None;
            // Only names at the one depth that matters are kept: the top level of a
            // request, the usage object's own members in a response.
            if (expect_key_ && depth_ == (mode_ == Mode::Request ? 1 : usage_depth_) && in_object()) {
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
            if (depth_ == 0 && mode_ == Mode::Response) phase_ = Phase::Search;  // the usage object ended
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

void UsageScanner::feed(const char* p, std::size_t n) {
    const char* end = p + n;
    if (mode_ == Mode::Request) {
        feed_structure(p, end);
        return;
    }
    while (p < end) {
        switch (phase_) {
            case Phase::Search: search(p, end); break;
            case Phase::AfterKey:
            case Phase::AfterColon: {
                char c = *p;
                if (c == ' ' || c == '\t' || c == '\r' || (c == '\n' && !sse_)) {
                    ++p;
                } else if (phase_ == Phase::AfterKey && c == ':') {
                    phase_ = Phase::AfterColon;
                    ++p;
                } else if (phase_ == Phase::AfterColon && c == '{') {
                    ++p;
                    enter_usage();
                } else {
                    phase_ = Phase::Search;  // "usage": null, or not a member name after all
                    forget_window();
                }
                break;
            }
            case Phase::InUsage:
                feed_structure(p, end);
                if (phase_ != Phase::InUsage) forget_window();
                break;
        }
    }
}

// Search: finds the member name "usage" by its bytes. In valid JSON the 7 bytes
// "usage" with an unescaped first quote are a string of their own (a quote inside a
// string is always escaped), so a match followed by ':' and '{' is the usage object,
// wherever it is nested; only that object is then scanned byte by byte. The window
// keeps the last bytes of the previous feed, for a name split across reads, and the
// parity of the backslashes before it, for the escape rule.
void UsageScanner::search(const char*& p, const char* end) {
    static constexpr char kName[] = "\"usage\"";
    constexpr std::size_t kLen = 7;
    const std::size_t n = static_cast<std::size_t>(end - p);
    // A name that starts in the window and ends in p.
    if (window_len_ > 0) {
        char joined[2 * kLen];
        std::size_t take = n < kLen - 1 ? n : kLen - 1;
        std::memcpy(joined, window_, window_len_);
        std::memcpy(joined + window_len_, p, take);
        for (std::size_t s = 0; s < window_len_; ++s) {
            if (s + kLen > window_len_ + take || std::memcmp(joined + s, kName, kLen) != 0) continue;
            if (backslashes_before(joined, s, window_odd_)) continue;
            p += s + kLen - window_len_;
            found_name();
            return;
        }
    }
    // A name wholly in p: each 'g' (the name's rarest byte in text, at offset 4) is found
    // with memchr, which libc runs many bytes a step, and the name is checked around it.
    std::size_t i = 0;  // the next start of a name to consider
    while (i + kLen <= n) {
        const void* g = std::memchr(p + i + 4, 'g', n - kLen + 1 - i);
        if (!g) break;
        i = static_cast<std::size_t>(static_cast<const char*>(g) - p) - 4;
        if (p[i] == '"' && p[i + 6] == '"' && std::memcmp(p + i, kName, kLen) == 0 &&
            !backslashes_before(p, i, window_len_ == 0 ? window_odd_ : window_trailing_odd())) {
            p += i + kLen;
            found_name();
            return;
        }
        ++i;
    }
    remember(p, n);
    p = end;
}

// The bytes the structure machine acts on inside a nested value (see skip_nested()).
namespace {
enum : unsigned char { kOther, kQuote, kOpen, kClose, kNewline };
struct NestedClass {
    unsigned char table[256] = {};
    constexpr NestedClass() {
        table[static_cast<unsigned char>('"')] = kQuote;
        table[static_cast<unsigned char>('{')] = kOpen;
        table[static_cast<unsigned char>('[')] = kOpen;
        table[static_cast<unsigned char>('}')] = kClose;
        table[static_cast<unsigned char>(']')] = kClose;
        table[static_cast<unsigned char>('\n')] = kNewline;
    }
    constexpr unsigned char operator[](unsigned char c) const { return table[c]; }
};
constexpr NestedClass kNested;

// The first '"', '\\' or newline in [p, end), or end.
OP_SCANNER_INLINE const char* run_end(const char* p, const char* end) {
    for (; end - p >= 8; p += 8) {
        if (std::uint64_t m = run_end_mask(p)) return p + (__builtin_ctzll(m) >> 3);
    }
    while (p < end && !kEndsRun[static_cast<unsigned char>(*p)]) ++p;
    return p;
}
}  // namespace

// Inside a value nested below the depth whose names matter (the request's top level, the
// usage object's own members), with no member pending: nothing there can be captured or
// counted, so only what moves the depth is followed (brackets, and strings, which may
// hold brackets), and a string that ends within this piece without an escape or a
// newline is skipped whole. The state left is what the byte-by-byte machine would leave:
// structural() there changes only depth_, objects_, and flags (expect_key_, pending_,
// last_key_) that are reset before they are read again at the outer depth. Anything
// else (a string cut by the piece's end or holding an escape, an SSE newline) goes back
// to the general loop as it would go through it.
void UsageScanner::skip_nested(const char*& p, const char* end, int outer) {
    int depth = depth_;
    std::uint64_t objects = objects_;
    while (p < end) {
        const unsigned char c = static_cast<unsigned char>(*p);
        switch (kNested[c]) {
            case kOther:
                ++p;
                continue;
            case kQuote: {
                const char* q = run_end(p + 1, end);
                if (q < end && *q == '"') {
                    p = q + 1;
                    continue;
                }
                break;  // the general loop takes this string byte by byte
            }
            case kOpen:
                ++p;
                ++depth;
                if (depth <= kMaxDepth) {
                    std::uint64_t bit = std::uint64_t{1} << (depth - 1);
                    if (c == '{') objects |= bit;
                    else objects &= ~bit;
                }
                continue;
            case kClose:
                ++p;
                --depth;  // depth > outer >= 1 here
                if (depth == outer) {
                    depth_ = depth;
                    objects_ = objects;
                    expect_key_ = false;
                    pending_ = Key::None;
                    return;
                }
                continue;
            case kNewline:
                if (!sse_) {
                    ++p;
                    continue;
                }
                break;  // the general loop resets the structure
        }
        break;
    }
    depth_ = depth;
    objects_ = objects;
    expect_key_ = false;
    pending_ = Key::None;
}

// The structure machine: the whole request body; in a response only the usage object
// (until it closes, or a newline in SSE mode). Byte by byte at the depth whose names
// matter, except that a string ending within the piece without an escape or a newline
// is taken whole (compared, or copied into the bounded buffer of a capture); nested
// values go through skip_nested().
void UsageScanner::feed_structure(const char*& p, const char* end) {
    while (p < end && !done_ && (mode_ == Mode::Request || phase_ == Phase::InUsage)) {
        if (in_string_ && escape_ == 0) {
            // Runs of plain string content: skipped, or copied into the bounded buffer of
            // a capture, up to what can end the run ('"', '\\', a newline).
            const char* run = p;
            p = run_end(p, end);
            if (high_ != 0 && p > run) flush_high();  // plain content after a high surrogate
            if (capture_ != Capture::None && p > run) capture_run(run, p);
            if (p == end) return;
        } else if (!in_string_) {
            const int outer = mode_ == Mode::Request ? 1 : usage_depth_;
            if (depth_ > outer && pending_ == Key::None && last_key_ == Key::None && !in_number_) {
                skip_nested(p, end, outer);
                if (p == end) return;
                if (depth_ == outer) continue;  // back at the depth that matters
                // else a string to take byte by byte, or an SSE newline: below
            } else if (*p == '"') {
                const char* q = run_end(p + 1, end);
                if (q < end && *q == '"') {  // the whole string is here, plain
                    structural('"');
                    if (capture_ == Capture::Key) {  // compared where it is, not copied
                        const std::size_t len = static_cast<std::size_t>(q - p - 1);
                        in_string_ = false;
                        capture_ = Capture::None;
                        last_key_ = len > sizeof key_ ? Key::None : classify(p + 1, len);
                    } else {
                        if (capture_ != Capture::None && q > p + 1) capture_run(p + 1, q);
                        end_string();
                    }
                    p = q + 1;
                    continue;
                }
            }
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
                high_ = 0;  // the abandoned string's half surrogate must not reach the next one
                capture_ = Capture::None;
                continue;
            }
        }
        if (in_string_) string_byte(c);
        else structural(c);
    }
}

// Plain string content [run, stop) of a capture, into its bounded buffer.
void UsageScanner::capture_run(const char* run, const char* stop) {
    const bool key = capture_ == Capture::Key;
    char* buf = key ? key_ : model_;
    const std::size_t cap = key ? sizeof key_ : kMaxModel;
    std::size_t& len = key ? key_len_ : model_len_;
    std::size_t n = static_cast<std::size_t>(stop - run);
    if (n > cap - len) {
        n = cap - len;
        (key ? key_long_ : model_truncated_) = true;
    }
    std::memcpy(buf + len, run, n);
    len += n;
}

}  // namespace op
