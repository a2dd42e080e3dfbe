#!/usr/bin/env python3
"""Idle and phase timeouts (issue 3), never a total one, with the flags lowered to 1 s:
  -header-timeout     408 (JSON) for a head that does not complete, trickled or not;
                      nothing forwarded
  -keepalive-timeout  an idle client connection is closed quietly
  -response-timeout   504 when the upstream never sends a response head
  -idle-timeout       a stream with no byte in either direction is cut (no clean end);
                      a stream sending every 0.5 s for 3 s is not
  -connect-timeout    504 when the upstream's SYNs are dropped (full listen queue)
  -tls-timeout        504 when the upstream accepts TCP but never answers the handshake
The proxy checks deadlines every 250 ms; bounds below are generous for loaded machines."""
import os
import select
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import HOST, ProxyTestCase, Resp, main, now, wait_until  # noqa: E402
from hardening_util import RawServer  # noqa: E402

SLACK = 4.0  # seconds allowed beyond a 1 s timeout


def stream_handler(req):
    t = req.target
    if t == '/never':
        return Resp(200, body=b'too late', head_delay=30)
    if t == '/stall':
        # Head and one event, then silence for longer than any test waits.
        return Resp(200, [('Content-Type', 'text/event-stream')],
                    chunks=[b'data: first\n\n', b'data: never\n\n'], delay=30)
    if t == '/steady':
        # An event every 0.5 s for 3 s: never 1 s of silence.
        return Resp(200, [('Content-Type', 'text/event-stream')],
                    chunks=[b'data: %d\n\n' % i for i in range(7)], delay=0.5)
    if t == '/slow-head-steady':
        return Resp(200, [('Content-Type', 'text/event-stream')],
                    chunks=[b'data: %d\n\n' % i for i in range(4)], delay=0.5, head_delay=0.5)
    return Resp(200, [('Content-Type', 'text/plain')], body=b'ok ' + t.encode())


class Timeouts(ProxyTestCase):
    def proxy(self, up, *flags):
        return self.start_proxy(self.targets(('a', up)) + list(flags))

    def test_header_timeout_408(self):
        up = self.start_upstream()
        p = self.proxy(up, '-header-timeout', '1s', '-keepalive-timeout', '30s')
        c = self.client(p)
        t0 = now()
        c.send(b'GET /v1/models HTTP/1.1\r\nHost: a.exa')
        r = c.read_response(timeout=10)
        elapsed = now() - t0
        self.assertJsonError(r, 408)
        self.assertGreaterEqual(elapsed, 0.9)
        self.assertLess(elapsed, 1 + SLACK)
        closed, _ = c.wait_closed(3)
        self.assertTrue(closed, 'connection left open after 408')
        self.assertEqual(up.accept_count, 0)

    def test_header_timeout_is_not_reset_by_trickling(self):
        up = self.start_upstream()
        p = self.proxy(up, '-header-timeout', '1s', '-keepalive-timeout', '30s')
        c = self.client(p)
        head = b'GET /v1/models HTTP/1.1\r\nHost: a.example.test\r\nX-Slow: ' + b'z' * 40
        t0 = now()
        for b in head:  # one byte every 0.1 s: 8 s in all if nothing stops it
            try:
                c.send(bytes([b]))
            except OSError:
                break
            if c.rd.buf or select_readable(c.sock):
                break
            time.sleep(0.1)
        answer = c.read_response(timeout=10)
        elapsed = now() - t0
        self.assertJsonError(answer, 408)
        self.assertLess(elapsed, 1 + SLACK, 'a trickling client held the head open for %.1f s' % elapsed)
        self.assertEqual(up.accept_count, 0)

    def test_keepalive_idle_close(self):
        up = self.start_upstream()
        p = self.proxy(up, '-keepalive-timeout', '1s')
        c = self.client(p)
        c.request('GET', '/v1/one')
        self.assertEqual(c.read_response().status, 200)
        t0 = now()
        closed, got = c.wait_closed(1 + SLACK + 2)
        elapsed = now() - t0
        self.assertTrue(closed, 'idle keep-alive connection not closed')
        self.assertEqual(got, b'', 'the idle close sent bytes (an error response?)')
        self.assertGreaterEqual(elapsed, 0.8)
        self.assertLess(elapsed, 1 + SLACK)
        # A connection that never sends anything is closed the same way (no 408).
        c2 = self.client(p)
        t0 = now()
        closed, got = c2.wait_closed(1 + SLACK + 2)
        self.assertTrue(closed)
        self.assertEqual(got, b'')
        self.assertLess(now() - t0, 1 + SLACK)

    def test_keepalive_timeout_does_not_cut_a_request_in_progress(self):
        up = self.start_upstream(stream_handler)
        p = self.proxy(up, '-keepalive-timeout', '1s')
        c = self.client(p)
        c.request('GET', '/steady')
        r = c.read_response(timeout=15)
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.complete, r)

    def test_response_timeout_504(self):
        up = self.start_upstream(stream_handler)
        p = self.proxy(up, '-response-timeout', '1s')
        t0 = now()
        r = self.get(p, '/never', timeout=15)
        elapsed = now() - t0
        self.assertJsonError(r, 504)
        self.assertGreaterEqual(elapsed, 0.9)
        self.assertLess(elapsed, 1 + SLACK)
        self.assertTrue(wait_until(lambda: up.closed_count == up.accept_count, 5),
                        'the upstream connection that never answered was left open')
        # A head that comes within the limit and a body that flows are fine.
        r = self.get(p, '/slow-head-steady', timeout=15)
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.complete, r)

    def test_idle_timeout_cuts_a_stalled_stream(self):
        up = self.start_upstream(stream_handler)
        p = self.proxy(up, '-idle-timeout', '1s')
        c = self.client(p)
        c.request('GET', '/stall')
        r = c.read_final_head(now() + 10)
        self.assertEqual(r.status, 200)
        t0 = now()
        body = b''.join(piece for _t, piece in c.body_pieces(r, 'GET', now() + 15))
        elapsed = now() - t0
        self.assertEqual(body, b'data: first\n\n')
        self.assertFalse(r.complete, 'a stream cut by the idle timeout looked complete')
        self.assertLess(elapsed, 1 + SLACK, 'the stalled stream was cut after %.1f s' % elapsed)
        self.assertTrue(wait_until(lambda: up.closed_count == up.accept_count, 5),
                        'the stalled upstream connection was left open')

    def test_idle_timeout_spares_a_stream_that_keeps_sending(self):
        up = self.start_upstream(stream_handler)
        p = self.proxy(up, '-idle-timeout', '1s', '-response-timeout', '1s')
        t0 = now()
        r = self.get(p, '/steady', timeout=20)
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.complete, 'the steady stream was cut: %r' % r)
        self.assertEqual(r.body, b''.join(b'data: %d\n\n' % i for i in range(7)))
        self.assertGreaterEqual(now() - t0, 2.5)

    def test_idle_timeout_spares_a_slow_upload(self):
        # Bytes from the client count too: an upload trickling every 0.5 s for 3 s.
        up = self.start_upstream()
        p = self.proxy(up, '-idle-timeout', '1s', '-response-timeout', '1s')
        c = self.client(p)
        c.send(b'POST /v1/upload HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\n\r\n' % HOST.encode())
        for i in range(6):
            time.sleep(0.5)
            c.send(b'4\r\npart\r\n')
        c.send(b'0\r\n\r\n')
        r = c.read_response(timeout=10)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()['length'], 24)

    def test_a_request_body_that_stops_is_408_not_the_upstreams_fault(self):
        # The client stops halfway through its body; the upstream took all it was given.
        # That silence is the client's: 408, and the upstream is not blamed (no 504).
        up = self.start_upstream()
        p = self.proxy(up, '-response-timeout', '1s')
        c = self.client(p)
        c.send(b'POST /v1/upload HTTP/1.1\r\nHost: %s\r\nContent-Length: 100\r\n\r\n' % HOST.encode() + b'x' * 50)
        t0 = now()
        r = c.read_response(timeout=10)
        self.assertJsonError(r, 408)
        self.assertLess(now() - t0, 1 + SLACK)
        self.assertTrue(c.wait_closed(5)[0], 'the connection stayed open after a cut request')
        self.assertIn('the request body to', p.stderr())

    def test_connect_timeout_504(self):
        lsock = socket.socket()
        self.addCleanup(lsock.close)
        lsock.bind(('127.0.0.1', 0))
        lsock.listen(0)
        port = lsock.getsockname()[1]
        for _ in range(3):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(('127.0.0.1', port))
            self.addCleanup(s.close)
        probe = socket.socket()
        probe.settimeout(0.5)
        try:
            probe.connect(('127.0.0.1', port))
            self.skipTest('cannot make a connect hang here: a full listen queue does not drop SYNs')
        except socket.timeout:
            pass
        except OSError as e:
            self.skipTest('cannot make a connect hang here: %s' % e)
        finally:
            probe.close()
        good = self.start_upstream()
        p = self.start_proxy(self.targets(('a', 'https://127.0.0.1:%d' % port), ('g', good))
                             + ['-connect-timeout', '1s'])
        t0 = now()
        r = self.get(p, '/v1/models', timeout=20)
        elapsed = now() - t0
        self.assertJsonError(r, 504)
        self.assertGreaterEqual(elapsed, 0.9)
        self.assertLess(elapsed, 1 + SLACK)
        self.assertEqual(self.get(p, host='g.example.test').status, 200)

    def test_tls_handshake_timeout_504(self):
        # Accepts TCP and reads the ClientHello, never answers.
        silent = RawServer(lambda s, i: silent_reader(s))
        self.addCleanup(silent.close)
        good = self.start_upstream()
        p = self.start_proxy(self.targets(('a', 'https://' + silent.authority), ('g', good))
                             + ['-tls-timeout', '1s'])
        t0 = now()
        r = self.get(p, '/v1/models', timeout=20)
        elapsed = now() - t0
        self.assertJsonError(r, 504)
        self.assertGreaterEqual(elapsed, 0.9)
        self.assertLess(elapsed, 1 + SLACK)
        self.assertEqual(silent.accepted, 1)
        self.assertEqual(self.get(p, host='g.example.test').status, 200)


def silent_reader(s):
    deadline = now() + 20
    s.settimeout(0.5)
    while now() < deadline:
        try:
            if not s.recv(4096):
                return
        except socket.timeout:
            continue


def select_readable(sock):
    r, _, _ = select.select([sock], [], [], 0)
    return bool(r)


if __name__ == '__main__':
    main()
