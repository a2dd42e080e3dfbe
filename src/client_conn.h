// One client connection and the exchange it is in: the per-connection state machine.
//
//   state        its clock                         leaves for (besides Closed)
//   Idle         -keepalive-timeout, restarted     ReadingHead: a request's first byte
//                by every event
//   ReadingHead  -header-timeout from the first    Exchange: head parsed
//                byte, never restarted             Draining: bad request, 408
//   Exchange     -response-timeout, then           Idle (ReadingHead if the next request is
//                -idle-timeout; restarted by         already here): answered, keep-alive
//                every event                       Draining: answered, then close
//                                                  Flushing: the answer failed midway
//                                                  Orphaned: client left, request sent
//                                                    whole, nothing of the answer relayed
//                                                  Tunnel: a WebSocket upgrade accepted (101)
//   Tunnel       -idle-timeout, restarted by       Flushing: the upstream ended it
//                every event                       TunnelClosing: the client ended it
//   TunnelClosing 30 s to deliver to the upstream  -
//   Orphaned     none: ends within its event       -
//   Flushing     30 s to deliver                   -
//   Draining     30 s to deliver                   Lingering: delivered, write side shut
//   Lingering    2 s                               -
//
// Closed is reached from any state: client gone, write error, timeout, shutdown while
// Idle; from Orphaned once what the upstream already sent is read (the connection
// pooled if that was the whole answer); from Flushing and TunnelClosing once flushed. enter() is the one
// place that changes the state: it checks the transition against this table and starts
// the clock of the state it enters; settle() restarts the clocks that activity restarts
// (Idle, Exchange).
//
// Requests are handled one at a time in arrival order; pipelined requests wait in the
// input buffer, so answers go out in order. The relay owns the backpressure rule:
// it stops reading the client while the bytes not yet accepted by the upstream are
// above kHighWater, and stops reading the upstream while the bytes not yet accepted
// by the client are above kHighWater; each resumes below kLowWater. Memory per
// exchange is therefore bounded whatever the body sizes.
//
// A WebSocket upgrade (Connection: upgrade, Upgrade: websocket) is forwarded with those two
// fields; when the upstream answers 101 the connection becomes a two-way byte tunnel
// (frames are neither parsed nor re-framed) with the same backpressure rule both ways,
// until either side closes or resets, which closes the other. Any other answer to it is
// relayed as an ordinary response.
//
// A client that goes away ends its exchange and closes the upstream at once, with one
// exception (client_left): if the request was sent whole and nothing of the answer
// relayed yet, what the upstream has already sent is read ("orphaned": socket closed,
// upstream kept), and a short answer found complete there pools its connection.
//
// Browsers and CDNs (README "CORS", "Keep-alive through CDNs"), each off by default:
// with -cors-origins a preflight is answered here and never forwarded, and every answer
// (relayed or the proxy's own) carries the CORS fields. A keep-alive is due in Exchange
// when the client has had no byte for the period: -sse-keepalive on a text/event-stream
// answer whose relayed bytes end at an event boundary, -json-keepalive before the
// upstream's head for a non-streamed JSON POST (the 200 head first, then one whitespace
// chunk each period; the upstream's head, whatever its status, is then not relayed, its
// body follows as chunks, and an error of the proxy's own ends the body as its JSON).
// The exchange's clock is the earlier of the activity clock (above), the keep-alive
// due and the attempt's head-timeout (below); sending a keep-alive never restarts the
// activity clock, so a silent upstream still times out.
//
// Keys and failover (README "Keys and failover"; the selection logic is failover.h):
// with -access-keys, a request (not a preflight answered here) must present one, else
// 401, nothing forwarded; the client's credential fields are then never forwarded.
// A route whose origin has server-side keys gets one of them in its credential field
// (the client's Authorization / api-key dropped). When the route has several origins or
// keys, an exchange is a series of attempts, all within Exchange: an attempt that fails
// (connect, TLS, timeout, no head within the route's head-timeout, a failover status,
// 401/403/429 to an injected key) is followed by another while nothing reached the
// client, the request is still whole in up_out_ (up to the route's retry-body-limit)
// and attempts remain; the failed response is discarded with its connection. Otherwise
// the client gets the last answer as it is, or the proxy's error naming the attempts.
#pragma once

#include <cstdint>
#include <string>

#include "byte_buffer.h"
#include "chunked_decoder.h"
#include "client_context.h"
#include "cors_policy.h"
#include "error_response.h"
#include "exchange_meter.h"
#include "failover.h"
#include "http_head.h"
#include "pollable.h"
#include "request_plan.h"
#include "socket.h"
#include "stream_flag_scan.h"
#include "target.h"
#include "tls.h"
#include "upstream_conn.h"

namespace op {

class ClientConn final : public Pollable, public UpstreamOwner {
public:
    static constexpr std::size_t kHighWater = 64 * 1024;
    static constexpr std::size_t kLowWater = 16 * 1024;
    // While the request's body (as the client sent it, without chunk framing) is within
    // this many bytes, the request is kept until the first response byte, so it can be
    // replayed on a fresh connection when a pooled one turns out to have been closed by
    // the upstream.
    static constexpr std::size_t kReplayLimit = 64 * 1024;
    // The kept request (head, body and any chunk framing) never grows past this, whatever
    // the limits above (a body of tiny chunks is several times its size with framing):
    // well inside ByteBuffer::kMaxCapacity, so keeping it never fails.
    static constexpr std::size_t kMaxKept = 96 * 1024 * 1024;

    // Takes over the accepted socket `fd`; start() registers it (adopt first: a
    // refusal closes the connection at once).
    ClientConn(ClientContext& ctx, SocketHandle fd);
    ~ClientConn() override;
    void start();

    void on_ready(unsigned ready) override;
    void on_timeout() override;

    void upstream_ready() override;
    void upstream_readable() override;
    void upstream_writable() override;
    void upstream_failed(UpstreamFailure why, const std::string& detail) override;

    // Shutdown: a connection between requests, with its last answer delivered, is closed
    // at once (asked again every tick while stopping).
    bool close_if_idle() override {
        if (state_ != State::Idle || !in_.empty() || !out_.empty() || ciphertext_waiting()) {
            return false;  // an answer still leaving
        }
        close_client();
        return true;
    }

private:
    enum class State {
        Idle,         // between requests, nothing of the next one yet: keep-alive clock
        ReadingHead,  // part of a head is in: header clock, from its first byte
        Exchange,     // relaying a request and its answer: response / idle clock
        Tunnel,       // WebSocket: bytes both ways, unparsed, until either side closes
        TunnelClosing,  // the client left a tunnel: what it sent goes on, then the close
        Orphaned,     // the client left; the upstream may still finish (client_left)
        Flushing,     // the answer failed midway: deliver what is buffered, then close
        Draining,     // a final answer: deliver it, then linger
        Lingering,    // write side shut: discard input for a moment, then close
        Closed,       // destroyed after the batch
    };

    static bool may_enter(State from, State to);
    void enter(State next);
    void end_exchange(bool close);
    bool before_exchange() const { return state_ == State::Idle || state_ == State::ReadingHead; }
    bool in_exchange() const { return state_ == State::Exchange || state_ == State::Orphaned; }
    // The whole request is read and on its way (nothing of it left for the upstream to take).
    bool request_all_sent() const { return req_done_ && up_sent_ == up_out_.size(); }
    // The client left (its socket unused or closed); the upstream still has a part.
    bool client_gone() const { return state_ == State::Orphaned || state_ == State::TunnelClosing; }

    // After any event: makes what progress the buffers allow (parsing, relaying,
    // flushing, backpressure), then sets the poll interest and restarts the activity
    // clocks. It never runs for an orphan, whose socket is gone.
    void settle();
    void settle_rounds();
    void read_client();
    void flush_client();
    void parse_next_request();
    void begin_exchange(const RequestHead& head, std::size_t head_len);
    void move_request();
    void acquire_upstream(bool allow_pooled);
    void read_upstream();
    void on_response_bytes(const char* p, std::size_t n);
    void start_response(const ResponseHead& head);
    void body_in_place(std::size_t n);
    void on_body_bytes(const char* p, std::size_t n);
    void emit_body(const char* p, std::size_t n);
    void response_complete();
    void start_tunnel(const ResponseHead& head);
    void tunnel_to_upstream();
    void finish_tunnel();
    void upstream_ended(bool error, const std::string& detail);
    void answer_error(const ProxyError& e);
    void abort_midstream(const std::string& why);
    bool retract_response();
    void release_upstream(bool reusable);
    void stop_replay();  // the request is no longer kept for a replay
    void reset_exchange();
    void client_left();
    void drain_orphan();
    void close_client();
    void close_socket();  // the client's socket only, and its count
    void update_interest();
    bool wants_client_bytes() const;
    void refresh_clock();
    void arm_exchange_clock();  // deadline_ms: activity, keep-alive due, head-timeout
    // Keys and failover (see the top).
    bool check_access(const RequestHead& head);
    bool first_attempt();
    int next_origin(const ApiKey*& key);
    bool try_next(AttemptFailure why, const std::string& detail, std::int64_t key_aside_ms = 0);
    void rewrite_request_head();
    std::string failover_summary() const;
    // CORS and keep-alives (see the top).
    const CorsAnswer* cors() const { return cfg().cors.enabled ? &cors_answer_ : nullptr; }
    bool begin_cors(const RequestHead& head, std::size_t head_len);
    void note_request_body(const char* p, std::size_t n) {
        if (json_candidate_) stream_scan_.feed(p, n);
    }
    void note_sse_bytes(const char* p, std::size_t n);
    bool sse_at_boundary() const;
    std::int64_t keepalive_due_ms() const;  // 0: none due
    void send_keepalive();

    // The client's socket, through TLS when the listener has it (tls_): the same results
    // as net::read / net::write. A TLS write takes at most one record's worth of
    // plaintext, and only once the ciphertext of the one before has left, so the
    // ciphertext held is bounded; send_ciphertext() moves what is waiting.
    IoResult client_read(char* p, std::size_t cap);
    IoResult client_write(const char* p, std::size_t len);
    IoResult send_ciphertext();
    bool ciphertext_waiting() const { return tls_ && tls_->pending_ciphertext() > 0; }
    // Bytes queued for the client so far: written and still buffered (ExchangeMeter).
    std::uint64_t out_mark() const { return client_written_ + out_.size(); }

    // The configuration this connection's exchange runs on: the worker's current one,
    // taken when an exchange begins and kept until the next begins, so a reload never
    // changes what an exchange in flight uses (config_snapshot.h).
    const Config& cfg() const { return snap_->config; }

    ClientContext& ctx_;
    SnapshotPtr snap_;
    SocketHandle fd_;
    State state_ = State::Idle;
    unsigned interest_ = 0;
    std::unique_ptr<TlsSession> tls_;  // -tls-cert: the client's TLS session
    bool websocket_ = false;           // this exchange asks for a WebSocket upgrade
    ByteBuffer in_;   // bytes from the client not yet consumed
    ByteBuffer out_;  // bytes for the client not yet written
    bool in_settle_ = false;

    // The exchange in progress.
    bool head_request_ = false;
    int client_minor_ = 1;
    bool client_keep_alive_ = true;
    // Decided when the response head is written (its Connection header must say what
    // will happen), acted upon when the exchange ends: not a state of the connection.
    bool close_after_ = false;
    RequestPlan plan_;  // where this exchange goes; reused from one request to the next
    UpstreamConn* up_ = nullptr;
    bool upstream_paused_ = false;
    bool retried_ = false;

    BodyKind req_kind_ = BodyKind::None;
    std::uint64_t req_remaining_ = 0;
    std::uint64_t req_body_bytes_ = 0;  // body bytes read so far (decoded from chunked framing)
    ChunkedDecoder req_chunks_;
    bool req_done_ = true;
    ByteBuffer up_out_;        // request bytes for the upstream; [0, up_sent_) already sent
    std::size_t up_sent_ = 0;
    bool replayable_ = true;

    ByteBuffer resp_head_;     // response head bytes until the head is complete
    bool got_response_byte_ = false;
    bool response_started_ = false;  // anything of the final response sent to the client
    bool resp_keep_alive_ = false;
    bool resp_extra_ = false;        // upstream sent bytes beyond the message
    BodyKind resp_kind_ = BodyKind::None;
    std::uint64_t resp_remaining_ = 0;
    ChunkedDecoder resp_chunks_;
    bool client_chunked_ = false;
    std::uint64_t client_written_ = 0;  // bytes written to the client socket, ever
    std::uint64_t response_at_ = 0;     // offset of this response's head in that stream

    // CORS: what this exchange's answers carry (cors()); allow_origin views cors_origin_,
    // which keeps its storage from one request to the next.
    std::string cors_origin_;
    CorsAnswer cors_answer_;
    // Keep-alives.
    std::int64_t activity_deadline_ms_ = 0;  // the activity clock; deadline_ms may be earlier
    // Over TLS: the handshake and then the first request head are due by this (accept +
    // -header-timeout); 0 once that head is in, and for plain connections.
    std::int64_t first_head_deadline_ms_ = 0;
    std::int64_t last_emit_ms_ = 0;          // when the client was last given bytes (exchange start)
    bool sse_ = false;                       // -sse-keepalive applies to this answer
    std::uint32_t sse_tail_ = 0;             // its last relayed bytes, newest lowest
    unsigned sse_tail_len_ = 0;              // how many of them (0-4)
    bool json_candidate_ = false;            // -json-keepalive may apply (POST, JSON, HTTP/1.1)
    StreamFlagScan stream_scan_;             // ... unless its body says "stream": true
    bool keepalive_head_sent_ = false;       // the 200 head of -json-keepalive went out
    ExchangeMeter meter_;  // metrics and the access log line of the exchange in progress
    // Keys and failover.
    const std::string* access_label_ = nullptr;  // the access key presented (its label)
    bool strip_credentials_ = false;  // the client's credential fields are not forwarded
    bool failover_ = false;           // the route may try another key or origin
    const ApiKey* key_ = nullptr;     // the server-side key of this attempt
    const ApiKey* refused_key_ = nullptr;  // a key this exchange set aside for a 401/403
    unsigned attempts_ = 1;
    std::uint32_t tried_ = 0;         // origins tried in this exchange (bit per origin)
    std::size_t replay_limit_ = kReplayLimit;  // up_out_ kept for a replay while the body is within this
    // Failover to another origin: only while the request body is within retry-body-limit.
    // replay_limit_ keeps at least kReplayLimit for the stale-connection replay to the
    // same origin, which a smaller retry-body-limit does not change.
    std::size_t failover_limit_ = 0;
    bool failover_fits_ = true;
    bool kept_too_big_ = false;  // the kept request outgrew kMaxKept (tiny chunks) within the limits
    std::size_t head_edit_at_ = 0;    // up_out_: the Host line starts here ...
    std::size_t head_edit_end_ = 0;   // ... and it (and the injected credential) ends here
    std::string client_credentials_;  // the client's own credential lines, moved out for a server key
    // A WebSocket failover without access keys: the client's Sec-WebSocket-Protocol lines
    // as sent, written by each attempt in the edited lines (its key element only to
    // origins without keys).
    std::string client_protocols_;
    bool protocols_moved_ = false;  // ... and they are no longer in the head's other lines
    std::int64_t head_deadline_ms_ = 0;  // this attempt's head-timeout; 0: none
    std::string attempt_notes_;       // the failed attempts, for the last error
};

}  // namespace op
