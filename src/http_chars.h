// Character classes of HTTP/1.1 (RFC 9110 section 5, RFC 9112), one set for every
// parser in the tree (message heads, chunked framing).
//
// Each class is a 256-entry table built at compile time, so a test is one load: the
// head parser runs these over every byte of every request. Bytes are looked up as
// unsigned char; every function takes any char value.
#pragma once

#include <string>
#include <string_view>

namespace op::http_chars {

struct ByteTable {
    unsigned char of[256] = {};
};

namespace detail {

constexpr void mark_alnum(ByteTable& t) {
    for (int c = '0'; c <= '9'; ++c) t.of[c] = 1;
    for (int c = 'a'; c <= 'z'; ++c) t.of[c] = 1;
    for (int c = 'A'; c <= 'Z'; ++c) t.of[c] = 1;
}

constexpr void mark(ByteTable& t, std::string_view chars) {
    for (char c : chars) t.of[static_cast<unsigned char>(c)] = 1;
}

// RFC 9110 section 5.6.2: tchar.
constexpr ByteTable make_tchar() {
    ByteTable t;
    mark_alnum(t);
    mark(t, "!#$%&'*+-.^_`|~");
    return t;
}

// Bytes that may appear in a Host value: uri-host (reg-name, IP literal) and port.
constexpr ByteTable make_host_char() {
    ByteTable t;
    mark_alnum(t);
    mark(t, "-._~!$&'()*+,;=:[]%");
    return t;
}

// Hex digit values plus one; 0 for a byte that is not a hex digit.
constexpr ByteTable make_hex_plus_one() {
    ByteTable t;
    for (int c = '0'; c <= '9'; ++c) t.of[c] = static_cast<unsigned char>(c - '0' + 1);
    for (int c = 'a'; c <= 'f'; ++c) t.of[c] = static_cast<unsigned char>(c - 'a' + 11);
    for (int c = 'A'; c <= 'F'; ++c) t.of[c] = static_cast<unsigned char>(c - 'A' + 11);
    return t;
}

constexpr ByteTable make_lower() {
    ByteTable t;
    for (int c = 0; c < 256; ++c) t.of[c] = static_cast<unsigned char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    return t;
}

inline constexpr ByteTable kTchar = make_tchar();
inline constexpr ByteTable kHostChar = make_host_char();
inline constexpr ByteTable kHexPlusOne = make_hex_plus_one();
inline constexpr ByteTable kLower = make_lower();

constexpr unsigned char byte(char c) { return static_cast<unsigned char>(c); }

}  // namespace detail

// token character (method, field name, transfer coding).
constexpr bool is_tchar(char c) { return detail::kTchar.of[detail::byte(c)] != 0; }

// A byte of a Host value: uri-host [":" port], IP literals included.
constexpr bool is_host_char(char c) { return detail::kHostChar.of[detail::byte(c)] != 0; }

// OWS / BWS: SP or HTAB.
constexpr bool is_ows(char c) { return c == ' ' || c == '\t'; }

constexpr bool is_digit(char c) { return c >= '0' && c <= '9'; }

// 0-15 for a hex digit (either case), -1 for any other byte.
constexpr int hex_value(char c) { return static_cast<int>(detail::kHexPlusOne.of[detail::byte(c)]) - 1; }

// A request-target byte: visible ASCII but for five that RFC 3986 never allows there and
// no well-behaved client sends unescaped: '#' (a fragment is never sent; a proxy and an
// origin that cut the target at different places route it differently), '"', '<', '>'
// (markup in a URL) and the backslash (which some servers take for '/'). The others outside
// RFC 3986 ('{', '}', '|', '^', '`') are sent raw by browsers and SDKs in queries and are
// let through, as RFC 9112 section 3 allows; '%' escapes are not checked.
constexpr bool is_target_char(char c) {
    return detail::byte(c) >= 0x21 && detail::byte(c) <= 0x7e && c != '#' && c != '"' && c != '<' && c != '>' &&
           c != '\\';
}

// field-vchar, SP and HTAB (RFC 9110 section 5.5): everything but CTLs and DEL;
// obs-text (0x80-0xFF) included.
constexpr bool is_value_char(char c) {
    return c == '\t' || (detail::byte(c) >= 0x20 && detail::byte(c) != 0x7f);
}

// ASCII lower case; every other byte unchanged.
constexpr char to_lower(char c) { return static_cast<char>(detail::kLower.of[detail::byte(c)]); }

// A copy of `s` in ASCII lower case (names, schemes, configuration words).
inline std::string lower_copy(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = to_lower(c);
    return out;
}

}  // namespace op::http_chars
