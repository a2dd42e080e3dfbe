#!/usr/bin/env python3
"""packaging/systemd/openai-proxy.service, checked with `systemd-analyze verify`.

verify wants the unit's ExecStart binary to exist and the units it depends on by default
(sysinit.target, ...): the unit is verified as it ships, inside a temporary root
(--root) holding the binary under test at /usr/local/bin/openai-proxy and a copy of
systemd's own unit directory. verify reports problems (unknown keys, bad values) as
messages while still exiting 0, so any output fails the test; two spoiled copies (an
unknown key, a missing binary) show that the check catches both. `systemd-analyze
security --offline` must rate the sandbox at most 2.0 ("OK"). The unit's promises are
checked against the binary: TimeoutStopSec outlasts the default -shutdown-grace, ExecReload
sends SIGHUP, which the proxy survives (it re-reads -tls-cert), and every variable the example environment
file names is one the proxy reads (or OPENAI_PROXY_ARGS, which ExecStart expands).

Skipped, with the reason printed, where systemd-analyze is not installed.
"""
import os
import re
import shutil
import signal
import time
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (ProxyTestCase, binary, free_port, main, run_cli, wait_until, windows_skip)  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, '..', '..'))
UNIT = os.path.join(ROOT, 'packaging', 'systemd', 'openai-proxy.service')
ENV_FILE = os.path.join(ROOT, 'packaging', 'systemd', 'openai-proxy.env')
UNIT_PATH = '/etc/systemd/system/openai-proxy.service'
SYSTEM_UNITS = [d for d in ('/usr/lib/systemd/system', '/lib/systemd/system') if os.path.isdir(d)]


def unit_settings():
    """{key: [values]} of the unit file."""
    out = {}
    with open(UNIT) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith(('#', ';', '[')):
                continue
            k, _, v = line.partition('=')
            out.setdefault(k, []).append(v)
    return out


def seconds(text):
    m = re.fullmatch(r'(\d+)(s|min)?', text)
    return int(m.group(1)) * (60 if m.group(2) == 'min' else 1)


@windows_skip('systemd runs the Linux binary')
class SystemdUnit(ProxyTestCase):
    @classmethod
    def setUpClass(cls):
        cls.analyze = shutil.which('systemd-analyze')
        if not cls.analyze:
            raise unittest.SkipTest('systemd-analyze is not installed (Debian: apt-get install systemd)')
        if not SYSTEM_UNITS:
            raise unittest.SkipTest("systemd's unit directory (/usr/lib/systemd/system) is missing")
        cls.tmp = tempfile.mkdtemp(prefix='systemd-')

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def make_root(self, unit_text=None, with_binary=True):
        root = tempfile.mkdtemp(prefix='root-', dir=self.tmp)
        shutil.copytree(SYSTEM_UNITS[0], os.path.join(root, 'usr/lib/systemd/system'), symlinks=True)
        os.makedirs(os.path.join(root, 'etc/systemd/system'))
        with open(UNIT) as f:
            text = f.read()
        with open(os.path.join(root, UNIT_PATH.lstrip('/')), 'w') as f:
            f.write(unit_text if unit_text is not None else text)
        if with_binary:
            os.makedirs(os.path.join(root, 'usr/local/bin'))
            shutil.copy(binary(), os.path.join(root, 'usr/local/bin/openai-proxy'))
        # ExecReload's shell, which every system has.
        os.makedirs(os.path.join(root, 'bin'))
        shutil.copy(os.path.realpath('/bin/sh'), os.path.join(root, 'bin/sh'))
        return root

    def verify(self, root):
        r = subprocess.run([self.analyze, 'verify', '--root=' + root, UNIT_PATH], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=60, env=dict(os.environ, SYSTEMD_PAGER='cat'))
        return r.returncode, r.stdout.decode(errors='replace')

    def test_verify_is_clean(self):
        rc, out = self.verify(self.make_root())
        self.assertEqual((rc, out), (0, ''))

    def test_verify_catches_mistakes(self):
        with open(UNIT) as f:
            text = f.read()
        rc, out = self.verify(self.make_root(text.replace('NoNewPrivileges=yes', 'NoNewPrivilege=yes')))
        self.assertIn("Unknown key 'NoNewPrivilege'", out)
        rc, out = self.verify(self.make_root(with_binary=False))
        self.assertNotEqual(rc, 0)
        self.assertIn('/usr/local/bin/openai-proxy', out)

    def test_security_exposure(self):
        r = subprocess.run([self.analyze, 'security', '--offline=yes', '--root=' + self.make_root(), UNIT_PATH],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60,
                           env=dict(os.environ, SYSTEMD_PAGER='cat', SYSTEMD_COLORS='0'))
        text = r.stdout.decode(errors='replace')
        m = re.search(r'Overall exposure level for openai-proxy.service: (\d+\.\d+)', text)
        if not m and 'offline' in text:
            self.skipTest('this systemd-analyze has no security --offline: ' + text.strip()[:200])
        self.assertIsNotNone(m, text)
        print('systemd-analyze security: exposure %s' % m.group(1))
        self.assertLessEqual(float(m.group(1)), 2.0, text)

    def test_sandbox_settings(self):
        s = unit_settings()
        expect = {'DynamicUser': ['yes'], 'NoNewPrivileges': ['yes'], 'ProtectSystem': ['strict'],
                  'ProtectHome': ['yes'], 'PrivateTmp': ['yes'], 'CapabilityBoundingSet': [''],
                  'AmbientCapabilities': [''], 'RestrictAddressFamilies': ['AF_INET AF_INET6 AF_UNIX'],
                  'Restart': ['on-failure'], 'KillSignal': ['SIGTERM'],
                  'EnvironmentFile': ['-/etc/openai-proxy/env'],
                  'ExecStart': ['/usr/local/bin/openai-proxy $OPENAI_PROXY_ARGS']}
        for k, v in expect.items():
            self.assertEqual(s.get(k), v, k)

    def test_stop_timeout_outlasts_shutdown_grace(self):
        status, out, err, _ = run_cli(['-h'])
        m = re.search(r'-shutdown-grace duration\s*\n\s*.*\(default (\d+)s\)', out + err)
        self.assertIsNotNone(m, out + err)
        self.assertGreater(seconds(unit_settings()['TimeoutStopSec'][0]), int(m.group(1)))

    def test_reload_is_sighup_which_the_proxy_survives(self):
        self.assertEqual(unit_settings().get('ExecReload'), ['/bin/sh -c "kill -HUP $MAINPID"'])
        port = free_port()
        proc = subprocess.Popen([binary(), '-listen=127.0.0.1:%d' % port, '-default-target=127.0.0.1:1'],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                # SIGHUP's default action, even under a nohup'd runner: the
                                # proxy must install its own handler.
                                preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL))
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        import socket

        def accepting():
            with socket.socket() as s:
                return s.connect_ex(('127.0.0.1', port)) == 0
        self.assertTrue(wait_until(accepting))
        proc.send_signal(signal.SIGHUP)
        time.sleep(0.3)
        self.assertIsNone(proc.poll(), 'SIGHUP ended the proxy')
        self.assertTrue(accepting())
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
        self.assertEqual(proc.returncode, 0)
        self.assertIn(b'configuration reloaded: 1 target, 1 origin', err)

    def test_env_file_names_variables_the_proxy_reads(self):
        status, out, err, _ = run_cli(['-h'])
        known = set(re.findall(r'\(env (\w+)\)', out + err)) | {'SSL_CERT_FILE', 'SSL_CERT_DIR'}
        names = []
        with open(ENV_FILE) as f:
            for line in f:
                m = re.match(r'^#?([A-Z][A-Z0-9_]*)=', line)
                if m:
                    names.append(m.group(1))
        self.assertIn('OPENAI_PROXY_LISTEN', names)
        for n in names:
            self.assertTrue(n in known or n == 'OPENAI_PROXY_ARGS', '%s is not read by the proxy' % n)


if __name__ == '__main__':
    main()
