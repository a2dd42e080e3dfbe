#!/usr/bin/env python3
"""Health and Prometheus metrics on the admin listener (issue 15, item 2): exact values
after a known sequence of requests, the output checked with `promtool check metrics`
(skipped with the reason when promtool is absent), 503 from /healthz during a graceful
stop, and nothing of it on the public port."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Proxy, ProxyTestCase, Resp, free_port, main, now, request_once,  # noqa: E402
                     wait_until)

USAGE_OK = {'prompt_tokens': 3, 'completion_tokens': 5, 'total_tokens': 8}


def handler(req):
    if req.target == '/v1/ok':
        body = json.dumps({'id': 'x', 'model': 'm', 'usage': USAGE_OK}).encode()
        return Resp(200, [('Content-Type', 'application/json')], body=body)
    if req.target == '/v1/fail':
        return Resp(500, [('Content-Type', 'application/json')], body=b'{"error":{"message":"boom"}}')
    if req.target == '/v1/sse':
        events = [b'data: {"choices":[{"delta":{"content":"hi"}}],"usage":null}\n\n',
                  b'data: {"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":11}}\n\n',
                  b'data: [DONE]\n\n']
        return Resp(200, [('Content-Type', 'text/event-stream')], chunks=events)
    if req.target == '/v1/slow-head':
        return Resp(200, [('Content-Type', 'application/json')], body=b'{}', head_delay=1.0)
    if req.target.startswith('/stream/'):
        return Resp(200, [('Content-Type', 'text/event-stream')], chunks=[b'data: %d\n\n' % i for i in range(6)],
                    delay=0.4)
    return Resp(404, [('Content-Type', 'text/plain')], body=b'upstream 404 for ' + req.target.encode())


def scrape(port, path='/metrics'):
    return request_once(port, 'GET', path, host='127.0.0.1')


def parse_metrics(text):
    """{(name, frozenset(labels)): value} of every sample line."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith('#'):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$', line)
        assert m, 'not a sample line: %r' % line
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ''))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())))


class Metrics(ProxyTestCase):
    def launch(self, up, extra=()):
        self.dead = 'http://127.0.0.1:%d' % free_port()  # nothing listens there
        self.admin_port = free_port()
        p = self.start_proxy(self.targets(('a', up), ('b', self.dead)) +
                             ['-admin-listen', '127.0.0.1:%d' % self.admin_port, '-workers', '2'] + list(extra))
        return p

    def test_values_after_a_known_sequence(self):
        up = self.start_upstream(handler)
        p = self.launch(up)
        c = self.client(p)  # one keep-alive connection: one worker, so the pool counts are exact
        for _ in range(3):
            c.request('POST', '/v1/ok', [('Content-Type', 'application/json')], b'{"model":"m"}')
            self.assertEqual(c.read_response('POST').status, 200)
        c.request('GET', '/v1/fail')
        self.assertEqual(c.read_response().status, 500)
        c.request('GET', '/v1/models', host='b.example.test')
        self.assertJsonError(c.read_response(), 502)
        c.request('POST', '/v1/sse', [('Content-Type', 'application/json')], b'{"model":"m","stream":true}')
        r = c.read_response('POST')
        self.assertEqual(r.status, 200)
        self.assertIn(b'[DONE]', r.body)

        resp = scrape(self.admin_port)
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.header('Content-Type'), 'text/plain; version=0.0.4; charset=utf-8')
        text = resp.body.decode()
        s = parse_metrics(text)
        a, b = up.url, self.dead
        self.assertEqual(value(s, 'openai_proxy_requests_total', target=a, code='2xx', source='upstream'), 4, text)
        self.assertEqual(value(s, 'openai_proxy_requests_total', target=a, code='5xx', source='upstream'), 1)
        self.assertEqual(value(s, 'openai_proxy_requests_total', target=b, code='5xx', source='proxy'), 1)
        self.assertIsNone(value(s, 'openai_proxy_requests_total', target=a, code='5xx', source='proxy'))
        self.assertEqual(value(s, 'openai_proxy_response_head_seconds_count', target=a), 5)
        self.assertEqual(value(s, 'openai_proxy_request_duration_seconds_count', target=b), 1)
        self.assertEqual(value(s, 'openai_proxy_request_duration_seconds_bucket', target=a, le='+Inf'), 5)
        self.assertEqual(value(s, 'openai_proxy_tokens_total', target=a, type='prompt'), 3 * 3 + 7)
        self.assertEqual(value(s, 'openai_proxy_tokens_total', target=a, type='completion'), 3 * 5 + 11)
        self.assertEqual(value(s, 'openai_proxy_tokens_total', target=b, type='prompt'), 0)
        self.assertEqual(value(s, 'openai_proxy_exchanges_in_flight'), 0)
        self.assertEqual(value(s, 'openai_proxy_sse_streams_in_flight'), 0)
        self.assertEqual(value(s, 'openai_proxy_client_connections'), 1)
        # 2: the harness's readiness probe connects once before the test's client
        self.assertEqual(value(s, 'openai_proxy_client_connections_total'), 2)
        self.assertEqual(value(s, 'openai_proxy_upstream_connects_total'), 1)
        self.assertEqual(value(s, 'openai_proxy_upstream_tls_handshakes_total'), 1)
        self.assertEqual(value(s, 'openai_proxy_upstream_tls_resumptions_total'), 0)
        self.assertEqual(value(s, 'openai_proxy_pool_misses_total'), 2)  # the first request, and b's
        self.assertEqual(value(s, 'openai_proxy_pool_hits_total'), 4)
        self.assertEqual(value(s, 'openai_proxy_idle_pool_connections'), 1)
        self.assertEqual(value(s, 'openai_proxy_retries_total', reason='failover'), 0)
        self.assertEqual(value(s, 'openai_proxy_retries_total', reason='stale_pooled_connection'), 0)
        self.assertEqual(value(s, 'openai_proxy_failovers_total', target=a), 0)
        self.assertEqual(value(s, 'openai_proxy_keys_set_aside_total', target=a), 0)
        self.assertEqual(value(s, 'openai_proxy_shutting_down'), 0)
        self.assertGreater(value(s, 'openai_proxy_received_bytes_total'), 0)
        self.assertGreater(value(s, 'openai_proxy_sent_bytes_total'), len(r.body))
        self.assertNotIn('openai_proxy_access_log_lines_total', text)  # the access log is off
        # A histogram's buckets are cumulative and end at the count.
        buckets = [v for (n, l), v in s.items()
                   if n == 'openai_proxy_response_head_seconds_bucket' and ('target', a) in l]
        self.assertEqual(len(buckets), 16)
        self.assertEqual(max(buckets), 5)

        health = scrape(self.admin_port, '/healthz')
        self.assertEqual((health.status, health.body), (200, b'ok\n'))
        self.assertDateNow(health)
        self.assertEqual(scrape(self.admin_port, '/health').status, 200)
        self.assertEqual(scrape(self.admin_port, '/v1/models').status, 404)

        # The public port knows nothing of them: /metrics and /healthz go to the upstream.
        for path in ('/metrics', '/healthz'):
            pub = request_once(p.port, 'GET', path)
            self.assertEqual(pub.status, 404, pub)
            self.assertEqual(pub.body, b'upstream 404 for ' + path.encode())
        self.assertTrue(up.wait_requests(7))  # 5 above and these 2

    def test_an_exchange_without_a_head_is_not_a_head_time(self):
        # A client that leaves before the answer's head: counted as 499/client, and in
        # the duration histogram, but it had no head to time.
        up = self.start_upstream(handler)
        p = self.launch(up)
        c = self.client(p)
        c.request('GET', '/v1/slow-head')
        time.sleep(0.3)
        c.close()
        target = up.url
        ok = wait_until(lambda: value(parse_metrics(scrape(self.admin_port).body.decode()),
                                      'openai_proxy_requests_total', target=target, code='4xx', source='client'), 5)
        self.assertTrue(ok, 'the abort was not counted')
        s = parse_metrics(scrape(self.admin_port).body.decode())
        self.assertEqual(value(s, 'openai_proxy_request_duration_seconds_count', target=target), 1)
        self.assertEqual(value(s, 'openai_proxy_response_head_seconds_count', target=target), 0)

    def test_tls_handshakes_and_resumptions(self):
        # Each answer closes its connection: three handshakes, the last two resumed (as
        # test_tls_verify.py checks from the upstream's side).
        up = self.start_upstream(lambda req: Resp(200, [('Content-Type', 'application/json')], body=b'{}', close=True))
        p = self.launch(up)
        c = self.client(p)
        for _ in range(3):
            c.request('GET', '/v1/models')
            self.assertEqual(c.read_response().status, 200)
        s = parse_metrics(scrape(self.admin_port).body.decode())
        reused = [conn.session_reused for conn in up.conns]
        self.assertEqual(reused, [False, True, True])
        self.assertEqual(value(s, 'openai_proxy_upstream_tls_handshakes_total'), 3)
        self.assertEqual(value(s, 'openai_proxy_upstream_tls_resumptions_total'), 2)
        self.assertEqual(value(s, 'openai_proxy_upstream_connects_total'), 3)
        self.assertEqual(value(s, 'openai_proxy_pool_misses_total'), 3)
        self.assertEqual(value(s, 'openai_proxy_idle_pool_connections'), 0)

    def test_promtool_accepts_the_output(self):
        promtool = shutil.which('promtool')
        if not promtool:
            self.skipTest('promtool is not installed (Debian package prometheus; scripts/deps.sh --metrics)')
        up = self.start_upstream(handler)
        p = self.launch(up)
        self.assertEqual(request_once(p.port, 'POST', '/v1/ok', body=b'{"model":"m"}').status, 200)
        self.assertEqual(request_once(p.port, 'GET', '/v1/models', host='b.example.test').status, 502)
        text = scrape(self.admin_port).body
        r = subprocess.run([promtool, 'check', 'metrics'], input=text, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout.decode(errors='replace') + '\n' + text.decode())

    def test_healthz_is_503_during_a_graceful_stop(self):
        up = self.start_upstream(handler)
        p = Proxy(self.targets(('a', up)) + ['-admin-listen', '127.0.0.1:%d' % free_port()])
        self.admin_port = int(p.args[-1].rsplit(':', 1)[1])
        p.start()
        self.addCleanup(p.kill)
        self.assertEqual(scrape(self.admin_port, '/healthz').status, 200)
        c = self.client(p, timeout=30)
        c.request('GET', '/stream/x')
        r = c.read_final_head(now() + 10)
        self.assertEqual(r.status, 200)
        pieces = c.body_pieces(r, 'GET', now() + 30)
        next(pieces)
        s = parse_metrics(scrape(self.admin_port).body.decode())
        self.assertEqual(value(s, 'openai_proxy_sse_streams_in_flight'), 1)
        self.assertEqual(value(s, 'openai_proxy_exchanges_in_flight'), 1)
        p.proc.send_signal(signal.SIGTERM)
        self.assertTrue(wait_until(lambda: scrape(self.admin_port, '/healthz').status == 503, timeout=5))
        h = scrape(self.admin_port, '/healthz')
        self.assertEqual((h.status, h.body), (503, b'shutting down\n'))
        self.assertEqual(value(parse_metrics(scrape(self.admin_port).body.decode()), 'openai_proxy_shutting_down'), 1)
        for _ in pieces:
            pass
        self.assertTrue(r.complete)
        p.proc.wait(10)
        self.assertEqual(p.proc.returncode, 0, p.stderr())


if __name__ == '__main__':
    main()
