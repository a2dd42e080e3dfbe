#!/usr/bin/env python3
"""Instructions per small proxied POST, a figure that does not move with the machine's load.

Each build runs under `valgrind --tool=callgrind` (one worker) in front of a TLS upstream
on loopback (tests/e2e/harness.py's), and gets small JSON POSTs over 4 keep-alive
connections, one at a time. Per request: (Ir after N+W requests - Ir after W) / N, each
count a separate run from start to SIGTERM, so start-up and shutdown cancel out.

  python3 bench/callgrind_post.py --build base=/tmp/base/openai-proxy \\
      --build new=build/test/openai-proxy --build keys=build/test/openai-proxy:keys

A build NAME=PATH[:keys] with ":keys" runs from a -config file with access keys and one
server-side key on the default target (README "Keys and failover") instead of
-default-target. Needs valgrind and python3; prints a Markdown table.
"""
import argparse
import os
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


def handler(_req):
    return Resp(200, [('Content-Type', 'application/json')], body=ANSWER)


def total_ir(path):
    with open(path) as f:
        for line in f:
            m = re.match(r'^(?:summary|totals):\s+(\d+)', line)
            if m:
                return int(m.group(1))
    raise RuntimeError('no totals in ' + path)


def run_once(binary, keys, upstream, n, tmp):
    port = free_port()
    out = os.path.join(tmp, 'cg.%d.out' % n)
    argv = ['valgrind', '--tool=callgrind', '--callgrind-out-file=' + out, binary, '-listen',
            '127.0.0.1:%d' % port, '-workers', '1', '-ca-file', certs().ca]
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
            c = clients[i % 4]
            c.request('POST', '/v1/chat/completions', headers, BODY, host='127.0.0.1')
            r = c.read_response('POST')
            if r.status != 200:
                raise RuntimeError('status %s: %r' % (r.status, r.body[:200]))
        for c in clients:
            c.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    return total_ir(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--build', action='append', required=True, help='NAME=PATH[:keys]')
    ap.add_argument('--requests', type=int, default=1000)
    ap.add_argument('--warmup', type=int, default=100)
    ap.add_argument('--runs', type=int, default=3)
    a = ap.parse_args()
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
                    lo = run_once(path, keys, up, a.warmup, tmp)
                    hi = run_once(path, keys, up, a.warmup + a.requests, tmp)
                    results[name].append((hi - lo) / a.requests)
    finally:
        up.close()
    print('| build | instructions per request (runs) | median |')
    print('|---|---|---|')
    for name, _, _ in builds:
        v = sorted(results[name])
        print('| %s | %s | %.0f |' % (name, ', '.join('%.0f' % x for x in results[name]), v[len(v) // 2]))


if __name__ == '__main__':
    main()
