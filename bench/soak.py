#!/usr/bin/env python3
"""Soak test for openai-proxy (not a CI test).

Runs the proxy for N minutes against local TLS upstreams (on loopback) with a mix of
  stream     an SSE stream read to its end (chunked), checked byte for byte
  json       a small non-streamed answer (Content-Length), kept-alive connection
  upload     a POST with a 64 KiB body, checked by its SHA-256
  abort      the client reads a few events of a stream, then closes the socket
  reset      the upstream resets the connection mid-stream (TCP RST, no close_notify)
  cut        the upstream closes mid-stream without the terminating chunk
  refused    the upstream port refuses connections (502)
from several client threads, and prints the proxy's open descriptors and RSS at the
start, every 30 s and at the end, with request counts and errors by kind. The exit
status is 1 if any request ended in an unexpected way or the proxy died.

  bench/soak.py [--minutes N] [--binary PATH] [--clients N] [--workers N]

Idle upstream connections expire after 5 s here (-pool-idle-timeout 5s), and the end
figures are taken after that, so descriptors at the end should equal those at start.
The binary defaults to build/release/openai-proxy (`make`), else /tmp/soak-build/openai-proxy
(cmake -S . -B /tmp/soak-build -DCMAKE_BUILD_TYPE=Release -DOP_TESTS=OFF &&
 cmake --build /tmp/soak-build --target openai-proxy); the test CA and upstreams come
from tests/e2e/harness.py (Python standard library only, loopback only).
"""
import argparse
import collections
import os
import random
import socket
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'e2e'))

import harness  # noqa: E402
from harness import RawClient, Resp, Upstream, free_port, has_token, now, sha256  # noqa: E402

EVENT_GAP = 0.02
MIX = [('stream', 30), ('json', 25), ('upload', 10), ('abort', 15), ('reset', 8), ('cut', 7), ('refused', 5)]
UPLOAD = os.urandom(64 * 1024)
DEFAULT_BINARIES = (os.path.join(ROOT, 'build', 'release', 'openai-proxy'), '/tmp/soak-build/openai-proxy')
FD_SETTLE_SECONDS = 20.0   # how long the end waits for descriptors to come back to the start count


def events(n):
    return [b'data: {"i":%d,"delta":"%s"}\n\n' % (i, b'tok' * (i % 7 + 1)) for i in range(n)] + [b'data: [DONE]\n\n']


def handler(req):
    kind, _, arg = req.target.strip('/').partition('/')
    if kind == 'stream':
        return Resp(200, [('Content-Type', 'text/event-stream')], chunks=events(int(arg)), delay=EVENT_GAP)
    if kind == 'reset':
        return Resp(200, [('Content-Type', 'text/event-stream')], chunks=events(40), delay=EVENT_GAP,
                    abort_after=int(arg), rst=True)
    if kind == 'cut':
        return Resp(200, [('Content-Type', 'text/event-stream')], chunks=events(40), delay=EVENT_GAP,
                    abort_after=int(arg))
    if kind == 'upload':
        return Resp(200, [('Content-Type', 'application/json')],
                    body=('{"sha256":"%s","length":%d}' % (req.sha256, len(req.body))).encode())
    return Resp(200, [('Content-Type', 'application/json')], body=b'{"object":"list","data":[]}')


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.ok = collections.Counter()          # kind -> finished as expected
        self.errors = collections.Counter()      # (kind, what) -> count
        self.examples = {}
        self.notes = collections.Counter()       # things worth a line, not errors

    def good(self, kind):
        with self.lock:
            self.ok[kind] += 1

    def note(self, what):
        with self.lock:
            self.notes[what] += 1

    def bad(self, kind, what, detail=''):
        with self.lock:
            self.errors[(kind, what)] += 1
            self.examples.setdefault((kind, what), detail[:300])


class ProcWatch:
    def __init__(self, pid):
        self.pid = pid

    def fds(self):
        try:
            return len(os.listdir('/proc/%d/fd' % self.pid))
        except OSError:
            return -1

    def status(self, key):
        try:
            with open('/proc/%d/status' % self.pid) as f:
                for line in f:
                    if line.startswith(key + ':'):
                        return int(line.split()[1])
        except OSError:
            pass
        return -1

    def cpu_seconds(self):
        try:
            with open('/proc/%d/stat' % self.pid) as f:
                fields = f.read().rsplit(')', 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')
        except OSError:
            return -1.0


def client_loop(port, stop, stats, seed):
    rnd = random.Random(seed)
    kinds = [k for k, w in MIX for _ in range(w)]
    c = None

    def fresh():
        nonlocal c
        if c is not None:
            c.close()
        c = RawClient(port, timeout=30)
        return c

    def closing(r):
        # The proxy may end a connection after an answer; it must say so.
        if has_token(r.headers, 'Connection', 'close'):
            stats.note('connection: close after %s %d' % (kind, r.status))
            fresh()

    while not stop.is_set():
        kind = rnd.choice(kinds)
        host = rnd.choice(('up.example.test', 'up2.example.test'))
        try:
            if c is None:
                fresh()
            if kind == 'stream':
                n = rnd.randint(5, 60)
                c.request('GET', '/stream/%d' % n, host=host)
                r = c.read_response(timeout=60)
                if r.status == 200 and r.complete and r.body == b''.join(events(n)):
                    stats.good(kind)
                    closing(r)
                else:
                    stats.bad(kind, 'bad or incomplete stream', repr(r))
                    fresh()
            elif kind == 'json':
                c.request('GET', '/json', host=host)
                r = c.read_response(timeout=30)
                if r.status == 200 and r.complete and r.body.startswith(b'{"object"'):
                    stats.good(kind)
                    closing(r)
                else:
                    stats.bad(kind, 'bad answer', repr(r))
                    fresh()
            elif kind == 'upload':
                c.request('POST', '/upload', [('Content-Type', 'application/octet-stream')], body=UPLOAD, host=host)
                r = c.read_response(timeout=30)
                if r.status == 200 and r.complete and sha256(UPLOAD).encode() in r.body:
                    stats.good(kind)
                    closing(r)
                else:
                    stats.bad(kind, 'bad answer', repr(r))
                    fresh()
            elif kind == 'abort':
                c.request('GET', '/stream/200', host=host)
                r = c.read_final_head(now() + 30)
                if r.status != 200:
                    stats.bad(kind, 'bad status', repr(r))
                else:
                    pieces = c.body_pieces(r, 'GET', now() + 30)
                    for _ in range(rnd.randint(1, 10)):
                        next(pieces)
                    stats.good(kind)
                c.close()   # mid-stream, unannounced
                c = None
            elif kind in ('reset', 'cut'):
                c.request('GET', '/%s/%d' % (kind, rnd.randint(1, 20)), host=host)
                r = c.read_response(timeout=30)
                if r.status == 200 and not r.complete:
                    stats.good(kind)  # the cut is visible to the client, as it must be
                else:
                    stats.bad(kind, 'cut stream looked complete' if r.complete else 'bad status', repr(r))
                fresh()
            elif kind == 'refused':
                c.request('GET', '/v1/models', host='dead.example.test')
                r = c.read_response(timeout=30)
                if r.status == 502 and b'"error"' in r.body:
                    stats.good(kind)
                    closing(r)
                else:
                    stats.bad(kind, 'not a JSON 502', repr(r))
                    fresh()
        except socket.timeout as e:
            stats.bad(kind, 'timeout', str(e))
            c = None
        except (harness.PeerClosed, ConnectionError, OSError, ValueError, StopIteration) as e:
            stats.bad(kind, type(e).__name__, str(e))
            c = None
    if c is not None:
        c.close()


def log_summary(text, limit=12):
    """The proxy's stderr lines, grouped with digits and addresses masked."""
    import re
    groups = collections.Counter()
    for line in text.splitlines():
        key = re.sub(r'\d+', 'N', line)
        groups[key[:160]] += 1
    return groups.most_common(limit)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--minutes', type=float, default=2.0)
    ap.add_argument('--binary', default=None,
                    help='default: %s' % ', else '.join(DEFAULT_BINARIES))
    ap.add_argument('--clients', type=int, default=8)
    ap.add_argument('--workers', type=int, default=0, help='proxy -workers (0: one per core)')
    ap.add_argument('--report-every', type=float, default=30.0, help='seconds between reports')
    args = ap.parse_args()
    binary = args.binary
    if binary is None:
        binary = next((b for b in DEFAULT_BINARIES if os.path.isfile(b) and os.access(b, os.X_OK)),
                      DEFAULT_BINARIES[0])
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        print('soak: no executable at %s (build with `make`, or pass --binary)' % binary)
        return 2
    os.environ['OP_BINARY'] = os.path.abspath(binary)

    ups = []
    proxy = None
    stop = threading.Event()
    threads = []
    try:
        ups = [Upstream(handler) for _ in range(2)]
        dead = free_port()
        # Two upstreams (Host keys "up" and "up2"), plus a refused port ("dead").
        proxy = harness.Proxy(['-targets', 'up:%s,up2:%s,dead:https://127.0.0.1:%d'
                               % (ups[0].url, ups[1].url, dead),
                               '-workers', str(args.workers), '-pool-idle-timeout', '5s'])
        proxy.start()
        return soak(args, binary, ups, proxy, stop, threads)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
        if proxy is not None:
            proxy.kill()          # no-op when soak() already stopped it
        for u in ups:
            u.close()


def soak(args, binary, ups, proxy, stop, threads):
    watch = ProcWatch(proxy.proc.pid)
    stats = Stats()
    t_start = now()
    cpu0 = watch.cpu_seconds()
    rss_samples = []

    def report(label):
        with stats.lock:
            ok = sum(stats.ok.values())
            bad = sum(stats.errors.values())
            by_kind = ' '.join('%s=%d' % (k, stats.ok[k]) for k, _ in MIX)
        cpu = watch.cpu_seconds() - cpu0
        fds, rss = watch.fds(), watch.status('VmRSS')
        rss_samples.append((label, now() - t_start, rss))
        print('[%6.1fs] %-5s fds=%d rss=%d KiB threads=%d cpu=%.1fs | ok=%d (%s) errors=%d'
              % (now() - t_start, label, fds, rss, watch.status('Threads'), cpu, ok, by_kind, bad), flush=True)
        return fds, rss

    print('soak: %s, %d client threads, %.1f min, upstreams %s, proxy pid %d on %s'
          % (binary, args.clients, args.minutes, ', '.join(u.url for u in ups), proxy.proc.pid, proxy.addr),
          flush=True)
    time.sleep(0.5)
    start_fds, start_rss = report('start')
    for i in range(args.clients):
        t = threading.Thread(target=client_loop, args=(proxy.port, stop, stats, i), daemon=True)
        threads.append(t)
        t.start()
    deadline = now() + args.minutes * 60
    next_report = now() + args.report_every
    alive = True
    while now() < deadline:
        time.sleep(min(1.0, max(0.0, deadline - now())))
        if not proxy.alive():
            alive = False
            print('soak: the proxy died (status %s); stderr tail:\n%s' % (proxy.proc.poll(), proxy.stderr()[-3000:]))
            break
        if now() >= next_report:
            report('run')
            next_report += args.report_every
    stop.set()
    t_stop = now()
    for t in threads:
        t.join(60)
    stuck = sum(1 for t in threads if t.is_alive())
    print('[%6.1fs] clients stopped (%.1f s to finish their last request%s)'
          % (now() - t_start, now() - t_stop, ', %d still stuck' % stuck if stuck else ''), flush=True)
    report('stop')
    # Let the proxy close what the last aborts left behind, and its idle pool expire
    # (-pool-idle-timeout 5s), then wait (bounded) for the descriptors to come back.
    t_idle = now()
    while alive and now() - t_idle < FD_SETTLE_SECONDS:
        time.sleep(0.5)
        if now() - t_idle >= 6.5 and abs(watch.fds() - start_fds) <= 2:
            break
    end_fds, end_rss = report('end')
    with stats.lock:
        total_ok = sum(stats.ok.values())
        print('requests finished as expected: %d  %s' % (total_ok, ', '.join('%s=%d' % (k, stats.ok[k]) for k, _ in MIX)))
        if stats.errors:
            print('unexpected outcomes by kind:')
            for (kind, what), n in sorted(stats.errors.items()):
                print('  %-8s %-32s %6d   e.g. %s' % (kind, what, n, stats.examples[(kind, what)]))
        else:
            print('unexpected outcomes: none')
        for what, n in sorted(stats.notes.items()):
            print('note: %s: %d' % (what, n))
        n_errors = sum(stats.errors.values())
    fds_ok = abs(end_fds - start_fds) <= 2
    print('descriptors: %d at start, %d at end, %s%s'
          % (start_fds, end_fds, 'back to start (+-2)' if fds_ok else 'NOT back to start (+-2)',
             ' %.1f s after the clients stopped' % (now() - t_idle) if fds_ok else
             ' after waiting %.0f s' % (now() - t_idle)))
    run_rss = [r for label, _, r in rss_samples if label in ('run', 'stop', 'end')]
    print('RSS: %d KiB at start, %d KiB at end (%+d KiB); samples under load and after: %s'
          % (start_rss, end_rss, end_rss - start_rss, ' '.join(str(r) for r in run_rss)))
    if len(run_rss) >= 2:
        first, peak = run_rss[0], max(run_rss)
        flat = peak - first <= max(2048, first // 10)
        print('RSS after the first report: %d KiB, peak %d KiB (%+d KiB): %s'
              % (first, peak, peak - first, 'flat' if flat else 'GROWING'))
    print('upstream connections accepted: %s; requests seen: %s; still open before SIGTERM: %s'
          % (', '.join(str(u.accept_count) for u in ups), ', '.join(str(u.request_count) for u in ups),
             ', '.join(str(u.accept_count - u.closed_count) for u in ups)))
    rc = proxy.stop() if alive else None
    print('proxy exit status after SIGTERM: %s' % rc)
    print('proxy log lines (digits masked), most frequent:')
    for line, n in log_summary(proxy.stderr()):
        print('  %7d  %s' % (n, line))
    errs = [e for u in ups for e in u.errors]
    if errs:
        print('upstream server errors: %d, e.g. %s' % (len(errs), errs[0][:300]))
    return 0 if alive and n_errors == 0 and rc == 0 and fds_ok and not stuck else 1


if __name__ == '__main__':
    sys.exit(main())
