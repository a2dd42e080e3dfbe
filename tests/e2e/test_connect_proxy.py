#!/usr/bin/env python3
"""Upstream connections through an HTTP CONNECT proxy: -upstream-proxy, and local mode
(ENV=local with HTTP_PROXY / http_proxy / the default http://127.0.0.1:10809). TLS is
still verified end to end through the tunnel; local mode logs each request."""
import os
import re
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ConnectProxy, ProxyTestCase, main  # noqa: E402


class Tunnel(ProxyTestCase):
    def test_upstream_proxy_flag(self):
        up = self.start_upstream()
        cp = self.start_connect_proxy()
        p = self.start_proxy(self.targets(('a', up)) + ['-upstream-proxy', cp.url])
        c = self.client(p)
        for i in range(3):
            c.request('GET', '/v1/models?i=%d' % i)
            r = c.read_response()
            self.assertEqual(r.status, 200, r)
        self.assertEqual(cp.connects, ['127.0.0.1:%d' % up.port], 'pooled tunnel not reused, or wrong target')
        self.assertEqual(up.accept_count, 1)
        self.assertEqual([q.target for q in up.requests], ['/v1/models?i=%d' % i for i in range(3)])
        self.assertEqual(up.requests[0].header('Host'), up.authority)
        self.assertIsNone(up.conns[0].sni)
        self.assertEqual(cp.errors, [])

    def test_interim_answers_before_the_200_are_skipped(self):
        # RFC 9110 section 15.2: a client parses 1xx answers before the final one.
        up = self.start_upstream()
        cp = self.start_connect_proxy(interim=b'HTTP/1.1 100 Continue\r\n\r\n'
                                              b'HTTP/1.1 102 Processing\r\nX-A: 1\r\n\r\n')
        p = self.start_proxy(self.targets(('a', up)) + ['-upstream-proxy', cp.url])
        r = self.get(p, '/v1/models')
        self.assertEqual(r.status, 200, r)
        self.assertEqual(cp.connects, ['127.0.0.1:%d' % up.port])
        self.assertEqual(cp.errors, [])

    def test_proxy_credentials_sent_as_basic_authorization(self):
        up = self.start_upstream()
        cp = self.start_connect_proxy()
        url = 'http://user:s3cret@127.0.0.1:%d' % cp.port
        p = self.start_proxy(self.targets(('a', up)) + ['-upstream-proxy', url])
        r = self.get(p, '/v1/models')
        self.assertEqual(r.status, 200, r)
        self.assertEqual(len(cp.requests), 1)
        start, headers = cp.requests[0]
        self.assertEqual(start, 'CONNECT 127.0.0.1:%d HTTP/1.1' % up.port)
        auth = [v for n, v in headers if n.lower() == 'proxy-authorization']
        self.assertEqual(auth, ['Basic dXNlcjpzM2NyZXQ='])  # base64("user:s3cret")
        # The credentials are for the proxy only: never forwarded upstream.
        self.assertIsNone(up.requests[0].header('Proxy-Authorization'))

    def test_tls_verified_through_the_tunnel(self):
        bad = self.start_upstream(cert='other_server')
        wrong = self.start_upstream(cert='wrong')
        cp = self.start_connect_proxy()
        p = self.start_proxy(self.targets(('a', bad), ('w', wrong)) + ['-upstream-proxy', cp.url])
        for host, up in (('a.example.test', bad), ('w.example.test', wrong)):
            with self.subTest(host=host):
                r = self.get(p, '/v1/models', host=host)
                self.assertJsonError(r, 502)
                self.assertEqual(up.request_count, 0)
        self.assertEqual(sorted(cp.connects), sorted(['127.0.0.1:%d' % bad.port, '127.0.0.1:%d' % wrong.port]))

    def test_tunnel_refused_or_proxy_down_is_502(self):
        up = self.start_upstream()
        cp = self.start_connect_proxy(status=403)
        p = self.start_proxy(self.targets(('a', up)) + ['-upstream-proxy', cp.url])
        self.assertJsonError(self.get(p), 502)
        self.assertEqual(up.accept_count, 0)
        with socket.socket() as s:
            s.bind(('127.0.0.1', 0))
            dead = s.getsockname()[1]
        p2 = self.start_proxy(self.targets(('a', up)) + ['-upstream-proxy', 'http://127.0.0.1:%d' % dead])
        self.assertJsonError(self.get(p2), 502)

    def check_local_mode(self, cp, env):
        up = self.start_upstream()
        p = self.start_proxy(self.targets(('a', up)), env=dict(env, ENV='local'))
        r = self.get(p, '/release/v1/chat/completions?x=1', method='POST', body=b'{}')
        self.assertEqual(r.status, 200, r)
        self.assertEqual(cp.connects, ['127.0.0.1:%d' % up.port])
        self.assertEqual(up.requests[0].target, '/v1/chat/completions?x=1')
        log = p.stderr()
        self.assertRegex(log, r'(?m)^\[PROXY\] \d{4}/\d\d/\d\d \d\d:\d\d:\d\d Proxying request to: '
                         + re.escape('https://127.0.0.1:%d/v1/chat/completions' % up.port))

    def test_local_mode_uses_HTTP_PROXY(self):
        cp = self.start_connect_proxy()
        other = self.start_connect_proxy()
        self.check_local_mode(cp, {'HTTP_PROXY': cp.url, 'http_proxy': other.url})
        self.assertEqual(other.connects, [])

    def test_local_mode_uses_http_proxy_lowercase(self):
        cp = self.start_connect_proxy()
        self.check_local_mode(cp, {'http_proxy': cp.url})

    def test_local_mode_default_proxy_port_10809(self):
        try:
            cp = ConnectProxy(port=10809)
        except OSError as e:
            self.skipTest('127.0.0.1:10809 is busy here (%s)' % e)
        self.addCleanup(cp.close)
        self.check_local_mode(cp, {})


if __name__ == '__main__':
    main()
