// A bounded, incremental scanner for the few JSON fields the access log and the token
// metrics need, run over body bytes that pass through the proxy anyway: never a copy of
// a body, never a parse tree. Its state is a handful of integers and two small fixed
// buffers, so any split of the input across feed() calls gives the same answer.
//
//   request body:  the top-level "model" string (at most kMaxModel bytes kept, escapes
//                  decoded; longer ones are cut and marked truncated)
//   response body: within any object named "usage", its own members prompt_tokens,
//                  completion_tokens (Chat Completions) and input_tokens,
//                  output_tokens (Responses API); the last value seen of each wins,
//                  so the usage event at the end of a stream counts
//
// In a request it follows the JSON lexical structure (strings with escapes,
// object/array nesting, which string is a key) without validating it. In a response it
// looks for the 7 bytes "usage" (quotes included; memchr finds each 'g'), and follows
// the structure only inside the object that comes after them (see search()): most of a
// completion is text nobody needs, and this costs a fraction of following it all. Values
// nested below the names that matter are followed by their brackets and strings only
// (skip_nested()), and a string that ends within the piece without an escape is taken in
// one step; the findings are those of the byte-by-byte machine. In SSE mode (a text/event-stream
// answer) every line is scanned on its own: a newline resets the structure, so
// "data: {...}" lines are each a document and a malformed event cannot hide later ones.
// Outside SSE mode a raw newline only ends a string (JSON strings cannot hold one),
// which resynchronises after malformed input.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace op {

class UsageScanner {
public:
    static constexpr std::size_t kMaxModel = 100;
    static constexpr int kMaxDepth = 64;  // deeper nesting is followed but not classified

    enum class Mode { Request, Response };

    explicit UsageScanner(Mode mode = Mode::Response) : mode_(mode) {}
    // Back to the start, in `mode`; sse: a text/event-stream body (see above).
    void reset(Mode mode, bool sse = false);
    void feed(const char* p, std::size_t n);
    void feed(std::string_view s) { feed(s.data(), s.size()); }
    // Request mode: the model was found; feeding more changes nothing.
    bool done() const { return done_; }

    bool has_model() const { return model_found_; }
    std::string_view model() const { return std::string_view(model_, model_len_); }
    bool model_truncated() const { return model_truncated_; }
    // -1 when not seen.
    std::int64_t prompt_tokens() const { return prompt_; }
    std::int64_t completion_tokens() const { return completion_; }

private:
    enum class Key : unsigned char { None, Model, Usage, Prompt, Completion };
    enum class Capture : unsigned char { None, Key, Model };
    // Response mode: looking for the name "usage" (search()), then its ':' and '{', then
    // inside its object (the structure machine).
    enum class Phase : unsigned char { Search, AfterKey, AfterColon, InUsage };

    void feed_structure(const char*& p, const char* end);
    void skip_nested(const char*& p, const char* end, int outer);
    void capture_run(const char* run, const char* stop);
    void search(const char*& p, const char* end);
    void found_name() {
        phase_ = Phase::AfterKey;
        forget_window();
    }
    void enter_usage();
    void forget_window() {
        window_len_ = 0;
        window_odd_ = false;
    }
    void remember(const char* p, std::size_t n);
    bool window_trailing_odd() const;

    void structural(char c);
    void string_byte(char c);
    void captured(unsigned char c);
    void captured_code_point(unsigned cp);
    void flush_high();
    void end_string();
    Key classify(const char* key, std::size_t len) const;
    void end_number();
    void reset_structure();
    bool in_object() const { return depth_ > 0 && depth_ <= kMaxDepth && (objects_ >> (depth_ - 1)) & 1; }

    Mode mode_;
    bool sse_ = false;
    Phase phase_ = Phase::Search;
    char window_[6] = {};     // the last bytes searched, for a name split across feeds
    std::size_t window_len_ = 0;
    bool window_odd_ = false;  // an odd run of backslashes ends just before window_[0]
    bool done_ = false;

    // Lexical state.
    bool in_string_ = false;
    unsigned char escape_ = 0;  // 0: none; 1: after '\'; 2-5: hex digits of \uXXXX read so far + 2
    unsigned hex_ = 0;
    unsigned high_ = 0;  // a high surrogate (\uD800-\uDBFF) waiting for its low half
    Capture capture_ = Capture::None;
    int depth_ = 0;
    std::uint64_t objects_ = 0;  // bit d-1 set: the container at depth d is an object
    bool expect_key_ = false;    // the next string at this depth is a member name
    Key pending_ = Key::None;    // the member whose value comes next (after its ':')
    Key last_key_ = Key::None;   // the member name just read (before its ':')
    int usage_depth_ = 0;        // depth of the innermost "usage" object; 0: outside
    bool in_number_ = false;
    std::int64_t number_ = 0;
    int number_digits_ = 0;
    Key number_key_ = Key::None;

    char key_[24] = {};
    std::size_t key_len_ = 0;
    bool key_long_ = false;

    char model_[kMaxModel] = {};
    std::size_t model_len_ = 0;
    bool model_found_ = false;
    bool model_truncated_ = false;
    std::int64_t prompt_ = -1;
    std::int64_t completion_ = -1;
};

}  // namespace op
