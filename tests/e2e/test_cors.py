#!/usr/bin/env python3
"""CORS (-cors-origins, README "CORS"), byte by byte over raw sockets: preflights answered
by the proxy (granted origin: 204 with the grant; other origin: 403 without one), the
request-header allow-set, the fields added to relayed answers (the upstream's
Access-Control-* replaced, its Vary merged) and to the proxy's own errors, "*", the
environment variable, and nothing at all without the flag (OPTIONS forwarded).
The browser's view of the same is tests/e2e/test_cors_browser.py."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ProxyTestCase, Resp, free_port, main  # noqa: E402

APP = 'http://app.example.test:8080'
OTHER = 'https://evil.example.test'


def preflight(origin, method='POST', headers='authorization,content-type'):
    h = [('Origin', origin), ('Access-Control-Request-Method', method)]
    if headers is not None:
        h.append(('Access-Control-Request-Headers', headers))
    return h


def vary_tokens(r):
    return [t.strip().lower() for v in r.header_all('Vary') for t in v.split(',') if t.strip()]


class Cors(ProxyTestCase):
    def upstream_with_cors_fields(self):
        def handler(req):
            return Resp(200, [('Content-Type', 'application/json'), ('Vary', 'Accept-Encoding'),
                              ('Access-Control-Allow-Origin', '*'), ('Access-Control-Allow-Credentials', 'false'),
                              ('x-request-id', 'req_123')], body=b'{"ok":true}')
        return self.start_upstream(handler)

    def test_preflight_granted_is_answered_by_the_proxy(self):
        up = self.start_upstream()
        p = self.start_proxy(self.targets(('a', up)) + ['-cors-origins', 'https://x.example.test, ' + APP])
        c = self.client(p)
        c.request('OPTIONS', '/v1/chat/completions', preflight(
            APP, headers='authorization, content-type, x-stainless-os, x-stainless-retry-count, openai-beta, '
                         'x-secret-thing, api-key'))
        r = c.read_response('OPTIONS')
        self.assertEqual(r.status, 204, r)
        self.assertEqual(r.header('Access-Control-Allow-Origin'), APP)
        self.assertEqual(r.header('Access-Control-Allow-Credentials'), 'true')
        methods = [m.strip() for m in r.header('Access-Control-Allow-Methods').split(',')]
        for m in ('GET', 'POST', 'DELETE', 'OPTIONS'):
            self.assertIn(m, methods)
        granted = [h.strip() for h in r.header('Access-Control-Allow-Headers').split(',')]
        self.assertEqual(granted, ['authorization', 'content-type', 'x-stainless-os', 'x-stainless-retry-count',
                                   'openai-beta', 'api-key'])
        self.assertGreater(int(r.header('Access-Control-Max-Age')), 0)
        self.assertEqual(vary_tokens(r), ['origin', 'access-control-request-method',
                                          'access-control-request-headers'])
        self.assertIsNone(r.header('Content-Length'))  # a 204 has none
        self.assertDateNow(r)  # the proxy's own answer (RFC 9110 6.6.1)
        # Answered here, the connection kept: the next request on it is forwarded.
        c.request('GET', '/v1/models', [('Origin', APP)])
        r2 = c.read_response()
        self.assertEqual(r2.status, 200, r2)
        self.assertEqual(up.request_count, 1)
        self.assertEqual(up.requests[0].method, 'GET')
        self.assertEqual(up.requests[0].header('Origin'), APP)  # forwarded end to end

    def test_preflight_without_requested_headers_and_origin_case(self):
        p = self.start_proxy(['-default-target', 'https://127.0.0.1:%d' % free_port(),
                              '-cors-origins', 'HTTPS://Chat.Example.TEST:443'])
        r = self.get(p, '/v1/models', method='OPTIONS', headers=preflight('https://chat.example.test', 'GET', None))
        self.assertEqual(r.status, 204, r)
        self.assertEqual(r.header('Access-Control-Allow-Origin'), 'https://chat.example.test')
        self.assertIsNone(r.header('Access-Control-Allow-Headers'))

    def test_only_allowed_headers_are_granted(self):
        p = self.start_proxy(['-default-target', 'https://127.0.0.1:%d' % free_port(), '-cors-origins', '*'])
        r = self.get(p, '/v1/models', method='OPTIONS', headers=preflight(OTHER, headers='x-secret, cookie'))
        self.assertEqual(r.status, 204, r)
        self.assertEqual(r.header('Access-Control-Allow-Origin'), OTHER)
        self.assertIsNone(r.header('Access-Control-Allow-Headers'))
        r = self.get(p, '/v1/models', method='OPTIONS',
                     headers=preflight(OTHER, headers='OpenAI-Organization,OpenAI-Project,X-Stainless-Lang,x-stainless'))
        self.assertEqual(r.header('Access-Control-Allow-Headers'),
                         'OpenAI-Organization, OpenAI-Project, X-Stainless-Lang')

    def test_preflight_from_other_origin_is_403_without_grant(self):
        up = self.start_upstream()
        p = self.start_proxy(self.targets(('a', up)) + ['-cors-origins', APP])
        for origin in (OTHER, 'null', APP + '/', 'http://app.example.test:8081'):
            with self.subTest(origin=origin):
                r = self.get(p, '/v1/chat/completions', method='OPTIONS', headers=preflight(origin))
                err = self.assertJsonError(r, 403)
                self.assertEqual(err['code'], 'origin_not_allowed')
                self.assertIsNone(r.header('Access-Control-Allow-Origin'))
                self.assertIsNone(r.header('Access-Control-Allow-Methods'))
                self.assertIn('origin', vary_tokens(r))
        self.assertEqual(up.request_count, 0, 'a preflight was forwarded')

    def test_relayed_answer_gets_the_proxy_fields(self):
        up = self.upstream_with_cors_fields()
        p = self.start_proxy(self.targets(('a', up)) + ['-cors-origins', APP])
        r = self.get(p, '/v1/models', headers=[('Origin', APP)])
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, b'{"ok":true}')
        self.assertEqual(r.header_all('Access-Control-Allow-Origin'), [APP])  # the upstream's "*" replaced
        self.assertEqual(r.header_all('Access-Control-Allow-Credentials'), ['true'])
        self.assertEqual(r.header_all('Vary'), ['Accept-Encoding, Origin'])
        exposed = [h.strip() for h in r.header('Access-Control-Expose-Headers').split(',')]
        for h in ('x-request-id', 'openai-processing-ms', 'openai-version', 'openai-organization',
                  'x-ratelimit-remaining-tokens', 'x-ratelimit-reset-requests', 'retry-after'):
            self.assertIn(h, exposed)
        self.assertEqual(r.header('x-request-id'), 'req_123')

    def test_other_origin_and_no_origin_get_vary_only(self):
        up = self.upstream_with_cors_fields()
        p = self.start_proxy(self.targets(('a', up)) + ['-cors-origins', APP])
        for headers in ([('Origin', OTHER)], []):
            with self.subTest(headers=headers):
                r = self.get(p, '/v1/models', headers=headers)
                self.assertEqual(r.status, 200, r)  # forwarded: CORS is the browser's check
                self.assertEqual(r.header_all('Vary'), ['Accept-Encoding, Origin'])
                self.assertEqual([n for n, _ in r.headers if n.lower().startswith('access-control-')], [])

    def test_vary_merging(self):
        varies = {'/none': [], '/two': ['accept-encoding', 'Authorization'], '/has': ['Origin, Accept'],
                  '/star': ['*']}
        up = self.start_upstream(lambda req: Resp(200, [('Vary', v) for v in varies[req.target]], body=b'x'))
        p = self.start_proxy(self.targets(('a', up)) + ['-cors-origins', '*'])
        expect = {'/none': 'Origin', '/two': 'accept-encoding, Authorization, Origin', '/has': 'Origin, Accept',
                  '/star': '*'}
        for path, vary in expect.items():
            with self.subTest(path=path):
                r = self.get(p, path, headers=[('Origin', APP)])
                self.assertEqual(r.header_all('Vary'), [vary])
                self.assertEqual(r.header('Access-Control-Allow-Origin'), APP)  # "*": echoed
                self.assertIsNone(r.header('Access-Control-Allow-Credentials'))  # never with "*"

    def test_proxy_errors_carry_the_fields(self):
        dead = free_port()
        p = self.start_proxy(['-targets', 'd:https://127.0.0.1:%d' % dead, '-cors-origins', APP,
                              '-max-body-size', '10'])
        cases = [('d.example.test', 'GET', None, 502), ('nowhere.example.test', 'GET', None, 404),
                 ('d.example.test', 'POST', b'x' * 100, 413)]
        for host, method, body, status in cases:
            with self.subTest(status=status):
                r = self.get(p, '/v1/models', host=host, method=method, body=body, headers=[('Origin', APP)])
                self.assertJsonError(r, status)
                self.assertEqual(r.header('Access-Control-Allow-Origin'), APP)
                self.assertIn('x-request-id', r.header('Access-Control-Expose-Headers'))
                self.assertIn('origin', vary_tokens(r))

    def test_env_variable(self):
        p = self.start_proxy(['-default-target', 'https://127.0.0.1:%d' % free_port()],
                             env={'OPENAI_PROXY_CORS_ORIGINS': APP})
        r = self.get(p, '/v1/models', method='OPTIONS', headers=preflight(APP))
        self.assertEqual(r.status, 204, r)
        self.assertEqual(r.header('Access-Control-Allow-Origin'), APP)

    def test_off_by_default_options_forwarded(self):
        up = self.upstream_with_cors_fields()
        p = self.start_proxy(self.targets(('a', up)))
        r = self.get(p, '/v1/models', method='OPTIONS', headers=preflight(APP))
        self.assertEqual(r.status, 200, r)  # the upstream's answer
        self.assertEqual(up.request_count, 1)
        self.assertEqual(up.requests[0].method, 'OPTIONS')
        self.assertEqual(r.header_all('Access-Control-Allow-Origin'), ['*'])  # the upstream's, untouched
        self.assertEqual(r.header_all('Vary'), ['Accept-Encoding'])

    def test_bad_origins_refused_at_start(self):
        from harness import run_cli
        for value, needle in (('https://app.example.test/', 'no path'), ('app.example.test', 'scheme://host'),
                              ('*,https://a.example.test', 'alone'), ('https://a.example.test:99999', 'port'),
                              ('null', 'null'), ('https://*.example.test', 'wildcard'), ('', 'empty')):
            with self.subTest(value=value):
                status, _out, err, _t = run_cli(['-default-target', '127.0.0.1:1', '-cors-origins', value])
                self.assertEqual(status, 2, err)
                self.assertIn('-cors-origins', err)
                self.assertIn(needle, err)


if __name__ == '__main__':
    main()
