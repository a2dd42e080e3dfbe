#!/usr/bin/env python3
"""Idle resident memory of the proxy, before and after its first upstream TLS connection,
for each binary and CA file given: the figures of dist/README.md's "Idle RSS depends on
the CA bundle" table.

    python3 bench/idle_rss.py BINARY [BINARY...] [--ca-file PEM ...] [--repeat N]

For each binary and CA file: start the proxy (one worker, -ca-file FILE, a loopback TLS
upstream of tests/e2e/harness.py: ECDSA P-256, signed by the e2e test CA) and read VmRSS
from /proc/<pid>/status 0.6 s after it logs its start line ("idle"); send one GET
/v1/models through it and read VmRSS again 0.6 s later ("after one request"). The CA files
(default: the test CA alone, and Debian's /etc/ssl/certs/ca-certificates.crt with the test
CA appended so that the request verifies) get the test CA appended when they lack it.
Prints the median of --repeat runs (default 3) and the range, in KiB. Only loopback is used.
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'tests', 'e2e'))
import harness  # noqa: E402

SETTLE_S = 0.6


def vm_rss_kib(pid):
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    raise RuntimeError('no VmRSS for pid %d' % pid)


def count_certs(path):
    with open(path, 'rb') as f:
        return f.read().count(b'-----BEGIN CERTIFICATE-----') + 0


def one_run(binary, ca_file, upstream):
    os.environ['OP_BINARY'] = binary
    proxy = harness.Proxy(['-workers', '1', '-targets', 'a:' + upstream.url], ca_file=ca_file)
    proxy.start()
    try:
        time.sleep(SETTLE_S)
        idle = vm_rss_kib(proxy.pid)
        r = harness.request_once(proxy.port, 'GET', '/v1/models', host='a.example.test')
        if r.status != 200:
            raise RuntimeError('%s with %s: the request got %s' % (binary, ca_file, r.status))
        time.sleep(SETTLE_S)
        after = vm_rss_kib(proxy.pid)
    finally:
        proxy.stop()
    return idle, after


def fmt(values):
    return '{:,} ({:,}–{:,})'.format(int(statistics.median(values)), min(values), max(values))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('binaries', nargs='+')
    ap.add_argument('--ca-file', action='append', default=None)
    ap.add_argument('--repeat', type=int, default=3)
    args = ap.parse_args()
    test_ca = harness.certs().ca
    with open(test_ca, 'rb') as f:
        test_ca_pem = f.read()
    ca_files = args.ca_file or [test_ca, '/etc/ssl/certs/ca-certificates.crt']
    work = tempfile.mkdtemp(prefix='idle-rss-')
    prepared = []
    for path in ca_files:
        with open(path, 'rb') as f:
            data = f.read()
        if test_ca_pem not in data:
            copy = os.path.join(work, os.path.basename(path) + '+test-ca.pem')
            with open(copy, 'wb') as f:
                f.write(data + b'\n' + test_ca_pem)
            path = copy
        prepared.append(path)
    upstream = harness.Upstream()
    try:
        print('%-50s %-55s %22s %22s' % ('binary', '-ca-file (certificates)', 'idle KiB', 'after 1 request KiB'))
        for binary in args.binaries:
            for ca in prepared:
                runs = [one_run(os.path.abspath(binary), ca, upstream) for _ in range(args.repeat)]
                label = '%s (%d)' % (ca, count_certs(ca))
                print('%-50s %-55s %22s %22s' % (binary, label, fmt([r[0] for r in runs]),
                                                 fmt([r[1] for r in runs])))
                sys.stdout.flush()
    finally:
        upstream.close()


if __name__ == '__main__':
    main()
