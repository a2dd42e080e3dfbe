#!/usr/bin/env python3
"""Large bodies both ways arrive intact (sha256 compared at both ends), whatever the
framing; Expect: 100-continue works; bodies stream (no store-and-forward) and a slow
reader on either side pushes back instead of growing the proxy."""
import os
import random
import socket
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hashlib  # noqa: E402
import time  # noqa: E402

from harness import RawClient, ProxyTestCase, Resp, main, now, sha256, wait_until  # noqa: E402

SIZE = 5 * 1024 * 1024
rng = random.Random(1234)
BIG = rng.randbytes(SIZE)
assert len(BIG) == SIZE
BIG_SHA = sha256(BIG)


def pieces(data, rnd, lo=1, hi=65536):
    i = 0
    while i < len(data):
        n = rnd.randint(lo, hi)
        yield data[i:i + n]
        i += n


def body_handler(req):
    """/big/<framing> answers BIG; everything else: the sha256 and length it received."""
    if req.target.startswith('/big/'):
        framing = req.target[len('/big/'):]
        chunks = [BIG[i:i + 65536] for i in range(0, SIZE, 65536)]
        return Resp(200, [('Content-Type', 'application/octet-stream')], chunks=chunks, framing=framing)
    return Resp(200, [('Content-Type', 'text/plain')], body=('%s %d' % (req.sha256, len(req.body))).encode())


class Bodies(ProxyTestCase):
    def setUp(self):
        self.up = self.start_upstream(body_handler)
        self.proxy = self.start_proxy(self.targets(('a', self.up)))

    def send_in_background(self, client, data_iter):
        errors = []

        def run():
            try:
                for d in data_iter:
                    client.send(d)
            except OSError as e:
                errors.append(e)
        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t, errors

    def test_5mib_request_body_content_length(self):
        c = self.client(self.proxy, timeout=30)
        head = RawClient.build('POST', '/v1/files', [('Content-Type', 'application/octet-stream'),
                                                     ('Content-Length', str(SIZE))])
        t, errors = self.send_in_background(c, [head] + list(pieces(BIG, random.Random(1))))
        r = c.read_response(timeout=60)
        t.join(30)
        self.assertEqual(errors, [])
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, ('%s %d' % (BIG_SHA, SIZE)).encode())
        req = self.up.requests[-1]
        self.assertEqual((req.sha256, len(req.body)), (BIG_SHA, SIZE))
        self.assertEqual(req.header('Content-Length'), str(SIZE))

    def test_5mib_request_body_chunked(self):
        c = self.client(self.proxy, timeout=30)
        head = RawClient.build('POST', '/v1/files', [('Content-Type', 'application/octet-stream'),
                                                     ('Transfer-Encoding', 'chunked')])

        def gen():
            yield head
            for piece in pieces(BIG, random.Random(2)):
                yield b'%x\r\n' % len(piece) + piece + b'\r\n'
            yield b'0\r\n\r\n'
        t, errors = self.send_in_background(c, gen())
        r = c.read_response(timeout=60)
        t.join(30)
        self.assertEqual(errors, [])
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, ('%s %d' % (BIG_SHA, SIZE)).encode())
        self.assertEqual(self.up.requests[-1].sha256, BIG_SHA)
        # Still usable afterwards.
        c.request('POST', '/v1/x', body=b'abc')
        self.assertEqual(c.read_response().body, ('%s 3' % sha256(b'abc')).encode())

    def big_response(self, framing, expect_client_framing):
        c = self.client(self.proxy, timeout=30)
        c.request('GET', '/big/' + framing)
        r = c.read_response(timeout=60)
        self.assertEqual(r.status, 200)
        self.assertTrue(r.complete, r.error)
        self.assertEqual(r.framing, expect_client_framing, r.headers)
        self.assertEqual(len(r.body), SIZE)
        self.assertEqual(sha256(r.body), BIG_SHA)
        # The client connection is still usable.
        c.request('POST', '/v1/x', body=b'after')
        self.assertEqual(c.read_response().body, ('%s 5' % sha256(b'after')).encode())
        return r

    def test_5mib_response_content_length(self):
        r = self.big_response('length', 'length')
        self.assertEqual(r.header('Content-Length'), str(SIZE))

    def test_5mib_response_chunked(self):
        self.big_response('chunked', 'chunked')

    def test_5mib_response_close_delimited(self):
        self.big_response('close', 'chunked')

    def test_5mib_response_close_delimited_to_http10_client(self):
        c = self.client(self.proxy, timeout=30)
        c.request('GET', '/big/close', version='HTTP/1.0')
        r = c.read_response(timeout=60)
        self.assertEqual(r.status, 200)
        self.assertTrue(r.complete, r.error)
        self.assertEqual(r.framing, 'close')
        self.assertEqual(sha256(r.body), BIG_SHA)

    def test_expect_100_continue(self):
        for size in (10, SIZE):
            with self.subTest(size=size):
                data = BIG[:size]
                c = self.client(self.proxy, timeout=30)
                c.send(RawClient.build('POST', '/v1/files', [('Content-Length', str(size)),
                                                             ('Expect', '100-continue')]))
                t0 = now()
                try:
                    interim = c.read_head(now() + 5)
                except socket.timeout:
                    self.fail('no response within 5 s to a request with Expect: 100-continue')
                self.assertEqual(interim.status, 100, 'expected 100 Continue first, got %r' % interim)
                self.assertLess(now() - t0, 5)
                t, errors = self.send_in_background(c, pieces(data, random.Random(3)))
                r = c.read_response(timeout=60)
                t.join(30)
                self.assertEqual(errors, [])
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.body, ('%s %d' % (sha256(data), size)).encode())
                self.assertEqual(self.up.requests[-1].sha256, sha256(data))

    def test_upstream_answers_before_reading_the_upload(self):
        err = b'{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}}'
        up = self.start_upstream(lambda req: Resp(401, [('Content-Type', 'application/json')], body=err),
                                 early_response=True)
        p = self.start_proxy(self.targets(('a', up)))
        c = self.client(p, timeout=30)
        head = RawClient.build('POST', '/v1/files', [('Content-Length', str(SIZE))])
        t, errors = self.send_in_background(c, [head] + list(pieces(BIG, random.Random(4))))
        r = c.read_response(timeout=30)
        self.assertEqual((r.status, r.body, r.complete), (401, err, True))
        t.join(30)  # the proxy may stop reading the rest (then closes): send errors are fine
        self.assertEqual(self.get(p).status, 401)

    def test_empty_bodies(self):
        c = self.client(self.proxy)
        c.request('POST', '/v1/x', body=b'')
        r = c.read_response()
        self.assertEqual(r.body, ('%s 0' % sha256(b'')).encode())
        c.send(b'POST /v1/y HTTP/1.1\r\nHost: a.example.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n')
        r = c.read_response()
        self.assertEqual(r.body, ('%s 0' % sha256(b'')).encode())


HUGE_REPEAT = 10                  # the huge body is BIG ten times over: 50 MiB
HUGE = SIZE * HUGE_REPEAT
HUGE_SHA = hashlib.sha256(BIG * HUGE_REPEAT).hexdigest()
RSS_GROWTH_LIMIT_KIB = 24 * 1024  # far below HUGE: the proxy must not hold the body
PAUSE = 2.5


def huge_chunks():
    for _ in range(HUGE_REPEAT):
        for i in range(0, SIZE, 65536):
            yield BIG[i:i + 65536]


class Streaming(ProxyTestCase):
    def test_request_body_is_streamed_not_stored(self):
        up = self.start_upstream(body_handler)
        p = self.start_proxy(self.targets(('a', up)))
        c = self.client(p, timeout=30)
        size = 1024 * 1024
        c.send(RawClient.build('POST', '/v1/files', [('Content-Length', str(size))]) + BIG[:4096])
        self.assertTrue(wait_until(lambda: up.heads, 5),
                        'the upstream saw nothing while the request body was incomplete')
        c.send(BIG[4096:size])
        r = c.read_response()
        self.assertEqual(r.body, ('%s %d' % (sha256(BIG[:size]), size)).encode())

    def test_slow_client_pushes_back_on_the_upstream(self):
        resps = []

        def handler(req):
            r = Resp(200, [('Content-Type', 'application/octet-stream')], chunks=huge_chunks())
            resps.append(r)
            return r
        up = self.start_upstream(handler)
        p = self.start_proxy(self.targets(('a', up)))
        base = p.rss_kib()
        c = self.client(p, timeout=60)
        c.request('GET', '/v1/huge')
        head = c.read_final_head()
        self.assertEqual(head.status, 200)
        time.sleep(PAUSE)  # the client reads nothing meanwhile
        grown = (p.rss_kib() or 0) - (base or 0)
        sent = sum(len(x) for _, x in resps[0].sent)
        self.assertLess(sent, HUGE * 0.8, 'the upstream was never slowed down: the proxy buffered %d bytes' % sent)
        if base is not None:
            self.assertLess(grown, RSS_GROWTH_LIMIT_KIB, 'proxy RSS grew by %d KiB' % grown)
        h = hashlib.sha256()
        n = 0
        for _t, piece in c.body_pieces(head, deadline=now() + 120):
            h.update(piece)
            n += len(piece)
        self.assertTrue(head.complete, head.error)
        self.assertEqual((n, h.hexdigest()), (HUGE, HUGE_SHA))

    def test_slow_upstream_pushes_back_on_the_client(self):
        up = self.start_upstream(body_handler, body_delay=PAUSE + 1)
        p = self.start_proxy(self.targets(('a', up)))
        base = p.rss_kib()
        c = self.client(p, timeout=60)
        progress = {'sent': 0}
        errors = []

        def send():
            try:
                c.send(RawClient.build('POST', '/v1/files', [('Content-Length', str(HUGE))]))
                for piece in huge_chunks():
                    c.send(piece)
                    progress['sent'] += len(piece)
            except OSError as e:
                errors.append(e)
        t = threading.Thread(target=send, daemon=True)
        t.start()
        time.sleep(PAUSE)  # the upstream reads nothing meanwhile
        grown = (p.rss_kib() or 0) - (base or 0)
        self.assertLess(progress['sent'], HUGE * 0.8,
                        'the client was never slowed down: the proxy took %d bytes' % progress['sent'])
        if base is not None:
            self.assertLess(grown, RSS_GROWTH_LIMIT_KIB, 'proxy RSS grew by %d KiB' % grown)
        r = c.read_response(timeout=120)
        t.join(60)
        self.assertEqual(errors, [])
        self.assertEqual(r.body, ('%s %d' % (HUGE_SHA, HUGE)).encode())


if __name__ == '__main__':
    main()
