#!/usr/bin/env python3
"""The OpenWrt package (scripts/package.sh ipk, what `make dist/openwrt/...` runs) and its
procd init script.

Package: built here from the binary under test (a stand-in for the router binaries: the
packer is the same for every CPU), then read back as opkg reads it: a gzip'd tar holding
./debian-binary, ./data.tar.gz and ./control.tar.gz, in OpenWrt's ipkg-build order;
control fields (Version from CMakeLists.txt, Architecture, Installed-Size = the data
tar's size as ipkg-build counts it, Depends: ca-bundle, ...); conffiles; the maintainer
scripts; data paths, modes, owners and contents. A binary for another CPU is refused.

Init script: run under `sh` (dash on Debian) and busybox ash when installed, with the UCI
and procd functions replaced by test doubles (openwrt_doubles.sh), for several UCI
configs: the shipped one, one setting every option, several sections, list and
comma-string forms. The procd calls are rebuilt into each instance's command line and
parameters and compared whole. The command line built from the every-option config is
then run: the real binary must accept every flag and relay a request to a loopback TLS
upstream.
"""
import gzip
import io
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (ProxyTestCase, binary, certs, free_port, main, request_once, wait_until, windows_skip)  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, '..', '..'))
PACKAGE_SH = os.path.join(ROOT, 'scripts', 'package.sh')
INIT = os.path.join(ROOT, 'packaging', 'openwrt', 'files', 'openai-proxy.init')
UCI_CONFIG = os.path.join(ROOT, 'packaging', 'openwrt', 'files', 'openai-proxy.config')
DOUBLES = os.path.join(HERE, 'openwrt_doubles.sh')
PROG = '/usr/bin/openai-proxy'


def project_version():
    with open(os.path.join(ROOT, 'CMakeLists.txt')) as f:
        m = re.search(r'^project\(openai_proxy VERSION ([0-9.]+)', f.read(), re.M)
    return m.group(1)


def host_cpu():
    return {'x86_64': 'amd64', 'aarch64': 'arm64'}.get(platform.machine())


def read_tar_gz(data):
    """{name: (TarInfo, bytes or None)} in archive order, from gzip'd tar bytes."""
    out = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode='r:gz') as t:
        for m in t.getmembers():
            out[m.name] = (m, t.extractfile(m).read() if m.isfile() else None)
    return out


def parse_control(text):
    fields, last = {}, None
    for line in text.splitlines():
        if line.startswith(' ') and last:
            fields[last] += '\n' + line[1:]
            continue
        m = re.match(r'^([A-Za-z][A-Za-z0-9-]*): (.*)$', line)
        if not m:
            raise AssertionError('malformed control line %r' % line)
        last = m.group(1)
        fields[last] = m.group(2)
    return fields


@windows_skip('an OpenWrt package holds a Linux binary')
class Package(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cpu = host_cpu()
        if cls.cpu is None:
            raise unittest.SkipTest('no package CPU name for this host (%s)' % platform.machine())
        cls.binary = os.environ.get('OP_STATIC_BINARY') or binary()
        with open(cls.binary, 'rb') as f:
            if f.read(4) != b'\x7fELF':
                # make test-small runs the e2e files through a qemu wrapper script: a
                # package holds the binary itself, which the host-CPU build's run checks.
                raise unittest.SkipTest('%s is not an ELF binary (a wrapper script?): nothing to package'
                                        % cls.binary)
        cls.tmp = tempfile.mkdtemp(prefix='ipk-')
        cls.ipk = os.path.join(cls.tmp, 'out', 'openai-proxy_test.ipk')
        cls.version = project_version() + '-1'
        r = subprocess.run([PACKAGE_SH, 'ipk', '--cpu', cls.cpu, '--arch', 'test_arch-v1', '--version',
                            cls.version, cls.binary, cls.ipk], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=60)
        if r.returncode != 0:
            raise AssertionError('package.sh ipk failed:\n' + r.stdout.decode(errors='replace'))
        with open(cls.ipk, 'rb') as f:
            cls.raw = f.read()
        cls.outer = read_tar_gz(cls.raw)
        cls.data = read_tar_gz(cls.outer['./data.tar.gz'][1])
        cls.control = read_tar_gz(cls.outer['./control.tar.gz'][1])

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_outer_archive_is_openwrt_ipkg_build_layout(self):
        self.assertEqual(self.raw[:2], b'\x1f\x8b', 'an OpenWrt ipk is a gzip file, not an ar archive')
        self.assertEqual(list(self.outer), ['./debian-binary', './data.tar.gz', './control.tar.gz'])
        self.assertEqual(self.outer['./debian-binary'][1], b'2.0\n')
        for name, (info, _) in self.outer.items():
            self.assertTrue(info.isfile(), name)
            self.assertEqual((info.uid, info.gid), (0, 0), name)
        for inner in ('./data.tar.gz', './control.tar.gz'):
            self.assertEqual(self.outer[inner][1][:2], b'\x1f\x8b', inner)

    def test_busybox_tar_reads_it(self):
        # opkg's own extractor comes from busybox's: busybox tar must list the same members.
        if not shutil.which('busybox'):
            self.skipTest('busybox is not installed (apt-get install busybox)')
        d = tempfile.mkdtemp(prefix='bb-', dir=self.tmp)
        subprocess.run(['busybox', 'tar', '-xzf', self.ipk, '-C', d], check=True, timeout=30)
        self.assertEqual(sorted(os.listdir(d)), ['control.tar.gz', 'data.tar.gz', 'debian-binary'])
        for inner, members in (('data.tar.gz', self.data), ('control.tar.gz', self.control)):
            r = subprocess.run(['busybox', 'tar', '-tzf', os.path.join(d, inner)], stdout=subprocess.PIPE,
                               check=True, timeout=30)
            listed = sorted(n.rstrip('/') for n in r.stdout.decode().splitlines())
            self.assertEqual(listed, sorted(members), inner)

    def test_control_fields(self):
        fields = parse_control(self.control['./control'][1].decode())
        self.assertEqual(fields['Package'], 'openai-proxy')
        self.assertEqual(fields['Version'], self.version)
        self.assertEqual(fields['Architecture'], 'test_arch-v1')
        self.assertEqual(fields['Depends'], 'ca-bundle')
        self.assertEqual(fields['Section'], 'net')
        self.assertTrue(fields['License'])
        self.assertTrue(fields['Maintainer'])
        self.assertIn('\n', fields['Description'], 'a summary line and an extended description')
        uncompressed = gzip.decompress(self.outer['./data.tar.gz'][1])
        self.assertEqual(int(fields['Installed-Size']), len(uncompressed))
        self.assertTrue(self.control['./control'][1].endswith(b'\n'))

    def test_conffiles_and_maintainer_scripts(self):
        self.assertEqual(self.control['./conffiles'][1], b'/etc/config/openai-proxy\n')
        self.assertIn('./etc/config/openai-proxy', self.data)
        for name, call in (('./postinst', 'default_postinst $0 $@'), ('./prerm', 'default_prerm $0 $@')):
            info, body = self.control[name]
            self.assertEqual(info.mode & 0o777, 0o755, name)
            text = body.decode()
            self.assertTrue(text.startswith('#!/bin/sh\n'), name)
            self.assertIn('. ${IPKG_INSTROOT}/lib/functions.sh', text)
            self.assertIn(call, text)
            path = os.path.join(self.tmp, name[2:])
            with open(path, 'wb') as f:
                f.write(body)
            self.assertEqual(subprocess.run(['sh', '-n', path]).returncode, 0, name)
        self.assertEqual(sorted(self.control), ['.', './conffiles', './control', './postinst', './prerm'])

    def test_data_files(self):
        files = {n: (i, b) for n, (i, b) in self.data.items() if not i.isdir()}
        self.assertEqual(sorted(files), ['./etc/config/openai-proxy', './etc/init.d/openai-proxy',
                                         './usr/bin/openai-proxy'])
        expect = {'./usr/bin/openai-proxy': (self.binary, 0o755),
                  './etc/init.d/openai-proxy': (INIT, 0o755),
                  './etc/config/openai-proxy': (UCI_CONFIG, 0o644)}
        for name, (src, mode) in expect.items():
            info, body = files[name]
            with open(src, 'rb') as f:
                self.assertEqual(body, f.read(), name)
            self.assertEqual(info.mode & 0o7777, mode, name)
        for name, (info, _) in self.data.items():
            self.assertTrue(name == '.' or name.startswith('./'), name)  # tarfile reads './' as '.'
            self.assertEqual((info.uid, info.gid, info.uname, info.gname), (0, 0, '', ''), name)
            if info.isdir():
                self.assertEqual(info.mode & 0o777, 0o755, name)

    def test_binary_for_another_cpu_is_refused(self):
        other = 'mips' if self.cpu != 'mips' else 'amd64'
        out = os.path.join(self.tmp, 'wrong.ipk')
        r = subprocess.run([PACKAGE_SH, 'ipk', '--cpu', other, '--arch', 'mips_24kc', '--version', '1',
                            self.binary, out], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b'is not a binary for CPU %s' % other.encode(), r.stdout)
        self.assertFalse(os.path.exists(out))


@windows_skip('an OpenWrt package holds a Linux binary')
class SdkMakefile(unittest.TestCase):
    """packaging/openwrt/Makefile cannot be built here (no OpenWrt SDK); at least it must
    not drift from the project: same version, same files, same conffiles."""

    def test_matches_the_project(self):
        with open(os.path.join(ROOT, 'packaging', 'openwrt', 'Makefile')) as f:
            text = f.read()
        self.assertIn('PKG_VERSION:=%s\n' % project_version(), text)
        self.assertIn('include $(TOPDIR)/rules.mk', text)
        self.assertIn('$(eval $(call BuildPackage,openai-proxy))', text)
        self.assertIn('+ca-bundle', text)
        self.assertIn('-DOP_TLS=mbedtls', text)
        for line in ('./files/openai-proxy.init $(1)/etc/init.d/openai-proxy',
                     './files/openai-proxy.config $(1)/etc/config/openai-proxy',
                     '/usr/bin/openai-proxy'):
            self.assertIn(line, text)
        conffiles = re.search(r'define Package/openai-proxy/conffiles\n(.*?)endef', text, re.S).group(1)
        self.assertEqual(conffiles, '/etc/config/openai-proxy\n')


def shells():
    """(name, argv prefix) of the POSIX shells to run the init script with."""
    out = [('sh', ['sh'])]
    if shutil.which('busybox'):
        out.append(('busybox ash', ['busybox', 'ash']))
    else:
        print('note: busybox is not installed; the init script is run under sh only (apt-get install busybox)')
    return out


@windows_skip('an OpenWrt package holds a Linux binary')
class InitScript(ProxyTestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix='init-')
        self.addCleanup(shutil.rmtree, self.tmp, True)
        # Bait for unquoted expansions: '*.openai.azure.com' would glob to this name.
        open(os.path.join(self.tmp, 'bait.openai.azure.com'), 'w').close()

    def run_init(self, config_text, shell):
        """Instances the init script asks procd for, as [(name, command, params)], and the
        reload triggers."""
        uci = os.path.join(self.tmp, 'uci')
        os.makedirs(uci, exist_ok=True)
        with open(os.path.join(uci, 'openai-proxy'), 'w') as f:
            f.write(config_text)
        log = os.path.join(self.tmp, 'procd.log')
        if os.path.exists(log):
            os.unlink(log)
        driver = os.path.join(self.tmp, 'driver.sh')
        with open(driver, 'w') as f:
            f.write('. "$DOUBLES"\n. "$INIT"\nstart_service\nservice_triggers\n')
        env = {'PATH': os.environ.get('PATH', '/usr/bin:/bin'), 'DOUBLES': DOUBLES, 'INIT': INIT,
               'UCI_ROOT': uci, 'PROCD_LOG': log}
        r = subprocess.run(shell + [driver], cwd=self.tmp, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr.decode(errors='replace'))
        self.assertEqual(r.stderr, b'', 'the init script wrote to stderr')
        calls = []
        with open(log) as f:
            for line in f.read().splitlines():
                if line.startswith('arg '):
                    calls[-1][1].append(line[4:])
                else:
                    calls.append((line, []))
        instances, triggers, cur = [], [], None
        for call, args in calls:
            if call == 'open_instance':
                self.assertIsNone(cur, 'instance opened inside another')
                cur = {'name': args[0] if args else None, 'command': None, 'params': {}}
            elif call == 'set_param':
                self.assertIsNotNone(cur)
                if args[0] == 'command':
                    cur['command'] = args[1:]
                else:
                    self.assertNotIn(args[0], cur['params'], 'parameter set twice')
                    cur['params'][args[0]] = args[1:]
            elif call == 'append_param':
                self.assertEqual(args[0], 'command')
                cur['command'].extend(args[1:])
            elif call == 'close_instance':
                instances.append(cur)
                cur = None
            elif call == 'add_reload_trigger':
                triggers.append(args)
            else:
                self.fail('unexpected procd call %s' % call)
        self.assertIsNone(cur, 'instance not closed')
        self.assertEqual(triggers, [['openai-proxy']])
        return instances

    def for_each_shell(self, config_text, check):
        for name, argv in shells():
            with self.subTest(shell=name):
                check(self.run_init(config_text, argv))

    COMMON = {'respawn': ['3600', '5', '5'], 'stdout': ['1'], 'stderr': ['1'], 'no_new_privs': ['1'],
              'file': ['/etc/config/openai-proxy']}

    def test_shipped_config(self):
        with open(UCI_CONFIG) as f:
            text = f.read()

        def check(instances):
            self.assertEqual(len(instances), 1)
            i = instances[0]
            self.assertEqual(i['name'], 'main')
            self.assertEqual(i['command'], [PROG, '-listen=:9001', '-workers=1', '-max-connections=1024'])
            self.assertEqual(i['params'], dict(self.COMMON, user=['nobody'], limits=['nofile=2112 2112'],
                                               term_timeout=['35']))
        self.for_each_shell(text, check)

    EVERYTHING = """
config proxy 'main'
	option enabled 'yes'
	option listen '127.0.0.1:{port}'
	list target 'oa:127.0.0.1:{up}'
	list target 'local:http://127.0.0.1:{up}'
	option default_target '127.0.0.1:{up}'
	option ca_file '{ca}'
	list allow_host 'api.openai.com'
	list allow_host '*.openai.azure.com'
	option allow_private 'on'
	option disable_target_header 'off'
	option workers '2'
	option max_connections '100'
	option max_body_size '1MiB'
	option buffer_size '2048'
	option pool_max_idle '16'
	option pool_max_idle_per_host '8'
	option pool_idle_timeout '60s'
	option connect_timeout '5s'
	option tls_timeout '6s'
	option response_timeout '2m'
	option idle_timeout '3m'
	option header_timeout '20s'
	option keepalive_timeout '30s'
	option shutdown_grace '1h30m'
	option max_header_size '32KiB'
	option max_request_line '4KiB'
	option max_header_count '50'
	option max_header_line '8KiB'
	list cors_origin 'https://chat.example.com'
	list cors_origin 'http://localhost:5173'
	option sse_keepalive '30s'
	option json_keepalive '500ms'
"""

    def everything_command(self, port, up, ca):
        return [PROG, '-listen=127.0.0.1:%d' % port, '-targets=oa:127.0.0.1:%d,local:http://127.0.0.1:%d' % (up, up),
                '-default-target=127.0.0.1:%d' % up, '-ca-file=%s' % ca,
                '-allow-hosts=api.openai.com,*.openai.azure.com', '-allow-private', '-workers=2',
                '-max-connections=100', '-max-body-size=1MiB', '-buffer-size=2048', '-pool-max-idle=16',
                '-pool-max-idle-per-host=8', '-pool-idle-timeout=60s', '-connect-timeout=5s', '-tls-timeout=6s',
                '-response-timeout=2m', '-idle-timeout=3m', '-header-timeout=20s', '-keepalive-timeout=30s',
                '-shutdown-grace=1h30m', '-max-header-size=32KiB', '-max-request-line=4KiB',
                '-max-header-count=50', '-max-header-line=8KiB',
                '-cors-origins=https://chat.example.com,http://localhost:5173', '-sse-keepalive=30s',
                '-json-keepalive=500ms']

    def test_every_option(self):
        ca = '/etc/my certs/ca.pem'   # a space stays inside one argument
        text = self.EVERYTHING.format(port=9100, up=8443, ca=ca)

        def check(instances):
            self.assertEqual(len(instances), 1)
            i = instances[0]
            self.assertEqual(i['command'], self.everything_command(9100, 8443, ca))
            # No user option: procd runs it as root.
            self.assertEqual(i['params'], dict(self.COMMON, limits=['nofile=264 264'], term_timeout=['5405']))
        self.for_each_shell(text, check)

    def test_sections_enabled_and_types(self):
        text = """
config proxy 'lan'
	option listen '192.168.1.1:9001'
	option target 'oa:api.openai.com, azure:x.openai.azure.com'
	option shutdown_grace '10'

config proxy 'off'
	option enabled '0'
	option listen ':9002'

config other 'ignored'
	option listen ':9003'

config proxy
	option listen '[::]:9004'
	option default_target ''
	option allow_private 'maybe'
	option disable_target_header '1'
	option user 'root'
	option max_connections 'lots'
	option shutdown_grace '1.5m'
"""

        def check(instances):
            self.assertEqual([i['name'] for i in instances], ['lan', 'cfg4'])
            lan, anon = instances
            self.assertEqual(lan['command'], [PROG, '-listen=192.168.1.1:9001',
                                              '-targets=oa:api.openai.com,azure:x.openai.azure.com',
                                              '-shutdown-grace=10'])
            self.assertEqual(lan['params'], dict(self.COMMON, term_timeout=['15']))
            # An empty option is left out; a bool that is not one is its default (off); a
            # max_connections that is not a number is passed on (the proxy refuses it)
            # but sets no descriptor limit; a grace the script cannot count leaves 30 s.
            self.assertEqual(anon['command'], [PROG, '-listen=[::]:9004', '-disable-target-header',
                                               '-max-connections=lots', '-shutdown-grace=1.5m'])
            self.assertEqual(anon['params'], dict(self.COMMON, user=['root'], term_timeout=['35']))
        self.for_each_shell(text, check)

    def test_no_section_no_instance(self):
        self.for_each_shell("config other 'x'\n\toption listen ':1'\n", lambda inst: self.assertEqual(inst, []))

    def test_command_line_runs_the_proxy(self):
        up = self.start_upstream()
        port = free_port()
        text = self.EVERYTHING.format(port=port, up=up.port, ca=certs().ca)
        instances = self.run_init(text, ['sh'])
        command = instances[0]['command']
        self.assertEqual(command, self.everything_command(port, up.port, certs().ca))
        proc = subprocess.Popen([binary()] + command[1:], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env={'PATH': os.environ.get('PATH', '')})

        def stop():
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=10)
        self.addCleanup(stop)

        def accepting():
            if proc.poll() is not None:
                raise AssertionError('the proxy exited (%s): %s' % (proc.returncode, proc.stderr.read().decode()))
            import socket
            with socket.socket() as s:
                s.settimeout(0.5)
                return s.connect_ex(('127.0.0.1', port)) == 0
        wait_until(accepting)
        r = request_once(port, 'POST', '/v1/chat/completions', body=b'{"x":1}', host='nomatch.example.test')
        self.assertEqual(r.status, 200)
        self.assertEqual(up.request_count, 1)
        self.assertEqual(up.requests[0].target, '/v1/chat/completions')


if __name__ == '__main__':
    main()
