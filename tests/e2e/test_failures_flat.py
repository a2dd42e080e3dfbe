#!/usr/bin/env python3
"""Failures do not leak (issue 3): 10,000 failing requests in a row (upstream refused,
TLS to a plain server, garbage response over plain TCP and over TLS, reset before any
answer) are each answered with a JSON 502 and leave the proxy's open descriptor count
(/proc/PID/fd) at its starting value (+-2) and its RSS (VmRSS) within 5 MB.

Under AddressSanitizer the quarantine of freed memory is turned off for this proxy
(ASAN_OPTIONS), or it would look like growth."""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ProxyTestCase, RawClient, binary, free_port, main, now  # noqa: E402
from hardening_util import (RawServer, asan_env, proc_fds, proc_rss_kb, needs_linux_proc, read_request_head,  # noqa: E402
                            reset_close)

CLIENTS = 3
# The 10,000 in a row (about 10 s in a Release build); OP_FAILURES overrides.
TOTAL = int(os.environ.get('OP_FAILURES', '10002')) // CLIENTS * CLIENTS
WARMUP = 201
MAX_FD_DRIFT = 2
MAX_RSS_GROWTH_KB = 5 * 1024


def garbage(s, _i):
    read_request_head(s, timeout=10)
    s.sendall(b'GARBAGE\r\n\r\n')


def answer_400(s, _i):
    # A plain HTTP server receiving a TLS ClientHello answers 400 and closes.
    s.settimeout(10)
    s.recv(4096)
    s.sendall(b'HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n')


def reset(s, _i):
    read_request_head(s, timeout=10)
    reset_close(s)


class FailuresFlat(ProxyTestCase):
    @needs_linux_proc
    def test_failures_leave_descriptors_and_memory_flat(self):
        servers = {
            'garbage': RawServer(garbage),
            'tls-garbage': RawServer(garbage, tls=True),
            'tls-to-plain': RawServer(answer_400),
            'reset': RawServer(reset),
        }
        for s in servers.values():
            self.addCleanup(s.close)
        routes = [
            ('refused', 'r', 'http://127.0.0.1:%d' % free_port()),
            ('tls-to-plain', 't', 'https://' + servers['tls-to-plain'].authority),
            ('garbage', 'g', 'http://' + servers['garbage'].authority),
            ('tls-garbage', 's', 'https://' + servers['tls-garbage'].authority),
            ('reset', 'x', 'http://' + servers['reset'].authority),
        ]
        p = self.start_proxy(self.targets(*[(key, url) for _n, key, url in routes]) + ['-workers', '1'],
                             env=asan_env(binary()))
        pid = p.pid
        counts = {name: 0 for name, _k, _u in routes}
        statuses = {}
        errors = []
        lock = threading.Lock()

        def run(n, worker):
            c = None
            for i in range(n):
                name, key, _url = routes[(i + worker) % len(routes)]
                for attempt in range(2):
                    try:
                        if c is None:
                            c = RawClient(p.port, timeout=15)
                        c.request('GET', '/v1/fail/%d' % i, host='%s.example.test' % key)
                        r = c.read_response(timeout=15)
                        break
                    except Exception as e:  # the proxy closed a kept-alive connection: retry once
                        if c is not None:
                            c.close()
                        c = None
                        if attempt:
                            with lock:
                                errors.append('%s: %r' % (name, e))
                            r = None
                if r is None:
                    continue
                with lock:
                    counts[name] += 1
                    statuses[r.status] = statuses.get(r.status, 0) + 1
                    if r.status != 502 or b'"error"' not in r.body:
                        errors.append('%s: %r' % (name, r))
                if r.header('Connection') == 'close':
                    c.close()
                    c = None
            if c is not None:
                c.close()

        def batch(total):
            threads = [threading.Thread(target=run, args=(total // CLIENTS, w)) for w in range(CLIENTS)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(120)

        t0 = now()
        batch(WARMUP)
        time.sleep(0.5)
        fds0, rss0 = proc_fds(pid), proc_rss_kb(pid)
        batch(TOTAL)
        time.sleep(1.0)
        fds1, rss1 = proc_fds(pid), proc_rss_kb(pid)
        elapsed = now() - t0
        print('\n  %d failures in %.1f s by kind %s, statuses %s; fds %d -> %d, RSS %d -> %d KiB'
              % (sum(counts.values()), elapsed, counts, statuses, fds0, fds1, rss0, rss1))
        self.assertEqual(errors[:10], [])
        self.assertEqual(sum(counts.values()), (WARMUP // CLIENTS + TOTAL // CLIENTS) * CLIENTS)
        self.assertLessEqual(abs(fds1 - fds0), MAX_FD_DRIFT, 'descriptors %d -> %d' % (fds0, fds1))
        self.assertLess(rss1 - rss0, MAX_RSS_GROWTH_KB, 'RSS grew %d KiB' % (rss1 - rss0))
        self.assertTrue(p.alive(), p.stderr()[-2000:])


if __name__ == '__main__':
    main()
