#!/usr/bin/env python3
"""Upstream connections through a real SOCKS5 server (-upstream-proxy socks5:// and
socks5h://): Debian's dante-server (danted, no authentication) and microsocks (RFC 1929
user and password), each started here on a 127.0.0.1 port with its own configuration and
stopped by PID. TLS is verified end to end through the tunnel. Skipped, saying why, when
neither server is installed (scripts/deps.sh installs both)."""
import os
import shutil
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ProxyTestCase, free_port, main, new_tmp_path, wait_until  # noqa: E402
from hardening_util import StrictProxy  # noqa: E402


def find(name):
    return shutil.which(name) or next((p for p in ('/usr/sbin/' + name, '/usr/bin/' + name)
                                       if os.access(p, os.X_OK)), None)


MICROSOCKS = find('microsocks')
DANTED = find('danted')
need_microsocks = unittest.skipUnless(MICROSOCKS, 'microsocks is not installed (scripts/deps.sh)')
need_dante = unittest.skipUnless(DANTED, 'danted is not installed (package dante-server; scripts/deps.sh)')


def localhost_first():
    """The address 'localhost' resolves to first here (what a SOCKS server that resolves
    the name connects to)."""
    return socket.getaddrinfo('localhost', None, type=socket.SOCK_STREAM)[0][4][0]


class SocksServer:
    def __init__(self, argv, port, log):
        self.port = port
        self.log_path = log
        self.log = open(log, 'wb')
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        self.url = '127.0.0.1:%d' % port

        def listening():
            if self.proc.poll() is not None:
                raise AssertionError('%s exited with %s: %s' % (argv[0], self.proc.returncode, self.output()))
            try:
                socket.create_connection(('127.0.0.1', port), timeout=1).close()
                return True
            except OSError:
                return False
        try:
            wait_until(listening, timeout=10)
        except BaseException:
            self.stop()
            raise

    def output(self):
        self.log.flush()
        with open(self.log_path, 'rb') as f:
            return f.read().decode('utf-8', 'replace')

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()  # by PID: never a system service, never by name
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class Socks(ProxyTestCase):
    def start_microsocks(self, user=None, password=None):
        port = free_port()
        argv = [MICROSOCKS, '-i', '127.0.0.1', '-p', str(port)]
        if user is not None:
            argv += ['-u', user, '-P', password]
        s = SocksServer(argv, port, new_tmp_path('microsocks.log'))
        self.addCleanup(s.stop)
        return s

    def start_dante(self):
        port = free_port()
        conf = new_tmp_path('danted.conf')
        externals = ['127.0.0.1']
        if ':' in localhost_first():
            externals.append('::1')
        lines = ['logoutput: stderr',
                 'internal: 127.0.0.1 port = %d' % port]
        lines += ['external: %s' % e for e in externals]
        lines += ['clientmethod: none', 'socksmethod: none']
        if os.geteuid() == 0:  # it drops to nobody after binding
            lines += ['user.privileged: root', 'user.unprivileged: nobody']
        lines += ['client pass {\n from: 127.0.0.0/8 to: 0.0.0.0/0\n}']
        # Only loopback destinations: the tests never leave the machine.
        for to in ('127.0.0.0/8', '::1/128'):
            lines += ['socks pass {\n from: 127.0.0.0/8 to: %s\n log: connect error\n command: connect\n}' % to]
        lines += ['socks block {\n from: 0.0.0.0/0 to: 0.0.0.0/0\n log: connect error\n}']
        with open(conf, 'w') as f:
            f.write('\n'.join(lines) + '\n')
        s = SocksServer([DANTED, '-f', conf, '-p', conf + '.pid', '-N', '1'], port, conf + '.log')
        self.addCleanup(s.stop)
        return s

    def strict_proxy(self, args):
        """A proxy without -allow-private: X-Target-Host may not reach internal addresses."""
        p = StrictProxy(args)
        p.start()
        self.addCleanup(p.stop_and_check)
        self.assertNotIn('-allow-private', p.argv())
        return p

    def check_requests(self, p, up, n=3):
        c = self.client(p)
        for i in range(n):
            c.request('GET', '/v1/models?i=%d' % i)
            r = c.read_response()
            self.assertEqual(r.status, 200, r)
        self.assertEqual([q.target for q in up.requests], ['/v1/models?i=%d' % i for i in range(n)])

    @need_dante
    def test_socks5h_sends_the_name_and_pools_the_tunnel(self):
        d = self.start_dante()
        up = self.start_upstream(host=localhost_first())
        p = self.start_proxy(['-targets', 'a:https://localhost:%d' % up.port,
                              '-upstream-proxy', 'socks5h://' + d.url])
        self.check_requests(p, up)
        self.assertEqual(up.accept_count, 1, 'the pooled tunnel was not reused')
        self.assertEqual(up.requests[0].header('Host'), 'localhost:%d' % up.port)
        self.assertEqual(up.conns[0].sni, 'localhost')
        # The name goes to the SOCKS server, which resolves it: a client-chosen name
        # cannot be checked here (as through an http:// proxy; README "Upstream proxy"),
        # where socks5:// refuses the same request (the next test).
        strict = self.strict_proxy(['-targets', 'a:https://localhost:%d' % up.port,
                                    '-upstream-proxy', 'socks5h://' + d.url])
        r = self.get(strict, headers=[('X-Target-Host', 'https://localhost:%d' % up.port)])
        self.assertEqual(r.status, 200, r)

    @need_dante
    def test_socks5_resolves_here_and_checks_client_chosen_addresses(self):
        d = self.start_dante()
        up = self.start_upstream()
        p = self.start_proxy(self.targets(('a', up)) + ['-upstream-proxy', 'socks5://' + d.url])
        self.check_requests(p, up, 2)
        self.assertEqual(up.accept_count, 1)
        # socks5:// resolves here, so the internal-address rule applies to a client-chosen
        # name as for a direct connection: refused before any SOCKS request.
        strict = self.strict_proxy(self.targets(('a', up)) + ['-upstream-proxy', 'socks5://' + d.url])
        r = self.get(strict, headers=[('X-Target-Host', 'https://localhost:%d' % up.port)])
        err = self.assertJsonError(r, 403)
        self.assertEqual(err['code'], 'target_not_allowed')
        self.assertEqual(up.request_count, 2)
        # The destination refuses: the SOCKS server's reply code, in words.
        closed = free_port()
        r = self.get(p, headers=[('X-Target-Host', 'https://127.0.0.1:%d' % closed)])
        err = self.assertJsonError(r, 502)
        self.assertEqual(err['code'], 'upstream_proxy_error')
        self.assertIn('(REP 5)', err['message'])
        self.assertIn('connection refused', err['message'])

    @need_microsocks
    def test_user_and_password(self):
        m = self.start_microsocks('user', 'p@ss')
        up = self.start_upstream()
        ok = self.start_proxy(self.targets(('a', up)) +
                              ['-upstream-proxy', 'socks5h://user:p%40ss@' + m.url])
        self.check_requests(ok, up, 2)
        self.assertEqual(up.accept_count, 1)
        self.assertIsNone(up.requests[0].header('Proxy-Authorization'))

        bad = self.start_proxy(self.targets(('a', up)) + ['-upstream-proxy', 'socks5://user:Wr0ngPa55@' + m.url])
        err = self.assertJsonError(self.get(bad), 502)
        self.assertEqual(err['code'], 'upstream_proxy_error')
        self.assertIn('authentication failed', err['message'])
        self.assertNotIn('Wr0ngPa55', bad.stderr())  # the password is never logged

        none = self.start_proxy(self.targets(('a', up)) + ['-upstream-proxy', 'socks5://' + m.url])
        err = self.assertJsonError(self.get(none), 502)
        self.assertIn('requires a user and password', err['message'])
        self.assertEqual(up.accept_count, 1)

    def test_socks_server_down_is_502(self):
        up = self.start_upstream()
        dead = free_port()
        p = self.start_proxy(self.targets(('a', up)) + ['-upstream-proxy', 'socks5h://127.0.0.1:%d' % dead])
        err = self.assertJsonError(self.get(p), 502)
        self.assertEqual(err['code'], 'upstream_unreachable')
        # The client is told the upstream proxy failed; where it is, only the log says.
        self.assertIn('the upstream proxy', err['message'])
        self.assertNotIn(str(dead), err['message'])
        self.assertTrue(wait_until(lambda: 'socks5h://127.0.0.1:%d' % dead in p.stderr(), timeout=5), p.stderr())
        self.assertEqual(up.accept_count, 0)

    def test_socks_server_that_never_answers_times_out(self):
        # A listener that accepts and says nothing: -connect-timeout bounds the handshake.
        ls = socket.socket()
        ls.bind(('127.0.0.1', 0))
        ls.listen(4)
        self.addCleanup(ls.close)
        up = self.start_upstream()
        p = self.start_proxy(self.targets(('a', up)) + ['-connect-timeout', '1s',
                                                        '-upstream-proxy', 'socks5://127.0.0.1:%d' % ls.getsockname()[1]])
        t0 = time.monotonic()
        err = self.assertJsonError(self.get(p), 504)
        self.assertLess(time.monotonic() - t0, 5)
        self.assertIn('socks5 handshake', err['message'])

    @need_dante
    @need_microsocks
    def test_egress_per_origin_from_the_config_file(self):
        # Each origin its own way out (README "Configuration file": egress): target a
        # through microsocks with a password, b direct, c through -upstream-proxy
        # (dante); d is a's origin reached directly, so its connections are pooled apart
        # from a's (the pool key names the egress).
        m = self.start_microsocks('user', 'Per0rigin')
        d = self.start_dante()
        up_a, up_b, up_c = self.start_upstream(), self.start_upstream(), self.start_upstream()
        conf = new_tmp_path('egress.conf')
        with open(conf, 'w') as f:
            f.write('upstream-proxy = socks5://%s\n'
                    '[target a]\norigin = %s\negress = socks5h://user:Per0rigin@%s\n'
                    '[target b]\norigin = %s\negress = direct\n'
                    '[target c]\norigin = %s\n'
                    '[target d]\norigin = %s\negress = direct\n' % (d.url, up_a.url, m.url, up_b.url, up_c.url,
                                                                        up_a.url))
        p = self.start_proxy(['-config', conf], allow_no_route=True)  # the routes are the file's
        c = self.client(p)
        for host in ('a.example.test', 'b.example.test', 'c.example.test', 'd.example.test') * 2:
            c.request('GET', '/v1/models', host=host)
            r = c.read_response()
            self.assertEqual(r.status, 200, (host, r))
        self.assertEqual(up_a.request_count, 4)
        self.assertEqual(up_a.accept_count, 2, 'a (via microsocks) and d (direct) must not share a connection')
        self.assertEqual((up_b.accept_count, up_c.accept_count), (1, 1))

        def through(server, up):
            return ':%d' % up.port in server.output()
        wait_until(lambda: through(m, up_a) and through(d, up_c), timeout=5)
        self.assertFalse(through(m, up_b) or through(m, up_c), m.output())
        self.assertFalse(through(d, up_a) or through(d, up_b), d.output())
        self.assertNotIn('Per0rigin', p.stderr())


if __name__ == '__main__':
    if not (MICROSOCKS or DANTED):
        print('note: neither microsocks nor danted is installed; the tests that need one are skipped')
    main()
