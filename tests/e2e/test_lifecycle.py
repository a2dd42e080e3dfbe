#!/usr/bin/env python3
"""Start-up log line, log format, and clean exits: SIGTERM and SIGINT end the process
promptly with status 0; a client that vanishes mid-write does not kill it (SIGPIPE)."""
import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Proxy, ProxyTestCase, Resp, free_port, main, now  # noqa: E402

LOG_RE = re.compile(r'^\[PROXY\] \d{4}/\d\d/\d\d \d\d:\d\d:\d\d \S.*$')
START_RE = re.compile(r'^\[PROXY\] \d{4}/\d\d/\d\d \d\d:\d\d:\d\d Starting proxy server on ')


class Lifecycle(ProxyTestCase):
    def launch(self, up, extra=()):
        p = Proxy(self.targets(('a', up)) + list(extra))
        p.start()
        self.addCleanup(p.kill)
        return p

    def test_start_line_and_log_format(self):
        up = self.start_upstream()
        dead = free_port()
        p = self.start_proxy(self.targets(('a', up), ('d', 'https://127.0.0.1:%d' % dead)))
        self.assertEqual(self.get(p).status, 200)
        self.assertEqual(self.get(p, host='d.example.test').status, 502)
        self.assertEqual(self.get(p, host='none.example.test').status, 404)
        time.sleep(0.2)
        lines = [ln for ln in p.stderr().splitlines() if ln.strip()]
        self.assertTrue(lines, 'nothing logged')
        self.assertRegex(lines[0], START_RE)
        bad = [ln for ln in lines if not LOG_RE.match(ln)]
        self.assertEqual(bad, [], 'log lines not in the "[PROXY] YYYY/MM/DD HH:MM:SS message" format')
        self.assertGreaterEqual(len(lines), 2, 'the 502 was not logged')

    def check_signal(self, sig, with_idle_client):
        up = self.start_upstream()
        p = self.launch(up)
        c = None
        if with_idle_client:
            c = self.client(p)
            c.request('GET', '/v1/models')
            self.assertEqual(c.read_response().status, 200)
        t0 = now()
        rc = p.stop(sig, timeout=10)
        elapsed = now() - t0
        self.assertEqual(rc, 0, 'exit status %s after %s; stderr:\n%s' % (rc, sig, p.stderr()))
        self.assertLess(elapsed, 5.0, 'took %.1f s to exit' % elapsed)
        if c is not None:
            closed, _ = c.wait_closed(2)
            self.assertTrue(closed)

    def test_sigterm_exits_0(self):
        self.check_signal(signal.SIGTERM, False)

    def test_sigint_exits_0(self):
        self.check_signal(signal.SIGINT, False)

    def test_sigterm_with_an_idle_keepalive_client_exits_0_promptly(self):
        self.check_signal(signal.SIGTERM, True)

    def test_client_vanishing_mid_write_does_not_kill_the_proxy(self):
        big = b'x' * (4 * 1024 * 1024)
        up = self.start_upstream(lambda req: Resp(200, body=big))
        p = self.start_proxy(self.targets(('a', up)))
        for _ in range(5):
            c = self.client(p)
            c.request('GET', '/big')
            c.read_final_head()
            c.rd.read_some(1000, now() + 10)
            c.close()
        time.sleep(0.3)
        self.assertTrue(p.alive(), 'the proxy died: %s' % p.stderr())
        r = self.get(p, '/v1/models')
        self.assertEqual(r.status, 200)


if __name__ == '__main__':
    main()
