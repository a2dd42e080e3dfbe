#!/usr/bin/env python3
"""Strict HTTP/1.1 responses from upstreams (issue 3), from scripted TLS and plain-TCP
upstreams.

An upstream response whose framing or head is invalid (Content-Length with
Transfer-Encoding, differing Content-Lengths, obs-fold, NUL or other control bytes,
a field name that is not a token, a bad status line, an invalid first chunk, ...) is answered
502 with a JSON error when nothing was sent to the client yet; the bad upstream
connection is closed, never pooled: the next request opens a new one. Invalid chunked
framing after the response has started closes the client connection without the
terminating chunk, so the answer never looks complete; that upstream connection is not
pooled either. An upstream that is not an HTTP server (a status line that cannot become
valid, before its head ends) is a 502 at once."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ProxyTestCase, main, now, wait_until  # noqa: E402
from hardening_util import ScriptedUpstream  # noqa: E402

# Scripted response heads (after the status line), each answered with a body of 5
# bytes "hello" in whatever framing the head claims. The upstream keeps the connection
# open afterwards, so a proxy that wrongly pooled it would send the next request there.
BAD_HEADS = {
    'cl-and-te': ('HTTP/1.1 200 OK', [('Content-Length', '5'), ('Transfer-Encoding', 'chunked')],
                  b'5\r\nhello\r\n0\r\n\r\n'),
    'te-and-cl': ('HTTP/1.1 200 OK', [('Transfer-Encoding', 'chunked'), ('Content-Length', '5')],
                  b'5\r\nhello\r\n0\r\n\r\n'),
    'two-different-content-lengths': ('HTTP/1.1 200 OK', [('Content-Length', '5'), ('Content-Length', '6')],
                                      b'hello!'),
    'content-length-list': ('HTTP/1.1 200 OK', [('Content-Length', '5, 6')], b'hello!'),
    'content-length-sign': ('HTTP/1.1 200 OK', [('Content-Length', '+5')], b'hello'),
    'content-length-hex': ('HTTP/1.1 200 OK', [('Content-Length', '0x5')], b'hello'),
    'content-length-inner-space': ('HTTP/1.1 200 OK', [('Content-Length', '1 0')], b'helloworld'),
    'content-length-empty': ('HTTP/1.1 200 OK', [('Content-Length', '')], b'hello'),
    'content-length-overflow': ('HTTP/1.1 200 OK', [('Content-Length', '18446744073709551616')], b'hello'),
    'te-unknown-coding': ('HTTP/1.1 200 OK', [('Transfer-Encoding', 'gzip')], b'hello'),
    'te-chunked-twice': ('HTTP/1.1 200 OK', [('Transfer-Encoding', 'chunked, chunked')],
                         b'5\r\nhello\r\n0\r\n\r\n'),
    'te-chunked-not-last': ('HTTP/1.1 200 OK', [('Transfer-Encoding', 'chunked, gzip')],
                            b'5\r\nhello\r\n0\r\n\r\n'),
    'te-in-http-1.0': ('HTTP/1.0 200 OK', [('Transfer-Encoding', 'chunked')], b'5\r\nhello\r\n0\r\n\r\n'),
    'obs-fold': ('HTTP/1.1 200 OK', [('Content-Length', '5'), ('X-Folded', 'a\r\n  continued')], b'hello'),
    'nul-in-value': ('HTTP/1.1 200 OK', [('Content-Length', '5'), ('X-Nul', 'a\x00b')], b'hello'),
    'control-byte-in-value': ('HTTP/1.1 200 OK', [('Content-Length', '5'), ('X-Ctl', 'a\x01b')], b'hello'),
    'bare-cr-in-value': ('HTTP/1.1 200 OK', [('Content-Length', '5'), ('X-Cr', 'a\rb')], b'hello'),
    'nul-in-name': ('HTTP/1.1 200 OK', [('Content-Length', '5'), ('X-N\x00ul', 'a')], b'hello'),
    'space-as-name': ('HTTP/1.1 200 OK', [('Content-Length', '5'), (' ', 'b')], b'hello'),
    'non-token-name': ('HTTP/1.1 200 OK', [('Content-Length', '5'), ('X(A)', 'b')], b'hello'),
    'line-without-colon': ('HTTP/1.1 200 OK', [('Content-Length', '5'), ('No colon here', None)], b'hello'),
    'status-two-digits': ('HTTP/1.1 20 OK', [('Content-Length', '5')], b'hello'),
    'status-not-digits': ('HTTP/1.1 2x0 OK', [('Content-Length', '5')], b'hello'),
    'status-http-2': ('HTTP/2 200', [('Content-Length', '5')], b'hello'),
    'status-http-2.0': ('HTTP/2.0 200 OK', [('Content-Length', '5')], b'hello'),
    'status-lowercase': ('http/1.1 200 OK', [('Content-Length', '5')], b'hello'),
    'status-icy': ('ICY 200 OK', [('Content-Length', '5')], b'hello'),
    'nul-in-reason': ('HTTP/1.1 200 O\x00K', [('Content-Length', '5')], b'hello'),
}

# The head is valid, but the first chunk size line arrives with it (one write) and is
# invalid: nothing was sent to the client yet, so this is still a 502 (issue 3: "502 to
# the client if nothing was sent yet").
BAD_FIRST_CHUNK = {
    'bad-first-chunk-size': ('HTTP/1.1 200 OK', [('Transfer-Encoding', 'chunked')], b'zz\r\nhello\r\n0\r\n\r\n'),
    'first-chunk-size-overflow': ('HTTP/1.1 200 OK', [('Transfer-Encoding', 'chunked')],
                                  b'10000000000000000\r\nhello\r\n0\r\n\r\n'),
    'first-chunk-size-bare-cr': ('HTTP/1.1 200 OK', [('Transfer-Encoding', 'chunked')], b'5\rX\nhello\r\n0\r\n\r\n'),
}

# Invalid chunked framing after the response has started (the head and a valid chunk
# went out first): tails written after a pause.
BAD_TAILS = {
    'mid-body-bad-chunk-size': b'zz\r\nmore\r\n0\r\n\r\n',
    'mid-body-chunk-overflow': b'fffffffffffffffffff\r\nmore\r\n0\r\n\r\n',
    'mid-body-no-crlf-after-data': b'4\r\nmoreXY0\r\n\r\n',
    'mid-body-bare-cr': b'4\rX\nmore\r\n0\r\n\r\n',
    'mid-body-nul-in-trailer': b'0\r\nX-T: a\x00b\r\n\r\n',
}

# Not HTTP at all, and no end of head in sight (a target pointed at the wrong service):
# the upstream then waits, so without the early check the client would wait for
# -response-timeout (10 minutes by default).
NOT_HTTP = {
    'smtp-greeting': b'220 smtp.example.test ESMTP ready\r\n',
    'ssh-banner': b'SSH-2.0-OpenSSH_9.2p1\r\n',
    'http2-settings-frame': b'\x00\x00\x00\x04\x00\x00\x00\x00\x00',
    'http2-status-line': b'HTTP/2 200\r\n',
    'status-line-without-line-end': b'HTTP/1.1 2OO OK',
}


def raw_head(status_line, fields):
    lines = [status_line]
    for name, value in fields:
        lines.append(name if value is None else '%s: %s' % (name, value))
    return ('\r\n'.join(lines) + '\r\n\r\n').encode('latin-1')


STREAM_HEAD = (b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/event-stream\r\n\r\n'
               b'8\r\ndata: a\n\r\n')


# A complete response followed by bytes nobody asked for: an unsolicited response the
# next request on that connection must never receive (RFC 9112 section 6.3). Each case
# leaves the extra bytes in the socket behind a read that filled what it asked for. (Bytes
# that arrive only after the proxy has looked, when the next request may already be on
# its way, cannot be told from that request's answer: no case sends them later.)
SMUGGLED = b'HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nSMUGGLED'
# A 204 head of exactly 1024 bytes, the size of the proxy's first read (-buffer-size).
_HEAD_204 = b'HTTP/1.1 204 No Content\r\nX-Pad: '
_HEAD_204 += b'p' * (1024 - len(_HEAD_204) - 4) + b'\r\n\r\n'
assert len(_HEAD_204) == 1024
EXTRA_AFTER = {
    # The body, read up to its Content-Length, arrives later together with the extra.
    'body-then-extra': [(0, b'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n'), (0.3, b'hello' + SMUGGLED)],
    # A head that ends exactly where the first read did.
    'head-at-read-size': [(0, _HEAD_204 + SMUGGLED)],
}


def script(target):
    """What the scripted upstream writes for each request; it keeps the connection open
    afterwards, so a proxy that wrongly pooled it would send the next request there."""
    parts = target.split('/')  # /bad/<name> or /tail/<name>
    if len(parts) == 3 and parts[1] == 'extra':
        return EXTRA_AFTER[parts[2]]
    if len(parts) == 3 and parts[1] == 'bad':
        status_line, fields, body = BAD_HEADS.get(parts[2]) or BAD_FIRST_CHUNK[parts[2]]
        return raw_head(status_line, fields) + body  # one write: head and body together
    if len(parts) == 3 and parts[1] == 'not-http':
        return NOT_HTTP[parts[2]]
    if len(parts) == 3 and parts[1] == 'ws-colon':
        # Whitespace before a colon, which a proxy removes (RFC 9112 section 5.1).
        return raw_head('HTTP/1.1 200 OK', [('Content-Length ', '5'), ('X-A\t', 'b')]) + b'hello'
    if len(parts) == 3 and parts[1] == 'http12':
        # A higher minor version of HTTP/1, with the framing and keep-alive of HTTP/1.1.
        return b'HTTP/1.2 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n'
    if len(parts) == 3 and parts[1] == 'tail':
        return [(0, STREAM_HEAD), (0.3, BAD_TAILS[parts[2]])]
    body = ('ok %s' % target).encode()
    return b'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s' % (len(body), body)


class StrictResponses(ProxyTestCase):
    def start(self, tls):
        up = ScriptedUpstream(script, tls=tls)
        self.addCleanup(up.close)
        proxy = self.start_proxy(self.targets(('a', up.url)) + ['-workers', '1'])
        return up, proxy

    def check_next_request_uses_a_new_connection(self, up, proxy, bad_conn):
        r = self.get(proxy, '/v1/after')
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, b'ok /v1/after')
        conn, target = up.requests[-1]
        self.assertEqual(target, '/v1/after')
        self.assertIsNot(conn, bad_conn, 'the connection that sent an invalid response was pooled and reused')
        self.assertTrue(wait_until(lambda: bad_conn.closed_at is not None, 5),
                        'the proxy left the bad upstream connection open')
        self.assertTrue(bad_conn.closed_by_peer)

    def run_bad_heads(self, tls, cases=BAD_HEADS, path='/bad/'):
        """Each case (the upstream's answer to `path` + name) is a 502 within 5 s, none of
        its body relayed, and the next request goes to a new upstream connection."""
        up, proxy = self.start(tls)
        for name in cases:
            with self.subTest(name, tls=tls):
                before = len(up.requests)
                t0 = now()
                r = self.get(proxy, path + name)
                self.assertJsonError(r, 502)
                self.assertNotIn(b'hello', r.body)
                self.assertLess(now() - t0, 5)
                bad_conn = up.requests[before][0]
                self.check_next_request_uses_a_new_connection(up, proxy, bad_conn)

    def test_invalid_response_heads_are_502_over_tls(self):
        self.run_bad_heads(True)

    def test_invalid_response_heads_are_502_over_plain_tcp(self):
        self.run_bad_heads(False)

    def test_an_upstream_that_is_not_http_is_502_at_once(self):
        # The upstream then waits: without the early check, -response-timeout (10 min).
        self.run_bad_heads(True, NOT_HTTP, '/not-http/')
        self.run_bad_heads(False, NOT_HTTP, '/not-http/')

    def test_invalid_first_chunk_arriving_with_the_head_is_502(self):
        self.run_bad_heads(True, BAD_FIRST_CHUNK)

    def run_bad_tails(self, tls):
        up, proxy = self.start(tls)
        for name in BAD_TAILS:
            with self.subTest(name, tls=tls):
                before = len(up.requests)
                c = self.client(proxy)
                c.request('GET', '/tail/' + name)
                r = c.read_response(timeout=10)
                # The head and the valid first chunk arrived; then the connection closed
                # without the terminating chunk.
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.framing, 'chunked')
                self.assertFalse(r.complete, 'a response with invalid chunked framing looked complete: %r' % r)
                self.assertTrue(r.body.startswith(b'data: a\n'), r)
                if 'no-crlf' not in name:  # there the payload itself was valid and may pass
                    self.assertNotIn(b'more', r.body)
                closed, _ = c.wait_closed(3)
                self.assertTrue(closed)
                bad_conn = up.requests[before][0]
                self.check_next_request_uses_a_new_connection(up, proxy, bad_conn)

    def test_invalid_chunk_mid_body_closes_the_client_connection_over_tls(self):
        self.run_bad_tails(True)

    def test_invalid_chunk_mid_body_closes_the_client_connection_over_plain_tcp(self):
        self.run_bad_tails(False)

    def test_whitespace_before_a_colon_is_removed_and_the_answer_relayed(self):
        # RFC 9112 section 5.1: "A proxy MUST remove any such whitespace from a response
        # message before forwarding the message downstream" (a request's is a 400).
        up, proxy = self.start(True)
        c = self.client(proxy)
        c.request('GET', '/ws-colon/1')
        r = c.read_response(timeout=5)
        self.assertEqual((r.status, r.body, r.header('X-A'), r.header('Content-Length')), (200, b'hello', 'b', '5'))
        self.assertNotIn(b' :', r.raw_head)
        self.assertNotIn(b'\t:', r.raw_head)
        c.request('GET', '/v1/after')  # the connection is in step after it
        self.assertEqual(c.read_response(timeout=5).body, b'ok /v1/after')

    def test_an_http_1_2_response_is_taken_as_http_1_1(self):
        # RFC 9112 section 2.3: a higher minor version within major version 1 is processed
        # as HTTP/1.1: relayed (not a 502), its chunked body passed on, and the connection
        # pooled, since HTTP/1.1 keeps it open by default.
        up, proxy = self.start(True)
        for i in range(3):
            r = self.get(proxy, '/http12/%d' % i)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.version, 'HTTP/1.1')
            self.assertEqual(r.framing, 'chunked')
            self.assertTrue(r.complete, r)
            self.assertEqual(r.body, b'hello')
        self.assertEqual(up.accepted, 1, 'an HTTP/1.2 upstream connection was not kept alive')

    def run_extra_after_response(self, tls):
        """The second of two pipelined requests gets its own answer, never the bytes the
        upstream sent after the first answer; that connection is closed, not pooled."""
        up, proxy = self.start(tls)
        for name in EXTRA_AFTER:
            with self.subTest(name, tls=tls):
                before = len(up.requests)
                c = self.client(proxy)
                self.addCleanup(c.close)
                c.send(c.build('GET', '/extra/' + name) + c.build('GET', '/v1/second'))
                first = c.read_response(timeout=10)
                self.assertIn(first.status, (200, 204), first)
                self.assertTrue(first.complete, first)
                self.assertIn(first.body, (b'hello', b''))
                second = c.read_response(timeout=10)
                self.assertNotIn(b'SMUGGLED', second.body, 'bytes sent after a complete response were '
                                 'relayed as the answer to the next request')
                self.assertEqual(second.status, 200, second)
                self.assertEqual(second.body, b'ok /v1/second')
                bad_conn = up.requests[before][0]
                self.assertEqual(up.requests[-1][1], '/v1/second')
                self.assertIsNot(up.requests[-1][0], bad_conn, 'the connection with extra bytes was reused')
                self.assertTrue(wait_until(lambda: bad_conn.closed_at is not None, 5),
                                'the proxy left the connection with extra bytes open')

    def test_bytes_after_a_complete_response_are_not_the_next_answer_over_plain_tcp(self):
        self.run_extra_after_response(False)

    def test_bytes_after_a_complete_response_are_not_the_next_answer_over_tls(self):
        self.run_extra_after_response(True)

    def test_valid_responses_are_pooled(self):
        # Control: the same upstream, valid answers, one connection reused.
        up, proxy = self.start(True)
        for i in range(3):
            r = self.get(proxy, '/v1/ok%d' % i)
            self.assertEqual(r.status, 200, r)
        self.assertEqual(up.accepted, 1, 'valid responses were not pooled: the checks above prove nothing')


if __name__ == '__main__':
    main()
