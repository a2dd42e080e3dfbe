#!/usr/bin/env python3
"""Limits (issue 3), each a flag, each answered with its proper status and a JSON error,
nothing forwarded:
  -max-request-line   414        -max-header-size / -max-header-count / one huge field: 431
  -max-body-size      413 for a Content-Length over it and for a chunked body growing
                      over it (never completed upstream); the default admits 512 MB (OpenAI's files)
  -max-connections    connections beyond it wait in the backlog until one closes
  descriptor exhaustion (prlimit --nofile=64): accept backs off instead of spinning,
                      and serves again once descriptors free up."""
import os
import shutil
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import HOST, Proxy, ProxyTestCase, RawClient, main, now, wait_until, windows_skip  # noqa: E402
from hardening_util import cpu_share, needs_linux_proc, proc_fds, send_raw  # noqa: E402

H = ('Host: %s\r\n' % HOST).encode()


class LimitedProxy(Proxy):
    """The proxy started under `prlimit --nofile=N:N` (same PID: prlimit execs it)."""

    def __init__(self, nofile, args=(), **kw):
        self.nofile = nofile
        super().__init__(args, **kw)

    def argv(self):
        return ['prlimit', '--nofile=%d:%d' % (self.nofile, self.nofile), '--'] + super().argv()


class Limits(ProxyTestCase):
    def rejected(self, proxy, up, raw, status):
        before_accepts, before_requests = up.accept_count, up.request_count
        r, closed, extra = send_raw(proxy.port, raw)
        self.assertIsNotNone(r, 'no answer')
        self.assertJsonError(r, status)
        self.assertTrue(closed, 'connection left open after %d' % status)
        self.assertEqual(up.accept_count, before_accepts, 'the rejected request reached the upstream')
        self.assertEqual(up.request_count, before_requests)
        return r

    def ok(self, proxy, raw):
        r, _, _ = send_raw(proxy.port, raw, close_wait=0)
        self.assertIsNotNone(r)
        self.assertEqual(r.status, 200, r)
        return r

    def test_request_line_414(self):
        up = self.start_upstream()
        p = self.start_proxy(self.targets(('a', up)) + ['-max-request-line', '256'])
        long_line = b'GET /v1/' + b'x' * 300 + b' HTTP/1.1\r\n'
        self.rejected(p, up, long_line + H + b'\r\n', 414)
        # Refused before the line is even complete (no CRLF yet), not buffered.
        c = self.client(p)
        c.send(b'GET /v1/' + b'y' * 1000)
        r = c.read_response(timeout=5)
        self.assertJsonError(r, 414)
        self.assertEqual(up.accept_count, 0)
        self.ok(p, b'GET /v1/' + b'z' * 200 + b' HTTP/1.1\r\n' + H + b'\r\n')

    def test_default_request_line_limit_is_8k(self):
        up = self.start_upstream()
        p = self.start_proxy(self.targets(('a', up)))
        self.ok(p, b'GET /v1/' + b'a' * 7000 + b' HTTP/1.1\r\n' + H + b'\r\n')
        self.rejected(p, up, b'GET /v1/' + b'a' * 9000 + b' HTTP/1.1\r\n' + H + b'\r\n', 414)

    def test_header_size_431(self):
        up = self.start_upstream()
        p = self.start_proxy(self.targets(('a', up)) + ['-max-header-size', '2048'])
        lines = [b'X-F%d: %s\r\n' % (i, b'v' * 100) for i in range(25)]
        fields = b''.join(lines)  # ~2.7 KB
        self.rejected(p, up, b'GET /v1/models HTTP/1.1\r\n' + H + fields + b'\r\n', 431)
        # Too big before the head is complete: refused without waiting for the end.
        c = self.client(p)
        c.send(b'GET /v1/models HTTP/1.1\r\n' + H + fields)
        r = c.read_response(timeout=5)
        self.assertJsonError(r, 431)
        self.ok(p, b'GET /v1/models HTTP/1.1\r\n' + H + b''.join(lines[:12]) + b'\r\n')
        self.assertEqual(up.request_count, 1)

    def test_single_header_line_431(self):
        up = self.start_upstream()
        p = self.start_proxy(self.targets(('a', up)) + ['-max-header-line', '1KiB'])
        self.rejected(p, up, b'GET /v1/models HTTP/1.1\r\n' + H + b'X-Long: ' + b'l' * 1100 + b'\r\n\r\n', 431)
        self.ok(p, b'GET /v1/models HTTP/1.1\r\n' + H + b'X-Long: ' + b'l' * 900 + b'\r\n\r\n')

    def test_header_count_431(self):
        up = self.start_upstream()
        p = self.start_proxy(self.targets(('a', up)) + ['-max-header-count', '5'])
        fields = b''.join(b'X-F%d: v\r\n' % i for i in range(8))
        self.rejected(p, up, b'GET /v1/models HTTP/1.1\r\n' + H + fields + b'\r\n', 431)
        self.ok(p, b'GET /v1/models HTTP/1.1\r\n' + H + b'X-A: 1\r\nX-B: 2\r\n\r\n')

    def test_default_header_count_and_single_field_size(self):
        up = self.start_upstream()
        p = self.start_proxy(self.targets(('a', up)))
        many = b''.join(b'X-F%d: v\r\n' % i for i in range(150))
        self.rejected(p, up, b'GET /v1/models HTTP/1.1\r\n' + H + many + b'\r\n', 431)
        huge = b'X-Huge: ' + b'h' * (40 * 1024) + b'\r\n'  # one field line, inside the 64 KiB head
        self.rejected(p, up, b'GET /v1/models HTTP/1.1\r\n' + H + huge + b'\r\n', 431)  # over 16 KiB
        self.rejected(p, up, b'GET /v1/models HTTP/1.1\r\n' + H + b'X-Big: ' + b'b' * (70 * 1024) + b'\r\n\r\n', 431)

    def test_body_size_413(self):
        up = self.start_upstream()
        p = self.start_proxy(self.targets(('a', up)) + ['-max-body-size', '1k'])
        body = b'b' * 1025
        self.rejected(p, up, b'POST /v1/x HTTP/1.1\r\n' + H + b'Content-Length: 1025\r\n\r\n' + body, 413)
        # Announced too big: refused at once, before a byte of the body is sent.
        c = self.client(p)
        c.send(b'POST /v1/x HTTP/1.1\r\n' + H + b'Content-Length: 1000000000\r\n\r\n')
        self.assertJsonError(c.read_response(timeout=5), 413)
        self.assertEqual(up.accept_count, 0)
        # Exactly at the limit: fine.
        r = self.ok(p, b'POST /v1/x HTTP/1.1\r\n' + H + b'Content-Length: 1024\r\n\r\n' + b'b' * 1024)
        self.assertEqual(r.json()['length'], 1024)

    def test_chunked_body_over_the_limit_413(self):
        up = self.start_upstream()
        p = self.start_proxy(self.targets(('a', up)) + ['-max-body-size', '1k'])
        chunks = b''.join(b'100\r\n' + b'c' * 256 + b'\r\n' for _ in range(5)) + b'0\r\n\r\n'  # 1280 bytes
        r, closed, _ = send_raw(p.port, b'POST /v1/x HTTP/1.1\r\n' + H + b'Transfer-Encoding: chunked\r\n\r\n' + chunks)
        self.assertIsNotNone(r)
        self.assertJsonError(r, 413)
        self.assertTrue(closed)
        self.assertEqual(up.request_count, 0, 'the oversized chunked body was completed upstream')
        self.assertTrue(wait_until(lambda: up.closed_count == up.accept_count, 5),
                        'the upstream connection of the refused body was left open')
        # Exactly at the limit, in chunks: fine.
        at_limit = b''.join(b'100\r\n' + b'c' * 256 + b'\r\n' for _ in range(4)) + b'0\r\n\r\n'
        r = self.ok(p, b'POST /v1/x HTTP/1.1\r\n' + H + b'Transfer-Encoding: chunked\r\n\r\n' + at_limit)
        self.assertEqual(r.json()['length'], 1024)

    def test_default_body_limit_admits_a_512_mb_file_and_refuses_over_512_mib(self):
        up = self.start_upstream()
        p = self.start_proxy(self.targets(('a', up)))
        self.rejected(p, up, b'POST /v1/x HTTP/1.1\r\n' + H + b'Content-Length: %d\r\n\r\n' % (512 * 2 ** 20 + 1), 413)
        # 512 MB announced (OpenAI's largest file): accepted and forwarded (only the head and
        # a little body is sent here; no answer can come, and none must be a 413).
        c = self.client(p)
        c.send(b'POST /v1/files HTTP/1.1\r\n' + H + b'Content-Length: %d\r\n\r\n' % (512 * 10 ** 6) + b'x' * 1000)
        self.assertTrue(wait_until(lambda: up.accept_count == 1, 10), 'a 512 MB body was not forwarded')
        closed, got = c.wait_closed(1.0)
        self.assertFalse(closed, 'connection closed: %r' % got[:300])
        self.assertEqual(got, b'')

    def test_body_limit_flag_units(self):
        up = self.start_upstream()
        p = self.start_proxy(self.targets(('a', up)) + ['-max-body-size', '200MiB'])
        c = self.client(p)
        c.send(b'POST /v1/x HTTP/1.1\r\n' + H + b'Content-Length: %d\r\n\r\n' % (150 * 2 ** 20) + b'x' * 1000)
        self.assertTrue(wait_until(lambda: up.accept_count == 1, 10), '-max-body-size 200MiB did not admit 150 MiB')
        self.rejected(p, up, b'POST /v1/x HTTP/1.1\r\n' + H + b'Content-Length: %d\r\n\r\n' % (200 * 2 ** 20 + 1), 413)

    def connect_and_serve(self, p, path):
        c = RawClient(p.port, timeout=10)
        self.addCleanup(c.close)
        c.request('GET', path)
        r = c.read_response()
        self.assertEqual(r.status, 200, r)
        return c

    def check_max_connections(self, workers):
        up = self.start_upstream()
        p = self.start_proxy(self.targets(('a', up)) + ['-max-connections', '5', '-workers', str(workers)])
        time.sleep(0.3)  # the start-up probe connection is gone
        held = [self.connect_and_serve(p, '/v1/held%d' % i) for i in range(5)]
        extra = RawClient(p.port, timeout=10)  # the kernel completes the handshake (backlog)
        self.addCleanup(extra.close)
        extra.request('GET', '/v1/sixth')
        closed, got = extra.wait_closed(1.5)
        self.assertEqual(got, b'', 'a 6th connection was served while 5 were open (-max-connections 5)')
        self.assertFalse(closed)
        self.assertEqual(up.request_count, 5)
        held[0].close()
        r = extra.read_response(timeout=10)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(up.requests[-1].target, '/v1/sixth')
        # Still at the limit (4 held + the 6th): a 7th waits again.
        seventh = RawClient(p.port, timeout=10)
        self.addCleanup(seventh.close)
        seventh.request('GET', '/v1/seventh')
        closed, got = seventh.wait_closed(1.0)
        self.assertEqual(got, b'')
        for c in held[1:]:
            c.close()
        self.assertEqual(seventh.read_response(timeout=10).status, 200)

    def test_max_connections_one_worker(self):
        self.check_max_connections(1)

    def test_max_connections_is_a_total_over_all_workers(self):
        self.check_max_connections(2)

    @needs_linux_proc
    @windows_skip('no descriptor limit to exhaust: sockets are handles bounded by memory, '
                  'and prlimit cannot lower a limit Windows does not have')
    def test_descriptor_exhaustion_backs_off_and_recovers(self):
        if not shutil.which('prlimit'):
            self.skipTest('prlimit is not installed')
        up = self.start_upstream()
        p = LimitedProxy(64, self.targets(('a', up)) + ['-workers', '1'])
        p.start()
        self.addCleanup(p.stop_and_check)
        pid = p.proc.pid
        time.sleep(0.3)
        base_fds = proc_fds(pid)
        socks = []
        self.addCleanup(lambda: [s.close() for s in socks])
        for _ in range(100):  # far more than 64 descriptors
            s = socket.create_connection(('127.0.0.1', p.port), timeout=5)
            socks.append(s)
        self.assertTrue(wait_until(lambda: proc_fds(pid) >= 60, 5),
                        'the proxy never ran out of descriptors (%d open)' % proc_fds(pid))
        time.sleep(0.3)
        share = cpu_share(pid, 1.0)
        self.assertLess(share, 0.5, 'the proxy spins at %.0f%% CPU when out of descriptors' % (share * 100))
        self.assertTrue(p.alive(), p.stderr())
        for s in socks:
            s.close()
        socks.clear()
        # Descriptors free up: the connections left in the backlog are served (and closed,
        # their clients being gone), then new ones are served at once.
        t0 = now()
        r = self.get(p, '/v1/after-exhaustion', timeout=10)
        self.assertEqual(r.status, 200, r)
        self.assertLess(now() - t0, 5)
        self.assertTrue(wait_until(lambda: proc_fds(pid) <= base_fds + 2, 10),
                        'descriptors not released: %d open, %d at start' % (proc_fds(pid), base_fds))
        self.assertIn('Error accepting connection', p.stderr())


if __name__ == '__main__':
    main()
