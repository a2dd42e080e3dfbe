// Tests for http_chars.h: every class checked over all 256 byte values against the
// RFC's own wording, spelled out here independently of the tables.
#include <string_view>

#include "doctest/doctest.h"
#include "http_chars.h"

namespace hc = op::http_chars;

namespace {

bool in(std::string_view set, int b) { return set.find(static_cast<char>(b)) != std::string_view::npos; }
bool alpha(int b) { return (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z'); }
bool digit(int b) { return b >= '0' && b <= '9'; }

}  // namespace

TEST_CASE("http_chars: every byte value against the RFC definitions") {
    for (int b = 0; b < 256; ++b) {
        const char c = static_cast<char>(b);
        INFO("byte ", b);
        // RFC 9110 5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "."
        //                       / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA
        CHECK(hc::is_tchar(c) == (alpha(b) || digit(b) || in("!#$%&'*+-.^_`|~", b)));
        // RFC 3986: reg-name / IP-literal characters and ":" port.
        CHECK(hc::is_host_char(c) == (alpha(b) || digit(b) || in("-._~!$&'()*+,;=:[]%", b)));
        CHECK(hc::is_ows(c) == (b == ' ' || b == '\t'));
        CHECK(hc::is_digit(c) == digit(b));
        CHECK(hc::is_target_char(c) == (b > 0x20 && b < 0x7f && !in("#\"<>\\", b)));
        // field-vchar / SP / HTAB / obs-text: no CTL other than HTAB, no DEL.
        CHECK(hc::is_value_char(c) == (b == '\t' || (b >= 0x20 && b != 0x7f)));
        CHECK(hc::to_lower(c) == static_cast<char>(b >= 'A' && b <= 'Z' ? b + 32 : b));
        int hex = digit(b) ? b - '0' : (b >= 'a' && b <= 'f') ? b - 'a' + 10 : (b >= 'A' && b <= 'F') ? b - 'A' + 10 : -1;
        CHECK(hc::hex_value(c) == hex);
    }
}
