#include "access_log.h"

#include <chrono>
#include <cerrno>
#include <cinttypes>
#include <cstdint>
#include <cstring>

#include "log.h"

namespace op {

static_assert((AccessLogRing::kCapacity & (AccessLogRing::kCapacity - 1)) == 0, "a power of two");

AccessLogRing::AccessLogRing(Counter& lines, Counter& dropped)
    : buf_(new char[kCapacity]), lines_(lines), dropped_(dropped) {}

bool AccessLogRing::push(std::string_view line) {
    std::size_t head = head_.load(std::memory_order_relaxed);
    std::size_t tail = tail_.load(std::memory_order_acquire);
    if (line.size() > kCapacity - (head - tail)) {
        dropped_.add();
        return false;
    }
    std::size_t at = head & (kCapacity - 1);
    std::size_t first = line.size() < kCapacity - at ? line.size() : kCapacity - at;
    std::memcpy(buf_.get() + at, line.data(), first);
    std::memcpy(buf_.get(), line.data() + first, line.size() - first);
    head_.store(head + line.size(), std::memory_order_release);
    lines_.add();
    return true;
}

std::size_t AccessLogRing::drain(std::FILE* out) {
    std::size_t tail = tail_.load(std::memory_order_relaxed);
    std::size_t head = head_.load(std::memory_order_acquire);
    std::size_t n = head - tail;
    if (n == 0) return 0;
    std::size_t at = tail & (kCapacity - 1);
    std::size_t first = n < kCapacity - at ? n : kCapacity - at;
    if (out) {
        std::fwrite(buf_.get() + at, 1, first, out);
        std::fwrite(buf_.get(), 1, n - first, out);
    }
    tail_.store(head, std::memory_order_release);
    return n;
}

std::unique_ptr<AccessLog> AccessLog::open(const std::string& path, std::string& error) {
    std::FILE* f = path == "-" ? stdout : std::fopen(path.c_str(), "a");
    if (!f) {
        error = "cannot open the access log " + path + ": " + std::strerror(errno);
        return nullptr;
    }
    return std::unique_ptr<AccessLog>(new AccessLog(path, f));
}

AccessLog::~AccessLog() {
    if (writer_.joinable()) {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            stop_ = true;
        }
        wake_.notify_all();
        writer_.join();
    }
    drain_all();
    if (file_ && file_ != stdout) std::fclose(file_);
    else if (file_) std::fflush(file_);
}

AccessLogRing* AccessLog::add_ring(Counter& lines, Counter& dropped) {
    rings_.push_back(std::make_unique<AccessLogRing>(lines, dropped));
    return rings_.back().get();
}

void AccessLog::start() { writer_ = std::thread([this] { run(); }); }

void AccessLog::drain_all() {
    std::size_t n = 0;
    for (auto& r : rings_) n += r->drain(file_);
    if (n && file_) std::fflush(file_);
}

void AccessLog::run() {
    std::uint64_t reported_drops = 0;
    auto last_report = std::chrono::steady_clock::now() - std::chrono::milliseconds(kDropReportMs);
    std::unique_lock<std::mutex> lock(mutex_);
    while (!stop_) {
        wake_.wait_for(lock, std::chrono::milliseconds(kFlushMs));
        if (stop_) break;
        lock.unlock();
        if (reopen_.exchange(false, std::memory_order_relaxed) && file_ != stdout) {
            drain_all();  // what was logged before the signal goes to the old file
            std::FILE* f = std::fopen(path_.c_str(), "a");
            if (f) {
                if (file_) std::fclose(file_);
                file_ = f;
            } else {
                log_line("Error: cannot reopen the access log %s: %s; still writing to the old file", path_.c_str(),
                         std::strerror(errno));
            }
        }
        drain_all();
        std::uint64_t drops = 0;
        for (auto& r : rings_) drops += r->dropped().get();
        auto now = std::chrono::steady_clock::now();
        if (drops != reported_drops && now - last_report >= std::chrono::milliseconds(kDropReportMs)) {
            log_line("Access log: %" PRIu64 " lines dropped so far (the log is written slower than requests end)", drops);
            reported_drops = drops;
            last_report = now;
        }
        lock.lock();
    }
}

// ---- formatting ----------------------------------------------------------------------

namespace {

// Length of the valid UTF-8 sequence at the start of s, or 0.
std::size_t utf8_sequence(std::string_view s) {
    unsigned char c = static_cast<unsigned char>(s[0]);
    std::size_t n;
    unsigned min;
    unsigned cp;
    if (c >= 0xC2 && c <= 0xDF) n = 2, min = 0x80, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) n = 3, min = 0x800, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4) n = 4, min = 0x10000, cp = c & 0x07;
    else return 0;
    if (s.size() < n) return 0;
    for (std::size_t i = 1; i < n; ++i) {
        unsigned char d = static_cast<unsigned char>(s[i]);
        if ((d & 0xC0) != 0x80) return 0;
        cp = cp << 6 | (d & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return n;
}

// Days since 1970-01-01 to a civil date (proleptic Gregorian).
void civil_from_days(std::int64_t z, int& y, unsigned& m, unsigned& d) {
    z += 719468;
    std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = static_cast<unsigned>(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    std::int64_t year = static_cast<std::int64_t>(yoe) + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    d = doy - (153 * mp + 2) / 5 + 1;
    m = mp < 10 ? mp + 3 : mp - 9;
    y = static_cast<int>(year + (m <= 2));
}

const char* kSourceNames[kStatusSources] = {"upstream", "proxy", "client"};

}  // namespace

namespace {

// Bytes copied into a JSON string as they are: printable ASCII but '"' and '\\'.
struct PlainBytes {
    bool table[256] = {};
    constexpr PlainBytes() {
        for (int c = 0x20; c < 0x7F; ++c) table[c] = c != '"' && c != '\\';
    }
    constexpr bool operator[](unsigned char c) const { return table[c]; }
};
constexpr PlainBytes kPlain;

// At most this many bytes out per byte of a JSON string ("\u001f"), plus the quotes.
constexpr std::size_t json_bound(std::size_t n) { return 6 * n + 2; }

// Writes `s` as a JSON string at `o` (room for json_bound(s.size()) bytes); returns the end.
char* put_json_string(char* o, std::string_view s) {
    static const char kHex[] = "0123456789abcdef";
    *o++ = '"';
    const char* p = s.data();
    const char* const end = p + s.size();
    while (p < end) {
        const char* run = p;  // a run that needs no escaping goes out in one copy
        while (p < end && kPlain[static_cast<unsigned char>(*p)]) ++p;
        std::memcpy(o, run, static_cast<std::size_t>(p - run));
        o += p - run;
        if (p == end) break;
        unsigned char c = static_cast<unsigned char>(*p);
        if (c >= 0x80) {
            std::size_t n = utf8_sequence(std::string_view(p, static_cast<std::size_t>(end - p)));
            if (n == 0) {
                std::memcpy(o, "\xEF\xBF\xBD", 3);  // U+FFFD
                o += 3;
                ++p;
            } else {
                std::memcpy(o, p, n);
                o += n;
                p += n;
            }
            continue;
        }
        ++p;
        *o++ = '\\';
        switch (c) {
            case '"': *o++ = '"'; break;
            case '\\': *o++ = '\\'; break;
            case '\n': *o++ = 'n'; break;
            case '\r': *o++ = 'r'; break;
            case '\t': *o++ = 't'; break;
            default:  // the other control bytes and DEL
                std::memcpy(o, "u00", 3);
                o[3] = kHex[c >> 4];
                o[4] = kHex[c & 15];
                o += 5;
        }
    }
    *o++ = '"';
    return o;
}

template <std::size_t N>
char* put(char* o, const char (&lit)[N]) {
    std::memcpy(o, lit, N - 1);
    return o + N - 1;
}

char* put_uint(char* o, std::uint64_t v) {
    char buf[24];
    char* p = buf + sizeof buf;
    do {
        *--p = static_cast<char>('0' + v % 10);
        v /= 10;
    } while (v);
    std::size_t n = static_cast<std::size_t>(buf + sizeof buf - p);
    std::memcpy(o, p, n);
    return o + n;
}

char* put_int_or_null(char* o, std::int64_t v) {
    return v < 0 ? put(o, "null") : put_uint(o, static_cast<std::uint64_t>(v));
}

}  // namespace

void append_json_string(std::string& out, std::string_view s) {
    const std::size_t at = out.size();
    out.resize(at + json_bound(s.size()));
    char* o = put_json_string(&out[at], s);
    out.resize(static_cast<std::size_t>(o - out.data()));
}

void format_utc_ms(std::int64_t unix_ms, char out[32]) {
    std::int64_t secs = unix_ms >= 0 ? unix_ms / 1000 : (unix_ms - 999) / 1000;
    unsigned ms = static_cast<unsigned>(unix_ms - secs * 1000);
    std::int64_t days = secs >= 0 ? secs / 86400 : (secs - 86399) / 86400;
    unsigned rem = static_cast<unsigned>(secs - days * 86400);
    int y;
    unsigned m, d;
    civil_from_days(days, y, m, d);
    // Fixed-width digits written by hand: a year beyond 9999 or before 0 is clamped.
    auto put = [](char* at, unsigned v, int width) {
        for (int i = width - 1; i >= 0; --i, v /= 10) at[i] = static_cast<char>('0' + v % 10);
    };
    unsigned year = y < 0 ? 0 : y > 9999 ? 9999 : static_cast<unsigned>(y);
    std::memcpy(out, "0000-00-00T00:00:00.000Z", 25);
    put(out, year, 4);
    put(out + 5, m, 2);
    put(out + 8, d, 2);
    put(out + 11, rem / 3600, 2);
    put(out + 14, rem / 60 % 60, 2);
    put(out + 17, rem % 60, 2);
    put(out + 20, ms, 3);
}

void format_access_line(std::string& out, const AccessRecord& r) {
    // The time: the date and the second formatted once per second (per thread), the
    // milliseconds each line.
    thread_local std::int64_t cached_sec = INT64_MIN;
    thread_local char cached[32];
    const std::int64_t sec = r.unix_ms >= 0 ? r.unix_ms / 1000 : (r.unix_ms - 999) / 1000;
    if (sec != cached_sec) {
        format_utc_ms(sec * 1000, cached);
        cached_sec = sec;
    }
    const unsigned ms = static_cast<unsigned>(r.unix_ms - sec * 1000);

    // Written in place into room for the longest line these fields can make, then cut
    // to size: no growth step per field, and the buffer is reused from line to line.
    const std::size_t bound = 512 + json_bound(r.client.size()) + json_bound(r.method.size()) +
                              json_bound(r.path.size()) + json_bound(r.target.size()) + json_bound(r.model.size()) +
                              json_bound(r.key.size());
    const std::size_t at = out.size();
    out.resize(at + bound);
    char* o = &out[at];
    o = put(o, "{\"time\":\"");
    std::memcpy(o, cached, 20);  // "YYYY-MM-DDTHH:MM:SS."
    o += 20;
    o[0] = static_cast<char>('0' + ms / 100);
    o[1] = static_cast<char>('0' + ms / 10 % 10);
    o[2] = static_cast<char>('0' + ms % 10);
    o += 3;
    o = put(o, "Z\",\"client\":");
    o = put_json_string(o, r.client);
    o = put(o, ",\"key\":");
    o = r.key.empty() ? put(o, "null") : put_json_string(o, r.key);
    o = put(o, ",\"method\":");
    o = r.method.empty() ? put(o, "null") : put_json_string(o, r.method);
    o = put(o, ",\"path\":");
    o = r.method.empty() ? put(o, "null") : put_json_string(o, r.path);
    o = put(o, ",\"target\":");
    o = r.target.empty() ? put(o, "null") : put_json_string(o, r.target);
    o = put(o, ",\"status\":");
    o = put_uint(o, static_cast<std::uint64_t>(r.status));
    o = put(o, ",\"source\":\"");
    const char* source = kSourceNames[static_cast<int>(r.source)];
    const std::size_t source_len = std::strlen(source);
    std::memcpy(o, source, source_len);
    o += source_len;
    o = put(o, "\",\"bytes_in\":");
    o = put_uint(o, r.bytes_in);
    o = put(o, ",\"bytes_out\":");
    o = put_uint(o, r.bytes_out);
    o = put(o, ",\"head_ms\":");
    o = put_int_or_null(o, r.head_ms);
    o = put(o, ",\"duration_ms\":");
    o = put_int_or_null(o, r.duration_ms < 0 ? 0 : r.duration_ms);
    o = put(o, ",\"model\":");
    o = r.has_model ? put_json_string(o, r.model) : put(o, "null");
    o = put(o, ",\"prompt_tokens\":");
    o = put_int_or_null(o, r.prompt_tokens);
    o = put(o, ",\"completion_tokens\":");
    o = put_int_or_null(o, r.completion_tokens);
    o = put(o, ",\"attempts\":");
    o = put_uint(o, static_cast<std::uint64_t>(r.attempts));
    o = put(o, "}\n");
    out.resize(static_cast<std::size_t>(o - out.data()));
}

}  // namespace op
