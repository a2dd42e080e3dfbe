#!/usr/bin/env python3
"""Instructions per proxied request, a figure that does not move with the machine's load.

Each build runs under `valgrind --tool=callgrind` (one worker) in front of a TLS upstream
on loopback (tests/e2e/harness.py's), and gets requests over 4 keep-alive connections,
one at a time. Per request: (Ir after N+W requests - Ir after W) / N, each count a
separate run from start to SIGTERM, so start-up and shutdown cancel out.

  python3 bench/callgrind_post.py --build base=/tmp/base/openai-proxy \\
      --build new=build/test/openai-proxy --build keys=build/test/openai-proxy:keys

--workload: `post` (default) small JSON POSTs; `upload` 1 MiB JSON POSTs answered with a
small JSON; `download` small GETs answered with a 1 MiB body (Content-Length). For the
two bulk workloads the defaults are 20 requests after 3 of warm-up.

--tool strace: instead of instructions, the system calls per request (`strace -f -c`,
the same difference of two runs), and with --sizes the bytes each read/write/send moved
(a histogram; `strace -f -e trace=...` in full, slower). Also calls of the TLS library's
read and write functions per request, from the callgrind counts (--tool callgrind),
with --calls.

A build NAME=PATH[:keys] with ":keys" runs from a -config file with access keys and one
server-side key on the default target (README "Keys and failover") instead of
-default-target. --keep DIR keeps the callgrind/strace outputs (the last pair per build)
for callgrind_annotate. Needs valgrind (or strace) and python3; prints a Markdown table.
"""
import argparse
import collections
import os
import shutil
import re
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'tests', 'e2e'))
from harness import RawClient, Resp, Upstream, certs, free_port  # noqa: E402

ACCESS_KEY = 'ak-bench-0123456789abcdef0123456789abcdef'
SERVER_KEY = 'sk-server-bench-0123456789abcdef0123456789abcdef'
BODY = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hi"}]}'
ANSWER = (b'{"id":"chatcmpl-1","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,'
          b'"message":{"role":"assistant","content":"Hi!"},"finish_reason":"stop"}],'
          b'"usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12}}')


MIB = 1 << 20
DOWNLOAD_PATH = '/v1/files/file-bench/content'
# 1 MiB of JSON for the upload, and 1 MiB of JSON lines for the download.
BIG_BODY = b'{"model":"gpt-4o-mini","input":"' + b'a' * (MIB - 36) + b'"}'
BIG_BODY = BIG_BODY[:MIB - 2] + b'"}'
_LINE = b'{"id":"batch_req_0","custom_id":"r","response":{"body":{"text":"' + b'b' * 900 + b'"}}}\n'
DOWNLOAD = (_LINE * (MIB // len(_LINE) + 1))[:MIB]


def handler(req):
    if req.target == DOWNLOAD_PATH:
        return Resp(200, [('Content-Type', 'application/octet-stream')], body=DOWNLOAD)
    return Resp(200, [('Content-Type', 'application/json')], body=ANSWER)


def one_request(c, workload, headers):
    if workload == 'download':
        c.request('GET', DOWNLOAD_PATH, headers[1:], None, host='127.0.0.1')
        r = c.read_response('GET')
        if r.status != 200 or len(r.body) != MIB:
            raise RuntimeError('status %s, %d bytes' % (r.status, len(r.body)))
        return
    c.request('POST', '/v1/chat/completions', headers, BIG_BODY if workload == 'upload' else BODY,
              host='127.0.0.1')
    r = c.read_response('POST')
    if r.status != 200:
        raise RuntimeError('status %s: %r' % (r.status, r.body[:200]))


STRACE_IO = 'read,write,recvfrom,sendto,readv,writev,sendmsg,recvmsg'


def strace_counts(path):
    """`strace -c` summary: {syscall: calls}."""
    out = {}
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1] != 'total':
                out[parts[-1]] = out.get(parts[-1], 0) + int(parts[3])
    return out


def strace_sizes(path):
    """Full trace of the I/O calls: {syscall: Counter(size bucket -> calls)} and bytes."""
    hist = collections.defaultdict(collections.Counter)
    nbytes = collections.Counter()
    pat = re.compile(r'^(?:\[pid\s+\d+\]\s+|\d+\s+)?(\w+)\(.*\)\s+=\s+(-?\d+)')
    with open(path) as f:
        for line in f:
            m = pat.match(line)
            if not m or m.group(1) not in STRACE_IO.split(','):
                continue
            n = int(m.group(2))
            if n < 0:
                hist[m.group(1)]['EAGAIN/error'] += 1
                continue
            nbytes[m.group(1)] += n
            b = 1
            while b < n:
                b *= 2
            hist[m.group(1)]['<=%dK' % (b // 1024) if b >= 1024 else '<=%d' % b] += 1
    return hist, nbytes


CALL_NAMES = ('SSL_read_ex', 'SSL_write_ex', 'SSL_read', 'SSL_write', 'mbedtls_ssl_read', 'mbedtls_ssl_write',
              'malloc', 'free', 'memcpy', '__memcpy_avx_unaligned_erms', 'memmove')


def call_counts(path):
    """Calls into a few functions, from a callgrind output (name compression aware)."""
    names = {}
    counts = collections.Counter()
    cfn = None
    with open(path) as f:
        for line in f:
            if line.startswith('cfn='):
                m = re.match(r'cfn=\((\d+)\)(?: (.*))?', line.rstrip('\n'))
                if m:
                    if m.group(2):
                        names[m.group(1)] = m.group(2)
                    cfn = names.get(m.group(1))
                else:
                    cfn = line[4:].strip()
            elif line.startswith('fn='):
                m = re.match(r'fn=\((\d+)\)(?: (.*))?', line.rstrip('\n'))
                if m and m.group(2):
                    names[m.group(1)] = m.group(2)
            elif line.startswith('calls=') and cfn is not None:
                name = cfn.split("'")[0]
                if name in CALL_NAMES:
                    counts[name] += int(line.split()[0][6:])
    return counts


def total_ir(path):
    with open(path) as f:
        for line in f:
            m = re.match(r'^(?:summary|totals):\s+(\d+)', line)
            if m:
                return int(m.group(1))
    raise RuntimeError('no totals in ' + path)


def run_once(binary, keys, upstream, n, tmp, a):
    port = free_port()
    out = os.path.join(tmp, '%s.%d.out' % (a.tool, n))
    if a.tool == 'strace':
        argv = ['strace', '-f', '-o', out] + (['-e', 'trace=' + STRACE_IO] if a.sizes else ['-c'])
    else:
        argv = ['valgrind', '--tool=callgrind', '--callgrind-out-file=' + out]
    argv += [binary, '-listen', '127.0.0.1:%d' % port, '-workers', '1', '-ca-file', certs().ca]
    if a.buffer_size:
        argv += ['-buffer-size', str(a.buffer_size)]
    if keys:
        conf = os.path.join(tmp, 'keys.conf')
        access = os.path.join(tmp, 'access.keys')
        with open(access, 'w') as f:
            f.write('bench = %s\n' % ACCESS_KEY)
        with open(conf, 'w') as f:
            f.write('access-keys = %s\n[default]\norigin = %s\nkey = %s\n' % (access, upstream.url, SERVER_KEY))
        os.chmod(access, 0o600)
        os.chmod(conf, 0o600)
        argv += ['-config', conf]
    else:
        argv += ['-default-target', upstream.url]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        clients = None
        while time.time() < deadline:
            try:
                clients = [RawClient(port, timeout=30) for _ in range(4)]
                break
            except OSError:
                time.sleep(0.1)
        if clients is None:
            raise RuntimeError('the proxy did not start')
        headers = [('Content-Type', 'application/json'), ('Authorization', 'Bearer ' + ACCESS_KEY)]
        for i in range(n):
            one_request(clients[i % 4], a.workload, headers)
        for c in clients:
            c.close()
    finally:
        target = proc.pid
        if a.tool == 'strace':  # strace holds SIGTERM back: the traced proxy gets it
            try:
                with open('/proc/%d/task/%d/children' % (proc.pid, proc.pid)) as f:
                    target = int(f.read().split()[0])
            except (OSError, IndexError, ValueError):
                pass
        os.kill(target, signal.SIGTERM)
        proc.wait(60)
    return out


def measure(out, a):
    """What one run's output file says, as {figure: value} (differences are taken per key)."""
    if a.tool == 'strace':
        if a.sizes:
            hist, nbytes = strace_sizes(out)
            r = {}
            for call, h in hist.items():
                for bucket, calls in h.items():
                    r['%s %s' % (call, bucket)] = calls
                r['%s bytes' % call] = nbytes[call]
            return r
        return strace_counts(out)
    r = {'Ir': total_ir(out)}
    if a.calls:
        r.update(call_counts(out))
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--build', action='append', required=True, help='NAME=PATH[:keys]')
    ap.add_argument('--workload', choices=('post', 'upload', 'download'), default='post')
    ap.add_argument('--tool', choices=('callgrind', 'strace'), default='callgrind')
    ap.add_argument('--sizes', action='store_true', help='strace: bytes per I/O call (histogram)')
    ap.add_argument('--calls', action='store_true', help='callgrind: calls of TLS read/write, malloc, memcpy')
    ap.add_argument('--buffer-size', type=int, default=None, help='pass -buffer-size to every build')
    ap.add_argument('--requests', type=int, default=None, help='default: 1000 (post), 20 (upload, download)')
    ap.add_argument('--warmup', type=int, default=None, help='default: 100 (post), 3 (upload, download)')
    ap.add_argument('--runs', type=int, default=3)
    ap.add_argument('--keep', help='copy the last pair of outputs per build here')
    a = ap.parse_args()
    bulk = a.workload != 'post'
    if a.requests is None:
        a.requests = 20 if bulk else 1000
    if a.warmup is None:
        a.warmup = 3 if bulk else 100
    builds = []
    for spec in a.build:
        name, path = spec.split('=', 1)
        keys = path.endswith(':keys')
        builds.append((name, path[:-5] if keys else path, keys))
    up = Upstream(handler)
    results = {name: [] for name, _, _ in builds}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for _ in range(a.runs):
                for name, path, keys in builds:  # interleaved, so drift hits every build alike
                    lo_out = run_once(path, keys, up, a.warmup, tmp, a)
                    lo = measure(lo_out, a)
                    hi_out = run_once(path, keys, up, a.warmup + a.requests, tmp, a)
                    hi = measure(hi_out, a)
                    results[name].append({k: (hi.get(k, 0) - lo.get(k, 0)) / a.requests for k in set(lo) | set(hi)})
                    if a.keep:
                        os.makedirs(a.keep, exist_ok=True)
                        shutil.copy(lo_out, os.path.join(a.keep, '%s.%s.lo' % (name, a.tool)))
                        shutil.copy(hi_out, os.path.join(a.keep, '%s.%s.hi' % (name, a.tool)))
    finally:
        up.close()
    what = {'post': 'small POST', 'upload': '1 MiB upload', 'download': '1 MiB download'}[a.workload]
    if a.tool == 'callgrind' and not a.calls:
        print('| build | instructions per %s (runs) | median |' % what)
        print('|---|---|---|')
        for name, _, _ in builds:
            v = sorted(r['Ir'] for r in results[name])
            print('| %s | %s | %.0f |' % (name, ', '.join('%.0f' % r['Ir'] for r in results[name]), v[len(v) // 2]))
        return
    # One row per figure (instructions, a system call, a size bucket), median of the runs.
    keys = sorted({k for rs in results.values() for r in rs for k in r})
    print('| per %s | %s |' % (what, ' | '.join(name for name, _, _ in builds)))
    print('|---|%s' % ('---|' * len(builds)))
    for k in keys:
        cells = []
        for name, _, _ in builds:
            v = sorted(r.get(k, 0) for r in results[name])
            cells.append('%.1f' % v[len(v) // 2])
        if any(c not in ('0.0', '-0.0') for c in cells):
            print('| %s | %s |' % (k, ' | '.join(cells)))


if __name__ == '__main__':
    main()
