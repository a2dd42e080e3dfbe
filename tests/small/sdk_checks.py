#!/usr/bin/env python3
"""What an OpenAI SDK does through the proxy, in a few checks short enough to run each
small (mbedTLS) router binary under its qemu-<cpu>-static (tests/small/run.sh):

  - JSON: a chat completion POST answered with the upstream's exact JSON;
  - SSE: a streamed completion arrives event by event, whole and in order;
  - upload: a 2 MiB multipart body (a file upload) reaches the upstream byte for byte;
  - upstream errors: the upstream's own 429 JSON passes through unchanged, and an
    upstream whose certificate the CA file does not vouch for is a 502 JSON error;
  - client abort: a client leaving mid-stream makes the proxy close the upstream
    connection, and the proxy goes on serving.

Every check runs against a TLS upstream on loopback (Python's ssl, certificates of a test
CA given with -ca-file) and through `-targets` naming it as https://localhost:<port>: the
static glibc resolves the name through /etc/hosts, the proxy sends SNI and mbedTLS checks
the DNS name. OP_BINARY names the binary or a wrapper script that runs it under qemu;
the bounds below allow for emulation (10-50 times slower than the CPU it runs on).
"""
import hashlib
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'e2e'))
from harness import ProxyTestCase, Resp, echo_handler, main, now, wait_until  # noqa: E402

COMPLETION = (b'{"id":"chatcmpl-small","object":"chat.completion","created":1718000000,'
              b'"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant",'
              b'"content":"Hello from the router."},"finish_reason":"stop"}],'
              b'"usage":{"prompt_tokens":9,"completion_tokens":5,"total_tokens":14}}')
EVENTS = [b'data: {"id":"chatcmpl-small","object":"chat.completion.chunk","choices":[{"index":0,'
          b'"delta":{"content":"tok%02d"},"finish_reason":null}]}\n\n' % i for i in range(12)]
EVENTS.append(b'data: [DONE]\n\n')
INTERVAL = 0.15  # seconds between events at the upstream
AUTH = ('Authorization', 'Bearer sk-small-0000000000000000')


def localhost(up):
    return 'https://localhost:%d' % up.port


class SdkChecks(ProxyTestCase):
    def handler(self, req):
        if req.target == '/v1/chat/completions' and b'"stream":true' in req.body:
            r = Resp(200, [('Content-Type', 'text/event-stream'), ('Cache-Control', 'no-cache')],
                     chunks=list(EVENTS), delay=INTERVAL, framing='chunked')
            self.streams.append(r)
            return r
        if req.target == '/v1/chat/completions':
            return Resp(200, [('Content-Type', 'application/json'), ('x-request-id', 'req_small')],
                        body=COMPLETION)
        if req.target == '/v1/rate-limited':
            return Resp(429, [('Content-Type', 'application/json'), ('Retry-After', '7')],
                        body=b'{"error":{"message":"Rate limit reached","type":"requests",'
                             b'"param":null,"code":"rate_limit_exceeded"}}')
        return echo_handler(req)

    def setUp(self):
        self.streams = []
        self.up = self.start_upstream(self.handler)
        self.proxy = self.start_proxy(self.targets(('a', localhost(self.up))))

    def test_json(self):
        r = self.get(self.proxy, '/v1/chat/completions', method='POST',
                     headers=[('Content-Type', 'application/json'), AUTH],
                     body=b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hi"}]}')
        self.assertEqual((r.status, r.complete, r.body), (200, True, COMPLETION), r)
        self.assertEqual(r.header('x-request-id'), 'req_small')
        req = self.up.requests[0]
        self.assertEqual(req.header('Authorization'), AUTH[1])
        self.assertEqual((req.conn.sni, req.conn.tls_version), ('localhost', 'TLSv1.2'))

    def test_sse_stream(self):
        c = self.client(self.proxy, timeout=30)
        c.request('POST', '/v1/chat/completions', [('Content-Type', 'application/json'),
                                                   ('Accept', 'text/event-stream'), AUTH],
                  body=b'{"model":"gpt-4o-mini","stream":true}')
        head = c.read_final_head()
        self.assertEqual(head.status, 200, head)
        self.assertEqual(head.header('Content-Type'), 'text/event-stream')
        arrivals, buf = [], b''
        for t, piece in c.body_pieces(head, deadline=now() + 60):
            buf += piece
            while b'\n\n' in buf:
                i = buf.index(b'\n\n') + 2
                arrivals.append((t, buf[:i]))
                buf = buf[i:]
        self.assertTrue(head.complete, 'the stream did not end cleanly: %s' % head.error)
        self.assertEqual(([e for _, e in arrivals], buf), (EVENTS, b''))
        # Relayed as they come, not gathered: the first event reached the client well
        # before the upstream sent the last (12 intervals later).
        self.assertTrue(wait_until(lambda: len(self.streams[0].sent) == len(EVENTS), 5))
        last_sent = self.streams[0].sent[-1][0]
        self.assertLess(arrivals[0][0], last_sent - 5 * INTERVAL, 'events arrived bunched together')

    def test_upload(self):
        boundary = b'----small-upload'
        payload = os.urandom(2 << 20)
        body = (b'--' + boundary + b'\r\nContent-Disposition: form-data; name="purpose"\r\n\r\n'
                b'fine-tune\r\n--' + boundary + b'\r\nContent-Disposition: form-data; name="file"; '
                b'filename="train.jsonl"\r\nContent-Type: application/octet-stream\r\n\r\n'
                + payload + b'\r\n--' + boundary + b'--\r\n')
        r = self.get(self.proxy, '/v1/files', method='POST', body=body, timeout=120,
                     headers=[('Content-Type', 'multipart/form-data; boundary=' + boundary.decode()), AUTH])
        self.assertEqual(r.status, 200, r)
        doc = r.json()
        self.assertEqual((doc['method'], doc['path'], doc['length'], doc['sha256']),
                         ('POST', '/v1/files', len(body), hashlib.sha256(body).hexdigest()))

    def test_upstream_error_passes_through(self):
        r = self.get(self.proxy, '/v1/rate-limited', method='POST', body=b'{}', headers=[AUTH])
        self.assertEqual(r.status, 429, r)
        self.assertEqual(r.header('Retry-After'), '7')
        self.assertEqual(r.json()['error']['code'], 'rate_limit_exceeded')

    def test_untrusted_upstream_is_502(self):
        other = self.start_upstream(cert='other_server')
        p = self.start_proxy(self.targets(('a', localhost(other))))
        r = self.get(p, '/v1/models', headers=[AUTH])
        err = self.assertJsonError(r, 502)
        self.assertIn('certificate verify failed', err['message'])
        self.assertEqual(other.request_count, 0)

    def test_client_abort_closes_upstream(self):
        c = self.client(self.proxy, timeout=30)
        c.request('POST', '/v1/chat/completions', [('Content-Type', 'application/json'), AUTH],
                  body=b'{"model":"gpt-4o-mini","stream":true}')
        head = c.read_final_head()
        self.assertEqual(head.status, 200, head)
        got = b''
        for _t, piece in c.body_pieces(head, deadline=now() + 30):
            got += piece
            if got.count(b'\n\n') >= 2:
                break
        self.assertTrue(got.startswith(EVENTS[0] + EVENTS[1]), got)
        t_close = now()
        c.close()
        conn = self.up.requests[0].conn
        self.assertTrue(wait_until(lambda: conn.closed_at is not None, 10), 'upstream connection never closed')
        self.assertIn(conn.close_reason, ('peer', 'peer-reset'), 'the upstream closed it, not the proxy')
        # Within 3 s under emulation (1 s is what tests/e2e asks natively); the stream
        # had ~1.5 s of events left, so it was cut, not finished.
        self.assertLessEqual(conn.closed_at - t_close, 3.0)
        self.assertLess(len(self.streams[0].sent), len(EVENTS))
        r = self.get(self.proxy, '/v1/models', headers=[AUTH])
        self.assertEqual(r.status, 200, r)


if __name__ == '__main__':
    start = time.monotonic()
    try:
        main()
    finally:
        print('sdk_checks: %.1f s' % (time.monotonic() - start))
