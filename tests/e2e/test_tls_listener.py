"""HTTPS on the listener (-tls-cert, -tls-key): requests, bodies and streams over TLS, ALPN,
the handshake under -header-timeout, errors at start, and the certificate re-read on SIGHUP."""
import os
import shutil
import signal
import socket
import ssl
import subprocess

from harness import (ProxyTestCase, RawClient, Resp, certs, echo_handler, main, new_tmp_path, now, run_cli,
                     sha256, wait_until, windows_skip)
import time
import unittest

NO_SERVER_SIDE = 'has no TLS server side'


def client_context(ca, alpn=('http/1.1',)):
    ctx = ssl.create_default_context(cafile=ca)
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx


class TlsListener(ProxyTestCase):
    def start_tls_proxy(self, up, cert=None, extra=()):
        cert = cert or certs().server
        args = ['-default-target', up.authority, '-disable-target-header',
                '-tls-cert', cert[0], '-tls-key', cert[1]] + list(extra)
        try:
            return self.start_proxy(args)
        except AssertionError as e:
            if NO_SERVER_SIDE in str(e):
                self.skipTest('this build has no TLS server side (a small router build)')
            raise

    def tls_client(self, p, ca=None, alpn=('http/1.1',), timeout=10):
        c = RawClient(p.port, tls_context=client_context(ca or certs().ca, alpn), server_hostname='localhost',
                      timeout=timeout)
        self.addCleanup(c.close)
        return c

    def test_requests_bodies_and_keep_alive_over_tls(self):
        up = self.start_upstream(echo_handler)
        p = self.start_tls_proxy(up)
        c = self.tls_client(p, alpn=('h2', 'http/1.1'))
        self.assertEqual(c.sock.selected_alpn_protocol(), 'http/1.1')
        self.assertIn(c.sock.version(), ('TLSv1.2', 'TLSv1.3'))
        # Three requests on one connection: small, a 1 MiB upload (many records), and two
        # pipelined in one TLS write (one record holds both heads).
        c.request('GET', '/v1/models')
        r = c.read_response()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()['path'], '/v1/models')
        body = os.urandom(1 << 20)
        c.request('POST', '/v1/files', [('Content-Type', 'application/octet-stream')], body)
        r = c.read_response()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()['sha256'], sha256(body))
        c.send(c.build('GET', '/a') + c.build('GET', '/b'))
        self.assertEqual(c.read_response().json()['path'], '/a')
        self.assertEqual(c.read_response().json()['path'], '/b')
        self.assertEqual(up.accept_count, 1)  # one upstream connection, pooled between them

    def test_large_answer_and_stream_over_tls(self):
        big = os.urandom(3 << 20)
        events = [b'data: %d\n\n' % i for i in range(5)]

        def handler(req):
            if req.target == '/big':
                return Resp(200, [('Content-Type', 'application/octet-stream')], body=big)
            return Resp(200, [('Content-Type', 'text/event-stream')], chunks=events, delay=0.2)

        up = self.start_upstream(handler)
        p = self.start_tls_proxy(up)
        c = self.tls_client(p)
        c.request('GET', '/big')
        r = c.read_response(timeout=30)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(sha256(r.body), sha256(big))
        # Each event reaches the client while the upstream is still sending the next.
        c.request('GET', '/stream')
        head = c.read_head()
        self.assertEqual(head.status, 200, head)
        got, stamps = b'', []
        for at, piece in c.body_pieces(head):
            got += piece
            stamps.append(at)
        self.assertEqual(got, b''.join(events))
        self.assertGreaterEqual(stamps[-1] - stamps[0], 0.5, 'the events came in one burst: %r' % stamps)

    def test_alpn_without_http11_is_refused(self):
        up = self.start_upstream(echo_handler)
        p = self.start_tls_proxy(up)
        with self.assertRaises(ssl.SSLError) as e:
            self.tls_client(p, alpn=('h2',))
        self.assertIn('NO_APPLICATION_PROTOCOL', str(e.exception).upper().replace(' ', '_'))
        self.assertEqual(self.tls_client(p, alpn=None).sock.selected_alpn_protocol(), None)  # no ALPN: fine

    def test_client_that_does_not_trust_the_chain_fails(self):
        up = self.start_upstream(echo_handler)
        p = self.start_tls_proxy(up)
        with self.assertRaises(ssl.SSLCertVerificationError):
            self.tls_client(p, ca=certs().other_ca)
        self.assertTrue(p.alive())
        c = self.tls_client(p)
        c.request('GET', '/after')
        self.assertEqual(c.read_response().status, 200)

    def test_plain_http_and_garbage_on_the_tls_port(self):
        up = self.start_upstream(echo_handler)
        p = self.start_tls_proxy(up)
        for data in (b'GET / HTTP/1.1\r\nHost: x\r\n\r\n', os.urandom(300), b'\x16\x03\x01\x00\x05hello'):
            with socket.create_connection(('127.0.0.1', p.port), timeout=5) as s:
                s.sendall(data)
                s.settimeout(5)
                got = b''
                try:
                    while True:
                        b = s.recv(4096)
                        if not b:
                            break
                        got += b
                except (ConnectionResetError, socket.timeout):
                    pass
                self.assertNotIn(b'HTTP/1.1', got)  # never an answer in the clear
        self.assertEqual(up.request_count, 0)
        c = self.tls_client(p)
        c.request('GET', '/still')
        self.assertEqual(c.read_response().status, 200)

    def test_handshake_is_bounded_by_the_header_timeout(self):
        up = self.start_upstream(echo_handler)
        p = self.start_tls_proxy(up, extra=['-header-timeout', '1s', '-keepalive-timeout', '30s'])
        with socket.create_connection(('127.0.0.1', p.port), timeout=10) as s:
            s.sendall(b'\x16\x03\x01')  # the start of a ClientHello, then silence
            start = now()
            s.settimeout(10)
            try:
                self.assertEqual(s.recv(100), b'')
            except ConnectionResetError:
                pass
            self.assertLess(now() - start, 5)

    def test_first_head_after_the_handshake_is_bounded_by_the_header_timeout(self):
        # The handshake and then the request head are due within -header-timeout of the
        # connection: a client silent after its handshake is not kept for
        # -keepalive-timeout, and one byte after a pause does not start the clock anew.
        up = self.start_upstream(echo_handler)
        p = self.start_tls_proxy(up, extra=['-header-timeout', '2s', '-keepalive-timeout', '30s'])
        # (Closed at 2 s plus the 250 ms tick; a clock started anew by the byte at 1.8 s
        # would close at 3.8 s, the keep-alive clock at 30 s.)
        for pause_then_byte, bound in ((None, 5.0), (1.8, 3.3)):
            with self.subTest(pause_then_byte=pause_then_byte):
                c = self.tls_client(p, timeout=15)
                start = now()
                if pause_then_byte is not None:
                    time.sleep(pause_then_byte)
                    c.send(b'G')
                closed, _ = c.wait_closed(10)
                self.assertTrue(closed, 'still open 10 s after the handshake')
                self.assertLess(now() - start, bound, 'closed %.1f s after the handshake' % (now() - start))
        # After a first request the keep-alive clock applies between requests as before.
        c = self.tls_client(p, timeout=15)
        c.request('GET', '/first')
        self.assertEqual(c.read_response().status, 200)
        time.sleep(3)
        c.request('GET', '/second')
        self.assertEqual(c.read_response().status, 200)

    def test_errors_at_start(self):
        up = self.start_upstream(echo_handler)
        server, key = certs().server
        other_key = certs().other_server[1]
        missing = new_tmp_path('missing.pem')
        cases = [
            (['-tls-cert', server], '-tls-cert needs -tls-key'),
            (['-tls-key', key], '-tls-key needs -tls-cert'),
            (['-tls-cert', missing, '-tls-key', key], missing),
            (['-tls-cert', server, '-tls-key', missing], missing),
            (['-tls-cert', server, '-tls-key', other_key], 'is not the key of'),
            (['-tls-cert', key, '-tls-key', key], key),  # a key where the certificate belongs
        ]
        for args, words in cases:
            status, out, err, _ = run_cli(['-listen', '127.0.0.1:0', '-default-target', up.authority] + args)
            if NO_SERVER_SIDE in err:
                self.skipTest('this build has no TLS server side (a small router build)')
            self.assertEqual(status, 2, (args, err))
            self.assertIn(words, err, args)
            self.assertNotIn('Starting proxy server', err + out)

    @windows_skip('Windows has no SIGHUP; a new certificate is taken by a restart')
    def test_sighup_reloads_the_certificate(self):
        up = self.start_upstream(echo_handler)
        d = os.path.dirname(new_tmp_path('x'))
        cert, key = os.path.join(d, 'live-cert.pem'), os.path.join(d, 'live-key.pem')
        shutil.copy(certs().server[0], cert)
        shutil.copy(certs().server[1], key)
        p = self.start_tls_proxy(up, cert=(cert, key))
        old = self.tls_client(p)
        old.request('GET', '/one')
        self.assertEqual(old.read_response().status, 200)

        # A bad pair (the key of another certificate): the one in use stays.
        shutil.copy(certs().other_server[1], key)
        os.kill(p.pid, signal.SIGHUP)
        self.assertTrue(wait_until(lambda: 'cannot reload the TLS certificate' in p.stderr(), 10), p.stderr())
        c = self.tls_client(p)
        c.request('GET', '/two')
        self.assertEqual(c.read_response().status, 200)

        # The other CA's certificate: new connections get it, the open one goes on.
        shutil.copy(certs().other_server[0], cert)
        os.kill(p.pid, signal.SIGHUP)
        self.assertTrue(wait_until(lambda: 'Reloaded the TLS certificate' in p.stderr(), 10), p.stderr())
        with self.assertRaises(ssl.SSLCertVerificationError):
            self.tls_client(p)
        c = self.tls_client(p, ca=certs().other_ca)
        c.request('GET', '/three')
        self.assertEqual(c.read_response().status, 200)
        old.request('GET', '/four')
        self.assertEqual(old.read_response().status, 200)

    @unittest.skipUnless(shutil.which('curl'), 'curl is not installed')
    def test_curl(self):
        up = self.start_upstream(echo_handler)
        p = self.start_tls_proxy(up)
        r = subprocess.run(['curl', '-sS', '--noproxy', '*', '--cacert', certs().ca, '--http1.1',
                            '-w', '\\n%{http_code} %{ssl_verify_result}', '-d', '{"model":"m"}',
                            '-H', 'Content-Type: application/json',
                            'https://127.0.0.1:%d/v1/chat/completions' % p.port],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        out = r.stdout.decode()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(out.endswith('\n200 0'), out)
        self.assertIn('"path": "/v1/chat/completions"', out)


if __name__ == '__main__':
    main()
