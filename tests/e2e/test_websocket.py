"""WebSocket pass-through (RFC 6455 over an HTTP/1.1 upgrade, RFC 9110 section 7.8): the
handshake forwarded with Connection/Upgrade and the Sec-WebSocket-* fields, the 101
relayed, then a byte tunnel both ways: echo and server-pushed messages, large and
fragmented frames, ping/pong, close from either side, a client abort reaching the upstream
at once, -idle-timeout, a refusal relayed as an ordinary answer, other upgrades not
offered upstream, and the same through the HTTPS listener.

The upstream is a small RFC 6455 server written here (TLS on loopback, the test CA's
certificate); the client speaks the protocol byte by byte."""
import base64
import hashlib
import os
import signal
import socket
import ssl
import struct
import threading
import time

from harness import ProxyTestCase, RawClient, certs, main, now, parse_head, wait_until, windows_skip
from hardening_util import needs_linux_proc

GUID = b'258EAFA5-E914-47DA-95CA-C5AB0DC85B11'


def accept_key(key):
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def masked(key, data):
    """`data` XOR the 4-byte `key` repeated (RFC 6455 section 5.3), as one big integer."""
    if not data:
        return b''
    k = (key * (len(data) // 4 + 1))[:len(data)]
    return (int.from_bytes(data, 'big') ^ int.from_bytes(k, 'big')).to_bytes(len(data), 'big')


def frame(opcode, payload, fin=True, mask=True):
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    m = 0x80 if mask else 0
    if n < 126:
        head += bytes([m | n])
    elif n < 65536:
        head += bytes([m | 126]) + struct.pack('!H', n)
    else:
        head += bytes([m | 127]) + struct.pack('!Q', n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + masked(key, payload)


def recv_exact(s, n):
    out = b''
    while len(out) < n:
        b = s.recv(n - len(out))
        if not b:
            raise EOFError('closed after %d of %d bytes' % (len(out), n))
        out += b
    return out


def read_frame(s):
    """(fin, opcode, payload), unmasking if masked."""
    b0, b1 = recv_exact(s, 2)
    n = b1 & 0x7f
    if n == 126:
        n = struct.unpack('!H', recv_exact(s, 2))[0]
    elif n == 127:
        n = struct.unpack('!Q', recv_exact(s, 8))[0]
    key = recv_exact(s, 4) if b1 & 0x80 else None
    payload = recv_exact(s, n)
    if key:
        payload = masked(key, payload)
    return bool(b0 & 0x80), b0 & 0x0f, payload


class TlsWsServer:
    """A TLS server on loopback (the test CA's certificate) that reads one HTTP head per
    connection and hands it to handle(s, method, target, fields, names, rest), in a thread
    per connection; a subclass answers it. `names`: the fields by lower-case name; `rest`:
    the bytes read after the head."""

    def __init__(self):
        self.socks = []
        self.ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ctx.load_cert_chain(*certs().server)
        self.lsock = socket.socket()
        self.lsock.bind(('127.0.0.1', 0))
        self.lsock.listen(16)
        self.port = self.lsock.getsockname()[1]
        self.url = 'https://127.0.0.1:%d' % self.port
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self):
        self.lsock.close()
        for s in self.socks:
            try:
                s.close()
            except OSError:
                pass

    def _accept(self):
        while True:
            try:
                raw, _ = self.lsock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw):
        try:
            s = self.ctx.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            return
        self.socks.append(s)
        data = b''
        try:
            while b'\r\n\r\n' not in data:
                b = s.recv(4096)
                if not b:
                    return
                data += b
        except OSError:
            return
        head_bytes, rest = data.split(b'\r\n\r\n', 1)
        start, fields = parse_head(head_bytes + b'\r\n\r\n')
        method, target, _ = start.split(' ', 2)
        self.handle(s, method, target, fields, {k.lower(): v for k, v in fields}, rest)

    @staticmethod
    def accept(s, names, extra=''):
        """Answers the handshake with a 101 (RFC 6455 section 4.2.2). (A client sends its
        first frame only after the 101, so nothing may follow the head before it.)"""
        s.sendall(('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'
                   'Sec-WebSocket-Accept: %s\r\n%s\r\n' % (accept_key(names['sec-websocket-key']), extra)).encode())


class WsUpstream(TlsWsServer):
    """Echoes each frame (same FIN and opcode); text commands: 'push N' sends N messages,
    'close-now' sends a close frame and closes, 'reset-now' resets. Answers /deny with a
    403 and a request without a WebSocket key with a plain 200. Records each request head
    and when each connection was seen closed by the peer."""

    def __init__(self):
        self.heads = []
        self.closed_at = []
        self.stalled = {}    # 'stall' connections: peer port -> the frames read after the stall
        self.resume = threading.Event()
        super().__init__()

    @property
    def authority(self):
        return self.url

    def handle(self, s, method, target, fields, names, rest):
        self.heads.append((method, target, fields))
        try:
            if target.startswith('/deny'):
                body = b'{"error":{"message":"no","type":"invalid_request_error","code":null}}'
                s.sendall(b'HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s'
                          % (len(body), body))
                s.recv(1)
                s.close()
                return
            if 'sec-websocket-key' not in names:
                s.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok')
                s.close()
                return
            extra = ''
            if 'sec-websocket-protocol' in names:
                extra = 'Sec-WebSocket-Protocol: %s\r\n' % names['sec-websocket-protocol'].split(',')[0].strip()
            if rest:
                raise AssertionError('bytes before the 101: %r' % rest)
            self.accept(s, names, extra)
            while True:
                fin, op, payload = read_frame(s)
                if op == 0x8:
                    s.sendall(frame(0x8, payload, mask=False))
                    s.close()
                    self.closed_at.append(now())
                    return
                if op == 0x9:
                    s.sendall(frame(0xA, payload, mask=False))
                    continue
                if op == 0x1 and payload.startswith(b'push '):
                    for i in range(int(payload[5:])):
                        s.sendall(frame(0x1, b'msg %d' % i, mask=False))
                    continue
                if op == 0x1 and payload == b'close-now':
                    s.sendall(frame(0x8, struct.pack('!H', 1000) + b'bye', mask=False))
                    s.close()
                    return
                if op == 0x1 and payload == b'stall':
                    # Busy: reads nothing until resume is set, then records every frame
                    # up to and including a close frame.
                    got = self.stalled.setdefault(s.getpeername()[1], [])
                    self.resume.wait(60)
                    while True:
                        fin, op, payload = read_frame(s)
                        got.append((op, payload))
                        if op == 0x8:
                            s.close()
                            self.closed_at.append(now())
                            return
                if op == 0x1 and payload == b'reset-now':
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
                    s.close()
                    return
                s.sendall(frame(op, payload, fin=fin, mask=False))
        except (EOFError, ConnectionResetError, BrokenPipeError, ssl.SSLError, OSError):
            self.closed_at.append(now())


class WebSocketClient:
    """The client side: the handshake through RawClient, then frames (masked, as a client's
    must be) written to and read from its connection."""

    def __init__(self, port, path='/v1/realtime?model=gpt-realtime', headers=(), tls_context=None):
        self.c = RawClient(port, tls_context=tls_context, server_hostname='localhost' if tls_context else None,
                           timeout=10)
        self.key = base64.b64encode(os.urandom(16)).decode()
        fields = [('Connection', 'Upgrade'), ('Upgrade', 'websocket'), ('Sec-WebSocket-Version', '13'),
                  ('Sec-WebSocket-Key', self.key)] + list(headers)
        self.c.request('GET', path, fields)
        self.head = self.c.read_head()

    @property
    def sock(self):
        return self.c.sock

    def send(self, opcode, payload, fin=True):
        self.c.send(frame(opcode, payload, fin=fin))

    def frame(self, timeout=10):
        """(fin, opcode, payload) of the next frame from the server (never masked)."""
        deadline = now() + timeout
        rd = self.c.rd
        b0, b1 = rd.read_exact(2, deadline)
        n = b1 & 0x7f
        if n == 126:
            n = struct.unpack('!H', rd.read_exact(2, deadline))[0]
        elif n == 127:
            n = struct.unpack('!Q', rd.read_exact(8, deadline))[0]
        if b1 & 0x80:
            raise AssertionError('a frame from the server is masked')
        return bool(b0 & 0x80), b0 & 0x0f, rd.read_exact(n, deadline)

    def closed_within(self, timeout):
        """True when the connection ends (EOF or reset) within `timeout`, with no byte first."""
        rd = self.c.rd
        try:
            more = rd.fill(timeout)
        except socket.timeout:
            return False
        return not more and not rd.buf

    def close(self):
        self.c.close()


class WebSocket(ProxyTestCase):
    def setUp(self):
        self.up = WsUpstream()
        self.addCleanup(self.up.close)

    def proxy(self, extra=()):
        return self.start_proxy(['-default-target', self.up.authority, '-disable-target-header'] + list(extra))

    def open(self, p, **kw):
        ws = WebSocketClient(p.port, **kw)
        self.addCleanup(ws.close)
        self.assertEqual(ws.head.status, 101, ws.head)
        self.assertEqual(ws.head.header('Sec-WebSocket-Accept'), accept_key(ws.key))
        self.assertEqual((ws.head.header('Upgrade') or '').lower(), 'websocket')
        self.assertIn('upgrade', (ws.head.header('Connection') or '').lower())
        self.assertIsNone(ws.head.header('Content-Length'))
        self.assertIsNone(ws.head.header('Transfer-Encoding'))
        return ws

    def test_handshake_echo_push_large_fragmented_ping(self):
        p = self.proxy()
        # A browser cannot set headers on a WebSocket: the SDK's browser client puts the key in
        # a subprotocol, which must reach the upstream unchanged (no server-side key here).
        protocols = 'realtime, openai-insecure-api-key.sk-browser-key, openai-beta.realtime-v1'
        ws = self.open(p, headers=[('Authorization', 'Bearer sk-test'), ('OpenAI-Beta', 'realtime=v1'),
                                   ('Sec-WebSocket-Protocol', protocols)])
        self.assertEqual(ws.head.header('Sec-WebSocket-Protocol'), 'realtime')
        method, target, fields = self.up.heads[0][:3]
        names = {k.lower(): v for k, v in fields}
        self.assertEqual((method, target), ('GET', '/v1/realtime?model=gpt-realtime'))
        self.assertEqual(names['upgrade'], 'websocket')
        self.assertEqual(names['connection'], 'Upgrade')
        self.assertEqual(names['sec-websocket-key'], ws.key)
        self.assertEqual(names['sec-websocket-version'], '13')
        self.assertEqual(names['sec-websocket-protocol'], protocols)
        self.assertEqual(names['authorization'], 'Bearer sk-test')
        self.assertEqual(names['host'], '127.0.0.1:%d' % self.up.port)

        ws.send(0x1, b'{"type":"session.update"}')
        self.assertEqual(ws.frame(), (True, 0x1, b'{"type":"session.update"}'))
        ws.send(0x1, b'push 50')
        self.assertEqual([ws.frame()[2] for _ in range(50)], [b'msg %d' % i for i in range(50)])
        big = os.urandom(3 << 20)  # larger than every buffer on the way: backpressure both ways
        ws.send(0x2, big)
        self.assertEqual(ws.frame(), (True, 0x2, big))
        ws.send(0x1, b'part one, ', fin=False)
        ws.send(0x0, b'part two', fin=True)
        self.assertEqual(ws.frame(), (False, 0x1, b'part one, '))
        self.assertEqual(ws.frame(), (True, 0x0, b'part two'))
        ws.send(0x9, b'are you there')
        self.assertEqual(ws.frame(), (True, 0xA, b'are you there'))
        # The client's close: echoed, then the upstream closes, then the client sees the end.
        ws.send(0x8, struct.pack('!H', 1000))
        self.assertEqual(ws.frame(), (True, 0x8, struct.pack('!H', 1000)))
        self.assertTrue(ws.closed_within(5))
        self.assertEqual(self.get(p, '/v1/models').status, 200)  # the proxy goes on

    def test_upstream_close_and_reset_reach_the_client(self):
        p = self.proxy()
        ws = self.open(p)
        ws.send(0x1, b'close-now')
        fin, op, payload = ws.frame()
        self.assertEqual((op, payload), (0x8, struct.pack('!H', 1000) + b'bye'))
        self.assertTrue(ws.closed_within(5))
        ws = self.open(p)
        ws.send(0x1, b'reset-now')
        start = now()
        self.assertTrue(ws.closed_within(5))
        self.assertLess(now() - start, 3)

    def test_client_abort_closes_the_upstream_at_once(self):
        p = self.proxy()
        ws = self.open(p)
        ws.send(0x1, b'hello')
        ws.frame()
        seen = len(self.up.closed_at)
        ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
        t0 = now()
        ws.close()
        self.assertTrue(wait_until(lambda: len(self.up.closed_at) > seen, 5))
        self.assertLess(self.up.closed_at[seen] - t0, 1.0)

    @windows_skip('SIGSTOP orders the events')
    def test_a_client_leaving_before_the_101_ends_both_sides(self):
        # The client's close is seen before the upstream's 101 (the proxy is stopped
        # while both happen): no tunnel to nobody, and no orphan waiting for an answer
        # to pool (an assertion stopped the proxy here, in builds that keep them).
        # A plain-TCP upstream here: its 101 is readable as soon as the proxy looks.
        lsock = socket.socket()
        lsock.bind(('127.0.0.1', 0))
        lsock.listen(4)
        self.addCleanup(lsock.close)
        asked, go, upstream_closed = threading.Event(), threading.Event(), threading.Event()

        def serve():
            s, _ = lsock.accept()
            s.settimeout(10)
            with s:
                data = b''
                while b'\r\n\r\n' not in data:
                    data += s.recv(4096)
                asked.set()
                go.wait(10)
                s.sendall(b'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'
                          b'Sec-WebSocket-Accept: %s\r\n\r\n' % accept_key('dGhlIHNhbXBsZSBub25jZQ==').encode())
                try:
                    while s.recv(4096):
                        pass
                    upstream_closed.set()
                except OSError:
                    upstream_closed.set()
        threading.Thread(target=serve, daemon=True).start()
        p = self.start_proxy(['-targets', 'a:http://127.0.0.1:%d' % lsock.getsockname()[1], '-workers', '1'])
        c = RawClient(p.port, timeout=10)
        c.request('GET', '/v1/realtime', [('Connection', 'Upgrade'), ('Upgrade', 'websocket'),
                                          ('Sec-WebSocket-Version', '13'),
                                          ('Sec-WebSocket-Key', 'dGhlIHNhbXBsZSBub25jZQ==')], host='a.example.test')
        self.assertTrue(asked.wait(5))
        time.sleep(0.1)
        os.kill(p.pid, signal.SIGSTOP)
        try:
            c.close()
            time.sleep(0.2)
            go.set()
            time.sleep(0.3)
        finally:
            os.kill(p.pid, signal.SIGCONT)
        self.assertTrue(upstream_closed.wait(5), 'the upstream was left open')
        time.sleep(0.2)
        self.assertIsNone(p.proc.poll(), 'the proxy died')

    @needs_linux_proc  # watches the kernel's socket queues in /proc/net/tcp
    def test_what_the_client_sent_before_leaving_reaches_a_slow_upstream(self):
        # README: either side's close ends the tunnel, and what the closing side sent
        # last, its close frame included, is delivered first. The client leaves while the
        # upstream reads nothing and the proxy itself holds some of the client's bytes.
        p = self.proxy()
        ws = self.open(p)
        ws.send(0x1, b'stall')
        self.assertTrue(wait_until(lambda: len(self.up.stalled) == 1, 5))
        proxy_port = next(iter(self.up.stalled))
        client_port = ws.sock.getsockname()[1]

        def queued(local, remote):
            """Bytes in the kernel between two loopback ports: the sender's send queue
            and the receiver's receive queue."""
            total = 0
            with open('/proc/net/tcp') as f:
                for line in f.readlines()[1:]:
                    parts = line.split()
                    lp, rp = int(parts[1].split(':')[1], 16), int(parts[2].split(':')[1], 16)
                    tx, rx = (int(x, 16) for x in parts[4].split(':'))
                    if (lp, rp) == (local, remote):
                        total += tx
                    if (lp, rp) == (remote, local):
                        total += rx
            return total

        # 16 KiB frames until the way to the upstream takes no more (its queue stays the
        # same) while the proxy has read all the client sent: the last frames are then
        # in the proxy's own buffers.
        sent = []
        last_q = -1
        deadline = now() + 30
        while now() < deadline:
            payload = bytes([len(sent) % 256]) * 16384
            ws.sock.settimeout(5)
            ws.send(0x2, payload)
            sent.append(payload)
            time.sleep(0.03)
            q = queued(proxy_port, self.up.port)
            if q == last_q and queued(client_port, p.port) == 0:
                time.sleep(0.2)
                if queued(proxy_port, self.up.port) == q and queued(client_port, p.port) == 0:
                    break
            last_q = q
        else:
            self.fail('the upstream side never filled up')
        ws.send(0x8, struct.pack('!H', 1000) + b'done')
        ws.close()
        time.sleep(0.5)
        self.up.resume.set()
        got = self.up.stalled[proxy_port]
        self.assertTrue(wait_until(lambda: got and got[-1][0] == 0x8, 20),
                        'the upstream got %d of %d frames and no close frame' % (len(got), len(sent) + 1))
        self.assertEqual([payload for op, payload in got[:-1]], sent)
        self.assertEqual(got[-1], (0x8, struct.pack('!H', 1000) + b'done'))

    def test_idle_timeout_and_pings_keep_it_alive(self):
        p = self.proxy(['-idle-timeout', '1s'])
        ws = self.open(p)
        for _ in range(8):  # 2.4 s of pings, 0.3 s apart: longer than the timeout
            ws.send(0x9, b'p')
            self.assertEqual(ws.frame()[1], 0xA)
            time.sleep(0.3)
        start = now()
        self.assertTrue(ws.closed_within(10))  # silence: closed after -idle-timeout
        self.assertTrue(0.5 < now() - start < 5, now() - start)
        self.assertTrue(wait_until(lambda: 'WebSocket' in p.stderr(), 5), p.stderr())

    def test_refusal_is_relayed_and_the_connection_goes_on(self):
        p = self.proxy()
        ws = WebSocketClient(p.port, path='/deny')
        self.addCleanup(ws.close)
        self.assertEqual(ws.head.status, 403)
        self.assertEqual(b''.join(piece for _, piece in ws.c.body_pieces(ws.head)),
                         b'{"error":{"message":"no","type":"invalid_request_error","code":null}}')
        self.assertIsNone(ws.head.header('Upgrade'))
        # An ordinary answer: the connection takes the next request.
        ws.c.request('GET', '/v1/models')
        self.assertEqual(ws.c.read_response().status, 200)

    def test_other_upgrades_are_not_offered_upstream(self):
        p = self.proxy()
        with RawClient(p.port) as c:
            c.request('GET', '/h2c', [('Connection', 'Upgrade, HTTP2-Settings'), ('Upgrade', 'h2c'),
                                      ('HTTP2-Settings', 'AAMAAABkAARAAAAAAAIAAAAA')])
            r = c.read_response()
        self.assertEqual(r.status, 200, r)
        names = {k.lower() for k, _ in self.up.heads[-1][2]}
        self.assertEqual(self.up.heads[-1][1], '/h2c')
        self.assertNotIn('upgrade', names)
        self.assertNotIn('http2-settings', names)
        # A WebSocket handshake with a body is not an upgrade either.
        with RawClient(p.port) as c:
            c.request('GET', '/body', [('Connection', 'Upgrade'), ('Upgrade', 'websocket'),
                                       ('Sec-WebSocket-Version', '13')], b'xyz')
            self.assertEqual(c.read_response().status, 200)

    def test_through_the_https_listener(self):
        server, key = certs().server
        try:
            p = self.proxy(['-tls-cert', server, '-tls-key', key])
        except AssertionError as e:
            if 'has no TLS server side' in str(e):
                self.skipTest('this build has no TLS server side (a small router build)')
            raise
        ctx = ssl.create_default_context(cafile=certs().ca)
        ws = self.open(p, tls_context=ctx)
        ws.send(0x1, b'push 3')
        self.assertEqual([ws.frame()[2] for _ in range(3)], [b'msg 0', b'msg 1', b'msg 2'])
        big = os.urandom(1 << 20)
        ws.send(0x2, big)
        self.assertEqual(ws.frame()[2], big)


if __name__ == '__main__':
    main()
