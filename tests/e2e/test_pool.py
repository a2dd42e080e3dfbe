#!/usr/bin/env python3
"""Upstream connection pool: reuse (counted at the upstream), the client's
'Connection: close' does not defeat it, a connection the upstream closed is never
handed to a request (or the request is retried: the race never reaches the client),
'Connection: close' from the upstream is honoured, and the pool flags work."""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ProxyTestCase, Resp, echo_handler, main, now, wait_until  # noqa: E402

# Each event-loop worker keeps its own pool, and the kernel spreads client connections
# over the workers (SO_REUSEPORT). Tests that count upstream connections across several
# client connections therefore run one worker; the default is checked separately.
ONE_WORKER = ['-workers', '1']


def cpu_count():
    n = os.cpu_count() or 1
    try:
        n = max(n, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        pass
    return n


class Reuse(ProxyTestCase):
    def test_sequential_requests_on_one_client_connection_reuse_one_upstream_connection(self):
        up = self.start_upstream()
        p = self.start_proxy(self.targets(('a', up)))
        c = self.client(p)
        for i in range(5):
            c.request('POST' if i % 2 else 'GET', '/v1/x%d' % i, body=b'{}' if i % 2 else None)
            r = c.read_response()
            self.assertEqual(r.status, 200, r)
        self.assertEqual(up.request_count, 5)
        self.assertEqual(up.accept_count, 1, 'each request opened a new upstream connection')

    def test_a_stale_pooled_connection_replays_a_body_up_to_64_kib(self):
        # The upstream reads the second request on its kept-alive connection whole, then
        # closes without answering (the idle-close race, made certain). A body of up to
        # 64 KiB is replayed on a fresh connection, whatever the head adds; a larger one
        # is not (502).
        from hardening_util import ScriptedUpstream
        seen = []

        def script(target):
            seen.append(target)
            if target.startswith('/v1/embeddings') and seen.count(target) == 1:
                return None  # read whole, closed unanswered
            return b'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'
        up = ScriptedUpstream(script, tls=False)
        self.addCleanup(up.close)
        p = self.start_proxy(['-default-target', up.url, '-workers', '1'])
        padding = [('X-Pad-%d' % i, 'p' * 100) for i in range(10)]  # a 1 KiB-plus head
        for size, status in ((64 * 1024 - 100, 200), (64 * 1024 + 100, 502)):
            with self.subTest(size=size):
                c = self.client(p)
                c.request('GET', '/v1/models')
                self.assertEqual(c.read_response().status, 200)
                c.request('POST', '/v1/embeddings?size=%d' % size, padding, b'x' * size)
                r = c.read_response(timeout=10)
                self.assertEqual(r.status, status, r)

    def test_sequential_client_connections_reuse_one_upstream_connection(self):
        up = self.start_upstream()
        p = self.start_proxy(self.targets(('a', up)) + ONE_WORKER)
        for i in range(5):
            r = self.get(p, '/v1/x%d' % i)
            self.assertEqual(r.status, 200, r)
        self.assertEqual(up.accept_count, 1)

    def test_sequential_client_connections_default_workers(self):
        # At most one upstream connection per worker (one worker per core by default).
        up = self.start_upstream()
        p = self.start_proxy(self.targets(('a', up)))
        for i in range(12):
            r = self.get(p, '/v1/x%d' % i)
            self.assertEqual(r.status, 200, r)
        self.assertLessEqual(up.accept_count, cpu_count())

    def test_client_connection_close_does_not_defeat_the_pool(self):
        up = self.start_upstream()
        p = self.start_proxy(self.targets(('a', up)) + ONE_WORKER)
        for i in range(5):
            c = self.client(p)
            c.request('GET', '/v1/x%d' % i, [('Connection', 'close')])
            r = c.read_response()
            self.assertEqual(r.status, 200, r)
            closed, extra = c.wait_closed(5)
            self.assertTrue(closed, 'the proxy kept the client connection open after Connection: close')
            self.assertEqual(extra, b'')
        self.assertEqual(up.request_count, 5)
        self.assertEqual(up.accept_count, 1)
        for req in up.requests:
            self.assertFalse(any('close' in v.lower() for v in req.header_all('Connection')), req.headers)

    def test_error_statuses_and_bodyless_responses_keep_the_connection(self):
        def handler(req):
            status = int(req.target.rsplit('/', 1)[1])
            if status in (204, 304):
                return Resp(status)
            return Resp(status, [('Content-Type', 'application/json')], body=b'{"error":{"message":"x"}}')
        up = self.start_upstream(handler)
        p = self.start_proxy(self.targets(('a', up)))
        c = self.client(p)
        for status in (401, 404, 429, 500, 204, 304, 200):
            c.request('GET', '/s/%d' % status)
            r = c.read_response()
            self.assertEqual(r.status, status, r)
        c.request('HEAD', '/s/200')
        self.assertEqual(c.read_response('HEAD').status, 200)
        c.request('GET', '/s/200')
        self.assertEqual(c.read_response().body, b'{"error":{"message":"x"}}')
        self.assertEqual(up.accept_count, 1)

    def test_one_connection_per_target(self):
        up_a = self.start_upstream()
        up_b = self.start_upstream()
        p = self.start_proxy(self.targets(('a', up_a), ('b', up_b)))
        c = self.client(p)
        for i in range(3):
            for host in ('a.example.test', 'b.example.test'):
                c.request('GET', '/v1/models', host=host)
                self.assertEqual(c.read_response().status, 200)
        self.assertEqual((up_a.accept_count, up_b.accept_count), (1, 1))


class UpstreamCloses(ProxyTestCase):
    def test_upstream_closes_idle_connection_after_answering(self):
        # Keep-alive answer (no Connection: close), then the server closes shortly after.
        up = self.start_upstream(lambda req: Resp(200, body=b'ok', close_after=0.05))
        p = self.start_proxy(self.targets(('a', up)))
        for i in range(4):
            r = self.get(p, '/v1/x%d' % i)
            self.assertEqual((r.status, r.body), (200, b'ok'), 'request %d: %r' % (i, r))
            conn = up.requests[-1].conn
            self.assertTrue(wait_until(lambda: conn.closed_at is not None, 3))
            time.sleep(0.2)
        self.assertEqual(up.accept_count, 4)
        self.assertEqual(up.request_count, 4, 'a request was sent on a connection the upstream had closed')

    def check_drop_race(self, method, body):
        # The upstream takes each request that arrives on a reused connection and closes
        # without answering: exactly the keep-alive race. The proxy must retry on a fresh
        # connection; the client must never see it.
        def handler(req):
            if req.index_on_conn >= 1:
                return Resp(drop=True)
            return echo_handler(req)
        up = self.start_upstream(handler)
        p = self.start_proxy(self.targets(('a', up)))
        c = self.client(p)
        for i in range(4):
            c.request(method, '/v1/r%d' % i, body=body)
            r = c.read_response()
            self.assertEqual(r.status, 200, 'request %d: %r' % (i, r))
            self.assertEqual(r.json()['path'], '/v1/r%d' % i)
        answered = [q for q in up.requests if q.index_on_conn == 0]
        self.assertEqual([q.target for q in answered], ['/v1/r%d' % i for i in range(4)])
        for q in answered:
            self.assertEqual(q.body, body or b'')

    def test_keepalive_race_is_retried_get(self):
        self.check_drop_race('GET', None)

    def test_keepalive_race_is_retried_small_post(self):
        self.check_drop_race('POST', b'{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}')

    def test_response_with_bytes_beyond_its_length_is_not_reused(self):
        # The upstream is out of step (sends more than Content-Length): that connection
        # must not carry another request, whose answer would start with the stray bytes.
        up = self.start_upstream(lambda req: Resp(200, body=b'okSTRAY', content_length=2))
        p = self.start_proxy(self.targets(('a', up)))
        c = self.client(p)
        for i in range(3):
            c.request('GET', '/v1/x%d' % i)
            r = c.read_response()
            self.assertEqual((r.status, r.body), (200, b'ok'), 'request %d' % i)
        self.assertEqual(up.accept_count, 3)

    def test_connection_close_from_upstream_is_not_reused(self):
        up = self.start_upstream(lambda req: Resp(200, body=b'bye', close=True))
        p = self.start_proxy(self.targets(('a', up)))
        c = self.client(p)
        for i in range(3):
            c.request('GET', '/v1/x%d' % i)
            r = c.read_response()
            self.assertEqual((r.status, r.body), (200, b'bye'))
        self.assertEqual(up.accept_count, 3)
        self.assertEqual(up.request_count, 3)


class PoolFlags(ProxyTestCase):
    def test_pool_idle_timeout(self):
        up = self.start_upstream()
        p = self.start_proxy(self.targets(('a', up)) + ['-pool-idle-timeout', '1s'] + ONE_WORKER)
        self.assertEqual(self.get(p).status, 200)
        t_done = now()
        conn = up.conns[0]
        self.assertTrue(wait_until(lambda: conn.closed_at is not None, 6), 'idle connection never closed')
        self.assertEqual(conn.close_reason, 'peer')
        self.assertTrue(conn.got_close_notify, 'an idle connection expired without close_notify')
        self.assertGreaterEqual(conn.closed_at - t_done, 0.8)
        self.assertLessEqual(conn.closed_at - t_done, 4.0)
        self.assertEqual(self.get(p).status, 200)
        self.assertEqual(up.accept_count, 2)

    def test_pool_max_idle_per_host(self):
        up = self.start_upstream(lambda req: Resp(200, body=b'slow', head_delay=0.5))
        p = self.start_proxy(self.targets(('a', up)) + ['-pool-max-idle-per-host', '1'] + ONE_WORKER)
        results = []

        def one():
            results.append(self.get(p).status)
        threads = [threading.Thread(target=one) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        self.assertEqual(results, [200, 200])
        self.assertEqual(up.accept_count, 2)
        self.assertTrue(wait_until(lambda: sum(c.closed_at is not None for c in up.conns) >= 1, 3))
        time.sleep(0.3)
        self.assertEqual(sum(c.closed_at is not None for c in up.conns), 1, 'pool kept more than 1 idle')
        self.assertEqual(self.get(p).status, 200)
        self.assertEqual(up.accept_count, 2)


if __name__ == '__main__':
    main()
