#!/usr/bin/env python3
"""Command line and environment: -h/--help, --version, Go flag syntax, env variables,
flag and env targets merged, IPv6 listen, and every bad input refused with exit
status 2 and one clear message before anything binds."""
import os
import re
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (HOST, Proxy, ProxyTestCase, certs, free_port, main, run_cli, request_once, wait_until)  # noqa: E402

START_RE = re.compile(r'^\[PROXY\] \d{4}/\d\d/\d\d \d\d:\d\d:\d\d Starting proxy server on (\S+)\s*$', re.M)


class HelpAndVersion(ProxyTestCase):
    OPTIONS = ['-listen', '-targets', '-default-target', '-ca-file', '-upstream-proxy', '-buffer-size',
               '-pool-max-idle', '-pool-max-idle-per-host', '-pool-idle-timeout', '-connect-timeout',
               '-config', '-check-config', '-access-keys', '-allow-anonymous']
    DEFAULTS = [':9001', '1024', '1024', '512', '90s', '10s']
    ENVS = ['OPENAI_PROXY_LISTEN', 'OPENAI_PROXY_TARGETS', 'OPENAI_PROXY_DEFAULT_TARGET', 'OPENAI_PROXY_CONFIG',
            'OPENAI_PROXY_ACCESS_KEYS']

    def test_help_lists_every_option_with_its_default(self):
        for flag in ('-h', '--help', '-help'):
            with self.subTest(flag=flag):
                status, out, err, secs = run_cli([flag])
                self.assertEqual(status, 0, 'stdout=%r stderr=%r' % (out, err))
                text = out + err
                for opt in self.OPTIONS:
                    self.assertRegex(text, r'(^|[\s,])-?%s\b' % re.escape(opt), 'option %s missing from help' % opt)
                for d in self.DEFAULTS:
                    self.assertIn(d, text, 'default %s missing from help' % d)
                for e in self.ENVS:
                    self.assertIn(e, text, 'env var %s missing from help' % e)
                self.assertNotIn('Starting proxy server', text)

    def test_version(self):
        status, out, err, _ = run_cli(['--version'])
        self.assertEqual(status, 0, err)
        self.assertRegex(out + err, r'\d+\.\d+')
        self.assertNotIn('Starting proxy server', out + err)


class BadInput(ProxyTestCase):
    """Each bad input: exit 2 quickly, a short clear message naming the problem, no start line."""

    def check_refused(self, args, must_mention, env=None):
        args = list(args)
        port = None
        if not any(re.match(r'^--?listen(=|$)', a) for a in args) and 'OPENAI_PROXY_LISTEN' not in (env or {}):
            port = free_port()
            args = ['-listen', '127.0.0.1:%d' % port] + args
        status, out, err, secs = run_cli(args, env=env)
        self.assertEqual(status, 2, 'args=%r env=%r: status %s, stderr=%r' % (args, env, status, err))
        self.assertLess(secs, 5.0)
        lines = [ln for ln in err.splitlines() if ln.strip()]
        self.assertTrue(lines, 'no message on stderr for %r' % (args,))
        self.assertLessEqual(len(lines), 3, 'message is not short: %r' % err)
        self.assertTrue(any(m.lower() in err.lower() for m in must_mention),
                        'stderr %r mentions none of %r' % (err, must_mention))
        self.assertNotIn('Starting proxy server', err + out)
        if port is not None:  # and nothing is left listening on the port it was given
            with socket.socket() as s:
                s.settimeout(1.0)
                self.assertNotEqual(s.connect_ex(('127.0.0.1', port)), 0)

    def test_unknown_flag(self):
        self.check_refused(['-targets', 'a:127.0.0.1:1', '-bogus-flag'], ['bogus-flag'])
        self.check_refused(['--nope=1', '-targets', 'a:127.0.0.1:1'], ['nope'])

    def test_bad_listen_address(self):
        for addr in ('127.0.0.1:99999', '127.0.0.1', '127.0.0.1:abc', '[::1', ':-1', '[::1]:9x'):
            with self.subTest(addr=addr):
                self.check_refused(['-listen', addr, '-targets', 'a:127.0.0.1:1'], [addr, 'listen'])

    def test_bad_listen_address_from_env(self):
        self.check_refused(['-targets', 'a:127.0.0.1:1'], ['127.0.0.1:notaport', 'OPENAI_PROXY_LISTEN', 'listen'],
                           env={'OPENAI_PROXY_LISTEN': '127.0.0.1:notaport'})

    def test_malformed_target(self):
        for spec in ('nocolon', 'a:', ':127.0.0.1:1', 'a:127.0.0.1:1,,b', 'a:https://', 'a:127.0.0.1:notaport'):
            with self.subTest(spec=spec):
                self.check_refused(['-targets', spec], [spec, 'target'])

    def test_malformed_target_from_env(self):
        self.check_refused([], ['nocolon', 'OPENAI_PROXY_TARGETS', 'target'], env={'OPENAI_PROXY_TARGETS': 'nocolon'})

    def test_malformed_default_target(self):
        self.check_refused(['-targets', 'a:127.0.0.1:1', '-default-target', 'https://'], ['default-target', 'target'])

    def test_missing_value_and_positional_argument(self):
        self.check_refused(['-targets', 'a:127.0.0.1:1', '-listen'], ['listen', 'argument', 'value'])
        self.check_refused(['-targets', 'a:127.0.0.1:1', 'stray-positional'], ['stray-positional'])

    def test_bad_numbers_and_durations(self):
        cases = [('-buffer-size', 'abc'), ('-buffer-size', '0'), ('-pool-max-idle', '-1'),
                 ('-pool-idle-timeout', 'soon'), ('-connect-timeout', '10 parsecs'), ('-connect-timeout', 'xyz')]
        for flag, value in cases:
            with self.subTest(flag=flag, value=value):
                self.check_refused(['-targets', 'a:127.0.0.1:1', flag, value], [flag.lstrip('-'), value])

    def test_missing_ca_file(self):
        missing = os.path.join(certs().dir, 'does-not-exist.pem')
        self.check_refused(['-targets', 'a:127.0.0.1:1', '-ca-file', missing], ['does-not-exist.pem', 'ca-file'])

    def test_ca_file_without_a_pem_certificate(self):
        # Checked before binding: the file must at least have a PEM certificate's BEGIN
        # line (the certificates themselves are parsed on the first upstream TLS use).
        path = os.path.join(certs().dir, 'not-a-bundle-%d.pem' % os.getpid())
        with open(path, 'w') as f:
            f.write('not a certificate\n')
        self.addCleanup(os.unlink, path)
        self.check_refused(['-targets', 'a:127.0.0.1:1', '-ca-file', path],
                           ['not-a-bundle-%d.pem holds no usable PEM certificates' % os.getpid()])


class StartAndServe(ProxyTestCase):
    def serves(self, proxy, upstream, host=HOST):
        r = self.get(proxy, '/v1/models', host=host)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()['path'], '/v1/models')
        return r

    def test_start_line_names_the_listen_address(self):
        up = self.start_upstream()
        p = self.start_proxy(self.targets(('a', up)))
        self.serves(p, up)
        m = START_RE.search(p.stderr())
        self.assertIsNotNone(m, p.stderr())
        self.assertEqual(m.group(1), p.addr)

    def test_a_second_proxy_on_a_busy_port_does_not_start(self):
        # As the Go original (and any server) does: exit with "address already in use",
        # whatever the worker counts; with SO_REUSEPORT listeners it used to start and take
        # about half the connections.
        up = self.start_upstream()
        for first, second in (('2', '2'), ('1', '2'), ('2', '1')):
            with self.subTest(first=first, second=second):
                p = self.start_proxy(self.targets(('a', up)) + ['-workers', first])
                status, out, err, _ = run_cli(self.targets(('a', up)) +
                                              ['-workers', second, '-listen', p.addr], timeout=5)
                self.assertEqual(status, 1, err)
                self.assertIn('cannot listen on %s: ' % p.addr, err)  # then the OS's words (EADDRINUSE)
                self.serves(p, up)

    def test_go_flag_syntax_variants(self):
        up = self.start_upstream()
        for style in ('-x=v', '--x=v', '--x v', '-x v'):
            with self.subTest(style=style):
                port = free_port()

                def flag(name, value):
                    if style == '-x=v':
                        return ['-%s=%s' % (name, value)]
                    if style == '--x=v':
                        return ['--%s=%s' % (name, value)]
                    if style == '--x v':
                        return ['--' + name, value]
                    return ['-' + name, value]
                args = (flag('listen', '127.0.0.1:%d' % port) + flag('targets', 'a:' + up.url)
                        + flag('buffer-size', '4096') + flag('pool-max-idle', '10')
                        + flag('pool-max-idle-per-host', '5') + flag('pool-idle-timeout', '30s')
                        + flag('connect-timeout', '3s'))
                p = Proxy(args, listen='none', port=port)
                p.start()
                try:
                    self.serves(p, up)
                finally:
                    p.stop_and_check()

    def test_env_listen_targets_and_default(self):
        up_a = self.start_upstream()
        up_d = self.start_upstream()
        p = self.start_proxy(listen='env', env={'OPENAI_PROXY_TARGETS': 'a:' + up_a.url,
                                                'OPENAI_PROXY_DEFAULT_TARGET': up_d.url})
        # Logged just after listen(): the port may accept a moment before the line lands.
        wait_until(lambda: 'Starting proxy server on ' + p.addr in p.stderr())
        self.assertIn('Starting proxy server on ' + p.addr, p.stderr())
        self.serves(p, up_a)
        self.assertEqual(up_a.request_count, 1)
        self.serves(p, up_d, host='unknown.example.test')
        self.assertEqual(up_d.request_count, 1)

    def test_flag_and_env_targets_are_merged(self):
        up_a = self.start_upstream()
        up_b = self.start_upstream()
        p = self.start_proxy(self.targets(('a', up_a)), env={'OPENAI_PROXY_TARGETS': 'b:' + up_b.url})
        self.serves(p, up_a, host='a.example.test')
        self.serves(p, up_b, host='b.example.test')
        self.assertEqual((up_a.request_count, up_b.request_count), (1, 1))

    def test_ipv6_listen(self):
        try:
            with socket.socket(socket.AF_INET6) as s:
                s.bind(('::1', 0))
        except OSError as e:
            self.skipTest('::1 is not available here: %s' % e)
        up = self.start_upstream()
        p = self.start_proxy(self.targets(('a', up)), listen_host='::1')
        r = request_once(p.port, 'GET', '/v1/models', addr='::1')
        self.assertEqual(r.status, 200, r)
        self.assertIn('Starting proxy server on [::1]:%d' % p.port, p.stderr())


if __name__ == '__main__':
    main()
