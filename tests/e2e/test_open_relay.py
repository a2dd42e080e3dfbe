#!/usr/bin/env python3
"""No open relay (issue 3). X-Target-Host lets any client pick the upstream, so by
default a header-chosen target that is a loopback, private, link-local, CGNAT,
multicast or unspecified address is refused with 403 (JSON, code target_not_allowed),
before any connection: canary listeners on the loopback ports named prove that nothing
connected. Non-loopback internal addresses are only checked for a quick 403 (the proxy
refuses before connecting, so no packet leaves the machine).
-allow-private lifts the rule; -allow-hosts restricts which names the header may choose
(tested through a loopback CONNECT proxy, so no name is ever resolved);
-disable-target-header refuses the header, also one naming a configured origin; otherwise
targets configured with -targets are trusted, by Host and when the header names the same
origin. Upstream redirects reach the client
unchanged and are never followed.

The proxy runs WITHOUT -allow-private here unless a test passes it (StrictProxy)."""
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ProxyTestCase, Resp, main, now  # noqa: E402
from hardening_util import Canary, StrictProxy  # noqa: E402


def ipv6_loopback_available():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.bind(('::1', 0))
        s.close()
        return True
    except OSError:
        return False


class OpenRelay(ProxyTestCase):
    def strict_proxy(self, args):
        p = StrictProxy(list(args) + ['-connect-timeout', '2s'])
        p.start()
        self.addCleanup(p.stop_and_check)
        if '-allow-private' not in args:
            self.assertNotIn('-allow-private', p.argv())
        return p

    def assert_forbidden(self, proxy, value, statuses=(403,), host='a.example.test'):
        t0 = now()
        r = self.get(proxy, '/v1/models', headers=[('X-Target-Host', value)], host=host, timeout=10)
        elapsed = now() - t0
        self.assertIn(r.status, statuses, 'X-Target-Host %s: %r' % (value, r))
        err = self.assertJsonError(r)
        if r.status == 403:
            self.assertEqual(err.get('code'), 'target_not_allowed', err)
        self.assertLess(elapsed, 3.0, 'X-Target-Host %s took %.1f s: did the proxy try to connect?' % (value, elapsed))
        return r

    def test_internal_targets_are_refused_without_connecting(self):
        up = self.start_upstream()
        canary = Canary('127.0.0.1')
        self.addCleanup(canary.close)
        canary6 = Canary('::1') if ipv6_loopback_available() else None
        if canary6:
            self.addCleanup(canary6.close)
        p = self.strict_proxy(self.targets(('a', up)))
        cp = canary.port
        loopback = [
            '127.0.0.1:%d' % cp,
            'https://127.0.0.1:%d' % cp,
            'http://127.0.0.1:%d' % cp,
            'localhost:%d' % cp,
            'http://localhost:%d' % cp,
            'LOCALHOST:%d' % cp,
            '0.0.0.0:%d' % cp,                 # unspecified: connecting would reach loopback
            'http://0.0.0.0:%d' % cp,
            '[::ffff:127.0.0.1]:%d' % cp,      # IPv4-mapped loopback
            'http://[::ffff:127.0.0.1]:%d' % cp,
        ]
        if canary6:
            c6 = canary6.port
            loopback += ['[::1]:%d' % c6, 'http://[::1]:%d' % c6, '[::]:%d' % c6, 'http://[::]:%d' % c6,
                         '[0:0:0:0:0:0:0:1]:%d' % c6]
        else:
            loopback += ['[::1]', '[::]']
        for value in loopback:
            with self.subTest(value):
                self.assert_forbidden(p, value)
        # Other spellings of loopback: refused as malformed (400) or as internal (403).
        for value in ('127.1:%d' % cp, '2130706433:%d' % cp, '127.000.000.001:%d' % cp):
            with self.subTest(value):
                self.assert_forbidden(p, value, statuses=(400, 403))
        # Never connected to. (Checked after a moment, so a late connect is seen too.)
        time.sleep(0.3)
        self.assertEqual(canary.accepted, 0, 'the proxy connected to a loopback target chosen by the header')
        if canary6:
            self.assertEqual(canary6.accepted, 0, 'the proxy connected to [::1] chosen by the header')
        self.assertEqual(up.accept_count, 0)
        # Not on loopback: only a quick 403 is checked (no connection is ever attempted).
        others = ['10.0.0.1', '10.255.255.254:8443', '172.16.0.1', '172.31.255.1', '192.168.1.1',
                  'http://192.168.0.10:8080', '169.254.1.1', '169.254.169.254', 'http://169.254.169.254',
                  '100.64.0.1', '100.127.255.254', '224.0.0.1', '239.255.255.250', '255.255.255.255',
                  '[::ffff:10.0.0.1]', '[::ffff:169.254.169.254]', '[fd00::1]', '[fc00::1]', '[fe80::1]',
                  '[ff02::1]', '[ff05::2]']
        for value in others:
            with self.subTest(value):
                self.assert_forbidden(p, value)
        # The configured route still works.
        self.assertEqual(self.get(p, '/v1/models').status, 200)

    def test_allow_private_lifts_the_address_rule(self):
        up = self.start_upstream()
        other = self.start_upstream()
        p = self.strict_proxy(self.targets(('a', up)) + ['-allow-private'])
        self.assertIn('-allow-private', p.argv())
        for value in (other.url, other.url.replace('127.0.0.1', 'localhost'), other.authority):
            with self.subTest(value):
                r = self.get(p, '/v1/chosen', headers=[('X-Target-Host', value)])
                self.assertEqual(r.status, 200, r)
        self.assertEqual(other.request_count, 3)
        self.assertEqual(up.request_count, 0)

    def test_allow_hosts_restricts_header_chosen_names(self):
        # Through a loopback CONNECT proxy: the proxy resolves nothing itself, so a name
        # that passes -allow-hosts shows up as a CONNECT (refused there: 502), and one
        # that does not gets 403 with no CONNECT at all.
        up = self.start_upstream()
        canary = Canary('127.0.0.1')
        self.addCleanup(canary.close)
        cproxy = self.start_connect_proxy()
        p = self.strict_proxy(self.targets(('a', up)) + ['-allow-hosts', 'localhost,*.example.test',
                                                         '-upstream-proxy', cproxy.url])
        refused = ['example.test', 'badexample.test', 'api.example.test.evil.test', 'evil.test',
                   'localhost.evil.test', 'api.example.testx', '127.0.0.1:%d' % canary.port, 'http://evil.test']
        for value in refused:
            with self.subTest(value):
                self.assert_forbidden(p, value)
        self.assertEqual(cproxy.connects, [], 'a name outside -allow-hosts was connected to')
        self.assertEqual(canary.accepted, 0)
        allowed = {'api.example.test': 'api.example.test:443', 'https://A.B.Example.Test': 'A.B.Example.Test:443',
                   'http://x.example.test:8080': 'x.example.test:8080'}
        for value, connect in allowed.items():
            with self.subTest(value):
                r = self.get(p, '/v1/models', headers=[('X-Target-Host', value)], timeout=10)
                self.assertNotEqual(r.status, 403, 'an allowed name was refused: %r' % r)
                self.assertIn(connect.lower(), [c.lower() for c in cproxy.connects])
        # An exact name, tunnelled to the real upstream (certificate for localhost).
        r = self.get(p, '/v1/via-allowed', headers=[('X-Target-Host', 'localhost:%d' % up.port)], timeout=10)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(up.requests[-1].target, '/v1/via-allowed')

    def test_addresses_written_as_the_host_are_judged_before_an_egress_proxy(self):
        # Through an http:// (or socks5h://) proxy the proxy resolves names, so only what
        # the client wrote can be judged: an internal IP literal, or a numeric host the
        # egress proxy's resolver would take for an address, is refused without a CONNECT.
        up = self.start_upstream()
        canary = Canary('127.0.0.1')
        self.addCleanup(canary.close)
        cproxy = self.start_connect_proxy()
        p = self.strict_proxy(self.targets(('a', up)) + ['-upstream-proxy', cproxy.url])
        for value in ('127.0.0.1:%d' % canary.port, 'http://169.254.169.254', '10.1.2.3:8080', '[::1]:%d' % canary.port):
            with self.subTest(value):
                self.assert_forbidden(p, value)
        # The header's parser already refuses these as hosts (400); either way, no CONNECT.
        for value in ('http://2130706433:%d' % canary.port, '0x7f.1:%d' % canary.port):
            with self.subTest(value):
                self.assert_forbidden(p, value, statuses=(400, 403))
        self.assertEqual(cproxy.connects, [], 'an internal address went to the egress proxy')
        self.assertEqual(canary.accepted, 0)
        # A name still goes to the egress proxy, which resolves it (and answers 502 here).
        r = self.get(p, '/v1/models', headers=[('X-Target-Host', 'api.example.test')], timeout=10)
        self.assertNotEqual(r.status, 403, r)
        self.assertEqual([c.lower() for c in cproxy.connects], ['api.example.test:443'])

    def test_allow_hosts_does_not_lift_the_address_rule(self):
        up = self.start_upstream()
        canary = Canary('127.0.0.1')
        self.addCleanup(canary.close)
        p = self.strict_proxy(self.targets(('a', up)) + ['-allow-hosts', 'localhost'])
        self.assert_forbidden(p, 'localhost:%d' % canary.port)  # listed, but loopback
        self.assert_forbidden(p, '127.0.0.1:%d' % canary.port)  # not listed
        self.assertEqual(canary.accepted, 0)

    def test_allow_hosts_with_allow_private(self):
        up = self.start_upstream()
        other = self.start_upstream()
        p = self.strict_proxy(self.targets(('a', up)) + ['-allow-hosts', 'localhost', '-allow-private'])
        r = self.get(p, '/v1/local', headers=[('X-Target-Host', 'localhost:%d' % other.port)])
        self.assertEqual(r.status, 200, r)
        self.assert_forbidden(p, '127.0.0.1:%d' % other.port)  # the address is not a listed name
        self.assertEqual(other.request_count, 1)

    def test_disable_target_header(self):
        up = self.start_upstream()
        other = self.start_upstream()
        configured = self.start_upstream()
        p = self.strict_proxy(self.targets(('a', up), ('b', configured)) + ['-disable-target-header', '-allow-private'])
        # Refused altogether: a configured origin named in the header included, which
        # would otherwise move the request away from its Host route.
        for value in (other.url, other.authority, 'api.example.test', configured.url, configured.authority):
            with self.subTest(value):
                self.assert_forbidden(p, value)
        self.assertEqual(other.accept_count, 0)
        self.assertEqual(configured.accept_count, 0)
        r = self.get(p, '/v1/by-host')
        self.assertEqual(r.status, 200, r)
        self.assertEqual(up.requests[-1].target, '/v1/by-host')

    def test_configured_loopback_target_is_trusted(self):
        up = self.start_upstream()
        canary = Canary('127.0.0.1')
        self.addCleanup(canary.close)
        p = self.strict_proxy(self.targets(('a', up)))
        # By Host.
        self.assertEqual(self.get(p, '/v1/by-host').status, 200)
        # By the header naming the same origin, in any spelling of it.
        for value in (up.url, up.authority, 'HTTPS://%s/' % up.authority.upper()):
            with self.subTest(value):
                r = self.get(p, '/v1/by-header', headers=[('X-Target-Host', value)], host='unrelated.example.test')
                self.assertEqual(r.status, 200, r)
        self.assertEqual(up.request_count, 4)
        # The same host with another scheme or port is another origin: not trusted.
        before = up.accept_count
        self.assert_forbidden(p, 'http://' + up.authority)
        self.assert_forbidden(p, '127.0.0.1:%d' % canary.port)
        self.assertEqual(up.accept_count, before)
        self.assertEqual(canary.accepted, 0)

    def test_default_target_on_loopback_is_trusted(self):
        up = self.start_upstream()
        p = self.strict_proxy(['-default-target', up.url])
        r = self.get(p, '/v1/default', host='anything.example.test')
        self.assertEqual(r.status, 200, r)

    def test_default_target_named_in_the_header_is_trusted(self):
        # Like -targets' origins, on a fresh proxy (nothing pooled yet); it was refused 403
        # until a request routed by Host had pooled a connection, then served.
        up = self.start_upstream()
        p = self.strict_proxy(['-default-target', up.url])
        for value in (up.url, up.authority):
            with self.subTest(value):
                r = self.get(p, '/v1/by-header', headers=[('X-Target-Host', value)], host='anything.example.test')
                self.assertEqual(r.status, 200, r)
        self.assertEqual(up.request_count, 2)
        self.assert_forbidden(p, 'http://' + up.authority)  # another origin: not trusted

    def test_redirects_are_passed_through_not_followed(self):
        other = self.start_upstream()
        location = other.url + '/v1/stolen'

        def handler(req):
            status = int(req.target.rsplit('/', 1)[1])
            return Resp(status, [('Location', location), ('Content-Type', 'text/plain')],
                        body=b'moved ' + str(status).encode())

        up = self.start_upstream(handler)
        p = self.strict_proxy(self.targets(('a', up)))
        for status in (301, 302, 303, 307, 308):
            with self.subTest(status):
                r = self.get(p, '/v1/redirect/%d' % status)
                self.assertEqual(r.status, status, r)
                self.assertEqual(r.header('Location'), location)
                self.assertEqual(r.body, b'moved %d' % status)
        self.assertEqual(other.accept_count, 0, 'the proxy followed a redirect')


if __name__ == '__main__':
    main()
