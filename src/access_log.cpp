#include "access_log.h"

#include <chrono>
#include <cerrno>
#include <cinttypes>
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

void append_uint(std::string& out, std::uint64_t v) {
    char buf[24];
    char* p = buf + sizeof buf;
    do {
        *--p = static_cast<char>('0' + v % 10);
        v /= 10;
    } while (v);
    out.append(p, static_cast<std::size_t>(buf + sizeof buf - p));
}

void append_int_or_null(std::string& out, std::int64_t v) {
    if (v < 0) out += "null";
    else append_uint(out, static_cast<std::uint64_t>(v));
}

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

void append_json_string(std::string& out, std::string_view s) {
    static const char kHex[] = "0123456789abcdef";
    out += '"';
    while (!s.empty()) {
        std::size_t plain = 0;  // a run that needs no escaping goes out in one append
        while (plain < s.size()) {
            unsigned char b = static_cast<unsigned char>(s[plain]);
            if (b < 0x20 || b >= 0x7F || b == '"' || b == '\\') break;
            ++plain;
        }
        if (plain) {
            out.append(s.data(), plain);
            s.remove_prefix(plain);
            continue;
        }
        unsigned char c = static_cast<unsigned char>(s[0]);
        if (c >= 0x80) {
            std::size_t n = utf8_sequence(s);
            if (n == 0) {
                out += "\xEF\xBF\xBD";  // U+FFFD
                s.remove_prefix(1);
            } else {
                out.append(s.data(), n);
                s.remove_prefix(n);
            }
            continue;
        }
        s.remove_prefix(1);
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (c < 0x20 || c == 0x7F) {
                    out += "\\u00";
                    out += kHex[c >> 4];
                    out += kHex[c & 15];
                } else {
                    out += static_cast<char>(c);
                }
        }
    }
    out += '"';
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
    char when[32];
    format_utc_ms(r.unix_ms, when);
    out += "{\"time\":\"";
    out += when;
    out += "\",\"client\":";
    append_json_string(out, r.client);
    out += ",\"key\":";
    if (r.key.empty()) out += "null";
    else append_json_string(out, r.key);
    out += ",\"method\":";
    if (r.method.empty()) out += "null";
    else append_json_string(out, r.method);
    out += ",\"path\":";
    if (r.method.empty()) out += "null";
    else append_json_string(out, r.path);
    out += ",\"target\":";
    if (r.target.empty()) out += "null";
    else append_json_string(out, r.target);
    out += ",\"status\":";
    append_uint(out, static_cast<std::uint64_t>(r.status));
    out += ",\"source\":\"";
    out += kSourceNames[static_cast<int>(r.source)];
    out += "\",\"bytes_in\":";
    append_uint(out, r.bytes_in);
    out += ",\"bytes_out\":";
    append_uint(out, r.bytes_out);
    out += ",\"head_ms\":";
    append_int_or_null(out, r.head_ms);
    out += ",\"duration_ms\":";
    append_int_or_null(out, r.duration_ms < 0 ? 0 : r.duration_ms);
    out += ",\"model\":";
    if (!r.has_model) out += "null";
    else append_json_string(out, r.model);
    out += ",\"prompt_tokens\":";
    append_int_or_null(out, r.prompt_tokens);
    out += ",\"completion_tokens\":";
    append_int_or_null(out, r.completion_tokens);
    out += ",\"attempts\":";
    append_uint(out, static_cast<std::uint64_t>(r.attempts));
    out += "}\n";
}

}  // namespace op
