/* SSE upstream server and SSE latency client for bench/run.py (Linux; C99 + OpenSSL).
 *
 * run.py compiles it into its temporary directory:
 *     cc -O2 -o sse_tool bench/sse_tool.c -lssl -lcrypto
 *
 *   sse_tool server --port P --cert FILE --key FILE [--tickets N] [--alpn]
 *       TLS server on 127.0.0.1:P, one thread, epoll, nonblocking OpenSSL, keep-alive.
 *       --tickets N: TLS 1.3 session tickets sent after each full handshake (OpenSSL's
 *       default, like Node's, is 2). --alpn: offer h2 and http/1.1 and pick http/1.1 when
 *       the client offers it (as API hosts behind CDNs do). FILE may hold a chain.
 *       GET|POST <any path>?n=N&iv=SECONDS&id=ID   a chunked text/event-stream answer of N
 *           events, one every SECONDS (the first at once; with &hd=S, the head and the first
 *           event after S seconds), then `data: [DONE]`. Each event
 *           carries "t":<CLOCK_MONOTONIC ns>, read just before the SSL_write that sends it.
 *           When the connection of a stream that has not finished closes, the server records
 *           the time under ID.
 *       /_bench/wait-closed?id=ID&timeout=S   answers {"closed_at": <CLOCK_MONOTONIC s> | null}
 *           once stream ID's connection was seen closed, or after S seconds.
 *       /_bench/stats                          {"accepts":..,"open":..,"streams":..}
 *       Stops on SIGTERM (default action) without winding streams down.
 *
 *   sse_tool client --target NAME:PORT[:tls] [--target ...] [--ca FILE] --streams N
 *                   --events E --iv-ms MS --tag T [--stagger-ms MS] [--timeout-s S]
 *       Opens N connections to each target (TLS verified against FILE, name localhost, for
 *       :tls targets; else plain HTTP) and completes every handshake first; then sends one
 *       streaming request per connection, the targets' streams interleaved, the j-th
 *       request at j * stagger (default: MS / (N x targets), i.e. all spread over one
 *       interval, so no two streams' events fall on the same instant), and reads all
 *       streams on one epoll loop. Per event: latency = CLOCK_MONOTONIC when the read that
 *       returned its last byte came back - the stamp in the event. Time to first byte:
 *       request written -> first bytes of the answer. Prints one JSON object on stdout:
 *       {"targets": [{"name", "streams", "failed", "unfinished", "lost", "lat_ns": [..],
 *       "ttfb_ns": [..], "why": [..]}, ..]}.
 *
 * Server and client run on the same machine, so CLOCK_MONOTONIC is the same clock in both
 * (and in Python: time.monotonic()).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "sse_tool: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    ERR_print_errors_fp(stderr);
    exit(1);
}

static void *xrealloc(void *p, size_t n) {
    p = realloc(p, n);
    if (!p && n) die("out of memory");
    return p;
}

/* ---------------------------------------------------------------------------------------
 * Byte buffer: data is p[off..len)
 * --------------------------------------------------------------------------------------- */
struct buf { char *p; size_t off, len, cap; };

static void buf_reserve(struct buf *b, size_t extra) {
    if (b->off && b->off == b->len) b->off = b->len = 0;
    if (b->len + extra <= b->cap) return;
    if (b->off) { /* compact first */
        memmove(b->p, b->p + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
        if (b->len + extra <= b->cap) return;
    }
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra) cap *= 2;
    b->p = xrealloc(b->p, cap);
    b->cap = cap;
}

static void buf_add(struct buf *b, const void *d, size_t n) {
    buf_reserve(b, n);
    memcpy(b->p + b->len, d, n);
    b->len += n;
}

static void buf_printf(struct buf *b, const char *fmt, ...) {
    va_list ap;
    for (;;) {
        size_t room = b->cap - b->len;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0) die("vsnprintf");
        if ((size_t)n < room) { b->len += (size_t)n; return; }
        buf_reserve(b, (size_t)n + 1);
    }
}

static size_t buf_used(const struct buf *b) { return b->len - b->off; }
static char *buf_data(const struct buf *b) { return b->p + b->off; }
static void buf_free(struct buf *b) { free(b->p); memset(b, 0, sizeof *b); }

static void set_nodelay(int fd) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* Query-string value of key (not decoded), copied into out; returns 1 if present. */
static int query_get(const char *qs, const char *key, char *out, size_t outsz) {
    size_t kl = strlen(key);
    const char *p = qs;
    while (p && *p) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        if (len > kl && strncmp(p, key, kl) == 0 && p[kl] == '=') {
            size_t vl = len - kl - 1;
            if (vl >= outsz) vl = outsz - 1;
            memcpy(out, p + kl + 1, vl);
            out[vl] = 0;
            return 1;
        }
        p = amp ? amp + 1 : NULL;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * Server
 * --------------------------------------------------------------------------------------- */
enum { C_HANDSHAKE, C_READ, C_STREAM, C_WAIT };

struct conn {
    int fd;
    SSL *ssl;
    int state;
    uint32_t gen;        /* bumped on reuse and on every timer (re)arm: stale heap entries */
    uint32_t events;     /* epoll mask registered */
    int close_after;     /* close once `out` is sent */
    int keep_alive;
    struct buf in, out;
    /* stream */
    long n, i;
    uint64_t start, iv;
    int head_pending;    /* hd=S: the head waits for the first event's timer */
    char sid[128];
    /* wait-closed */
    char wid[128];
    struct conn *wnext, *free_next;
};

struct timer { uint64_t at; struct conn *c; uint32_t gen; };

static int g_ep, g_tfd, g_lfd;
static SSL_CTX *g_sctx;
static struct conn *g_free;
static struct conn *g_waiters;
static struct timer *g_heap;
static size_t g_heap_n, g_heap_cap;
static uint64_t g_armed;
static long g_accepts, g_open, g_streams;

static const char HEAD_OK[] =
    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
    "Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n";

/* closed-at table: stream id -> CLOCK_MONOTONIC ns */
struct closed { char *id; uint64_t at; struct closed *next; };
#define CLOSED_BUCKETS 65536
static struct closed *g_closed[CLOSED_BUCKETS];

static unsigned hash_str(const char *s) {
    unsigned h = 2166136261u;
    while (*s) h = (h ^ (unsigned char)*s++) * 16777619u;
    return h % CLOSED_BUCKETS;
}

static struct closed *closed_find(const char *id) {
    for (struct closed *c = g_closed[hash_str(id)]; c; c = c->next)
        if (strcmp(c->id, id) == 0) return c;
    return NULL;
}

static void heap_push(uint64_t at, struct conn *c) {
    if (g_heap_n == g_heap_cap) {
        g_heap_cap = g_heap_cap ? g_heap_cap * 2 : 1024;
        g_heap = xrealloc(g_heap, g_heap_cap * sizeof *g_heap);
    }
    struct timer t = {at, c, ++c->gen};
    size_t i = g_heap_n++;
    while (i) {
        size_t p = (i - 1) / 2;
        if (g_heap[p].at <= at) break;
        g_heap[i] = g_heap[p];
        i = p;
    }
    g_heap[i] = t;
}

static struct timer heap_pop(void) {
    struct timer top = g_heap[0], last = g_heap[--g_heap_n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        if (l >= g_heap_n) break;
        m = l;
        if (l + 1 < g_heap_n && g_heap[l + 1].at < g_heap[l].at) m = l + 1;
        if (g_heap[m].at >= last.at) break;
        g_heap[i] = g_heap[m];
        i = m;
    }
    if (g_heap_n) g_heap[i] = last;
    return top;
}

/* Arm the timerfd at the earliest deadline (ns resolution; epoll_wait's is 1 ms). */
static void arm_timer(void) {
    while (g_heap_n && g_heap[0].c->gen != g_heap[0].gen) heap_pop();
    uint64_t at = g_heap_n ? g_heap[0].at : 0;
    if (at == g_armed) return;
    struct itimerspec its = {{0, 0}, {0, 0}};
    if (at) {
        its.it_value.tv_sec = (time_t)(at / 1000000000u);
        its.it_value.tv_nsec = (long)(at % 1000000000u);
        if (!its.it_value.tv_sec && !its.it_value.tv_nsec) its.it_value.tv_nsec = 1;
    }
    timerfd_settime(g_tfd, TFD_TIMER_ABSTIME, &its, NULL);
    g_armed = at;
}

static void set_events(struct conn *c, uint32_t ev) {
    if (ev == c->events) return;
    struct epoll_event e = {.events = ev, .data.ptr = c};
    epoll_ctl(g_ep, EPOLL_CTL_MOD, c->fd, &e);
    c->events = ev;
}

static void respond_waiter(struct conn *c, const struct closed *cl);
static int flush_out(struct conn *c);

static void mark_closed(const char *sid) {
    if (!sid[0] || closed_find(sid)) return;
    struct closed *cl = malloc(sizeof *cl);
    if (!cl) die("out of memory");
    cl->id = strdup(sid);
    cl->at = now_ns();
    unsigned h = hash_str(sid);
    cl->next = g_closed[h];
    g_closed[h] = cl;
    for (struct conn **pp = &g_waiters; *pp;) {
        struct conn *w = *pp;
        if (strcmp(w->wid, sid) == 0) {
            *pp = w->wnext;
            respond_waiter(w, cl);
        } else {
            pp = &w->wnext;
        }
    }
}

static void conn_close(struct conn *c) {
    if (c->state == C_STREAM) mark_closed(c->sid);
    if (c->state == C_WAIT) {
        for (struct conn **pp = &g_waiters; *pp; pp = &(*pp)->wnext)
            if (*pp == c) { *pp = c->wnext; break; }
    }
    epoll_ctl(g_ep, EPOLL_CTL_DEL, c->fd, NULL);
    SSL_free(c->ssl);
    close(c->fd);
    buf_free(&c->in);
    buf_free(&c->out);
    c->gen++;
    c->fd = -1;
    c->ssl = NULL;
    c->free_next = g_free;
    g_free = c;
    g_open--;
}

static void respond(struct conn *c, const char *json) {
    buf_printf(&c->out, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        "Content-Length: %zu\r\n\r\n%s", strlen(json), json);
}

static int process_input(struct conn *c);

/* Writes what `out` holds; 0 if the connection was closed. */
static int flush_out(struct conn *c) {
    while (buf_used(&c->out)) {
        size_t n = buf_used(&c->out);
        ERR_clear_error(); /* SSL_get_error reads the thread's queue: not another conn's error */
        int r = SSL_write(c->ssl, buf_data(&c->out), n > (1u << 30) ? (1 << 30) : (int)n);
        if (r > 0) {
            c->out.off += (size_t)r;
            continue;
        }
        int e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_WANT_WRITE) {
            set_events(c, EPOLLIN | EPOLLOUT);
            return 1;
        }
        if (e == SSL_ERROR_WANT_READ) return 1;
        conn_close(c);
        return 0;
    }
    c->out.off = c->out.len = 0;
    if (c->close_after) {
        conn_close(c);
        return 0;
    }
    set_events(c, EPOLLIN);
    return 1;
}

static void respond_waiter(struct conn *c, const struct closed *cl) {
    char json[96];
    if (cl)
        snprintf(json, sizeof json, "{\"closed_at\": %" PRIu64 ".%09" PRIu64 "}",
                 cl->at / 1000000000u, cl->at % 1000000000u);
    else
        snprintf(json, sizeof json, "{\"closed_at\": null}");
    c->gen++; /* cancel the timeout */
    c->state = C_READ;
    respond(c, json);
    if (!c->keep_alive) c->close_after = 1;
    if (flush_out(c)) process_input(c);
}

/* One event now, stamped just before the write that sends it. */
static int emit_event(struct conn *c) {
    if (c->head_pending) {
        buf_add(&c->out, HEAD_OK, sizeof HEAD_OK - 1);
        c->head_pending = 0;
    }
    char ev[320];
    int n = snprintf(ev, sizeof ev,
                     "data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\","
                     "\"t\":%" PRIu64 ",\"i\":%ld,\"choices\":[{\"index\":0,\"delta\":"
                     "{\"content\":\" token\"},\"finish_reason\":null}]}\n\n",
                     now_ns(), c->i);
    buf_printf(&c->out, "%x\r\n%.*s\r\n", n, n, ev);
    c->i++;
    if (c->i >= c->n) {
        static const char done[] = "data: [DONE]\n\n";
        buf_printf(&c->out, "%zx\r\n%s\r\n0\r\n\r\n", sizeof done - 1, done);
        c->state = C_READ;
        c->gen++;
        if (!c->keep_alive) c->close_after = 1;
        if (!flush_out(c)) return 0;
        return process_input(c);
    }
    heap_push(c->start + (uint64_t)c->i * c->iv, c);
    return flush_out(c);
}

/* Size of a complete chunked body at p (0 if incomplete, -1 if malformed). */
static long chunked_len(const char *p, size_t len) {
    size_t pos = 0;
    for (;;) {
        const char *eol = memmem(p + pos, len - pos, "\r\n", 2);
        if (!eol) return 0;
        char *end;
        unsigned long sz = strtoul(p + pos, &end, 16);
        if (end == p + pos) return -1;
        pos = (size_t)(eol - p) + 2;
        if (sz == 0) { /* trailers up to an empty line */
            for (;;) {
                eol = memmem(p + pos, len - pos, "\r\n", 2);
                if (!eol) return 0;
                size_t l = (size_t)(eol - (p + pos));
                pos += l + 2;
                if (l == 0) return (long)pos;
            }
        }
        if (len - pos < sz + 2) return 0;
        pos += sz + 2;
    }
}

/* Handles complete requests in `in` while the connection is idle; 0 if it was closed. */
static int process_input(struct conn *c) {
    while (c->state == C_READ && !c->close_after) {
        char *d = buf_data(&c->in);
        size_t used = buf_used(&c->in);
        char *he = used ? memmem(d, used, "\r\n\r\n", 4) : NULL;
        if (!he) {
            if (used > 65536) { conn_close(c); return 0; }
            return 1;
        }
        size_t head_len = (size_t)(he - d) + 4;
        /* request line */
        char *sp1 = memchr(d, ' ', head_len), *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(he - sp1)) : NULL;
        if (!sp1 || !sp2) { conn_close(c); return 0; }
        char target[1024];
        size_t tl = (size_t)(sp2 - sp1 - 1);
        if (tl >= sizeof target) tl = sizeof target - 1;
        memcpy(target, sp1 + 1, tl);
        target[tl] = 0;
        /* headers */
        long clen = 0;
        int chunked = 0;
        c->keep_alive = 1;
        for (char *line = memchr(d, '\n', head_len) + 1; line < he;) {
            char *eol = memmem(line, (size_t)(he + 2 - line), "\r\n", 2);
            char *colon = memchr(line, ':', (size_t)(eol - line));
            if (colon) {
                size_t kl = (size_t)(colon - line);
                char *v = colon + 1;
                while (*v == ' ' || *v == '\t') v++;
                size_t vl = (size_t)(eol - v);
                if (kl == 14 && strncasecmp(line, "content-length", 14) == 0)
                    clen = strtol(v, NULL, 10);
                else if (kl == 17 && strncasecmp(line, "transfer-encoding", 17) == 0 &&
                         memmem(v, vl, "chunked", 7))
                    chunked = 1;
                else if (kl == 10 && strncasecmp(line, "connection", 10) == 0 &&
                         vl >= 5 && strncasecmp(v, "close", 5) == 0)
                    c->keep_alive = 0;
            }
            line = eol + 2;
        }
        long body;
        if (chunked) {
            body = chunked_len(he + 4, used - head_len);
            if (body < 0) { conn_close(c); return 0; }
            if (body == 0) return 1;
        } else {
            body = clen;
            if (used - head_len < (size_t)body) return 1;
        }
        c->in.off += head_len + (size_t)body;

        char *qs = strchr(target, '?');
        if (qs) *qs++ = 0; else qs = "";
        char val[128];
        if (strcmp(target, "/_bench/wait-closed") == 0) {
            if (!query_get(qs, "id", c->wid, sizeof c->wid)) c->wid[0] = 0;
            double timeout = query_get(qs, "timeout", val, sizeof val) ? atof(val) : 5.0;
            struct closed *cl = closed_find(c->wid);
            if (cl) {
                respond_waiter(c, cl);
                return c->fd >= 0;
            }
            c->state = C_WAIT;
            c->wnext = g_waiters;
            g_waiters = c;
            heap_push(now_ns() + (uint64_t)(timeout * 1e9), c);
            return 1;
        }
        if (strcmp(target, "/_bench/stats") == 0) {
            char json[160];
            snprintf(json, sizeof json, "{\"accepts\": %ld, \"open\": %ld, \"streams\": %ld}",
                     g_accepts, g_open, g_streams);
            respond(c, json);
            if (!c->keep_alive) c->close_after = 1;
            if (!flush_out(c)) return 0;
            continue;
        }
        /* a stream */
        c->n = query_get(qs, "n", val, sizeof val) ? atol(val) : 100;
        double iv = query_get(qs, "iv", val, sizeof val) ? atof(val) : 0.02;
        c->iv = (uint64_t)(iv * 1e9);
        if (!query_get(qs, "id", c->sid, sizeof c->sid)) c->sid[0] = 0;
        c->i = 0;
        c->state = C_STREAM;
        g_streams++;
        double hd = query_get(qs, "hd", val, sizeof val) ? atof(val) : 0.0;
        c->start = now_ns();
        if (hd > 0 && c->n > 0) { /* the head (with the first event) after hd seconds */
            c->head_pending = 1;
            c->start += (uint64_t)(hd * 1e9);
            heap_push(c->start, c);
            return 1;
        }
        c->head_pending = 0;
        buf_add(&c->out, HEAD_OK, sizeof HEAD_OK - 1);
        if (c->n <= 0) {
            c->n = 0;
            static const char done[] = "data: [DONE]\n\n";
            buf_printf(&c->out, "%zx\r\n%s\r\n0\r\n\r\n", sizeof done - 1, done);
            c->state = C_READ;
            if (!c->keep_alive) c->close_after = 1;
            if (!flush_out(c)) return 0;
            continue;
        }
        return emit_event(c);
    }
    return 1;
}

static void on_readable(struct conn *c) {
    char tmp[16384];
    for (;;) {
        ERR_clear_error();
        int r = SSL_read(c->ssl, tmp, sizeof tmp);
        if (r > 0) {
            /* data while streaming would be a pipelined request: kept for later */
            buf_add(&c->in, tmp, (size_t)r);
            continue;
        }
        int e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) break;
        conn_close(c); /* peer closed (close_notify or EOF) or failed */
        return;
    }
    if (c->state == C_READ) process_input(c);
}

static void on_handshake(struct conn *c) {
    ERR_clear_error();
    int r = SSL_accept(c->ssl);
    if (r == 1) {
        c->state = C_READ;
        set_events(c, EPOLLIN);
        on_readable(c);
        return;
    }
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ) set_events(c, EPOLLIN);
    else if (e == SSL_ERROR_WANT_WRITE) set_events(c, EPOLLOUT);
    else conn_close(c);
}

static void on_accept(void) {
    for (;;) {
        int fd = accept4(g_lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno != EAGAIN)
                fprintf(stderr, "sse_tool: accept: %s\n", strerror(errno));
            return;
        }
        set_nodelay(fd);
        struct conn *c = g_free;
        if (c) g_free = c->free_next; else c = calloc(1, sizeof *c);
        if (!c) die("out of memory");
        uint32_t gen = c->gen;
        memset(c, 0, sizeof *c);
        c->gen = gen + 1;
        c->fd = fd;
        c->ssl = SSL_new(g_sctx);
        if (!c->ssl) die("SSL_new");
        SSL_set_fd(c->ssl, fd);
        c->state = C_HANDSHAKE;
        c->events = EPOLLIN;
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(g_ep, EPOLL_CTL_ADD, fd, &e) < 0) die("epoll_ctl: %s", strerror(errno));
        g_accepts++;
        g_open++;
        on_handshake(c);
    }
}

/* --alpn: h2 is offered by servers, never chosen here: this server speaks HTTP/1.1. */
static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                       unsigned int inlen, void *arg) {
    (void)ssl;
    (void)arg;
    static const unsigned char h11[] = "http/1.1";
    for (unsigned i = 0; i < inlen;) {
        unsigned len = in[i];
        if (i + 1 + len > inlen) break;
        if (len == 8 && !memcmp(in + i + 1, h11, 8)) {
            *out = in + i + 1;
            *outlen = 8;
            return SSL_TLSEXT_ERR_OK;
        }
        i += 1 + len;
    }
    return SSL_TLSEXT_ERR_NOACK;
}

static int server_main(int argc, char **argv) {
    int port = 0, tickets = -1, alpn = 0;
    const char *cert = NULL, *key = NULL;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--port") && i + 1 < argc) port = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--tickets") && i + 1 < argc) tickets = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--alpn")) alpn = 1;
        else if (!strcmp(argv[i], "--cert") && i + 1 < argc) cert = argv[++i];
        else if (!strcmp(argv[i], "--key") && i + 1 < argc) key = argv[++i];
        else die("server: unknown argument %s", argv[i]);
    }
    if (!port || !cert || !key) die("server: needs --port --cert --key");
    signal(SIGPIPE, SIG_IGN);
    prctl(PR_SET_TIMERSLACK, 1UL); /* wake at the event times, not up to 50 us later */

    g_sctx = SSL_CTX_new(TLS_server_method());
    if (!g_sctx) die("SSL_CTX_new");
    SSL_CTX_set_min_proto_version(g_sctx, TLS1_2_VERSION);
    if (SSL_CTX_use_certificate_chain_file(g_sctx, cert) != 1) die("certificate %s", cert);
    if (SSL_CTX_use_PrivateKey_file(g_sctx, key, SSL_FILETYPE_PEM) != 1) die("key %s", key);
    if (tickets >= 0 && SSL_CTX_set_num_tickets(g_sctx, (size_t)tickets) != 1) die("--tickets %d", tickets);
    if (alpn) SSL_CTX_set_alpn_select_cb(g_sctx, select_alpn, NULL);
    /* Thousands of idle held streams: no 2 x 16 KiB of buffers each while idle. */
    SSL_CTX_set_mode(g_sctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                             SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);

    g_lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(g_lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(g_lfd, (struct sockaddr *)&sa, sizeof sa) < 0) die("bind: %s", strerror(errno));
    if (listen(g_lfd, 8192) < 0) die("listen: %s", strerror(errno));

    g_ep = epoll_create1(EPOLL_CLOEXEC);
    g_tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = &g_lfd};
    epoll_ctl(g_ep, EPOLL_CTL_ADD, g_lfd, &e);
    e.data.ptr = &g_tfd;
    epoll_ctl(g_ep, EPOLL_CTL_ADD, g_tfd, &e);

    struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(g_ep, evs, 256, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait: %s", strerror(errno));
        }
        for (int k = 0; k < n; k++) {
            void *p = evs[k].data.ptr;
            if (p == &g_lfd) { on_accept(); continue; }
            if (p == &g_tfd) {
                uint64_t x;
                if (read(g_tfd, &x, sizeof x) < 0) { /* spurious */ }
                g_armed = 0;
                continue;
            }
            struct conn *c = p;
            if (c->fd < 0) continue; /* closed earlier in this batch */
            if (c->state == C_HANDSHAKE) { on_handshake(c); continue; }
            if ((evs[k].events & EPOLLOUT) && !flush_out(c)) continue;
            if (evs[k].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(c);
        }
        /* Due timers: stream events and wait-closed timeouts. */
        uint64_t now = now_ns();
        while (g_heap_n && g_heap[0].at <= now) {
            struct timer t = heap_pop();
            struct conn *c = t.c;
            if (c->gen != t.gen || c->fd < 0) continue;
            if (c->state == C_STREAM) emit_event(c);
            else if (c->state == C_WAIT) {
                for (struct conn **pp = &g_waiters; *pp; pp = &(*pp)->wnext)
                    if (*pp == c) { *pp = c->wnext; break; }
                respond_waiter(c, closed_find(c->wid));
            }
            now = now_ns();
        }
        arm_timer();
    }
    return 0; /* not reached */
}

/* ---------------------------------------------------------------------------------------
 * Client
 * --------------------------------------------------------------------------------------- */
enum { S_IDLE, S_HEAD, S_BODY, S_END };
enum { K_SIZE, K_DATA, K_CRLF, K_TRAILER };

struct target {
    char name[32];
    int port, tls;
    uint64_t *lat;
    size_t lat_n, lat_cap;
};

struct stream {
    int fd;
    SSL *ssl;
    struct target *tg;
    long k; /* index among its target's streams */
    int state, chunked, cstate;
    size_t csize;
    struct buf head, line, payload;
    long events;
    int done;
    char error[160];
    uint64_t t_sent, t_first;
};

static void lat_add(struct target *t, uint64_t v) {
    if (t->lat_n == t->lat_cap) {
        t->lat_cap = t->lat_cap ? t->lat_cap * 2 : 4096;
        t->lat = xrealloc(t->lat, t->lat_cap * sizeof *t->lat);
    }
    t->lat[t->lat_n++] = v;
}

static void stream_fail(struct stream *s, int ep, const char *fmt, ...) {
    if (!s->error[0] && !s->done) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(s->error, sizeof s->error, fmt, ap);
        va_end(ap);
        if (!s->error[0]) strcpy(s->error, "failed");
    }
    if (s->fd >= 0) {
        epoll_ctl(ep, EPOLL_CTL_DEL, s->fd, NULL);
        if (s->ssl) SSL_free(s->ssl);
        close(s->fd);
        s->ssl = NULL;
        s->fd = -1;
    }
    s->state = S_END;
}

/* Events completed in payload, received at `now`. */
static void take_events(struct stream *s, uint64_t now) {
    for (;;) {
        char *d = buf_data(&s->payload);
        size_t used = buf_used(&s->payload);
        char *end = used ? memmem(d, used, "\n\n", 2) : NULL;
        if (!end) return;
        size_t len = (size_t)(end - d);
        if (len >= 12 && memcmp(d, "data: [DONE]", 12) == 0) {
            s->done = 1;
        } else {
            char *t = memmem(d, len, "\"t\":", 4);
            if (t) {
                uint64_t stamp = strtoull(t + 4, NULL, 10);
                s->events++;
                lat_add(s->tg, now >= stamp ? now - stamp : 0);
            }
        }
        s->payload.off += len + 2;
    }
}

/* Feeds answer bytes; 0 on a protocol error. */
static int feed(struct stream *s, const char *p, size_t n, uint64_t now) {
    if (s->state == S_HEAD) {
        buf_add(&s->head, p, n);
        char *d = buf_data(&s->head);
        char *he = memmem(d, buf_used(&s->head), "\r\n\r\n", 4);
        if (!he) return 1;
        *he = 0;
        int status = 0;
        if (sscanf(d, "HTTP/1.%*d %d", &status) != 1 || status != 200) {
            snprintf(s->error, sizeof s->error, "status %d", status);
            return 0;
        }
        for (char *line = strstr(d, "\r\n"); line; line = strstr(line, "\r\n")) {
            line += 2;
            char *eol = strstr(line, "\r\n");
            if (eol) *eol = 0;
            if (strncasecmp(line, "transfer-encoding:", 18) == 0 && strcasestr(line, "chunked"))
                s->chunked = 1;
            if (!eol) break;
            *eol = '\r';
        }
        size_t rest = buf_used(&s->head) - (size_t)(he + 4 - d);
        const char *rp = he + 4;
        s->state = S_BODY;
        s->cstate = K_SIZE;
        int ok = rest ? feed(s, rp, rest, now) : 1;
        buf_free(&s->head);
        return ok;
    }
    if (!s->chunked) {
        buf_add(&s->payload, p, n);
    } else {
        size_t pos = 0;
        while (pos < n) {
            if (s->cstate == K_SIZE || s->cstate == K_TRAILER) {
                const char *nl = memchr(p + pos, '\n', n - pos);
                size_t take = nl ? (size_t)(nl - (p + pos)) + 1 : n - pos;
                buf_add(&s->line, p + pos, take);
                pos += take;
                if (!nl) break;
                if (s->cstate == K_SIZE) {
                    buf_add(&s->line, "", 1);
                    char *end;
                    s->csize = strtoul(buf_data(&s->line), &end, 16);
                    if (end == buf_data(&s->line)) {
                        snprintf(s->error, sizeof s->error, "bad chunk size");
                        return 0;
                    }
                    s->cstate = s->csize ? K_DATA : K_TRAILER;
                }
                s->line.off = s->line.len = 0;
            } else if (s->cstate == K_DATA) {
                size_t take = s->csize < n - pos ? s->csize : n - pos;
                buf_add(&s->payload, p + pos, take);
                pos += take;
                s->csize -= take;
                if (!s->csize) { s->cstate = K_CRLF; s->csize = 2; }
            } else { /* K_CRLF */
                size_t take = s->csize < n - pos ? s->csize : n - pos;
                pos += take;
                s->csize -= take;
                if (!s->csize) s->cstate = K_SIZE;
            }
        }
    }
    take_events(s, now);
    return 1;
}

static void client_readable(struct stream *s, int ep, long *finished) {
    char tmp[65536];
    for (;;) {
        int r;
        if (s->ssl) {
            ERR_clear_error();
            r = SSL_read(s->ssl, tmp, sizeof tmp);
            if (r <= 0) {
                int e = SSL_get_error(s->ssl, r);
                if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return;
                r = (e == SSL_ERROR_ZERO_RETURN) ? 0 : -1;
            }
        } else {
            r = (int)recv(s->fd, tmp, sizeof tmp, 0);
            if (r < 0 && (errno == EAGAIN || errno == EINTR)) return;
        }
        if (r > 0) {
            uint64_t now = now_ns();
            if (!s->t_first) s->t_first = now;
            int was_done = s->done;
            if (!feed(s, tmp, (size_t)r, now)) { stream_fail(s, ep, "%s", s->error); return; }
            if (s->done && !was_done) (*finished)++;
            continue;
        }
        if (s->done) stream_fail(s, ep, "closed after the end"); /* not an error once done */
        else if (r == 0) stream_fail(s, ep, "closed after %ld events", s->events);
        else stream_fail(s, ep, "read error after %ld events: %s", s->events, strerror(errno));
        return;
    }
}

static void json_str(const char *s) {
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20) printf("\\u%04x", *s);
        else putchar(*s);
    }
    putchar('"');
}

static int client_main(int argc, char **argv) {
    const char *ca = NULL, *tag = "s";
    long per = 20, events = 100;
    double iv_ms = 20, stagger_ms = -1, timeout_s = 15;
    struct target tgs[16];
    int ntg = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--target") && i + 1 < argc) {
            if (ntg == 16) die("client: at most 16 targets");
            struct target *t = &tgs[ntg++];
            memset(t, 0, sizeof *t);
            char mode[8] = "";
            if (sscanf(argv[++i], "%31[^:]:%d:%7s", t->name, &t->port, mode) < 2 || t->port <= 0)
                die("client: --target NAME:PORT[:tls], not %s", argv[i]);
            t->tls = !strcmp(mode, "tls");
        }
        else if (!strcmp(argv[i], "--ca") && i + 1 < argc) ca = argv[++i];
        else if (!strcmp(argv[i], "--streams") && i + 1 < argc) per = atol(argv[++i]);
        else if (!strcmp(argv[i], "--events") && i + 1 < argc) events = atol(argv[++i]);
        else if (!strcmp(argv[i], "--iv-ms") && i + 1 < argc) iv_ms = atof(argv[++i]);
        else if (!strcmp(argv[i], "--stagger-ms") && i + 1 < argc) stagger_ms = atof(argv[++i]);
        else if (!strcmp(argv[i], "--timeout-s") && i + 1 < argc) timeout_s = atof(argv[++i]);
        else if (!strcmp(argv[i], "--tag") && i + 1 < argc) tag = argv[++i];
        else die("client: unknown argument %s", argv[i]);
    }
    if (!ntg || per < 1) die("client: needs --target and --streams >= 1");
    long streams = per * ntg;
    if (stagger_ms < 0) stagger_ms = iv_ms / (double)streams;
    signal(SIGPIPE, SIG_IGN);
    prctl(PR_SET_TIMERSLACK, 1UL);

    SSL_CTX *ctx = NULL;
    for (int t = 0; t < ntg; t++) {
        if (!tgs[t].tls || ctx) continue;
        if (!ca) die("client: a TLS target needs --ca");
        ctx = SSL_CTX_new(TLS_client_method());
        if (!ctx || SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) die("CA %s", ca);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    }
    int ep = epoll_create1(EPOLL_CLOEXEC);
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &e);

    /* Stream j: target j % ntg, its (j / ntg)-th stream; started j * stagger after the
     * first, so the targets' streams interleave. */
    struct stream *ss = calloc((size_t)streams, sizeof *ss);
    if (!ss) die("out of memory");
    /* All connections and TLS handshakes first, so none of them runs during the streams. */
    for (long j = 0; j < streams; j++) {
        struct stream *s = &ss[j];
        s->tg = &tgs[j % ntg];
        s->k = j / ntg;
        s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s->tg->port)};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (s->fd < 0 || connect(s->fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
            stream_fail(s, ep, "connect: %s", strerror(errno));
            continue;
        }
        set_nodelay(s->fd);
        if (s->tg->tls) {
            s->ssl = SSL_new(ctx);
            SSL_set_fd(s->ssl, s->fd);
            SSL_set_tlsext_host_name(s->ssl, "localhost");
            SSL_set1_host(s->ssl, "localhost");
            ERR_clear_error();
            if (SSL_connect(s->ssl) != 1) {
                unsigned long err = ERR_get_error();
                stream_fail(s, ep, "TLS handshake: %s", err ? ERR_reason_error_string(err) : "failed");
                continue;
            }
        }
        fcntl(s->fd, F_SETFL, fcntl(s->fd, F_GETFL) | O_NONBLOCK);
        s->state = S_IDLE;
    }

    const char *body = "{\"model\":\"gpt-4o-mini\",\"stream\":true,\"messages\":"
                       "[{\"role\":\"user\",\"content\":\"Hello\"}]}";
    long sent = 0, finished = 0;
    uint64_t t0 = now_ns();
    uint64_t stagger = (uint64_t)(stagger_ms * 1e6);
    uint64_t deadline = t0 + (uint64_t)(stagger_ms * 1e6 * (double)streams) +
                        (uint64_t)((double)events * iv_ms * 1e6 + timeout_s * 1e9);
    struct epoll_event evs[64];
    for (;;) {
        uint64_t now = now_ns();
        while (sent < streams && now >= t0 + (uint64_t)sent * stagger) {
            struct stream *s = &ss[sent++];
            if (s->state != S_IDLE) continue;
            char req[1024];
            int n = snprintf(req, sizeof req,
                             "POST /v1/chat/completions?n=%ld&iv=%.6f&id=%s-%s-%ld HTTP/1.1\r\n"
                             "Host: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
                             "Accept: text/event-stream\r\nAuthorization: Bearer sk-bench-0000000000000000000000000000000000000000000000000000\r\n"
                             "Content-Length: %zu\r\n\r\n%s",
                             events, iv_ms / 1000.0, tag, s->tg->name, s->k, s->tg->port,
                             strlen(body), body);
            ERR_clear_error();
            int w = s->ssl ? SSL_write(s->ssl, req, n) : (int)send(s->fd, req, (size_t)n, 0);
            if (w != n) { stream_fail(s, ep, "request not written at once"); continue; }
            s->t_sent = now_ns();
            s->state = S_HEAD;
            struct epoll_event se = {.events = EPOLLIN, .data.ptr = s};
            epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &se);
            now = now_ns();
        }
        long failed = 0;
        for (long j = 0; j < streams; j++) failed += ss[j].error[0] != 0;
        if (sent == streams && finished + failed >= streams) break;
        if (now >= deadline) break;
        uint64_t wake = sent < streams ? t0 + (uint64_t)sent * stagger : deadline;
        struct itimerspec its = {{0, 0}, {(time_t)(wake / 1000000000u), (long)(wake % 1000000000u)}};
        timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
        int n = epoll_wait(ep, evs, 64, -1);
        for (int k = 0; k < n; k++) {
            struct stream *s = evs[k].data.ptr;
            if (!s) {
                uint64_t x;
                if (read(tfd, &x, sizeof x) < 0) { /* not yet */ }
                continue;
            }
            if (s->fd >= 0) client_readable(s, ep, &finished);
        }
    }

    /* Report: one object per target */
    printf("{\"targets\": [");
    for (int t = 0; t < ntg; t++) {
        struct target *tg = &tgs[t];
        long failed = 0, unfinished = 0, lost = 0;
        for (long j = t; j < streams; j += ntg) {
            struct stream *s = &ss[j];
            if (s->error[0] && !s->done) failed++;
            else if (!s->done) unfinished++;
            if (s->events < events) lost += events - s->events;
        }
        printf("%s{\"name\": ", t ? ",\n " : "");
        json_str(tg->name);
        printf(", \"streams\": %ld, \"failed\": %ld, \"unfinished\": %ld, \"lost\": %ld, \"lat_ns\": [",
               per, failed, unfinished, lost);
        for (size_t k = 0; k < tg->lat_n; k++) printf(k ? ",%" PRIu64 : "%" PRIu64, tg->lat[k]);
        printf("], \"ttfb_ns\": [");
        int first = 1;
        for (long j = t; j < streams; j += ntg) {
            if (!ss[j].t_first || !ss[j].t_sent) continue;
            printf(first ? "%" PRIu64 : ",%" PRIu64, ss[j].t_first - ss[j].t_sent);
            first = 0;
        }
        printf("], \"why\": [");
        first = 1;
        for (long j = t; j < streams; j += ntg) {
            if (!ss[j].error[0] || ss[j].done) continue;
            if (!first) putchar(',');
            json_str(ss[j].error);
            first = 0;
        }
        printf("]}");
    }
    printf("]}\n");
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "server")) return server_main(argc - 2, argv + 2);
    if (argc >= 2 && !strcmp(argv[1], "client")) return client_main(argc - 2, argv + 2);
    fprintf(stderr, "usage: sse_tool server --port P --cert FILE --key FILE\n"
                    "       sse_tool client --target NAME:PORT[:tls] [--target ...] [--ca FILE]"
                    " --streams N --events E --iv-ms MS --tag T [--stagger-ms MS] [--timeout-s S]\n");
    return 2;
}
