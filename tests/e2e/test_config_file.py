#!/usr/bin/env python3
"""The -config file (README "Configuration file"): -check-config (exit 0 / 2, file:line
errors), a proxy routing by its file, the safe default, and SIGHUP reloads: targets added
and removed, a bad file refused while the old configuration serves on, an exchange in
flight finishing across a reload, idle connections of a removed origin closed."""
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hardening_util import StrictProxy  # noqa: E402
from harness import (ProxyTestCase, Resp, free_port, main, new_tmp_path, run_cli, wait_until,  # noqa: E402
                     windows_skip)


def write(text, name='proxy.conf', path=None):
    path = path or new_tmp_path(name)
    with open(path, 'w') as f:
        f.write(text)
    return path


def answer(text):
    return lambda req: Resp(200, [('Content-Type', 'text/plain')], body=text)


class ConfigFile(ProxyTestCase):
    def test_check_config(self):
        keys = write('# team\nalice = alice-0123456789abcdef\n', 'access.keys')
        # Names api.openai.com: -check-config resolves nothing and connects nowhere.
        good = write('listen = 127.0.0.1:%d   # loopback\naccess-keys = %s\n'
                     '[target oa]\norigin = https://api.openai.com\nkey = sk-test-secret-1\n'
                     '[default]\norigin = http://127.0.0.1:9\n' % (free_port(), keys))
        status, out, err, _ = run_cli(['-config', good, '-check-config'])
        self.assertEqual(status, 0, err)
        self.assertIn('configuration OK: 2 targets, 2 origins, 1 key, 1 access key', out)
        self.assertNotIn('Starting proxy server', out + err)
        # The variable names the file as well.
        status, out, err, _ = run_cli(['-check-config'], env={'OPENAI_PROXY_CONFIG': good})
        self.assertEqual(status, 0, err)

        bad = write('workers = many\n\n[target oa]\nkey = sk-test-secret-2\norigin = https://127.0.0.1:9\n'
                    'retry-on = 429 401\nkey-file = %s\n' % new_tmp_path('missing.keys'))
        status, out, err, _ = run_cli(['-config', bad, '-check-config'])
        self.assertEqual(status, 2, out + err)
        self.assertIn('%s:1: invalid value "many" for workers' % bad, err)
        self.assertIn('%s:4: key before any origin line' % bad, err)
        self.assertIn('%s:6: invalid value "429 401" for retry-on' % bad, err)
        self.assertIn('%s:7: cannot read key file' % bad, err)
        self.assertNotIn('sk-test-secret-2', err)
        # -tls-cert is loaded by the check.
        status, out, err, _ = run_cli(['-config', good, '-check-config', '-tls-cert', bad, '-tls-key', bad])
        self.assertEqual(status, 2, out + err)

    def test_safe_default_refuses_to_start(self):
        conf = write('[target oa]\norigin = https://127.0.0.1:9\nkey = sk-test-secret-3\n')
        port = free_port()
        status, out, err, _ = run_cli(['-config', conf, '-listen', '0.0.0.0:%d' % port])
        self.assertEqual(status, 2, out + err)
        for way in ('-access-keys', 'loopback', '-allow-anonymous'):
            self.assertIn(way, err)
        self.assertNotIn('Starting proxy server', err)
        self.assertNotIn('sk-test-secret-3', err)
        status, out, err, _ = run_cli(['-config', conf, '-listen', '0.0.0.0:%d' % port, '-allow-anonymous',
                                       '-check-config'])
        self.assertEqual(status, 0, err)

    @windows_skip('Windows has no SIGHUP; a new configuration is taken by a restart')
    def test_reload(self):
        a = self.start_upstream(answer(b'from a'))
        b = self.start_upstream(answer(b'from b'))
        events = [b'data: %d\n\n' % i for i in range(10)]
        streams = []

        def stream(req):
            streams.append(Resp(200, [('Content-Type', 'text/event-stream')], chunks=events, delay=0.15))
            return streams[-1]
        slow = self.start_upstream(stream)
        conf = write('[target a]\norigin = %s\n[target s]\norigin = %s\n' % (a.url, slow.url))
        p = self.start_proxy(['-config', conf], allow_no_route=True)

        def status_of(host):
            return self.get(p, host=host + '.example.test').status

        r = self.get(p, host='a.example.test')
        self.assertEqual((r.status, r.body), (200, b'from a'), r)
        self.assertEqual(status_of('b'), 404)
        self.assertEqual(a.accept_count, 1)

        # A stream in flight when the reload removes its target ends whole.
        c = self.client(p)
        c.request('GET', '/v1/stream', host='s.example.test')
        head = c.read_final_head()
        self.assertEqual(head.status, 200)
        write('[target b]\norigin = %s\n' % b.url, path=conf)
        p.proc.send_signal(signal.SIGHUP)
        self.assertTrue(wait_until(lambda: 'configuration reloaded: 1 target, 1 origin' in p.stderr()),
                        p.stderr())
        self.assertFalse(streams[0].finished.is_set(), 'the stream ended before the reload: test too slow')
        body = b''.join(piece for _t, piece in c.body_pieces(head))
        self.assertTrue(head.complete, head.error)
        self.assertEqual(body, b''.join(events))

        self.assertTrue(wait_until(lambda: status_of('b') == 200), p.stderr())
        self.assertEqual(self.get(p, host='b.example.test').body, b'from b')
        self.assertEqual(status_of('a'), 404)
        self.assertEqual(status_of('s'), 404)
        # a's idle pooled connection went with its target; the stream's was not pooled.
        self.assertTrue(wait_until(lambda: a.closed_count == 1), 'a\'s idle connection was not closed')
        self.assertTrue(wait_until(lambda: slow.closed_count == 1), 'the stream\'s connection was pooled')

        # A bad file is refused line by line; the running configuration stays.
        write('[target a]\norigin = %s\nattempts = none\n' % a.url, path=conf)
        p.proc.send_signal(signal.SIGHUP)
        self.assertTrue(wait_until(lambda: 'config reload refused: %s:3: invalid value "none" for attempts' % conf
                                   in p.stderr()), p.stderr())
        self.assertEqual(status_of('b'), 200)
        self.assertEqual(status_of('a'), 404)

        # Restart-only settings are kept, and said so (-listen: the flag beats the file).
        write('listen = 127.0.0.1:%d\nworkers = 7\n[target a]\norigin = %s\n' % (free_port(), a.url), path=conf)
        p.proc.send_signal(signal.SIGHUP)
        self.assertTrue(wait_until(lambda: p.stderr().count('configuration reloaded') == 2), p.stderr())
        self.assertIn('reload: -workers changed; restart to apply', p.stderr())
        self.assertNotIn('-listen changed', p.stderr())
        self.assertTrue(wait_until(lambda: status_of('a') == 200))

    @windows_skip('Windows has no SIGHUP; a new configuration is taken by a restart')
    def test_reload_that_turns_allow_private_off_closes_pooled_connections(self):
        # The address rule is checked when an X-Target-Host connection is made; one left in
        # the pool would skip it. A reload closes every idle connection it does not configure.
        a = self.start_upstream(answer(b'from a'))
        internal = self.start_upstream(answer(b'internal'), tls=False)
        conf = write('allow-private = true\n[target a]\norigin = %s\n' % a.url)
        p = StrictProxy(['-config', conf], allow_no_route=True)  # no -allow-private flag: the file decides
        p.start()
        self.addCleanup(p.stop_and_check)

        def via_header():
            return self.get(p, headers=[('X-Target-Host', 'http://' + internal.authority)], host='x.example.test')
        self.assertEqual(via_header().body, b'internal')
        self.assertEqual(internal.accept_count, 1)
        write('allow-private = false\n[target a]\norigin = %s\n' % a.url, path=conf)
        p.proc.send_signal(signal.SIGHUP)
        self.assertTrue(wait_until(lambda: 'configuration reloaded' in p.stderr()), p.stderr())
        r = via_header()
        self.assertEqual(r.status, 403, r)
        self.assertJsonError(r)
        self.assertEqual(internal.request_count, 1)
        self.assertTrue(wait_until(lambda: internal.closed_count == 1), 'the pooled connection was kept')
        self.assertEqual(self.get(p, host='a.example.test').body, b'from a')

    @windows_skip('Windows has no SIGHUP; a new configuration is taken by a restart')
    def test_reload_applies_to_the_next_head_on_an_open_connection(self):
        # "Exchanges that start from then on use the new configuration": the request
        # head's limits too, on a keep-alive connection opened before the reload.
        a = self.start_upstream(answer(b'from a'))
        conf = write('[target a]\norigin = %s\n' % a.url)
        p = self.start_proxy(['-config', conf], allow_no_route=True)
        fields = [('X-Field-%d' % i, 'v') for i in range(8)]
        c = self.client(p)
        c.request('GET', '/v1/models', headers=fields, host='a.example.test')
        r = c.read_response()
        self.assertEqual((r.status, r.body), (200, b'from a'), r)
        write('max-header-count = 4\n[target a]\norigin = %s\n' % a.url, path=conf)
        p.proc.send_signal(signal.SIGHUP)
        self.assertTrue(wait_until(lambda: 'configuration reloaded' in p.stderr()), p.stderr())
        c.request('GET', '/v1/models', headers=fields, host='a.example.test')
        r = c.read_response()
        self.assertEqual(r.status, 431, r)
        self.assertEqual(a.request_count, 1)
        c.close()
        self.assertEqual(self.get(p, host='a.example.test').status, 200)


if __name__ == '__main__':
    main()
