#!/usr/bin/env python3
"""Strict HTTP/1.1 requests (issue 3, RFC 9112 / RFC 9110), on raw sockets.

Each malformed request gets its proper status (400, 501, 505) with a JSON error body,
the connection is closed after the answer, and the test upstream proves that nothing
was forwarded: no request (complete or not) reached it, not even the valid request
pipelined right behind the bad one (the request-smuggling case). A chunked body that
turns bad after a valid head is never completed upstream.
Also: bare-LF heads are never forwarded as such; absolute-form targets route by their
authority, which wins over Host."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import HOST, ProxyTestCase, Resp, main, now, sha256, wait_until  # noqa: E402
from hardening_util import send_raw  # noqa: E402

H = ('Host: %s\r\n' % HOST).encode()
# A valid request that must never reach the upstream when it follows a bad one.
SMUGGLED = b'GET /smuggled HTTP/1.1\r\n' + H + b'\r\n'


def post(fields, body=b'hello', smuggle=True):
    """POST / with the Host field, `fields` (bytes, CRLF-terminated lines) and `body`."""
    return b'POST /v1/chat/completions HTTP/1.1\r\n' + H + fields + b'\r\n' + body + (SMUGGLED if smuggle else b'')


def get(line=b'GET /v1/models HTTP/1.1', fields=b'', host=H):
    return line + b'\r\n' + host + fields + b'\r\n' + SMUGGLED


def chunked(body):
    return post(b'Transfer-Encoding: chunked\r\n', body)


# Content-Length / Transfer-Encoding (RFC 9112 sections 6.1-6.3).
FRAMING = {
    'CL then TE': (post(b'Content-Length: 5\r\nTransfer-Encoding: chunked\r\n', b'0\r\n\r\n'), (400,)),
    'TE then CL': (post(b'Transfer-Encoding: chunked\r\nContent-Length: 5\r\n', b'0\r\n\r\n'), (400,)),
    'CL 0 with TE': (post(b'Content-Length: 0\r\nTransfer-Encoding: chunked\r\n', b'0\r\n\r\n'), (400,)),
    'CL with plus sign': (post(b'Content-Length: +5\r\n'), (400,)),
    'CL negative': (post(b'Content-Length: -5\r\n'), (400,)),
    'CL hex': (post(b'Content-Length: 0x5\r\n'), (400,)),
    'CL with inner space': (post(b'Content-Length: 1 0\r\n', b'helloworld'), (400,)),
    'CL decimal point': (post(b'Content-Length: 5.0\r\n'), (400,)),
    'CL empty': (post(b'Content-Length: \r\n'), (400,)),
    'CL list of differing values': (post(b'Content-Length: 5, 6\r\n'), (400,)),
    'CL duplicates that differ': (post(b'Content-Length: 5\r\nContent-Length: 6\r\n'), (400,)),
    'CL 2^64': (post(b'Content-Length: 18446744073709551616\r\n'), (400,)),
    'CL far over 64 bits': (post(b'Content-Length: 99999999999999999999999999999\r\n'), (400,)),
    # RFC 9112 section 6.3 rule 4: chunked not the final coding is a 400.
    'TE identity': (post(b'Transfer-Encoding: identity\r\n'), (400,)),
    'TE xchunked': (post(b'Transfer-Encoding: xchunked\r\n', b'0\r\n\r\n'), (400,)),
    'TE chunked twice in a list': (post(b'Transfer-Encoding: chunked, chunked\r\n', b'0\r\n\r\n'), (400,)),
    'TE chunked in two fields': (post(b'Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n',
                                      b'0\r\n\r\n'), (400,)),
    'TE gzip then chunked (unknown coding)': (post(b'Transfer-Encoding: gzip, chunked\r\n', b'0\r\n\r\n'), (501,)),
    'TE chunked not last': (post(b'Transfer-Encoding: chunked, gzip\r\n', b'0\r\n\r\n'), (400,)),
    'TE unknown coding': (post(b'Transfer-Encoding: foo\r\n', b'0\r\n\r\n'), (400,)),
    'TE empty': (post(b'Transfer-Encoding: \r\n', b'0\r\n\r\n'), (400,)),
    'TE empty list element': (post(b'Transfer-Encoding: ,chunked\r\n', b'0\r\n\r\n'), (400,)),
    'TE with parameters': (post(b'Transfer-Encoding: chunked;q=1\r\n', b'0\r\n\r\n'), (400,)),
    'TE in HTTP/1.0': (b'POST /v1/x HTTP/1.0\r\n' + H + b'Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n'
                       + SMUGGLED, (400,)),
}

# Chunked bodies: the head is valid (the upstream may be connected and see it), the body
# is not, so the request must never be completed upstream.
CHUNKS = {
    'chunk size not hex': chunked(b'zz\r\nhello\r\n0\r\n\r\n'),
    'chunk size with 0x': chunked(b'0x5\r\nhello\r\n0\r\n\r\n'),
    'chunk size negative': chunked(b'-5\r\nhello\r\n0\r\n\r\n'),
    'chunk size with sign': chunked(b'+5\r\nhello\r\n0\r\n\r\n'),
    'chunk size missing': chunked(b'\r\nhello\r\n0\r\n\r\n'),
    'chunk size overflows 64 bits': chunked(b'10000000000000000\r\nhello\r\n0\r\n\r\n'),
    'chunk size far over 64 bits': chunked(b'fffffffffffffffffffffffff\r\nhello\r\n0\r\n\r\n'),
    'chunk data not followed by CRLF': chunked(b'5\r\nhelloXY3\r\nabc\r\n0\r\n\r\n'),
    'chunk data longer than its size': chunked(b'3\r\nhello\r\n0\r\n\r\n'),
    'bare CR in chunk size line': chunked(b'5\rX\nhello\r\n0\r\n\r\n'),
    'bare CR after chunk data': chunked(b'5\r\nhello\rX0\r\n\r\n'),
    'control byte in chunk extension': chunked(b'5;a=\x01\r\nhello\r\n0\r\n\r\n'),
    'trailer without colon': chunked(b'5\r\nhello\r\n0\r\nNoColon\r\n\r\n'),
    'obs-fold in trailer': chunked(b'5\r\nhello\r\n0\r\nX-T: a\r\n b\r\n\r\n'),
    'NUL in trailer': chunked(b'5\r\nhello\r\n0\r\nX-T: a\x00b\r\n\r\n'),
}

# RFC 9112 section 7.1 / issue 3: "bare LF or bare CR in chunk lines: 400".
CHUNKS_BARE_LF = {
    'bare LF ending a chunk size line': chunked(b'5\nhello\r\n0\r\n\r\n'),
    'bare LF after chunk data': chunked(b'5\r\nhello\n0\r\n\r\n'),
    'bare LF ending the last chunk': chunked(b'5\r\nhello\r\n0\n\r\n'),
}

# Header field lines (RFC 9112 section 5, RFC 9110 section 5.5).
FIELDS = {
    'space before colon': get(fields=b'X-A : b\r\n'),
    'tab before colon': get(fields=b'X-A\t: b\r\n'),
    'space before colon in Content-Length': post(b'Content-Length : 5\r\n'),
    'space before colon in Transfer-Encoding': post(b'Transfer-Encoding : chunked\r\n', b'0\r\n\r\n'),
    'line without colon': get(fields=b'Just some words\r\n'),
    'obs-fold': get(fields=b'X-A: b\r\n  folded\r\n'),
    'obs-fold with tab': get(fields=b'X-A: b\r\n\tfolded\r\n'),
    'whitespace before the first field': get().replace(b'\r\nHost', b'\r\n Host', 1),
    'NUL in value': get(fields=b'X-A: a\x00b\r\n'),
    'control byte in value': get(fields=b'X-A: a\x01b\r\n'),
    'ESC in value': get(fields=b'X-A: a\x1bb\r\n'),
    'DEL in value': get(fields=b'X-A: a\x7fb\r\n'),
    'bare CR in value': get(fields=b'X-A: a\rb\r\n'),
    'bare CR ending a field line': get(fields=b'X-A: b\rX-B: c\r\n'),
    'NUL in name': get(fields=b'X\x00A: b\r\n'),
    'control byte in name': get(fields=b'X\x01A: b\r\n'),
    'non-token @ in name': get(fields=b'X@A: b\r\n'),
    'non-token ( in name': get(fields=b'(X): b\r\n'),
    'non-token " in name': get(fields=b'X"A: b\r\n'),
    'non-token / in name': get(fields=b'X/A: b\r\n'),
    'non-ASCII byte in name': get(fields=b'X\xe9A: b\r\n'),
    'empty name': get(fields=b': b\r\n'),
    'two Host fields': get(fields=b'Host: b.example.test\r\n'),
    'Host with a space': get(host=b'Host: a.example.test evil\r\n'),
    'Host with a slash': get(host=b'Host: a.example.test/x\r\n'),
    'Host with @': get(host=b'Host: user@a.example.test\r\n'),
}

# Request line and target (RFC 9112 sections 3, 3.2).
LINES = {
    'non-token ( in method': get(b'GE(T /v1/models HTTP/1.1'),
    'non-token @ in method': get(b'G@T /v1/models HTTP/1.1'),
    'NUL in method': get(b'GE\x00T /v1/models HTTP/1.1'),
    'non-ASCII method': get(b'G\xc9T /v1/models HTTP/1.1'),
    'leading space': get(b' GET /v1/models HTTP/1.1'),
    'two spaces after method': get(b'GET  /v1/models HTTP/1.1'),
    'two spaces before version': get(b'GET /v1/models  HTTP/1.1'),
    'tabs as separators': get(b'GET\t/v1/models\tHTTP/1.1'),
    'space inside target': get(b'GET /v1/mo dels HTTP/1.1'),
    'trailing space after version': get(b'GET /v1/models HTTP/1.1 '),
    'target without leading slash': get(b'GET v1/models HTTP/1.1'),
    'authority-form outside CONNECT': get(b'GET a.example.test:443 HTTP/1.1'),
    'CONNECT authority-form': get(b'CONNECT 127.0.0.1:443 HTTP/1.1'),
    'asterisk-form outside OPTIONS': get(b'GET * HTTP/1.1'),
    'absolute-form with another scheme': get(b'GET ftp://a.example.test/v1/models HTTP/1.1'),
    'absolute-form without host': get(b'GET http:///v1/models HTTP/1.1'),
    'DEL in target': get(b'GET /v1/\x7fmodels HTTP/1.1'),
    'control byte in target': get(b'GET /v1/\x01models HTTP/1.1'),
    'non-ASCII byte in target': get(b'GET /v1/\xffmodels HTTP/1.1'),
    'fragment in target': get(b'GET /v1/models#frag HTTP/1.1'),
    'quote in target': get(b'GET /v1/a"b HTTP/1.1'),
    'angle brackets in target': get(b'GET /v1/<script> HTTP/1.1'),
    'backslash in target': get(b'GET /v1/..\\admin HTTP/1.1'),
    'lowercase version': get(b'GET /v1/models http/1.1'),
    'version without minor': get(b'GET /v1/models HTTP/1'),
    'version with two-digit minor': get(b'GET /v1/models HTTP/1.10'),
    'garbage version': get(b'GET /v1/models HTTX/1.1'),
    'HTTP/0.9 request line': b'GET /v1/models\r\n\r\n' + SMUGGLED,
    'missing Host on HTTP/1.1': b'GET /v1/models HTTP/1.1\r\nX-A: b\r\n\r\n' + SMUGGLED,
    'empty request line then garbage': b'\r\n\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n',
}

# Versions the proxy does not speak (RFC 9110 section 15.6.6: 505).
VERSIONS = {
    'HTTP/2 connection preface': (b'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n' + SMUGGLED, (505,)),
    'HTTP/2.0 request line': (get(b'GET /v1/models HTTP/2.0'), (505,)),
    'HTTP/3.0 request line': (get(b'GET /v1/models HTTP/3.0'), (505,)),
    'unknown major version 9': (get(b'GET /v1/models HTTP/9.1'), (505,)),
    'HTTP/0.9 spelled out': (get(b'GET /v1/models HTTP/0.9'), (400, 505)),
}


class StrictRequests(ProxyTestCase):
    def setUp(self):
        self.up = self.start_upstream()
        self.other = self.start_upstream()
        self.proxy = self.start_proxy(self.targets(('a', self.up), ('b', self.other)))

    def assert_rejected(self, raw, statuses, head_only=True):
        """Sends `raw` on a new connection: one JSON error with a status in `statuses`,
        then the connection closes. With head_only, the upstream saw no connection at all."""
        accepts_before = self.up.accept_count
        requests_before = self.up.request_count
        r, closed, extra = send_raw(self.proxy.port, raw)
        self.assertIsNotNone(r, 'no complete answer (connection closed first); got %r' % extra[:200])
        self.assertIn(r.status, statuses, r)
        self.assertJsonError(r)
        self.assertTrue(closed, 'the connection stayed open after the error answer')
        self.assertEqual(extra, b'', 'bytes after the error answer (a second response?)')
        if head_only:
            self.assertEqual(self.up.accept_count, accepts_before, 'a rejected request head reached the upstream')
        self.assertEqual(self.up.request_count, requests_before,
                         'the upstream received a complete request: %r' % self.up.requests[requests_before:])
        return r

    def assert_still_serving(self):
        r = self.get(self.proxy, '/v1/still-serving')
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.up.requests[-1].target, '/v1/still-serving')
        self.assertFalse([q for q in self.up.requests if q.target == '/smuggled'], 'a smuggled request got through')
        self.assertEqual(self.other.accept_count, 0)

    def test_content_length_and_transfer_encoding_rules(self):
        for name, (raw, statuses) in FRAMING.items():
            with self.subTest(name):
                self.assert_rejected(raw, statuses)
        self.assert_still_serving()

    def test_invalid_chunked_bodies_are_400_and_never_completed_upstream(self):
        for name, raw in CHUNKS.items():
            with self.subTest(name):
                self.assert_rejected(raw, (400,), head_only=False)
        # Whatever the upstream saw of those requests, the proxy closed it: none is left
        # waiting for a body (or returned to the pool with half a request on it).
        self.assertTrue(wait_until(lambda: self.up.closed_count == self.up.accept_count, 5),
                        'upstream connections of rejected bodies were left open')
        self.assertEqual(self.up.request_count, 0)
        self.assert_still_serving()

    def test_bare_lf_in_chunk_lines_is_400(self):
        for name, raw in CHUNKS_BARE_LF.items():
            with self.subTest(name):
                self.assert_rejected(raw, (400,), head_only=False)

    def test_invalid_header_lines(self):
        for name, raw in FIELDS.items():
            with self.subTest(name):
                self.assert_rejected(raw, (400,))
        self.assert_still_serving()

    def test_invalid_request_lines_and_targets(self):
        for name, raw in LINES.items():
            with self.subTest(name):
                self.assert_rejected(raw, (400,))
        self.assert_still_serving()

    def test_a_wrong_start_line_is_answered_before_the_head_ends(self):
        # Never a line end: without the early check these wait for -header-timeout (30 s
        # here) and get a 408; now each is a 400 at once. The first is what a client
        # configured with https:// sends to this plain-HTTP port.
        hello = bytes.fromhex('160301020001') + b'\x00\x01\xfc\x03\x03' + os.urandom(32)
        unfinished = {
            'TLS ClientHello': hello.replace(b'\n', b'\x00'),
            'non-token byte in the method': b'G\x84T /v1/models',
            'control byte in the target': b'GET /v1/\x01models',
            'lower-case version': b'GET /v1/models http/1.1',
            'complete line, HTTP/0.9, head unfinished': b'GET /v1/models\r\nHost: a',
        }
        for name, raw in unfinished.items():
            with self.subTest(name):
                t0 = now()
                r = self.assert_rejected(raw, (400,))
                self.assertLess(now() - t0, 5.0, 'answered only after %.1f s' % (now() - t0))
                self.assertNotEqual(r.status, 408)
        self.assert_still_serving()

    def test_unsupported_versions(self):
        for name, (raw, statuses) in VERSIONS.items():
            with self.subTest(name):
                self.assert_rejected(raw, statuses)
        self.assert_still_serving()

    def test_a_higher_http_1_minor_version_is_served_as_http_1_1(self):
        # RFC 9112 section 2.3: HTTP/1.2 is processed as HTTP/1.1, not refused with 505:
        # forwarded as HTTP/1.1, answered as HTTP/1.1, and the connection kept alive.
        c = self.client(self.proxy)
        c.send(b'GET /v1/models HTTP/1.2\r\n' + H + b'\r\n')
        r = c.read_response()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.version, 'HTTP/1.1')
        self.assertEqual(r.json()['path'], '/v1/models')
        self.assertIsNone(r.header('Connection'), r.raw_head)
        self.assertEqual(self.up.requests[-1].version, 'HTTP/1.1')
        # The keep-alive default and the chunked body of HTTP/1.1 apply too.
        c.send(b'POST /v1/again HTTP/1.9\r\n' + H + b'Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n')
        r = c.read_response(method='POST')
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()['sha256'], sha256(b'hello'))
        self.assertEqual([q.target for q in self.up.requests], ['/v1/models', '/v1/again'])
        self.assertEqual(self.up.accept_count, 1)

    def test_a_streamed_answer_to_http_1_2_is_chunked_as_for_http_1_1(self):
        # An answer without length is re-chunked for an HTTP/1.1 client (an HTTP/1.0 one
        # would get a close-delimited body).
        up = self.start_upstream(lambda req: Resp(200, [('Content-Type', 'text/event-stream')],
                                                  chunks=[b'data: a\n\n', b'data: b\n\n'], framing='close'))
        proxy = self.start_proxy(self.targets(('a', up)))
        c = self.client(proxy)
        c.send(b'GET /v1/stream HTTP/1.2\r\n' + H + b'\r\n')
        r = c.read_response()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.version, 'HTTP/1.1')
        self.assertEqual(r.framing, 'chunked')
        self.assertTrue(r.complete, r)
        self.assertEqual(r.body, b'data: a\n\ndata: b\n\n')

    def test_bad_request_after_a_good_one_on_a_keepalive_connection(self):
        c = self.client(self.proxy)
        c.request('POST', '/v1/first', body=b'one')
        r = c.read_response()
        self.assertEqual(r.status, 200, r)
        c.send(post(b'Content-Length: 3\r\nTransfer-Encoding: chunked\r\n', b'0\r\n\r\n'))
        r = c.read_response()
        self.assertJsonError(r, 400)
        closed, extra = c.wait_closed(5)
        self.assertTrue(closed, 'connection left open after the error')
        self.assertEqual(extra, b'')
        self.assertEqual([q.target for q in self.up.requests], ['/v1/first'])

    def test_valid_framing_still_passes(self):
        # Controls for the cases above: the same shapes, valid, go through intact.
        cases = [
            (post(b'Content-Length: 5\r\n', smuggle=False), b'hello'),
            (post(b'Content-Length: 5, 5\r\n', smuggle=False), b'hello'),
            (post(b'Transfer-Encoding: chunked\r\n', b'5;ext=1\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n',
                  smuggle=False), b'hello'),
            (post(b'Transfer-Encoding: Chunked\r\n', b'000005 \r\nhello\r\n0\r\n\r\n', smuggle=False), b'hello'),
        ]
        for raw, body in cases:
            with self.subTest(raw=raw):
                c = self.client(self.proxy)
                c.send(raw)
                r = c.read_response()
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.json()['sha256'], sha256(body))
        for q in self.up.requests:
            self.assertNotIn(b'\n', q.raw_head.replace(b'\r\n', b''), 'bare LF forwarded')

    def test_bare_lf_head_is_never_forwarded_as_such(self):
        raw = b'POST /v1/bare-lf HTTP/1.1\nHost: a.example.test\nX-Test: yes\nContent-Length: 3\n\nabc'
        c = self.client(self.proxy)
        c.send(raw)
        r = c.read_response()
        if r.status == 400:
            self.assertJsonError(r, 400)  # refusing bare LF is allowed too
            self.assertEqual(self.up.request_count, 0)
            return
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.up.request_count, 1)
        q = self.up.requests[0]
        self.assertEqual(q.target, '/v1/bare-lf')
        self.assertEqual(q.header('X-Test'), 'yes')
        self.assertEqual(q.body, b'abc')
        self.assertNotIn(b'\n', q.raw_head.replace(b'\r\n', b''), 'a bare LF was forwarded: %r' % q.raw_head)

    def test_absolute_form_authority_wins_over_host(self):
        for target, path in (('http://b.example.test/v1/abs?x=1', '/v1/abs?x=1'),
                             ('HTTPS://B.example.test:8443/v1/abs2', '/v1/abs2')):
            with self.subTest(target):
                c = self.client(self.proxy)
                c.send(('GET %s HTTP/1.1\r\nHost: a.example.test\r\n\r\n' % target).encode())
                r = c.read_response()
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.json()['path'], path)
        self.assertEqual(self.up.request_count, 0, 'Host won over the absolute-form authority')
        self.assertEqual(self.other.request_count, 2)
        for q in self.other.requests:
            self.assertTrue(q.target.startswith('/'), 'absolute-form forwarded as such: %r' % q.target)
            self.assertEqual(q.header('Host'), self.other.authority)
        # Host is still required with an absolute-form target (RFC 9112 section 3.2).
        t0 = now()
        self.assert_rejected(b'GET http://b.example.test/v1/x HTTP/1.1\r\n\r\n', (400,))
        self.assertLess(now() - t0, 5)
        self.assertEqual(self.other.request_count, 2)


if __name__ == '__main__':
    main()
