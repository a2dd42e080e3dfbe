#!/usr/bin/env python3
"""Routing (X-Target-Host, Host key, default target, no route), stage-prefix stripping,
and what the upstream sees of the request headers (and the client of the response's)."""
import json
import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import PeerClosed, ProxyTestCase, Resp, main, sha256, wait_until  # noqa: E402


class Routing(ProxyTestCase):
    def test_host_key_first_label(self):
        up_a = self.start_upstream()
        up_b = self.start_upstream()
        p = self.start_proxy(self.targets(('a', up_a), ('b', up_b)))
        for host, up in (('a.example.test', up_a), ('b.example.test:9001', up_b), ('a', up_a),
                         ('b.mydomain.com', up_b)):
            with self.subTest(host=host):
                before = up.request_count
                r = self.get(p, '/v1/models', host=host)
                self.assertEqual(r.status, 200, r)
                self.assertEqual(up.request_count, before + 1)
                self.assertEqual(up.requests[-1].target, '/v1/models')

    def test_host_key_part_before_dash(self):
        up = self.start_upstream()
        p = self.start_proxy(self.targets(('a', up)))
        for host in ('a-x.example.test:9', 'a-foo.mydomain.net', 'a-.example.test'):
            with self.subTest(host=host):
                r = self.get(p, '/v1/models', host=host)
                self.assertEqual(r.status, 200, r)
        self.assertEqual(up.request_count, 3)

    def test_whole_label_with_dash_wins_over_part_before_dash(self):
        up_a = self.start_upstream()
        up_ax = self.start_upstream()
        p = self.start_proxy(self.targets(('a', up_a), ('a-x', up_ax)))
        self.assertEqual(self.get(p, host='a-x.example.test').status, 200)
        self.assertEqual((up_a.request_count, up_ax.request_count), (0, 1))
        self.assertEqual(self.get(p, host='a-y.example.test').status, 200)
        self.assertEqual((up_a.request_count, up_ax.request_count), (1, 1))

    def test_x_target_host_wins_and_is_not_forwarded(self):
        up_a = self.start_upstream()
        up_b = self.start_upstream()
        p = self.start_proxy(self.targets(('a', up_a), ('b', up_b)))
        for value in (up_b.authority, up_b.url):
            with self.subTest(value=value):
                before = up_b.request_count
                r = self.get(p, '/v1/models', headers=[('X-Target-Host', value)], host='a.example.test')
                self.assertEqual(r.status, 200, r)
                self.assertEqual(up_b.request_count, before + 1)
                req = up_b.requests[-1]
                self.assertIsNone(req.header('X-Target-Host'), req.headers)
                self.assertEqual(req.header_all('Host'), [up_b.authority])
        self.assertEqual(up_a.request_count, 0)

    def test_x_target_host_and_host_key_to_plain_http(self):
        up_tls = self.start_upstream()
        plain = self.start_upstream(tls=False)
        p = self.start_proxy(self.targets(('a', up_tls), ('c', plain.url)))
        r = self.get(p, '/v1/models', host='c.example.test')
        self.assertEqual(r.status, 200, r)
        r = self.get(p, '/v1/x', headers=[('X-Target-Host', plain.url)], host='a.example.test')
        self.assertEqual(r.status, 200, r)
        self.assertEqual([q.target for q in plain.requests], ['/v1/models', '/v1/x'])
        self.assertEqual(plain.requests[-1].header_all('Host'), [plain.authority])
        self.assertEqual(up_tls.request_count, 0)

    def test_default_target(self):
        up_a = self.start_upstream()
        up_d = self.start_upstream()
        p = self.start_proxy(self.targets(('a', up_a)) + ['-default-target', up_d.url])
        r = self.get(p, host='zzz.example.test')
        self.assertEqual(r.status, 200, r)
        self.assertEqual((up_a.request_count, up_d.request_count), (0, 1))
        self.assertEqual(up_d.requests[0].header_all('Host'), [up_d.authority])
        self.assertEqual(self.get(p, host='a.example.test').status, 200)
        self.assertEqual((up_a.request_count, up_d.request_count), (1, 1))

    def test_default_target_alone_without_scheme(self):
        up = self.start_upstream()
        p = self.start_proxy(['-default-target', up.authority])
        r = self.get(p, host='anything.example.test')
        self.assertEqual(r.status, 200, r)
        self.assertEqual(up.request_count, 1)

    def test_ipv6_literal_upstream(self):
        try:
            with socket.socket(socket.AF_INET6) as s:
                s.bind(('::1', 0))
        except OSError as e:
            self.skipTest('::1 is not available here: %s' % e)
        up = self.start_upstream(host='::1')
        p = self.start_proxy(self.targets(('a', up)))
        self.assertEqual(up.url, 'https://[::1]:%d' % up.port)
        r = self.get(p, '/v1/models')
        self.assertEqual(r.status, 200, r)
        self.assertEqual(up.requests[0].header_all('Host'), ['[::1]:%d' % up.port])

    def test_body_sent_to_an_unknown_route_does_not_desync(self):
        up = self.start_upstream()
        p = self.start_proxy(self.targets(('a', up)))
        c = self.client(p)
        c.request('POST', '/v1/x', host='zzz.example.test', body=b'GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n')
        self.assertJsonError(c.read_response(), 404)
        try:
            c.request('GET', '/v1/after', host='a.example.test')
            r = c.read_response()
            self.assertEqual(r.status, 200, r)
        except (ConnectionError, PeerClosed):
            pass  # closing the connection after the error is fine too
        self.assertNotIn('/smuggled', [q.target for q in up.requests])

    def test_unknown_route_is_a_json_404(self):
        up = self.start_upstream()
        p = self.start_proxy(self.targets(('a', up)))
        for host in ('zzz.example.test', 'b-a.example.test', 'example.test'):
            with self.subTest(host=host):
                r = self.get(p, '/v1/models', host=host)
                self.assertJsonError(r, 404)
                # Logged as the Go original logged its "target not found".
                self.assertTrue(wait_until(lambda: 'Error processing request: no target for host "%s"' % host
                                           in p.stderr(), timeout=5), p.stderr())
        self.assertEqual(up.accept_count, 0)
        self.assertEqual(self.get(p, host='a.example.test').status, 200)

    def test_methods_bodies_and_statuses_pass_through(self):
        def handler(req):
            if req.target == '/status/401':
                return Resp(401, [('Content-Type', 'application/json')],
                            body=b'{"error":{"message":"Incorrect API key provided","type":"invalid_request_error"}}')
            if req.target == '/status/500':
                return Resp(500, body=b'x')
            return Resp(200, [('Content-Type', 'application/json')], body=json.dumps(
                {'method': req.method, 'sha256': req.sha256}).encode())
        up = self.start_upstream(handler)
        p = self.start_proxy(self.targets(('a', up)))
        body = json.dumps({'model': 'gpt-4o', 'messages': [{'role': 'user', 'content': 'héllo'}]}).encode()
        for method in ('POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'GET'):
            with self.subTest(method=method):
                b = body if method in ('POST', 'PUT', 'PATCH') else None
                r = self.get(p, '/v1/chat/completions', method=method, body=b,
                             headers=[('Content-Type', 'application/json')] if b else [])
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.json(), {'method': method, 'sha256': sha256(b or b'')})
        # Short answers arrive whole (the original lost the last read of every body).
        r = self.get(p, '/status/401')
        self.assertEqual((r.status, r.body), (401, b'{"error":{"message":"Incorrect API key provided",'
                                                   b'"type":"invalid_request_error"}}'))
        r = self.get(p, '/status/500')
        self.assertEqual((r.status, r.body, r.complete), (500, b'x', True))


class StagePrefix(ProxyTestCase):
    CASES = [
        ('/release/v1/chat/completions', '/v1/chat/completions'),
        ('/test/v1/models', '/v1/models'),
        ('/prepub/v1/x?a=1&b=%2F&c=/release/', '/v1/x?a=1&b=%2F&c=/release/'),
        ('/release', '/'),
        ('/release/', '/'),
        ('/release?x=1', '/?x=1'),
        ('/test/release/v1/x', '/release/v1/x'),
        ('/v1/tests/x', '/v1/tests/x'),
        ('/v1/test', '/v1/test'),
        ('/v1/release/x', '/v1/release/x'),
        ('/releases/v1', '/releases/v1'),
        ('/testing', '/testing'),
        ('/prepubx/v1', '/prepubx/v1'),
        ('/v1/models?q=%20a+b&empty=', '/v1/models?q=%20a+b&empty='),
        ('/', '/'),
    ]

    def test_leading_stage_segment_stripped_and_nothing_else(self):
        up = self.start_upstream()
        p = self.start_proxy(self.targets(('a', up)))
        c = self.client(p)
        for sent, expected in self.CASES:
            with self.subTest(path=sent):
                c.request('GET', sent)
                r = c.read_response()
                self.assertEqual(r.status, 200, r)
                self.assertEqual(up.requests[-1].target, expected)


class Headers(ProxyTestCase):
    def test_request_headers_upstream_sees(self):
        up = self.start_upstream()
        p = self.start_proxy(self.targets(('a', up)))
        sent = [
            ('Authorization', 'Bearer sk-test-0123456789abcdef'),
            ('api-key', 'azure-key-value'),
            ('OpenAI-Organization', 'org-xyz'),
            ('Content-Type', 'application/json'),
            ('User-Agent', 'OpenAI/Python 1.30.0'),
            ('X-Custom', 'a  b\tc'),
            ('Connection', 'keep-alive, X-Hop-Named'),
            ('X-Hop-Named', 'must not pass'),
            ('Keep-Alive', 'timeout=5, max=100'),
            ('Proxy-Connection', 'keep-alive'),
            ('TE', 'trailers'),
            ('Trailer', 'X-Checksum'),
            ('Upgrade', 'example/1'),
            ('X-Target-Host', up.url),
        ]
        body = b'{"model":"gpt-4o"}'
        r = self.get(p, '/v1/chat/completions', method='POST', headers=sent, body=body)
        self.assertEqual(r.status, 200, r)
        req = up.requests[-1]
        names = [n.lower() for n, _ in req.headers]
        self.assertEqual(req.header_all('Host'), [up.authority])
        for name, value in sent[:6]:
            self.assertEqual(req.header_all(name), [value], 'end-to-end field %s changed' % name)
        for name in ('connection', 'x-hop-named', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade',
                     'x-target-host', 'x-forwarded-for', 'x-real-ip', 'forwarded'):
            if name == 'connection':
                # The proxy may say "Connection: keep-alive" to the upstream, never the client's fields.
                for v in req.header_all('Connection'):
                    self.assertNotIn('x-hop-named', v.lower(), req.headers)
                continue
            self.assertNotIn(name, names, 'field %s reached the upstream: %r' % (name, req.headers))
        self.assertEqual(req.body, body)
        self.assertEqual(req.header('Content-Length'), str(len(body)))

    def test_repeated_fields_keep_their_values(self):
        up = self.start_upstream()
        p = self.start_proxy(self.targets(('a', up)))
        r = self.get(p, headers=[('X-Multi', 'one'), ('Accept', 'text/event-stream'), ('X-Multi', 'two')])
        self.assertEqual(r.status, 200, r)
        vals = up.requests[-1].header_all('X-Multi')
        self.assertIn(vals, (['one', 'two'], ['one, two'], ['one,two']))

    def test_large_response_header_passes(self):
        big = 'v' * 16000
        up = self.start_upstream(lambda req: Resp(200, [('X-Big', big)], body=b'ok'))
        p = self.start_proxy(self.targets(('a', up)))
        r = self.get(p)
        self.assertEqual((r.status, r.body, r.header('X-Big')), (200, b'ok', big))

    def test_response_hop_by_hop_fields_removed(self):
        def handler(req):
            return Resp(200, [('Content-Type', 'application/json'), ('Connection', 'keep-alive, X-Resp-Hop'),
                              ('X-Resp-Hop', '1'), ('Keep-Alive', 'timeout=5'), ('Proxy-Connection', 'keep-alive'),
                              ('X-Request-Id', 'req_123'), ('openai-processing-ms', '42'),
                              ('Set-Cookie', 'a=1; Path=/'), ('Set-Cookie', 'b=2; Path=/')], body=b'{}')
        up = self.start_upstream(handler)
        p = self.start_proxy(self.targets(('a', up)))
        r = self.get(p)
        self.assertEqual((r.status, r.body), (200, b'{}'))
        names = [n.lower() for n, _ in r.headers]
        for hop in ('x-resp-hop', 'keep-alive', 'proxy-connection'):
            self.assertNotIn(hop, names, r.headers)
        for v in r.header_all('Connection'):
            self.assertNotIn('x-resp-hop', v.lower())
        self.assertEqual(r.header_all('X-Request-Id'), ['req_123'])
        self.assertEqual(r.header_all('openai-processing-ms'), ['42'])
        self.assertEqual(r.header_all('Set-Cookie'), ['a=1; Path=/', 'b=2; Path=/'])
        self.assertEqual(r.header('Content-Type'), 'application/json')


if __name__ == '__main__':
    main()
