#!/usr/bin/env python3
"""Message framing towards the client: keep-alive, pipelining (answers in order),
HTTP/1.0 clients, HEAD / 204 / 304 without bodies, framing kept or re-framed, and an
upstream that dies mid-body never looks like a complete answer to the client."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import RawClient, ProxyTestCase, Resp, main, sha256  # noqa: E402


def handler(req):
    t = req.target
    if t.startswith('/slow'):
        return Resp(200, [('Content-Type', 'text/plain')], body=b'slow:' + t.encode(), head_delay=0.3)
    if t == '/head':
        return Resp(200, [('Content-Type', 'application/json')], body=b'x' * 1234)
    if t == '/204':
        return Resp(204, [('X-After', '204')])
    if t == '/304':
        return Resp(304, [('ETag', '"v1"'), ('X-After', '304')])
    if t.startswith('/empty/'):  # "/empty/201": that status, an empty body of Content-Length 0
        status = int(t.split('/')[2])
        return Resp(raw=b'HTTP/1.1 %d X\r\nContent-Length: 0\r\nX-After: empty\r\n\r\n' % status)
    if t == '/chunked':
        return Resp(200, chunks=[b'alpha ', b'beta ', b'gamma'])
    if t == '/length':
        return Resp(200, chunks=[b'alpha ', b'beta ', b'gamma'], framing='length')
    if t == '/abort/chunked':
        return Resp(200, chunks=[b'part1 ' * 100, b'part2 ' * 100, b'never'], delay=0.05, abort_after=2)
    if t == '/abort/chunked-rst':
        return Resp(200, chunks=[b'part1 ' * 100, b'part2 ' * 100, b'never'], delay=0.05, abort_after=2, rst=True)
    if t == '/abort/chunked-mid':
        return Resp(200, chunks=[b'part1 ' * 100, b'part2 ' * 100], delay=0.05, abort_after=2,
                    abort_tail=b'100\r\npart3 part3')
    if t == '/interim':
        return Resp(raw=b'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n'
                        b'Connection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\n'
                        b'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nfinal')
    if t == '/trailers':
        return Resp(raw=b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\nConnection: close\r\n\r\n'
                        b'5\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 42\r\n\r\n')
    if t == '/head-chunked':
        return Resp(200, chunks=[b'never sent for HEAD'], framing='chunked')
    if t == '/abort/length':
        return Resp(200, chunks=[b'part1 ' * 100, b'part2 ' * 100], framing='length', content_length=5000,
                    delay=0.05, abort_after=2)
    if t == '/close/clean':  # a body that runs to the close, ended with TLS close_notify
        return Resp(200, chunks=[b'part1 ' * 100, b'part2 ' * 100], framing='close', delay=0.05)
    if t == '/close/cut':  # the same, but the TCP connection just ends: no close_notify
        return Resp(200, chunks=[b'part1 ' * 100, b'part2 ' * 100, b'never'], framing='close', delay=0.05,
                    abort_after=2)
    body = ('%s %s %s' % (req.method, t, req.sha256)).encode()
    return Resp(200, [('Content-Type', 'text/plain')], body=body)


class Framing(ProxyTestCase):
    def setUp(self):
        self.up = self.start_upstream(handler)
        self.proxy = self.start_proxy(self.targets(('a', self.up)))

    def expect_echo(self, r, method, target, body=b''):
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.complete, r)
        self.assertEqual(r.body, ('%s %s %s' % (method, target, sha256(body))).encode())

    def test_keep_alive_many_requests(self):
        c = self.client(self.proxy)
        for i in range(10):
            c.request('POST', '/k%d' % i, body=b'n=%d' % i)
            self.expect_echo(c.read_response(), 'POST', '/k%d' % i, b'n=%d' % i)

    def test_pipelined_requests_answered_in_order(self):
        c = self.client(self.proxy)
        batch = (RawClient.build('GET', '/slow/1') + RawClient.build('POST', '/p2', body=b'two')
                 + RawClient.build('GET', '/p3') + RawClient.build('HEAD', '/head')
                 + RawClient.build('POST', '/p5', [('Transfer-Encoding', 'chunked')], body=b'3\r\nabc\r\n0\r\n\r\n'))
        c.send(batch)
        r = c.read_response()
        self.assertEqual((r.status, r.body), (200, b'slow:/slow/1'))
        self.expect_echo(c.read_response(), 'POST', '/p2', b'two')
        self.expect_echo(c.read_response(), 'GET', '/p3')
        r = c.read_response('HEAD')
        self.assertEqual((r.status, r.body, r.header('Content-Length')), (200, b'', '1234'))
        self.expect_echo(c.read_response(), 'POST', '/p5', b'abc')
        self.assertEqual([q.target for q in self.up.requests], ['/slow/1', '/p2', '/p3', '/head', '/p5'])

    def test_http10_client_without_keep_alive_is_closed_after_the_response(self):
        c = self.client(self.proxy)
        c.request('GET', '/x', version='HTTP/1.0')
        r = c.read_response()
        self.expect_echo(r, 'GET', '/x')
        closed, extra = c.wait_closed(5)
        self.assertTrue(closed, 'connection left open after an HTTP/1.0 response')
        self.assertEqual(extra, b'')

    def test_http10_client_post_with_body(self):
        c = self.client(self.proxy)
        c.request('POST', '/y', body=b'hello', version='HTTP/1.0')
        self.expect_echo(c.read_response(), 'POST', '/y', b'hello')

    def test_client_connection_close(self):
        c = self.client(self.proxy)
        c.request('GET', '/z', [('Connection', 'close')])
        self.expect_echo(c.read_response(), 'GET', '/z')
        closed, extra = c.wait_closed(5)
        self.assertTrue(closed)

    def test_head_204_304_have_no_body_and_keep_the_connection(self):
        c = self.client(self.proxy)
        c.request('HEAD', '/head')
        r = c.read_response('HEAD')
        self.assertEqual((r.status, r.body, r.header('Content-Length')), (200, b'', '1234'))
        c.request('GET', '/204')
        r = c.read_response()
        self.assertEqual((r.status, r.body, r.header('X-After')), (204, b'', '204'))
        self.assertIsNone(r.header('Transfer-Encoding'))
        c.request('GET', '/304', [('If-None-Match', '"v1"')])
        r = c.read_response()
        self.assertEqual((r.status, r.body, r.header('ETag')), (304, b'', '"v1"'))
        self.assertIsNone(r.header('Transfer-Encoding'))
        # Nothing stray between the answers: the next response parses cleanly.
        c.request('GET', '/after')
        self.expect_echo(c.read_response(), 'GET', '/after')
        closed, extra = c.wait_closed(0.3)
        self.assertEqual((closed, extra), (False, b''))
        self.assertEqual(self.up.accept_count, 1)

    def test_an_empty_body_keeps_its_content_length_0(self):
        # Without it a keep-alive client reads until the close (RFC 9112 6.3): an empty 200,
        # a 201, a DELETE's answer hung until the connection timed out.
        c = self.client(self.proxy)
        for method, status in (('DELETE', 200), ('POST', 201), ('GET', 404)):
            with self.subTest(method=method, status=status):
                c.request(method, '/empty/%d' % status, body=b'x' if method == 'POST' else b'')
                r = c.read_response(timeout=5)
                self.assertEqual((r.status, r.body, r.header('Content-Length'), r.header('X-After')),
                                 (status, b'', '0', 'empty'))
                self.assertEqual(r.framing, 'length', r)
        # An HTTP/1.0 client that keeps the connection needs the length as much.
        c.request('GET', '/empty/200', [('Connection', 'keep-alive')], version='HTTP/1.0')
        r = c.read_response(timeout=5)
        self.assertEqual((r.status, r.header('Content-Length'), (r.header('Connection') or '').lower()),
                         (200, '0', 'keep-alive'))
        c.request('GET', '/after')  # all on one client connection
        self.expect_echo(c.read_response(timeout=5), 'GET', '/after')

    def test_interim_responses_then_final(self):
        # RFC 9110 section 15.2: a proxy forwards 1xx responses it did not ask for, to
        # HTTP/1.1 clients only; their hop-by-hop fields are not relayed.
        c = self.client(self.proxy)
        c.request('GET', '/interim')
        r = c.read_response()
        self.assertEqual((r.status, r.body, r.complete), (200, b'final', True))
        self.assertEqual([status for status, _ in r.interim], [100, 103])
        self.assertEqual([v for n, v in r.interim[1][1] if n.lower() == 'link'], ['</s.css>; rel=preload'])
        self.assertEqual([n for n, _ in r.interim[1][1] if n.lower() in ('connection', 'keep-alive')], [])
        c.request('GET', '/after')
        self.expect_echo(c.read_response(), 'GET', '/after')

    def test_interim_responses_are_not_sent_to_http10_clients(self):
        c = self.client(self.proxy)
        c.request('GET', '/interim', version='HTTP/1.0')
        r = c.read_response()
        self.assertEqual((r.status, r.body, r.complete), (200, b'final', True))
        self.assertEqual(r.interim, [])

    def test_upstream_trailers_do_not_break_framing(self):
        c = self.client(self.proxy)
        c.request('GET', '/trailers')
        r = c.read_response()
        self.assertEqual((r.status, r.body, r.complete), (200, b'hello world', True))
        c.request('GET', '/after')
        self.expect_echo(c.read_response(), 'GET', '/after')

    def test_head_of_a_chunked_resource(self):
        c = self.client(self.proxy)
        c.request('HEAD', '/head-chunked')
        r = c.read_response('HEAD')
        self.assertEqual((r.status, r.body), (200, b''))
        c.request('GET', '/after')
        self.expect_echo(c.read_response(), 'GET', '/after')
        self.assertEqual(self.up.accept_count, 1)

    def test_framing_kept(self):
        c = self.client(self.proxy)
        c.request('GET', '/chunked')
        r = c.read_response()
        self.assertEqual((r.framing, r.body), ('chunked', b'alpha beta gamma'))
        c.request('GET', '/length')
        r = c.read_response()
        self.assertEqual((r.framing, r.body, r.header('Content-Length')), ('length', b'alpha beta gamma', '16'))

    def check_cut(self, target, framing):
        c = self.client(self.proxy)
        c.request('GET', target)
        r = c.read_response()
        self.assertEqual(r.status, 200)
        self.assertEqual(r.framing, framing, r.headers)
        self.assertFalse(r.complete, 'a body cut by the upstream looked complete to the client: %r' % r)
        self.assertIn('closed before the end', r.error or '')
        self.assertTrue((b'part1 ' * 100 + b'part2 ' * 100 + b'part3 part3').startswith(r.body), r.body[:100])
        return r

    def test_upstream_dies_mid_chunked_body(self):
        self.check_cut('/abort/chunked', 'chunked')
        self.check_cut('/abort/chunked-rst', 'chunked')

    def test_upstream_dies_inside_a_chunk(self):
        r = self.check_cut('/abort/chunked-mid', 'chunked')
        self.assertIn(len(r.body), (1200, 1211), 'bytes before the cut: %d' % len(r.body))

    def test_upstream_dies_mid_content_length_body(self):
        r = self.check_cut('/abort/length', 'length')
        self.assertEqual(r.header('Content-Length'), '5000')
        self.assertLess(len(r.body), 5000)

    def test_a_body_to_the_close_is_complete_over_tls_only_with_close_notify(self):
        # RFC 9112 section 9.8: without Content-Length or chunked coding, a response over
        # TLS is complete only if a closure alert was received; a bare TCP end may be a
        # cut. Relayed chunked to this HTTP/1.1 client, so the difference must show.
        c = self.client(self.proxy)
        c.request('GET', '/close/clean')
        r = c.read_response()
        self.assertEqual((r.status, r.framing), (200, 'chunked'))
        self.assertTrue(r.complete, r)
        self.assertEqual(r.body, b'part1 ' * 100 + b'part2 ' * 100)
        self.check_cut('/close/cut', 'chunked')

    def test_proxy_still_serves_after_cut_bodies(self):
        self.check_cut('/abort/chunked', 'chunked')
        c = self.client(self.proxy)
        c.request('GET', '/ok')
        self.expect_echo(c.read_response(), 'GET', '/ok')


if __name__ == '__main__':
    main()
