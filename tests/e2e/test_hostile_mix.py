#!/usr/bin/env python3
"""Hostile bytes end to end, both ways. Requests: ~650, mutated at random (fixed seeds),
sent over real sockets from several threads at once, split at random points, some
pipelined, some left half-sent, half-closed or reset, some clients leaving mid-answer,
with a real TLS upstream behind the proxy answering JSON, streams, large bodies and
close-delimited bodies. Answers: 400 upstream answers (JSON, streams, close-delimited,
1xx, 204, 429), mutated the same way and followed by the upstream closing.

The parser fuzzers see one head at a time; this drives the connection state machines
(bodies, pipelining, error answers, aborts, the pool) with the same kind of input.
What must hold: the proxy never dies (under `make test-asan`, never a sanitizer
report); whatever it answers starts with a valid HTTP/1.1 status line; it still
serves a clean request afterwards; once the pool's idle timeout has passed it holds no
more descriptors than at the start; it exits 0 on SIGTERM.

X-Target-Host is disabled: a mutated header must never make the proxy resolve a
made-up name."""
import os
import random
import re
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ProxyTestCase, Resp, echo_handler, main, now, wait_until  # noqa: E402
from hardening_util import needs_linux_proc, proc_fds  # noqa: E402

THREADS = 8
SECONDS = 12.0          # per run; each exchange waits at most READ_WAIT for an answer
READ_WAIT = 0.5
STATUS_LINE = re.compile(rb'HTTP/1\.1 [1-9][0-9][0-9][ \r]')


def upstream_handler(req):
    p = req.target
    if 'stream' in p:
        return Resp(200, [('Content-Type', 'text/event-stream')],
                    chunks=[b'data: %d\n\n' % i for i in range(3)], delay=0.005)
    if 'big' in p:
        return Resp(200, [('Content-Type', 'application/octet-stream')], body=b'x' * 200000)
    if 'close' in p:
        return Resp(200, [], body=b'bye', framing='close')
    if 'empty' in p:
        return Resp(204, [])
    return echo_handler(req)


def request(rnd):
    """One request, sometimes followed by a second (pipelined), all well formed."""
    body = b'{"model":"m","messages":[{"role":"user","content":"' + b'a' * rnd.randint(0, 3000) + b'"}]}'
    path = rnd.choice([b'/v1/chat/completions', b'/v1/stream', b'/v1/big', b'/v1/close', b'/v1/empty',
                       b'/v1/models?x=1', b'http://localhost/v1/models'])
    length = b'POST ' + path + b' HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n' \
        b'Authorization: Bearer sk-x\r\nContent-Length: ' + str(len(body)).encode() + b'\r\n\r\n' + body
    chunks, rest = b'', body
    while rest:
        n = rnd.randint(1, 700)
        piece, rest = rest[:n], rest[n:]
        chunks += b'%x' % len(piece) + (b';ext=1' if rnd.random() < 0.2 else b'') + b'\r\n' + piece + b'\r\n'
    chunks += b'0\r\n' + (b'X-Trailer: 1\r\n' if rnd.random() < 0.3 else b'') + b'\r\n'
    chunked = b'POST ' + path + b' HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n' + chunks
    get = b'GET ' + path + b' HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n'
    others = [b'HEAD /v1/models HTTP/1.1\r\nHost: localhost\r\n\r\n',
              b'GET /v1/models HTTP/1.0\r\n\r\n',
              b'POST /v1/x HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello',
              b'GET /v1/models HTTP/1.1\r\nHost: localhost\r\nConnection: close, x-foo\r\nX-Foo: 1\r\n\r\n',
              b'OPTIONS * HTTP/1.1\r\nHost: localhost\r\n\r\n']
    first = rnd.choice([length, chunked, get] + others)
    if rnd.random() < 0.3:
        first += rnd.choice([length, chunked, get])
    return first


PIECES = [b'\r', b'\n', b'\r\n', b'\0', b' ', b'\t', b':', b',', b';', b'\x7f', b'\xff', b'0', b'9', b'-',
          b'ffffffffffffffff', b'18446744073709551616', b'\r\n\r\n', b'Transfer-Encoding: chunked\r\n',
          b'Content-Length: 0\r\n', b'Content-Length: 99999999\r\n', b'Host: a\r\n', b' x\r\n']


def mutate(rnd, data):
    data = bytearray(data)
    for _ in range(rnd.choice([0, 1, 1, 2, 3, 5])):
        if not data:
            break
        op, i = rnd.randrange(6), rnd.randrange(len(data))
        if op == 0:
            data[i] = rnd.randrange(256)
        elif op == 1:
            data[i:i] = rnd.choice(PIECES)
        elif op == 2:
            del data[i:i + rnd.randint(1, 16)]
        elif op == 3:
            j = rnd.randrange(len(data))
            data[i:i] = data[j:j + rnd.randint(1, 64)]
        elif op == 4:
            del data[i:]
        else:
            m = re.search(rb'[0-9]+', bytes(data[i:]))
            if m:
                data[i + m.start():i + m.end()] = rnd.choice(
                    [b'0', b'1', b'99999999999999999999', b'-1', b'00000001', b'4294967296'])
    return bytes(data)


def exchange(rnd, port):
    """Sends one mutated request in random pieces; returns (how it ended, bytes received)."""
    data = mutate(rnd, request(rnd))
    ending = rnd.random()
    with socket.create_connection(('127.0.0.1', port), timeout=READ_WAIT) as s:
        pos = 0
        while pos < len(data):
            n = rnd.choice([len(data), rnd.randint(1, 64), rnd.randint(1, 2048)])
            try:
                s.sendall(data[pos:pos + n])
            except OSError:
                return 'send failed', b''  # the proxy answered an error and closed
            pos += n
            if rnd.random() < 0.2:
                time.sleep(rnd.random() * 0.003)
        if ending < 0.1:  # reset
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b'\x01\x00\x00\x00\x00\x00\x00\x00')
            return 'reset by client', b''
        if ending < 0.25:
            s.shutdown(socket.SHUT_WR)
        got = b''
        deadline = now() + READ_WAIT
        while now() < deadline and len(got) < 1 << 20:
            try:
                b = s.recv(65536)
            except socket.timeout:
                return 'no answer yet', got
            except ConnectionResetError:
                return 'reset by proxy', got
            if not b:
                return 'closed', got
            got += b
            if ending < 0.35:
                return 'left mid-answer', got
        return 'no answer yet', got


def upstream_answer(rnd):
    """A well-formed answer of one of the framings the proxy relays; mutated by the caller."""
    body = b'{"id":"chatcmpl-1","choices":[{"message":{"content":"' + b'b' * rnd.randint(0, 3000) + b'"}}]}'
    events = b''.join(b'%x\r\ndata: %d\n\n\r\n' % (len(b'data: %d\n\n' % i), i) for i in range(rnd.randint(0, 5)))
    return rnd.choice([
        b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n' % len(body) + body,
        b'HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n' + events
        + b'0\r\n' + (b'X-Trailer: 1\r\n' if rnd.random() < 0.3 else b'') + b'\r\n',
        b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n' + body,
        b'HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok',
        b'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok',
        b'HTTP/1.1 204 No Content\r\n\r\n',
        b'HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 2\r\n\r\n{}',
    ])


def mutated_answer_handler(req):
    """The answer for ?seed=N: mutated from that seed, sent raw, then the connection closed."""
    if 'seed=' not in req.target:  # the warm-up request (HostileMix.base_fds)
        return Resp(200, [('Content-Type', 'application/json')], body=b'{}', close=True)
    seed = int(req.target.rsplit('=', 1)[1])
    rnd = random.Random(seed)
    return Resp(raw=mutate(rnd, upstream_answer(rnd)), rst=rnd.random() < 0.1)


@needs_linux_proc  # its checks count the proxy's descriptors
class HostileMix(ProxyTestCase):
    def assert_unharmed(self, p, base_fds):
        """Alive, and back to `base_fds` descriptors once idle upstream connections are gone."""
        self.assertTrue(p.alive(), 'the proxy died; stderr:\n' + p.stderr()[-4000:])
        self.assertTrue(wait_until(lambda: proc_fds(p.pid) <= base_fds, 10),
                        'descriptors: %d at start, %d now' % (base_fds, proc_fds(p.pid)))

    def base_fds(self, p, target):
        """The proxy's descriptors once idle after one request to `target`, which the upstream
        answers and then closes: its first upstream TLS connection loads the trust store,
        whose file the mbedTLS builds keep open from then on (src/tls_mbedtls.cpp's index),
        one descriptor at most."""
        before = proc_fds(p.pid)
        self.assertEqual(self.get(p, target).status, 200)
        self.assertTrue(wait_until(lambda: proc_fds(p.pid) <= before + 1, 5),
                        'descriptors: %d before the first request, %d after' % (before, proc_fds(p.pid)))
        return proc_fds(p.pid)

    def test_mutated_requests_from_many_clients(self):
        up = self.start_upstream(upstream_handler)
        p = self.start_proxy(['-default-target', up.authority, '-disable-target-header',
                              '-pool-idle-timeout', '1s', '-workers', '2'])
        base_fds = self.base_fds(p, '/v1/close')
        counts, bad, lock = {}, [], threading.Lock()
        stop = threading.Event()

        def client(seed):
            rnd = random.Random(seed)
            while not stop.is_set():
                how, got = exchange(rnd, p.port)
                with lock:
                    counts[how] = counts.get(how, 0) + 1
                    if got:
                        counts['answered'] = counts.get('answered', 0) + 1
                        if not STATUS_LINE.match(got):
                            bad.append(got[:120])

        threads = [threading.Thread(target=client, args=(1000 + i,)) for i in range(THREADS)]
        for t in threads:
            t.start()
        t_end = now() + SECONDS
        while now() < t_end and p.alive():
            time.sleep(0.2)
        stop.set()
        for t in threads:
            t.join(READ_WAIT * 4 + 5)
        self.assertTrue(p.alive(), 'the proxy died; stderr:\n' + p.stderr()[-4000:])
        self.assertEqual(bad, [], 'answers that do not start with an HTTP/1.1 status line')
        total = sum(v for k, v in counts.items() if k != 'answered')
        self.assertGreater(total, 100, counts)
        self.assertGreater(counts.get('answered', 0), total // 3, counts)
        self.assertEqual(self.get(p, '/v1/models').status, 200)
        # The clients are gone; the idle upstream connections expire after 1 s (checked
        # four times a second).
        self.assert_unharmed(p, base_fds)
        print('  hostile mix: %s' % dict(sorted(counts.items())), file=sys.stderr)

    def test_mutated_answers_from_the_upstream(self):
        # Each answer is mutated and followed by the upstream closing (or resetting) the
        # connection, so every exchange must end at once: the answer relayed (whole or
        # cut), or a 502; never a client left waiting.
        up = self.start_upstream(mutated_answer_handler)
        p = self.start_proxy(['-default-target', up.authority, '-disable-target-header', '-workers', '2'])
        base_fds = self.base_fds(p, '/v1/warm-up')
        counts, bad, lock = {}, [], threading.Lock()
        seeds = iter(range(400))

        def client():
            while True:
                with lock:
                    seed = next(seeds, None)
                if seed is None:
                    return
                raw = b'GET /v1/chat/completions?seed=%d HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' % seed
                got, how = b'', 'hung'
                with socket.create_connection(('127.0.0.1', p.port), timeout=5) as s:
                    s.sendall(raw)
                    try:
                        while len(got) < 1 << 20:
                            b = s.recv(65536)
                            if not b:
                                how = 'closed'
                                break
                            got += b
                    except socket.timeout:
                        pass
                    except ConnectionResetError:
                        how = 'reset'
                with lock:
                    counts[how] = counts.get(how, 0) + 1
                    if got[:12] == b'HTTP/1.1 502':
                        counts['502'] = counts.get('502', 0) + 1
                    if how == 'hung' or (got and not STATUS_LINE.match(got)):
                        bad.append((seed, how, got[:120]))

        threads = [threading.Thread(target=client) for _ in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        self.assertTrue(p.alive(), 'the proxy died; stderr:\n' + p.stderr()[-4000:])
        self.assertEqual(bad, [], 'exchanges that hung or answers without a valid status line (seed, how, bytes)')
        self.assertEqual(sum(v for k, v in counts.items() if k != '502'), 400, counts)
        self.assertGreater(counts.get('502', 0), 0, counts)
        self.assertLess(counts.get('502', 0), 400, counts)
        r = self.get(p, '/v1/models?seed=0')  # still answering (what depends on seed 0's mutation)
        self.assertTrue(100 <= r.status <= 599, r)
        # Every upstream connection was closed by the upstream: nothing stays pooled.
        self.assert_unharmed(p, base_fds)
        print('  mutated answers: %s' % dict(sorted(counts.items())), file=sys.stderr)


if __name__ == '__main__':
    main()
