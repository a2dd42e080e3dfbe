"""Self-test of harness.py: the raw client against the test upstream and the CONNECT proxy
directly, without the proxy under test. Not run by ctest (its name is not test_*.py):
run it by hand after changing the harness: /usr/bin/python3 tests/e2e/harness_selftest.py
"""
import os
import socket
import ssl
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (ConnectProxy, PeerClosed, RawClient, Resp, Upstream, certs, now, sha256,  # noqa: E402
                     wait_until)


def tls_client(port, host='127.0.0.1', cafile=None):
    ctx = ssl.create_default_context(cafile=cafile or certs().ca)
    return RawClient(port, host=host, tls_context=ctx, server_hostname=host)


class HarnessSelfTest(unittest.TestCase):
    def setUp(self):
        self.ups = []

    def tearDown(self):
        for u in self.ups:
            u.close()
            self.assertEqual(u.errors, [])

    def up(self, handler=None, **kw):
        u = Upstream(handler, **kw)
        self.ups.append(u)
        return u

    def test_fixed_keepalive_and_counts(self):
        u = self.up()
        with tls_client(u.port) as c:
            for i in range(3):
                c.request('POST', '/v1/x?i=%d' % i, body=b'hello')
                r = c.read_response()
                self.assertEqual(r.status, 200)
                self.assertTrue(r.complete)
                self.assertEqual(r.json()['sha256'], sha256(b'hello'))
        self.assertEqual(u.accept_count, 1)
        self.assertEqual([q.index_on_conn for q in u.requests], [0, 1, 2])
        self.assertTrue(wait_until(lambda: u.conns[0].closed_at is not None, 3))
        self.assertEqual(u.conns[0].close_reason, 'peer')
        self.assertEqual(u.conns[0].sni, None)

    def test_sni_with_localhost(self):
        u = self.up()
        with tls_client(u.port, host='localhost') as c:
            c.request()
            self.assertEqual(c.read_response().status, 200)
        self.assertEqual(u.conns[0].sni, 'localhost')

    def test_unknown_ca_and_wrong_name(self):
        for cert in ('other_server', 'wrong'):
            u = self.up(cert=cert)
            with self.assertRaises(ssl.SSLCertVerificationError):
                tls_client(u.port)
            self.assertTrue(wait_until(lambda: u.tls_errors, 3))

    def test_chunked_request_and_response_with_delays(self):
        events = [b'data: %d\n\n' % i for i in range(5)]
        resps = []

        def h(req):
            r = Resp(200, [('Content-Type', 'text/event-stream')], chunks=list(events), delay=0.1)
            resps.append(r)
            return r
        u = self.up(h)
        with tls_client(u.port) as c:
            c.send(b'POST /s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n'
                   b'5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-T: 1\r\n\r\n')
            head = c.read_final_head()
            arrivals = []
            buf = b''
            for t, piece in c.body_pieces(head):
                buf += piece
                arrivals.append(t)
            self.assertTrue(head.complete, head)
            self.assertEqual(head.framing, 'chunked')
            self.assertEqual(buf, b''.join(events))
        self.assertEqual(u.requests[0].body, b'hello world')
        sent = resps[0].sent
        self.assertEqual(len(sent), 5)
        self.assertGreater(sent[-1][0] - sent[0][0], 0.35)

    def test_close_delimited_head_204_304(self):
        def h(req):
            if req.target == '/close':
                return Resp(200, body=b'x' * 100000, framing='close')
            if req.target == '/204':
                return Resp(204)
            if req.target == '/304':
                return Resp(304, [('ETag', '"a"')])
            return Resp(200, body=b'y' * 1234)
        u = self.up(h, tls=False)
        with RawClient(u.port) as c:
            c.request('HEAD', '/head')
            r = c.read_response('HEAD')
            self.assertEqual((r.status, r.header('Content-Length'), r.body), (200, '1234', b''))
            c.request('GET', '/204')
            r = c.read_response()
            self.assertEqual((r.status, r.body, r.framing), (204, b'', 'none'))
            c.request('GET', '/304')
            self.assertEqual(c.read_response().status, 304)
            c.request('GET', '/close')
            r = c.read_response()
            self.assertEqual((r.framing, r.complete, len(r.body)), ('close', True, 100000))
        self.assertEqual(u.accept_count, 1)

    def test_abort_mid_body(self):
        def h(req):
            if req.target == '/chunked':
                return Resp(200, chunks=[b'a' * 10, b'b' * 10, b'c' * 10], abort_after=2)
            return Resp(200, chunks=[b'a' * 10, b'b' * 10], framing='length', content_length=100, abort_after=2)
        u = self.up(h)
        for path, framing in (('/chunked', 'chunked'), ('/length', 'length')):
            with tls_client(u.port) as c:
                c.request('GET', path)
                r = c.read_response()
                self.assertEqual(r.framing, framing)
                self.assertFalse(r.complete)
                self.assertEqual(r.body, b'a' * 10 + b'b' * 10)
                self.assertIn('closed before the end', r.error)

    def test_peer_close_detected_while_streaming(self):
        resps = []

        def h(req):
            r = Resp(200, chunks=[b'data: %d\n\n' % i for i in range(50)], delay=0.1)
            resps.append(r)
            return r
        u = self.up(h)
        c = tls_client(u.port)
        c.request()
        head = c.read_final_head()
        it = c.body_pieces(head)
        next(it)
        next(it)
        t_close = now()
        c.close()
        self.assertTrue(wait_until(lambda: u.conns[0].closed_at is not None, 3))
        self.assertLess(u.conns[0].closed_at - t_close, 0.5)
        self.assertEqual(u.conns[0].close_reason, 'peer')
        self.assertLess(len(resps[0].sent), 10)

    def test_expect_100_and_pipelining(self):
        u = self.up()
        with tls_client(u.port) as c:
            c.send(b'POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n')
            h = c.read_head()
            self.assertEqual(h.status, 100)
            c.send(b'abc')
            r = c.read_response()
            self.assertEqual(r.json()['length'], 3)
            c.send(b''.join(RawClient.build('GET', '/p%d' % i) for i in range(3)))
            for i in range(3):
                self.assertEqual(c.read_response().json()['path'], '/p%d' % i)

    def test_pool_race_helpers(self):
        def h(req):
            if req.index_on_conn >= 1:
                return Resp(drop=True)
            return Resp(200, body=b'ok', close_after=0.05 if req.target == '/ca' else None)
        u = self.up(h)
        with tls_client(u.port) as c:
            c.request('GET', '/x')
            self.assertEqual(c.read_response().body, b'ok')
            c.request('GET', '/y')
            with self.assertRaises(PeerClosed):
                c.read_response()
        with tls_client(u.port) as c:
            c.request('GET', '/ca')
            self.assertEqual(c.read_response().body, b'ok')
            closed, _ = c.wait_closed(2)
            self.assertTrue(closed)

    def test_garbage_and_rst(self):
        u = self.up(lambda req: Resp(raw=b'HELLO\r\n\r\n'), tls=False)
        with RawClient(u.port) as c:
            c.request()
            self.assertEqual(c.read_until_close(3), b'HELLO\r\n\r\n')

    def test_connect_proxy(self):
        u = self.up()
        p = ConnectProxy()
        try:
            s = socket.create_connection(('127.0.0.1', p.port), timeout=5)
            s.sendall(b'CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n' % (u.port, u.port))
            resp = b''
            while b'\r\n\r\n' not in resp:
                resp += s.recv(1000)
            self.assertTrue(resp.startswith(b'HTTP/1.1 200'))
            ctx = ssl.create_default_context(cafile=certs().ca)
            t = ctx.wrap_socket(s, server_hostname='127.0.0.1')
            t.sendall(b'GET /t HTTP/1.1\r\nHost: x\r\n\r\n')
            data = b''
            deadline = time.time() + 5
            while b'"/t"' not in data and time.time() < deadline:
                data += t.recv(1000)
            self.assertIn(b'"/t"', data)
            t.close()
            self.assertEqual(p.connects, ['127.0.0.1:%d' % u.port])
        finally:
            p.close()
        self.assertEqual(p.errors, [])


if __name__ == '__main__':
    unittest.main(verbosity=2)
