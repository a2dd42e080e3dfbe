#!/usr/bin/env python3
"""Server-sent events arrive event by event, whole and in order, whatever the upstream's
framing; a client that goes away makes the proxy close the upstream connection at once."""
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import HttpResponse, ProxyTestCase, RawClient, Resp, main, now, wait_until  # noqa: E402

EVENTS = [b'data: {"id":"chatcmpl-e2e","object":"chat.completion.chunk","choices":[{"index":0,'
          b'"delta":{"content":"tok%02d"},"finish_reason":null}]}\n\n' % i for i in range(18)]
EVENTS.append(b'data: {"id":"chatcmpl-e2e","object":"chat.completion.chunk","choices":[{"index":0,'
              b'"delta":{},"finish_reason":"stop"}]}\n\n')
EVENTS.append(b'data: [DONE]\n\n')
INTERVAL = 0.1          # seconds between events at the upstream
MAX_LATENCY = 0.5       # an event must reach the client within this after it was sent
MIN_SPREAD = 1.5        # first to last arrival (the upstream spreads them over 1.9 s)


def sse_handler(resps, framing, events=EVENTS, interval=INTERVAL):
    def handler(req):
        if req.target != '/v1/chat/completions':
            return Resp(200, [('Content-Type', 'application/json')], body=b'{"ok":true}')
        r = Resp(200, [('Content-Type', 'text/event-stream'), ('Cache-Control', 'no-cache')],
                 chunks=list(events), delay=interval, framing=framing)
        resps.append(r)
        return r
    return handler


def read_events(client, head, timeout=30):
    """[(arrival time, event bytes)], leftover bytes; head.complete tells a clean end."""
    events = []
    buf = b''
    for t, piece in client.body_pieces(head, deadline=now() + timeout):
        buf += piece
        while b'\n\n' in buf:
            i = buf.index(b'\n\n') + 2
            events.append((t, buf[:i]))
            buf = buf[i:]
    return events, buf


# The tests that count upstream connections run one worker: each worker has its own pool.
ONE_WORKER = ['-workers', '1']


class Streaming(ProxyTestCase):
    def stream(self, framing, version='HTTP/1.1'):
        resps = []
        up = self.start_upstream(sse_handler(resps, framing))
        p = self.start_proxy(self.targets(('a', up)))
        c = self.client(p)
        c.request('POST', '/v1/chat/completions', [('Content-Type', 'application/json'),
                                                   ('Accept', 'text/event-stream')],
                  body=b'{"model":"gpt-4o","stream":true}', version=version)
        head = c.read_final_head()
        self.assertEqual(head.status, 200, head)
        self.assertEqual(head.header('Content-Type'), 'text/event-stream')
        events, leftover = read_events(c, head)
        self.assertTrue(head.complete, 'stream did not end cleanly: %s' % head.error)
        self.assertEqual(leftover, b'')
        got = [e for _, e in events]
        self.assertEqual(len(got), len(EVENTS), 'lost or merged events')
        self.assertEqual(got, EVENTS)
        self.assertEqual(got[-1], b'data: [DONE]\n\n')
        # The upstream thread records a send after send() returns, which can be after
        # the proxy has already relayed the bytes: wait for the record, not the bytes.
        wait_until(lambda: len(resps[0].sent) >= len(EVENTS), 5)
        sent = resps[0].sent
        self.assertEqual([s for _, s in sent], EVENTS)
        late = [(i, round(a - s, 3)) for i, ((a, _), (s, _)) in enumerate(zip(events, sent))
                if a - s > MAX_LATENCY]
        self.assertEqual(late, [], 'events that arrived more than %.1f s after they were sent '
                         '(index, seconds)' % MAX_LATENCY)
        spread = events[-1][0] - events[0][0]
        self.assertGreaterEqual(spread, MIN_SPREAD, 'events arrived bunched together (%.2f s)' % spread)
        return c, head, up

    def test_sse_chunked_arrives_event_by_event(self):
        c, head, up = self.stream('chunked')
        self.assertEqual(head.framing, 'chunked')
        # The connection is still usable.
        c.request('GET', '/v1/models')
        r = c.read_response()
        self.assertEqual((r.status, r.body), (200, b'{"ok":true}'))

    def test_sse_with_content_length(self):
        c, head, up = self.stream('length')
        self.assertEqual(head.framing, 'length')
        self.assertEqual(int(head.header('Content-Length')), sum(len(e) for e in EVENTS))
        c.request('GET', '/v1/models')
        self.assertEqual(c.read_response().status, 200)

    def test_sse_close_delimited_upstream(self):
        c, head, up = self.stream('close')
        # Re-framed for the HTTP/1.1 client, so its connection survives the upstream's close.
        self.assertEqual(head.framing, 'chunked', head.headers)
        c.request('GET', '/v1/models')
        r = c.read_response()
        self.assertEqual((r.status, r.body), (200, b'{"ok":true}'))

    def test_sse_to_http10_client_is_close_delimited(self):
        c, head, up = self.stream('chunked', version='HTTP/1.0')
        self.assertEqual(head.framing, 'close', head.headers)
        self.assertIsNone(head.header('Transfer-Encoding'))


class Concurrent(ProxyTestCase):
    def test_many_concurrent_streams(self):
        n_clients, n_events = 24, 12

        def handler(req):
            k = req.target.rsplit('/', 1)[1].encode()
            return Resp(200, [('Content-Type', 'text/event-stream')], delay=0.05,
                        chunks=[b'data: {"client":%s,"n":%d}\n\n' % (k, i) for i in range(n_events)]
                        + [b'data: [DONE]\n\n'])
        up = self.start_upstream(handler)
        p = self.start_proxy(self.targets(('a', up)))
        results = {}

        def one(k):
            try:
                with RawClient(p.port, timeout=30) as c:
                    c.request('POST', '/v1/chat/completions/%d' % k, body=b'{"stream":true}')
                    results[k] = c.read_response(timeout=60)
            except Exception as e:  # reported below
                results[k] = e
        threads = [threading.Thread(target=one, args=(k,)) for k in range(n_clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(90)
        for k in range(n_clients):
            r = results.get(k)
            self.assertIsInstance(r, HttpResponse, 'client %d: %r' % (k, r))
            expected = b''.join(b'data: {"client":%d,"n":%d}\n\n' % (k, i) for i in range(n_events))
            self.assertEqual((r.status, r.complete, r.body), (200, True, expected + b'data: [DONE]\n\n'))


class ClientAbort(ProxyTestCase):
    def open_long_stream(self):
        """An 80-event stream (8 s) through the proxy, its head read.
        Returns (proxy, upstream, client, head, upstream Resp list, events)."""
        resps = []
        many = [b'data: {"n":%d}\n\n' % i for i in range(80)]
        up = self.start_upstream(sse_handler(resps, 'chunked', events=many))
        p = self.start_proxy(self.targets(('a', up)))
        c = self.client(p)
        c.request('POST', '/v1/chat/completions', body=b'{"stream":true}')
        head = c.read_final_head()
        self.assertEqual(head.status, 200)
        return p, up, c, head, resps, many

    def assert_closed_by_proxy_soon(self, conn, since, after_what='the client left'):
        """The proxy (not the upstream) closed upstream connection `conn` within 1 s of `since`,
        with a TLS close_notify first (RFC 8446 6.1: the upstream can tell our close from a cut)."""
        self.assertTrue(wait_until(lambda: conn.closed_at is not None, 5), 'upstream connection never closed')
        self.assertIn(conn.close_reason, ('peer', 'peer-reset'), 'the upstream closed it, not the proxy')
        self.assertTrue(conn.got_close_notify, 'closed without close_notify (%s)' % conn.close_reason)
        self.assertLessEqual(conn.closed_at - since, 1.0,
                             'upstream closed %.2f s after %s' % (conn.closed_at - since, after_what))

    def test_client_abort_mid_stream_closes_upstream(self):
        p, up, c, head, resps, many = self.open_long_stream()
        got = b''
        for _t, piece in c.body_pieces(head):
            got += piece
            if got.count(b'\n\n') >= 2:
                break
        self.assertTrue(got.startswith(many[0] + many[1]), got)
        t_close = now()
        c.close()
        self.assert_closed_by_proxy_soon(up.requests[0].conn, t_close)
        self.assertLess(len(resps[0].sent), len(many))
        # Still serving, and the aborted connection was not pooled.
        r = self.get(p, '/v1/models')
        self.assertEqual(r.status, 200)
        self.assertEqual(up.accept_count, 2)

    def test_client_half_close_mid_stream_closes_upstream(self):
        # README, "Errors": a half-close (FIN, socket still readable) counts as gone, as in
        # the original; the stream stops within a second instead of running to its end.
        p, up, c, _head, resps, many = self.open_long_stream()
        t_fin = now()
        c.sock.shutdown(socket.SHUT_WR)
        self.assert_closed_by_proxy_soon(up.requests[0].conn, t_fin, 'the half-close')
        self.assertLess(len(resps[0].sent), len(many))
        c.close()
        self.assertEqual(self.get(p, '/v1/models').status, 200)

    def test_client_abort_mid_upload_closes_upstream(self):
        up = self.start_upstream()
        p = self.start_proxy(self.targets(('a', up)))
        c = self.client(p)
        c.send(b'POST /v1/files HTTP/1.1\r\nHost: a.example.test\r\nContent-Length: 10485760\r\n\r\n'
               + b'x' * 1048576)
        self.assertTrue(wait_until(lambda: up.heads, 5), 'request never reached the upstream')
        time.sleep(0.2)
        t_close = now()
        c.close()
        self.assert_closed_by_proxy_soon(up.heads[0][1].conn, t_close)
        self.assertEqual(up.request_count, 0)
        self.assertEqual(self.get(p, '/v1/models').status, 200)

    def test_client_abort_before_the_answer_closes_upstream(self):
        def handler(req):
            return Resp(200, body=b'late answer', head_delay=8.0)
        up = self.start_upstream(handler)
        p = self.start_proxy(self.targets(('a', up)))
        c = self.client(p)
        c.request('POST', '/v1/chat/completions', body=b'{"model":"o1"}')
        self.assertTrue(up.wait_requests(1, 5), 'request never reached the upstream')
        t_close = now()
        c.close()
        self.assert_closed_by_proxy_soon(up.requests[0].conn, t_close)

    def leave_after_request(self, p, up):
        """Sends a request and closes at once; returns the close time once the upstream has it."""
        c = self.client(p)
        c.request('POST', '/v1/chat/completions', body=b'{"model":"gpt-4o-mini"}')
        self.assertTrue(up.wait_requests(1, 5), 'request never reached the upstream')
        t_close = now()
        c.close()
        return t_close

    def assert_not_waited_for(self, answer):
        """The client leaves before `answer` (a Resp) starts: the upstream is closed within
        1 s, before the answer is all sent, and the next request opens a new connection."""
        resps = []

        def handler(req):
            if req.target != '/v1/chat/completions':
                return Resp(200, body=b'{"ok":true}')
            resps.append(answer)
            return answer
        up = self.start_upstream(handler)
        p = self.start_proxy(self.targets(('a', up)) + ONE_WORKER)
        t_close = self.leave_after_request(p, up)
        self.assert_closed_by_proxy_soon(up.requests[0].conn, t_close)
        self.assertLess(len(resps[0].sent), len(answer.chunks))
        self.assertEqual(self.get(p, '/v1/models').status, 200)
        self.assertEqual(up.accept_count, 2, 'an answer whose client left went back to the pool')

    def test_client_leaving_before_a_stream_closes_it_at_its_head(self):
        many = [b'data: {"n":%d}\n\n' % i for i in range(40)]
        self.assert_not_waited_for(Resp(200, [('Content-Type', 'text/event-stream')], chunks=many,
                                        framing='chunked', head_delay=0.02, delay=0.05))

    def test_client_leaving_before_a_short_answer_closes_it(self):
        # A short JSON answer 0.2 s away is not waited for either: the upstream stops
        # working for nobody at once (until 2026-12-03 it was given 50 ms to arrive).
        self.assert_not_waited_for(Resp(200, [('Content-Type', 'application/json')],
                                        chunks=[b'{"id":"chatcmpl-1"}'], framing='length', head_delay=0.2))

    def test_client_leaving_before_a_long_answer_closes_it(self):
        # More than 64 KiB still to come (a slow, large answer): not waited for.
        self.assert_not_waited_for(Resp(200, chunks=[b'x' * 4096] * 64, framing='length',
                                        head_delay=0.02, delay=0.05))


if __name__ == '__main__':
    main()
