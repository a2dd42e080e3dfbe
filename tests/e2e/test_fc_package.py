#!/usr/bin/env python3
"""The Aliyun Function Compute custom-runtime package (scripts/package.sh fc, what
`make dist/fc.zip` runs).

Built here from the binary under test: the zip holds exactly `bootstrap` (FC's default
start file, /code/bootstrap) and `openai-proxy`, both stored executable and byte for byte
the sources. Unpacked with `unzip` (which keeps the modes) and started from another
directory, as FC does: with FC_SERVER_PORT set, the proxy listens on 0.0.0.0 at that
port (FC cannot reach 127.0.0.1) and relays a request to a loopback TLS upstream named
by OPENAI_PROXY_DEFAULT_TARGET; without it, the port is 9000 (checked with a stand-in
binary that prints its arguments, so that nothing binds port 9000 here).
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (ProxyTestCase, binary, certs, free_port, main, request_once, wait_until, windows_skip)  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, '..', '..'))
PACKAGE_SH = os.path.join(ROOT, 'scripts', 'package.sh')
BOOTSTRAP = os.path.join(ROOT, 'packaging', 'fc', 'bootstrap')


def listening_on_any(port):
    """True when /proc/net/tcp has a listening socket on 0.0.0.0:port."""
    with open('/proc/net/tcp') as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[1] == '00000000:%04X' % port and fields[3] == '0A':
                return True
    return False


@windows_skip('Function Compute runs the Linux binary')
class FcZip(ProxyTestCase):
    @classmethod
    def setUpClass(cls):
        if shutil.which('unzip') is None or shutil.which('zip') is None:
            raise __import__('unittest').SkipTest('zip and unzip are needed (scripts/deps.sh installs them)')
        cls.tmp = tempfile.mkdtemp(prefix='fc-')
        cls.zip = os.path.join(cls.tmp, 'fc.zip')
        r = subprocess.run([PACKAGE_SH, 'fc', binary(), cls.zip], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=60)
        if r.returncode != 0:
            raise AssertionError('package.sh fc failed:\n' + r.stdout.decode(errors='replace'))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def unpack(self):
        d = tempfile.mkdtemp(prefix='code-', dir=self.tmp)
        subprocess.run(['unzip', '-q', self.zip, '-d', d], check=True, timeout=30)
        return d

    def test_zip_content(self):
        with zipfile.ZipFile(self.zip) as z:
            infos = {i.filename: i for i in z.infolist()}
            self.assertEqual(sorted(infos), ['bootstrap', 'openai-proxy'])
            for name, src in (('bootstrap', BOOTSTRAP), ('openai-proxy', binary())):
                mode = infos[name].external_attr >> 16
                self.assertEqual(mode & 0o777, 0o755, name)
                with open(src, 'rb') as f:
                    self.assertEqual(z.read(name), f.read(), name)

    def run_bootstrap(self, code, env, args=()):
        # Started from another directory, by absolute path, as FC runs /code/bootstrap.
        full_env = {'PATH': os.environ.get('PATH', '/usr/bin:/bin')}
        full_env.update(env)
        return subprocess.Popen([os.path.join(code, 'bootstrap')] + list(args), cwd=self.tmp, env=full_env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def test_listens_on_fc_server_port_on_all_addresses(self):
        code = self.unpack()
        up = self.start_upstream()
        port = free_port()
        proc = self.run_bootstrap(code, {'FC_SERVER_PORT': str(port),
                                         'OPENAI_PROXY_DEFAULT_TARGET': '127.0.0.1:%d' % up.port,
                                         'OPENAI_PROXY_CA_FILE': certs().ca})

        def stop():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
        self.addCleanup(stop)

        def accepting():
            if proc.poll() is not None:
                raise AssertionError('bootstrap exited (%s): %s' % (proc.returncode, proc.stderr.read().decode()))
            with socket.socket() as s:
                s.settimeout(0.5)
                return s.connect_ex(('127.0.0.1', port)) == 0
        wait_until(accepting)
        self.assertTrue(listening_on_any(port), 'not listening on 0.0.0.0:%d' % port)
        r = request_once(port, 'POST', '/v1/chat/completions', body=b'{"fc":1}', host='fc.example.test')
        self.assertEqual(r.status, 200)
        self.assertEqual(up.request_count, 1)
        self.assertEqual(up.requests[0].target, '/v1/chat/completions')
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
        self.assertEqual(proc.returncode, 0, err.decode(errors='replace'))
        self.assertIn('Starting proxy server on 0.0.0.0:%d' % port, err.decode(errors='replace'))

    def test_default_port_and_extra_arguments(self):
        code = self.unpack()
        # A stand-in that prints where it runs and its arguments, one per line.
        stub = os.path.join(code, 'openai-proxy')
        with open(stub, 'w') as f:
            f.write('#!/bin/sh\npwd\nfor a in "$@"; do echo "$a"; done\n')
        os.chmod(stub, 0o755)
        for env, args, listen in (({}, [], '-listen=0.0.0.0:9000'),
                                  ({'FC_SERVER_PORT': ''}, ['-workers=1'], '-listen=0.0.0.0:9000'),
                                  ({'FC_SERVER_PORT': '8080'}, ['-workers=1'], '-listen=0.0.0.0:8080')):
            with self.subTest(env=env):
                proc = self.run_bootstrap(code, env, args)
                out, err = proc.communicate(timeout=10)
                self.assertEqual(proc.returncode, 0, err)
                self.assertEqual(out.decode().splitlines(), [os.path.realpath(code), listen] + args)


if __name__ == '__main__':
    main()
