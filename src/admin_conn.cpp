#include "admin_conn.h"

#include <cstdint>
#include <ctime>
#include <memory>

#include "http_date.h"
#include "http_head.h"
#include "log.h"

namespace op {

AdminListener::~AdminListener() {
    loop_.remove(fd_);
    net::close(fd_);
}

void AdminListener::on_ready(unsigned) {
    for (int i = 0; i < 16; ++i) {
        SocketHandle fd = kInvalidSocket;
        IoResult r = net::accept(fd_, &fd);
        if (r.status == IoStatus::WouldBlock) return;
        if (r.status != IoStatus::Ok) {
            if (net::is_fd_exhaustion(r.error) && loop_.modify(fd_, this, kNone)) deadline_ms = loop_.now_ms() + 100;
            return;  // anything else: that connection is gone; the next readiness goes on
        }
        auto* conn = new AdminConn(loop_, fd, registry_);
        loop_.adopt(conn);
        conn->start();
    }
}

void AdminListener::on_timeout() {
    if (!loop_.modify(fd_, this, kReadable)) deadline_ms = loop_.now_ms() + 100;  // refused: try again later
}

AdminConn::~AdminConn() {
    if (fd_ != kInvalidSocket) {
        loop_.forget(fd_);
        net::close(fd_);
    }
}

void AdminConn::start() {
    deadline_ms = loop_.now_ms() + kTimeoutMs;
    if (!loop_.add(fd_, this, kReadable)) finish();
}

void AdminConn::finish() {
    if (closed) return;
    loop_.forget(fd_);
    net::close(fd_);
    fd_ = kInvalidSocket;
    loop_.destroy_later(this);
}

void AdminConn::on_ready(unsigned ready) {
    if (!answered_ && (ready & kReadable)) {
        char buf[4096];
        for (;;) {
            IoResult r = net::read(fd_, buf, sizeof buf);
            if (r.status == IoStatus::WouldBlock) break;
            if (r.status != IoStatus::Ok) {
                finish();
                return;
            }
            in_.append(buf, r.bytes);
            if (in_.size() > kMaxRequest) {
                finish();
                return;
            }
        }
        answer();
        if (closed || !answered_) return;
    }
    while (sent_ < out_.size()) {
        IoResult r = net::write(fd_, out_.data() + sent_, out_.size() - sent_);
        if (r.status == IoStatus::WouldBlock) {
            if (!loop_.modify(fd_, this, kWritable)) finish();
            return;
        }
        if (r.status != IoStatus::Ok) {
            finish();
            return;
        }
        sent_ += r.bytes;
    }
    finish();  // the request was read whole (a GET has no body): closing loses nothing
}

void AdminConn::answer() {
    // Admin requests are rare: a head (a few KB) made for each.
    auto parsed = std::make_unique<RequestHead>();
    RequestHead& head = *parsed;
    HeadLimits limits;
    ParseResult r = parse_request_head(in_, limits, head);
    if (r.status == ParseStatus::Incomplete) return;
    int status = 400;
    const char* reason = "Bad Request";
    const char* type = "text/plain; charset=utf-8";
    std::string body = "bad request\n";
    bool head_only = false;
    if (r.status == ParseStatus::Complete) {
        std::string_view path = head.target.substr(0, head.target.find('?'));
        head_only = head.method == "HEAD";
        if (head.method != "GET" && !head_only) {
            status = 405, reason = "Method Not Allowed", body = "only GET and HEAD\n";
        } else if (path == "/healthz" || path == "/health") {
            if (registry_.shutting_down.load()) status = 503, reason = "Service Unavailable", body = "shutting down\n";
            else status = 200, reason = "OK", body = "ok\n";
        } else if (path == "/metrics") {
            status = 200, reason = "OK", body = render_metrics(registry_);
            type = "text/plain; version=0.0.4; charset=utf-8";
        } else {
            status = 404, reason = "Not Found", body = "not found: the admin listener serves /healthz and /metrics\n";
        }
    }
    char date[kHttpDateSize];
    format_http_date(static_cast<std::int64_t>(std::time(nullptr)), date);
    out_ = "HTTP/1.1 " + std::to_string(status) + " " + reason + "\r\nDate: " + std::string(date, sizeof date) +
           "\r\nContent-Type: " + type +
           "\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n";
    if (!head_only) out_ += body;
    answered_ = true;
    in_.clear();
}

}  // namespace op
