#!/usr/bin/env python3
"""Graceful shutdown (issue 3): on SIGTERM the proxy stops accepting at once, lets the
requests and streams in flight finish for up to -shutdown-grace, then closes them and
exits 0; a second signal exits at once."""
import fcntl
import os
import signal
import socket
import sys
import termios
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Proxy, ProxyTestCase, Resp, main, now, wait_until, windows_skip  # noqa: E402
from hardening_util import needs_linux_proc  # noqa: E402


def stream_handler(req):
    # /stream/<events>/<seconds between events>
    _, _, n, gap = req.target.split('/')
    return Resp(200, [('Content-Type', 'text/event-stream')],
                chunks=[b'data: %d\n\n' % i for i in range(int(n))], delay=float(gap))


def connect_refused(port, timeout=1.0):
    """True if a new connection is refused (or reset before any answer)."""
    try:
        s = socket.create_connection(('127.0.0.1', port), timeout=timeout)
    except ConnectionRefusedError:
        return True
    except OSError:
        return True
    try:
        s.sendall(b'GET /v1/models HTTP/1.1\r\nHost: a.example.test\r\n\r\n')
        s.settimeout(timeout)
        data = s.recv(100)
        return data == b''
    except OSError:
        return True
    finally:
        s.close()


class Shutdown(ProxyTestCase):
    def launch(self, up, extra=()):
        p = Proxy(self.targets(('a', up)) + list(extra))
        p.start()
        self.addCleanup(p.kill)
        return p

    def open_stream(self, p, n, gap):
        c = self.client(p, timeout=30)
        c.request('GET', '/stream/%d/%s' % (n, gap))
        r = c.read_final_head(now() + 10)
        self.assertEqual(r.status, 200, r)
        pieces = c.body_pieces(r, 'GET', now() + 60)
        first = next(pieces)[1]
        self.assertEqual(first, b'data: 0\n\n')
        return c, r, pieces

    def test_sigterm_lets_a_stream_finish_and_refuses_new_connections(self):
        up = self.start_upstream(stream_handler)
        p = self.launch(up)
        c, r, pieces = self.open_stream(p, 7, 0.5)  # ~3 s in all
        t_signal = now()
        p.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        self.assertTrue(p.alive(), 'the proxy exited with a stream in flight: %s' % p.stderr())
        self.assertTrue(connect_refused(p.port), 'a new connection was served during shutdown')
        body = b'data: 0\n\n' + b''.join(piece for _t, piece in pieces)
        self.assertTrue(r.complete, 'the stream in flight was cut by SIGTERM: %r' % body)
        self.assertEqual(body, b''.join(b'data: %d\n\n' % i for i in range(7)))
        try:
            p.proc.wait(10)
        except Exception:
            pass
        self.assertEqual(p.proc.returncode, 0, 'exit status %s; stderr:\n%s' % (p.proc.returncode, p.stderr()))
        self.assertLess(now() - t_signal, 3.0 + 3.0, 'the proxy lingered after the stream ended')

    def test_an_answer_sent_during_shutdown_says_connection_close(self):
        # RFC 9112 section 9.6: the stopping proxy keeps no connection, so an answer whose
        # head leaves after the signal says so; the client then does not send its next
        # request (a POST it could not safely retry) into a closing connection.
        up = self.start_upstream(lambda req: Resp(200, [('Content-Type', 'application/json')], body=b'{}',
                                                  head_delay=0.8))
        p = self.launch(up)
        c = self.client(p, timeout=10)
        c.request('POST', '/v1/chat/completions', [('Content-Type', 'application/json')], b'{}')
        time.sleep(0.2)
        p.proc.send_signal(signal.SIGTERM)
        r = c.read_response(timeout=10)
        self.assertEqual((r.status, r.body, r.complete), (200, b'{}', True))
        self.assertEqual((r.header('Connection') or '').lower(), 'close', r.headers)
        self.assertTrue(c.wait_closed(5)[0], 'the connection stayed open after a Connection: close answer')

    def test_grace_expiry_cuts_a_long_stream_and_exits_0(self):
        up = self.start_upstream(stream_handler)
        p = self.launch(up, ['-shutdown-grace', '1s'])
        c, r, pieces = self.open_stream(p, 40, 0.5)  # 20 s if nothing stops it
        t0 = now()
        p.proc.send_signal(signal.SIGTERM)
        try:
            p.proc.wait(10)
        except Exception:
            pass
        elapsed = now() - t0
        self.assertEqual(p.proc.returncode, 0, 'exit status %s; stderr:\n%s' % (p.proc.returncode, p.stderr()))
        self.assertGreaterEqual(elapsed, 0.8, 'exited before the grace period')
        self.assertLess(elapsed, 2.5, 'took %.1f s to exit with -shutdown-grace 1s' % elapsed)
        for _ in pieces:
            pass
        self.assertFalse(r.complete, 'a stream cut at shutdown looked complete')
        self.assertTrue(wait_until(lambda: up.closed_count == up.accept_count, 5),
                        'the upstream connection of the cut stream stayed open')

    def test_second_signal_exits_at_once(self):
        up = self.start_upstream(stream_handler)
        p = self.launch(up)  # default grace: 30 s
        c, r, pieces = self.open_stream(p, 60, 0.5)
        p.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        self.assertTrue(p.alive())
        t0 = now()
        p.proc.send_signal(signal.SIGTERM)
        try:
            p.proc.wait(5)
        except Exception:
            pass
        elapsed = now() - t0
        self.assertIsNotNone(p.proc.returncode, 'still running 5 s after the second SIGTERM')
        self.assertLess(elapsed, 1.0, 'the second signal took %.1f s' % elapsed)
        self.assertGreaterEqual(p.proc.returncode, 0, 'killed by a signal rather than exiting')

    def test_sigint_then_sigterm_exits_at_once(self):
        up = self.start_upstream(stream_handler)
        p = self.launch(up)
        self.open_stream(p, 60, 0.5)
        p.proc.send_signal(signal.SIGINT)
        time.sleep(0.5)
        self.assertTrue(p.alive())
        t0 = now()
        p.proc.send_signal(signal.SIGTERM)
        try:
            p.proc.wait(5)
        except Exception:
            pass
        self.assertIsNotNone(p.proc.returncode)
        self.assertLess(now() - t0, 1.0)

    def test_idle_keepalive_connection_is_closed_at_once_during_shutdown(self):
        # An idle keep-alive client is closed at once; a request in flight finishes.
        up = self.start_upstream(stream_handler)
        p = self.launch(up)
        idle = self.client(p)
        idle.request('GET', '/stream/1/0')
        self.assertEqual(idle.read_response().status, 200)
        c, r, pieces = self.open_stream(p, 4, 0.5)
        p.proc.send_signal(signal.SIGTERM)
        closed, _ = idle.wait_closed(3)
        self.assertTrue(closed, 'an idle keep-alive connection was kept open during shutdown')
        for _ in pieces:
            pass
        self.assertTrue(r.complete)
        # After its last response, the stream's connection is closed too (not kept alive).
        closed, _ = c.wait_closed(3)
        self.assertTrue(closed)
        try:
            p.proc.wait(10)
        except Exception:
            pass
        self.assertEqual(p.proc.returncode, 0)


    def stuck_in_kernel(self, p, s):
        """Bytes of the answer held by the kernel between the proxy and client socket `s`:
        the proxy socket's send queue plus what `s` has received and not read."""
        cport = s.getsockname()[1]
        queued = 0
        with open('/proc/net/tcp') as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if int(fields[1].split(':')[1], 16) == p.port and int(fields[2].split(':')[1], 16) == cport:
                    queued = int(fields[4].split(':')[0], 16)
        unread = bytearray(4)
        fcntl.ioctl(s.fileno(), termios.FIONREAD, unread)
        return queued + int.from_bytes(unread, sys.byteorder)

    def slow_client(self, p, target):
        s = socket.socket()
        self.addCleanup(s.close)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
        s.settimeout(20)
        s.connect((p.host, p.port))
        s.sendall(b'GET %s HTTP/1.1\r\nHost: a.example.test\r\n\r\n' % target.encode())
        return s

    def settled(self, p, s):
        """What the kernel holds once the proxy can write no more to the client."""
        last, since = -1, now()
        deadline = now() + 10
        while now() < deadline:
            held = self.stuck_in_kernel(p, s)
            if held != last:
                last, since = held, now()
            elif now() - since > 0.5:
                break
            time.sleep(0.05)
        return last

    @needs_linux_proc  # what the kernel holds: /proc/net/tcp
    def test_an_answer_still_leaving_when_its_exchange_ends_is_delivered_whole(self):
        # A client that does not read: the upstream's answer is all in the proxy (the
        # exchange over, the connection back between requests) while its last bytes still
        # wait in the proxy's own output buffer, past what the kernel takes. A graceful
        # stop must deliver them before closing. A first connection measures what the
        # kernel takes, so that the second answer overflows it by 32 KiB (under the
        # proxy's 64 KiB high-water mark: the whole answer is read from the upstream).
        sizes = {'/probe': 16 << 20}

        def handler(req):
            n = sizes[req.target]
            return Resp(200, [('Content-Type', 'application/octet-stream')], body=bytes(range(256)) * (n // 256))
        up = self.start_upstream(handler)
        p = self.launch(up)
        probe = self.slow_client(p, '/probe')
        kernel = self.settled(p, probe)
        self.assertGreater(kernel, 0, 'could not see the kernel queues')
        sizes['/big'] = (kernel + (32 << 10)) // 256 * 256
        body = bytes(range(256)) * (sizes['/big'] // 256)
        probe.close()
        s = self.slow_client(p, '/big')
        self.settled(p, s)
        p.proc.send_signal(signal.SIGTERM)
        time.sleep(1.0)  # several shutdown ticks pass
        got = bytearray()
        while True:
            piece = s.recv(65536)
            if not piece:
                break
            got += piece
        head, _, received = bytes(got).partition(b'\r\n\r\n')
        self.assertIn(b'Content-Length: %d' % len(body), head)
        self.assertEqual(len(received), len(body), 'the answer was cut by the graceful stop')
        self.assertEqual(received, body)
        p.proc.wait(10)
        self.assertEqual(p.proc.returncode, 0, p.stderr())

    @windows_skip('SIGSTOP/SIGCONT have no Windows counterpart (a stopped wine-run wrapper does '
                  'not stop the Wine process), so the stop request and the backlog cannot be lined up')
    def test_signal_and_pending_connections_in_one_poll_batch(self):
        # The stop request and the listener's readiness reported by one wait: shutdown
        # retires the listener while that batch is being dispatched, and the listener's
        # event, later in the same batch, must find it marked closed, not freed (a
        # use-after-free that AddressSanitizer reports; `make test-asan`). The proxy is
        # stopped (SIGSTOP) while clients connect into the kernel's backlog and SIGTERM
        # is queued; on SIGCONT both are ready at once for the loops the signal handler
        # wakes from another thread (one loop alone never saw them in one batch, four
        # did nearly every time: three rounds of four).
        up = self.start_upstream()
        for attempt in range(3):
            with self.subTest(attempt=attempt):
                p = self.launch(up, ['-workers', '4'])
                pid = p.proc.pid
                os.kill(pid, signal.SIGSTOP)
                clients = []
                try:
                    for _ in range(32):
                        s = socket.create_connection(('127.0.0.1', p.port), timeout=5)
                        self.addCleanup(s.close)
                        s.sendall(b'GET /v1/models HTTP/1.1\r\nHost: a.example.test\r\n\r\n')
                        clients.append(s)
                    os.kill(pid, signal.SIGTERM)
                finally:
                    os.kill(pid, signal.SIGCONT)
                try:
                    p.proc.wait(10)
                except Exception:
                    pass
                err = p.stderr()
                self.assertNotIn('Sanitizer', err)
                self.assertEqual(p.proc.returncode, 0, 'exit status %s; stderr:\n%s' % (p.proc.returncode, err))
                # Each pending client learns at once: an answer, an end of stream, or the
                # reset of a connection that was never accepted; never silence.
                for s in clients:
                    s.settimeout(5)
                    try:
                        data = s.recv(65536)
                    except ConnectionResetError:
                        continue
                    except socket.timeout:
                        self.fail('a pending client was left hanging after shutdown')
                    self.assertTrue(data == b'' or data.startswith(b'HTTP/1.1 '), data)


if __name__ == '__main__':
    main()
