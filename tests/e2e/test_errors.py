#!/usr/bin/env python3
"""Errors the proxy produces itself: status and an OpenAI-style JSON body
{"error":{"message","type","code"}} for a malformed request (400, nothing forwarded),
an unreachable upstream (502), a bad upstream answer (502), TLS to a non-TLS server
(502) and an upstream connect timeout (504)."""
import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ProxyTestCase, Resp, free_port, main, now  # noqa: E402


class Errors(ProxyTestCase):
    def check_still_serving(self, proxy, up):
        r = self.get(proxy, '/v1/models', headers=[('X-Target-Host', up.url)])
        self.assertEqual(r.status, 200, r)

    def test_malformed_requests_are_400_and_not_forwarded(self):
        up = self.start_upstream()
        p = self.start_proxy(self.targets(('a', up)))
        cases = [
            b'GET / HTTP/1.1\r\nHost: a.example.test\r\nBad Header\r\n\r\n',
            b'GARBAGE\r\n\r\n',
            b'GET / HTTP/1.1\r\nHost: a.example.test\r\nContent-Length: abc\r\n\r\n',
            b'GET /v1 x HTTP/1.1\r\nHost: a.example.test\r\n\r\n',
            b'GET / HTTP/1.1\r\nHost: a.example.test\r\nBad Name: x\r\n\r\n',
        ]
        for raw in cases:
            with self.subTest(request=raw):
                c = self.client(p)
                c.send(raw)
                r = c.read_response()
                self.assertJsonError(r, 400)
        self.assertEqual(up.request_count, 0, 'a malformed request reached the upstream')
        self.assertEqual(up.accept_count, 0)
        self.check_still_serving(p, up)

    def test_upstream_refused_is_502(self):
        good = self.start_upstream()
        dead = free_port()
        p = self.start_proxy(self.targets(('a', good), ('d', 'https://127.0.0.1:%d' % dead)))
        t0 = now()
        r = self.get(p, host='d.example.test')
        self.assertJsonError(r, 502)
        self.assertLess(now() - t0, 5)
        self.check_still_serving(p, good)

    def test_upstream_garbage_is_502(self):
        answers = {
            '/hello': b'HELLO\r\n\r\n',
            '/badstatus': b'HTTP/1.1 abc OK\r\nContent-Length: 0\r\n\r\n',
            '/badheader': b'HTTP/1.1 200 OK\r\nNo colon here\r\nContent-Length: 2\r\n\r\nok',
            '/empty': b'',
        }
        up = self.start_upstream(lambda req: Resp(raw=answers[req.target]))
        plain = self.start_upstream(lambda req: Resp(raw=answers[req.target]), tls=False)
        good = self.start_upstream()
        p = self.start_proxy(self.targets(('a', up), ('b', plain), ('g', good)))
        for host in ('a.example.test', 'b.example.test'):
            for target in answers:
                with self.subTest(host=host, target=target):
                    r = self.get(p, target, host=host)
                    self.assertJsonError(r, 502)
        self.check_still_serving(p, good)

    def test_upstream_closes_without_answering_is_502(self):
        up = self.start_upstream(lambda req: Resp(drop=True))
        good = self.start_upstream()
        p = self.start_proxy(self.targets(('a', up), ('g', good)))
        r = self.get(p, '/v1/models')
        self.assertJsonError(r, 502)
        self.check_still_serving(p, good)

    def test_tls_to_a_plain_tcp_server_is_502(self):
        plain = self.start_upstream(tls=False)
        good = self.start_upstream()
        p = self.start_proxy(self.targets(('a', 'https://' + plain.authority), ('g', good)))
        r = self.get(p, '/v1/models')
        self.assertJsonError(r, 502)
        self.assertEqual(plain.request_count, 0)
        self.check_still_serving(p, good)

    def test_plain_http_to_a_tls_server_is_502(self):
        tls = self.start_upstream()
        good = self.start_upstream()
        p = self.start_proxy(self.targets(('a', 'http://' + tls.authority), ('g', good)))
        r = self.get(p, '/v1/models')
        self.assertJsonError(r, 502)
        self.check_still_serving(p, good)

    def test_connect_timeout_is_504(self):
        # A listener whose accept queue is full: the kernel drops further SYNs, so a
        # connect to it hangs until the caller gives up.
        lsock = socket.socket()
        self.addCleanup(lsock.close)
        lsock.bind(('127.0.0.1', 0))
        lsock.listen(0)
        port = lsock.getsockname()[1]
        fillers = []
        for _ in range(3):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(('127.0.0.1', port))
            fillers.append(s)
            self.addCleanup(s.close)
        probe = socket.socket()
        probe.settimeout(0.5)
        try:
            probe.connect(('127.0.0.1', port))
            probe.close()
            self.skipTest('cannot make a connect hang here (a full listen queue does not drop SYNs)')
        except socket.timeout:
            probe.close()
        except OSError as e:
            probe.close()
            self.skipTest('cannot make a connect hang here: %s' % e)
        good = self.start_upstream()
        p = self.start_proxy(self.targets(('a', 'https://127.0.0.1:%d' % port), ('g', good))
                             + ['-connect-timeout', '1s'])
        t0 = now()
        r = self.get(p, '/v1/models', timeout=20)
        elapsed = now() - t0
        self.assertJsonError(r, 504)
        self.assertGreaterEqual(elapsed, 0.8, 'answered before the connect timeout could expire')
        self.assertLess(elapsed, 6.0, 'the 1 s connect timeout took %.1f s' % elapsed)
        self.check_still_serving(p, good)


if __name__ == '__main__':
    main()
