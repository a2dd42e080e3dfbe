#!/usr/bin/env python3
"""Keys and failover (issue 14, items 1-3): a -config file written here names several TLS
upstreams started here -- one refusing (a closed port), one answering 429 with
Retry-After, one 503, one stalling before its head (head-timeout 1s), one healthy -- and
requests made the way the official openai SDKs make them (POST /v1/chat/completions with
JSON and a Bearer key, streamed with "stream": true, a multipart upload near the
retry-body-limit and one above it). Checked: which upstream got what, what the client
sees when every origin fails, access keys (missing or wrong: 401 and nothing forwarded;
right: forwarded with the server key, the access key never), keys in turn and set aside
on 401/429, X-Target-Host to an unconfigured origin getting no key, the access log's key
and attempts, the metrics, and that no secret appears in stderr or the access log."""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (ProxyTestCase, Resp, free_port, main, new_tmp_path, now, request_once,  # noqa: E402
                     wait_until)
from test_metrics import parse_metrics, value  # noqa: E402

CHAT = '/v1/chat/completions'
SDK_HEADERS = [('Content-Type', 'application/json'), ('Accept', 'application/json'),
               ('User-Agent', 'OpenAI/Python 1.55.0'), ('X-Stainless-Lang', 'python'),
               ('X-Stainless-Retry-Count', '0')]
SERVER_KEYS = {'oa#1': 'sk-server-revoked-' + uuid.uuid4().hex, 'oa#2': 'sk-server-limited-' + uuid.uuid4().hex,
               'good-a': 'sk-server-good-a-' + uuid.uuid4().hex, 'good-b': 'sk-server-good-b-' + uuid.uuid4().hex}
ACCESS = {'alice': 'ak-alice-' + uuid.uuid4().hex, 'bob': 'ak-bob-' + uuid.uuid4().hex}


def chat_body(stream=False, pad=0):
    doc = {'model': 'gpt-4o-mini', 'messages': [{'role': 'user', 'content': 'hi' + 'x' * pad}]}
    if stream:
        doc['stream'] = True
        doc['stream_options'] = {'include_usage': True}
    return json.dumps(doc).encode()


def healthy(req):
    """What a healthy OpenAI-compatible upstream answers: JSON, or SSE when asked."""
    if b'"stream": true' in req.body:
        events = [b'data: {"choices":[{"delta":{"content":"hel"}}]}\n\n',
                  b'data: {"choices":[{"delta":{"content":"lo"}}]}\n\n',
                  b'data: {"choices":[],"usage":{"prompt_tokens":2,"completion_tokens":3}}\n\n',
                  b'data: [DONE]\n\n']
        return Resp(200, [('Content-Type', 'text/event-stream')], chunks=events)
    body = json.dumps({'object': 'chat.completion', 'len': len(req.body), 'sha256': req.sha256,
                       'auth': req.header('Authorization'), 'api_key': req.header('api-key'),
                       'usage': {'prompt_tokens': 5, 'completion_tokens': 7}}).encode()
    return Resp(200, [('Content-Type', 'application/json')], body=body)


def status(code, extra=()):
    def handler(_req):
        body = json.dumps({'error': {'message': 'upstream says %d' % code, 'type': 'server_error'}}).encode()
        return Resp(code, [('Content-Type', 'application/json')] + list(extra), body=body)
    return handler


def stalling(_req):
    return Resp(200, [('Content-Type', 'application/json')], body=b'{}', head_delay=4.0)


def keyed(req):
    """An upstream that knows the server keys: revoked -> 401, limited -> 429, good -> 200."""
    auth = req.header('Authorization') or ''
    if auth == 'Bearer ' + SERVER_KEYS['oa#1']:
        return status(401)(req)
    if auth == 'Bearer ' + SERVER_KEYS['oa#2']:
        return status(429, [('Retry-After', '30')])(req)
    return healthy(req)


def read_lines(path, n, timeout=5.0):
    def ready():
        try:
            with open(path, 'rb') as f:
                lines = f.read().splitlines()
        except OSError:
            return None
        return lines if len(lines) >= n else None
    lines = wait_until(ready, timeout=timeout)
    if not lines:
        raise AssertionError('fewer than %d lines in %s' % (n, path))
    return [json.loads(line) for line in lines]


class KeysFailover(ProxyTestCase):
    def launch(self, config_text, extra=()):
        conf = new_tmp_path('proxy.conf')
        with open(conf, 'w') as f:
            f.write(config_text)
        os.chmod(conf, 0o600)
        self.log = new_tmp_path('access.log')
        p = self.start_proxy(['-config', conf, '-workers', '1', '-access-log', self.log] + list(extra),
                             allow_no_route=True)
        self.addCleanup(self.assert_no_secret, p)
        return p

    def assert_no_secret(self, p):
        texts = {'stderr': p.stderr()}
        try:
            with open(self.log, 'rb') as f:
                texts['access log'] = f.read().decode('utf-8', 'replace')
        except OSError:
            pass
        for where, text in texts.items():
            for secret in list(SERVER_KEYS.values()) + list(ACCESS.values()):
                self.assertNotIn(secret, text, 'a secret appears in the %s' % where)

    def post(self, p, body, headers=(), host='oa.example.test', target=CHAT):
        return request_once(p.port, 'POST', target, SDK_HEADERS + list(headers), body, host=host)

    # ---- failover ----------------------------------------------------------------------

    def test_failover_through_refusing_503_stalling_to_healthy_then_backoff(self):
        bad503 = self.start_upstream(status(503))
        limited = self.start_upstream(status(429, [('Retry-After', '20')]))
        stall = self.start_upstream(stalling)
        good = self.start_upstream(healthy)
        refused = 'https://127.0.0.1:%d' % free_port()
        p = self.launch('[target oa]\nattempts = 5\nhead-timeout = 1s\n'
                        'origin = %s\norigin = %s\norigin = %s\norigin = %s\norigin = %s\n'
                        % (stall.url, refused, limited.url, bad503.url, good.url))
        # Streamed first: the failed attempts never reach the client; the stream comes whole.
        t0 = now()
        r = self.post(p, chat_body(stream=True))
        self.assertEqual(r.status, 200, r)
        self.assertIn(b'data: [DONE]', r.body)
        self.assertIn(b'"content":"hel"', r.body)
        self.assertGreaterEqual(now() - t0, 0.9)  # the stalling origin's head-timeout
        self.assertEqual((limited.request_count, bad503.request_count, stall.request_count, good.request_count),
                         (1, 1, 1, 1))
        # Non-streamed next: the three failing origins are in backoff (1 s after a first
        # failure; the stalling one failed last of them, 1 s after the first attempt began),
        # so the healthy one is tried first.
        r = self.post(p, chat_body())
        self.assertEqual(r.status, 200, r)
        self.assertEqual((limited.request_count, bad503.request_count, stall.request_count, good.request_count),
                         (1, 1, 1, 2))
        err = p.stderr()
        self.assertEqual(err.count('Failover: target oa'), 4, err)
        self.assertIn('(status 429)', err)
        self.assertIn('(connect failed)', err)
        self.assertIn('(status 503)', err)
        self.assertIn('(no response head in time)', err)
        lines = read_lines(self.log, 2)
        self.assertEqual(sorted(l['attempts'] for l in lines), [1, 5])
        streamed = [l for l in lines if l['attempts'] == 5][0]
        self.assertEqual(streamed['target'], good.url)
        self.assertEqual((streamed['prompt_tokens'], streamed['completion_tokens']), (2, 3))
        self.assertIsNone(streamed['key'])

    def test_what_the_client_sees_when_every_origin_fails(self):
        bad503 = self.start_upstream(status(503))
        refused1 = 'https://127.0.0.1:%d' % free_port()
        refused2 = 'https://127.0.0.1:%d' % free_port()
        p = self.launch('[target oa]\norigin = %s\norigin = %s\n'
                        '[target dead]\norigin = %s\norigin = %s\n'
                        % (refused1, bad503.url, refused1, refused2))
        # The last answer is a failover status: relayed as it was.
        r = self.post(p, chat_body())
        self.assertEqual(r.status, 503, r)
        self.assertEqual(r.json()['error']['message'], 'upstream says 503')
        # Only connect failures: the proxy's 502 names the attempts.
        r = self.post(p, chat_body(), host='dead.example.test')
        err = self.assertJsonError(r, 502)
        self.assertIn('2 attempts', err['message'])
        self.assertIn(refused1.split('//')[1], err['message'])
        self.assertIn(refused2.split('//')[1], err['message'])

    def test_an_origin_closing_without_a_whole_head_moves_on(self):
        dropping = self.start_upstream(lambda _req: Resp(drop=True))
        cut = self.start_upstream(lambda _req: Resp(raw=b'HTTP/1.1 200 OK\r\nContent-Ty'))
        good = self.start_upstream(healthy)
        p = self.launch('[target oa]\nattempts = 3\norigin = %s\norigin = %s\norigin = %s\n'
                        '[target dead]\norigin = %s\norigin = %s\n'
                        % (dropping.url, cut.url, good.url, dropping.url, cut.url))
        r = self.post(p, chat_body())
        self.assertEqual(r.status, 200, r)
        self.assertEqual((dropping.request_count, cut.request_count, good.request_count), (1, 1, 1))
        self.assertEqual(p.stderr().count('(closed without an answer)'), 2, p.stderr())
        # Every origin closing: the proxy's 502 names both attempts.
        r = self.post(p, chat_body(), host='dead.example.test')
        err = self.assertJsonError(r, 502)
        self.assertIn('2 attempts', err['message'])
        self.assertEqual(err['message'].count('(closed without an answer)'), 2, err['message'])

    def test_uploads_within_the_retry_body_limit_are_replayed_larger_ones_not(self):
        bad503 = self.start_upstream(status(503))
        bad503b = self.start_upstream(status(503))  # ob's own: oa's 503 origin is in backoff by then
        good = self.start_upstream(healthy)
        p = self.launch('[target oa]\nretry-body-limit = 64KiB\norigin = %s\norigin = %s\n'
                        '[target ob]\nretry-body-limit = 64KiB\norigin = %s\norigin = %s\n'
                        % (bad503.url, good.url, bad503b.url, good.url))
        boundary = 'b' + uuid.uuid4().hex

        def multipart(size):
            data = os.urandom(size)
            return (('--%s\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nfine-tune\r\n'
                     '--%s\r\nContent-Disposition: form-data; name="file"; filename="d.jsonl"\r\n'
                     'Content-Type: application/octet-stream\r\n\r\n' % (boundary, boundary)).encode()
                    + data + ('\r\n--%s--\r\n' % boundary).encode())
        ctype = [('Content-Type', 'multipart/form-data; boundary=' + boundary)]
        near = multipart(60 * 1024)
        r = request_once(p.port, 'POST', '/v1/files', ctype, near, host='oa.example.test')
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()['sha256'], hashlib.sha256(near).hexdigest())
        self.assertEqual((bad503.request_count, len(bad503.requests[0].body)), (1, len(near)))
        # Above the limit: not retried; the client gets the 503 as it was, the log says why.
        big = multipart(100 * 1024)
        r = request_once(p.port, 'POST', '/v1/files', ctype, big, host='ob.example.test')
        self.assertEqual(r.status, 503, r)
        self.assertEqual((bad503b.request_count, len(bad503b.requests[0].body)), (1, len(big)))
        self.assertEqual(good.request_count, 1)
        self.assertIn('Not retried: the request body is larger than the retry-body-limit', p.stderr())

    def test_failover_never_gives_the_clients_credential_to_a_keyed_origin(self):
        # A keyless origin gets the client's own credential; one with a server key gets
        # that key in place of whatever the client sent, also on a failover between them.
        for key_header, client_field in (('authorization', ('Authorization', 'Bearer sk-client-own')),
                                         ('api-key', ('api-key', 'sk-client-own'))):
            server_field = 'Bearer sk-server-b' if key_header == 'authorization' else 'sk-server-b'
            for keyed_first in (False, True):
                with self.subTest(key_header=key_header, keyed_first=keyed_first):
                    failing = self.start_upstream(status(503))
                    good = self.start_upstream(healthy)
                    if keyed_first:  # the keyed origin fails, the keyless one answers
                        text = ('[default]\nkey-header = %s\norigin = %s\nkey = sk-server-b\norigin = %s\n'
                                % (key_header, failing.url, good.url))
                    else:  # the keyless origin fails, the keyed one answers
                        text = ('[default]\nkey-header = %s\norigin = %s\norigin = %s\nkey = sk-server-b\n'
                                % (key_header, failing.url, good.url))
                    p = self.launch(text)
                    r = request_once(p.port, 'POST', '/v1/chat/completions',
                                     [('Content-Type', 'application/json'), client_field], chat_body())
                    self.assertEqual(r.status, 200, r)
                    got_failing, got_good = failing.requests[0], good.requests[0]
                    creds = lambda req: req.header_all('Authorization') + req.header_all('api-key')  # noqa: E731
                    self.assertEqual(creds(got_failing), [server_field] if keyed_first else [client_field[1]])
                    self.assertEqual(creds(got_good), [client_field[1]] if keyed_first else [server_field])

    def test_failover_never_gives_the_clients_websocket_key_to_a_keyed_origin(self):
        # A browser's Realtime key travels as a subprotocol: the same rule as for the
        # fields above, also on a failover between a keyless origin and a keyed one.
        own = 'openai-insecure-api-key.sk-client-own'
        sent = 'realtime, %s, openai-beta.realtime-v1' % own
        for keyed_first in (False, True):
            with self.subTest(keyed_first=keyed_first):
                failing = self.start_upstream(status(503))
                good = self.start_upstream(healthy)
                if keyed_first:
                    text = '[default]\norigin = %s\nkey = sk-server-b\norigin = %s\n' % (failing.url, good.url)
                else:
                    text = '[default]\norigin = %s\norigin = %s\nkey = sk-server-b\n' % (failing.url, good.url)
                p = self.launch(text)
                request_once(p.port, 'GET', '/v1/realtime?model=gpt-realtime',
                             [('Connection', 'Upgrade'), ('Upgrade', 'websocket'), ('Sec-WebSocket-Version', '13'),
                              ('Sec-WebSocket-Key', 'dGhlIHNhbXBsZSBub25jZQ=='), ('Sec-WebSocket-Protocol', sent)])
                self.assertEqual((failing.request_count, good.request_count), (1, 1))
                protocols = lambda req: req.header_all('Sec-WebSocket-Protocol')  # noqa: E731
                keyed, keyless = (failing, good) if keyed_first else (good, failing)
                self.assertEqual(protocols(keyed.requests[0]), ['realtime, openai-beta.realtime-v1'])
                self.assertEqual(keyed.requests[0].header_all('Authorization'), ['Bearer sk-server-b'])
                self.assertEqual(protocols(keyless.requests[0]), [sent])
                self.assertEqual(keyless.requests[0].header_all('Authorization'), [])

    def test_one_targets_refused_keys_do_not_push_a_shared_origin_into_backoff(self):
        # Target a's only key is refused at U; target b's key works there. U is passed over
        # for a, but stays b's first choice (no backoff: U itself answered).
        u = self.start_upstream(keyed)
        v = self.start_upstream(healthy)
        p = self.launch('[target a]\norigin = %s\nkey = %s\n[target b]\norigin = %s\nkey = %s\norigin = %s\n'
                        % (u.url, SERVER_KEYS['oa#1'], u.url, SERVER_KEYS['good-a'], v.url))
        self.assertEqual(self.post(p, chat_body(), host='a.example.test').status, 401)
        for _ in range(3):
            r = self.post(p, chat_body(), host='a.example.test')
            self.assertEqual(r.status, 503, r)
            self.assertEqual(self.assertJsonError(r)['code'], 'upstream_keys_unavailable')
        for _ in range(3):
            r = self.post(p, chat_body(), host='b.example.test')
            self.assertEqual((r.status, r.json()['auth']), (200, 'Bearer ' + SERVER_KEYS['good-a']), r)
        self.assertEqual((u.request_count, v.request_count), (4, 0))

    def test_a_request_every_key_is_refused_does_not_take_the_keys_away(self):
        # Restricted keys: chat is allowed, files are not (OpenAI answers 401 "Missing
        # scopes"). One files request used to set every key aside until reload, and every
        # chat request after it got 503. A second key refused for the same request now
        # shows the request is at fault: its 401 is relayed and the keys stay in use.
        def scoped(req):
            if req.target.startswith('/v1/files'):
                return status(401)(req)
            return healthy(req)
        u = self.start_upstream(scoped)
        p = self.launch('[target oa]\norigin = %s\nkey = %s\nkey = %s\n'
                        % (u.url, SERVER_KEYS['good-a'], SERVER_KEYS['good-b']))
        r = self.post(p, b'{}', target='/v1/files')
        self.assertEqual((r.status, r.json()['error']['message']), (401, 'upstream says 401'), r)
        self.assertEqual(u.request_count, 2)  # both keys tried
        self.assertTrue(wait_until(lambda: 'back in use' in p.stderr(), timeout=5), p.stderr())
        used = set()
        for _ in range(4):
            r = self.post(p, chat_body())
            self.assertEqual(r.status, 200, r)
            used.add(r.json()['auth'])
        self.assertEqual(used, {'Bearer ' + SERVER_KEYS['good-a'], 'Bearer ' + SERVER_KEYS['good-b']})

    def test_keys_rate_limited_give_the_client_a_retry_after(self):
        # The only key answered 429 with Retry-After: 30; until it is back, the proxy's own
        # 503 says when to come back, as the SDKs read it.
        u = self.start_upstream(keyed)
        p = self.launch('[target oa]\norigin = %s\nkey = %s\n' % (u.url, SERVER_KEYS['oa#2']))
        self.assertEqual(self.post(p, chat_body()).status, 429)
        r = self.post(p, chat_body())
        self.assertEqual(self.assertJsonError(r, 503)['code'], 'upstream_keys_unavailable')
        self.assertIn(int(r.header('Retry-After') or 0), range(25, 31), r)
        self.assertEqual(u.request_count, 1)

    def test_head_timeout_counts_from_the_end_of_the_upload(self):
        # A steady upload longer than head-timeout: the origin is not asked for a head
        # before it has the whole request, so no failover and no 504.
        first = self.start_upstream(healthy)
        second = self.start_upstream(healthy)
        p = self.launch('[target oa]\nhead-timeout = 1s\norigin = %s\norigin = %s\n' % (first.url, second.url))
        body = os.urandom(200 * 1024)
        c = self.client(p, timeout=30)
        c.send(b'POST /v1/files HTTP/1.1\r\nHost: oa.example.test\r\nContent-Type: application/octet-stream\r\n'
               b'Content-Length: %d\r\n\r\n' % len(body))
        for i in range(0, len(body), 8192):  # 25 pieces, 0.1 s apart: 2.5 s
            c.send(body[i:i + 8192])
            time.sleep(0.1)
        r = c.read_response(timeout=15)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()['sha256'], hashlib.sha256(body).hexdigest())
        self.assertEqual((first.request_count, second.request_count), (1, 0))
        self.assertNotIn('Failover:', p.stderr())

    def test_a_chunked_body_within_the_retry_body_limit_is_replayed(self):
        # The limit is on the body, not on its chunk framing: 8,000 bytes in 100-byte
        # chunks (about 500 bytes of framing) under an 8 KiB limit.
        bad503 = self.start_upstream(status(503))
        good = self.start_upstream(healthy)
        p = self.launch('[target oa]\nretry-body-limit = 8KiB\norigin = %s\norigin = %s\n' % (bad503.url, good.url))
        body = os.urandom(8000)
        c = self.client(p)
        c.send(b'POST /v1/files HTTP/1.1\r\nHost: oa.example.test\r\nTransfer-Encoding: chunked\r\n\r\n' +
               b''.join(b'64\r\n' + body[i:i + 100] + b'\r\n' for i in range(0, len(body), 100)) + b'0\r\n\r\n')
        r = c.read_response(timeout=10)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()['sha256'], hashlib.sha256(body).hexdigest())
        self.assertEqual((bad503.request_count, good.request_count), (1, 1))

    def post_to_503_then_healthy(self, limit, size):
        """A POST of `size` bytes to a fresh pair of origins (503, then healthy) under this
        retry-body-limit: (the answer, the two origins, the proxy)."""
        bad503 = self.start_upstream(status(503))
        good = self.start_upstream(healthy)
        p = self.launch('[target oa]\nretry-body-limit = %s\norigin = %s\norigin = %s\n' % (limit, bad503.url, good.url))
        r = request_once(p.port, 'POST', '/v1/files', [('Content-Type', 'application/octet-stream')], os.urandom(size),
                         host='oa.example.test')
        return r, bad503, good, p

    def test_a_retry_body_limit_below_64_kib_is_kept(self):
        # 64 KiB is what the proxy keeps anyway to replay a request on a fresh connection
        # when a pooled one was stale; that must not stretch a smaller retry-body-limit.
        for limit, small, big in (('1KiB', 1000, 8 * 1024), ('0', 0, 10)):
            with self.subTest(limit=limit):
                r, bad503, good, p = self.post_to_503_then_healthy(limit, big)
                self.assertEqual(r.status, 503, r)
                self.assertEqual((bad503.request_count, good.request_count), (1, 0))
                self.assertIn('Not retried: the request body is larger than the retry-body-limit', p.stderr())
                # Within the limit it is still replayed (fresh origins: the 503 one is in
                # backoff now).
                r, bad503, good, p = self.post_to_503_then_healthy(limit, small)
                self.assertEqual(r.status, 200, r)
                self.assertEqual((bad503.request_count, good.request_count), (1, 1))
                self.assertEqual(len(good.requests[0].body), small)

    # ---- keys --------------------------------------------------------------------------

    def keys_config(self, up, other_header=None):
        access = new_tmp_path('access.keys')
        with open(access, 'w') as f:
            f.write('# label = key\n' + ''.join('%s = %s\n' % kv for kv in ACCESS.items()))
        os.chmod(access, 0o600)
        keyfile = new_tmp_path('oa.keys')
        with open(keyfile, 'w') as f:
            f.write('%s\n%s\n' % (SERVER_KEYS['oa#1'], SERVER_KEYS['oa#2']))
            f.write('good-a = %s\ngood-b = %s\n' % (SERVER_KEYS['good-a'], SERVER_KEYS['good-b']))
        os.chmod(keyfile, 0o600)
        text = ('access-keys = %s\n[target oa]\nattempts = 3\norigin = %s\nkey-file = %s\n'
                % (access, up.url, keyfile))
        text += '[target rv]\norigin = %s\nkey = %s\n' % (up.url, SERVER_KEYS['oa#1'])  # only a revoked key
        if other_header:
            text += '[target az]\nkey-header = api-key\norigin = %s\nkey-env = AZ_KEYS\n' % other_header.url
        return text

    def test_access_keys_and_server_keys(self):
        up = self.start_upstream(keyed)
        az = self.start_upstream(healthy)
        other = self.start_upstream(healthy)
        admin = free_port()
        p = self.launch(self.keys_config(up, az), ['-admin-listen', '127.0.0.1:%d' % admin,
                                                   '-cors-origins', 'https://app.example'])
        # A CORS preflight is answered by the proxy: no access key needed.
        r = request_once(p.port, 'OPTIONS', CHAT, [('Origin', 'https://app.example'),
                                                   ('Access-Control-Request-Method', 'POST'),
                                                   ('Access-Control-Request-Headers', 'authorization')],
                         host='oa.example.test')
        self.assertEqual(r.status, 204, r)
        # Missing or wrong access key: 401, OpenAI style; nothing reaches the upstream.
        r = self.post(p, chat_body())
        err = self.assertJsonError(r, 401)
        self.assertEqual((err['type'], err['code']), ('invalid_request_error', 'invalid_api_key'))
        r = self.post(p, chat_body(), [('Authorization', 'Bearer ' + ACCESS['alice'][:-1] + 'X')])
        self.assertJsonError(r, 401)
        r = self.post(p, chat_body(), [('Authorization', 'Bearer sk-client-own-key')])
        self.assertJsonError(r, 401)
        self.assertEqual(up.request_count, 0)
        # Right access key: forwarded with a server key, never the access key. The revoked
        # and the rate-limited key are each tried once, set aside, and the good ones take turns.
        seen = []
        for i in range(6):
            hdr = ('Authorization', 'Bearer ' + ACCESS['alice']) if i % 2 else ('api-key', ACCESS['bob'])
            r = self.post(p, chat_body(), [hdr])
            self.assertEqual(r.status, 200, r)
            seen.append(r.json()['auth'])
            self.assertIsNone(r.json()['api_key'])
        self.assertEqual(set(seen), {'Bearer ' + SERVER_KEYS['good-a'], 'Bearer ' + SERVER_KEYS['good-b']})
        auths = [q.header('Authorization') for q in up.requests]
        self.assertEqual(auths.count('Bearer ' + SERVER_KEYS['oa#1']), 1, auths)
        self.assertEqual(auths.count('Bearer ' + SERVER_KEYS['oa#2']), 1, auths)
        for q in up.requests:
            self.assertNotIn(ACCESS['alice'], q.raw_head.decode('latin-1'))
            self.assertNotIn(ACCESS['bob'], q.raw_head.decode('latin-1'))
        err = p.stderr()
        self.assertEqual(err.count('Key oa#1 of target oa set aside until reload'), 1, err)
        self.assertEqual(err.count('Key oa#2 of target oa set aside for 30s'), 1, err)
        # A browser's WebSocket upgrade presents the access key as a subprotocol: accepted,
        # and that subprotocol is taken out before the request goes on with the server key.
        # (This upstream answers it with a plain 200, relayed as an ordinary answer.)
        r = request_once(p.port, 'GET', '/v1/realtime?model=gpt-4o-realtime-preview',
                         [('Connection', 'Upgrade'), ('Upgrade', 'websocket'), ('Sec-WebSocket-Version', '13'),
                          ('Sec-WebSocket-Key', 'dGhlIHNhbXBsZSBub25jZQ=='),
                          ('Sec-WebSocket-Protocol',
                           'realtime, openai-insecure-api-key.%s, openai-beta.realtime-v1' % ACCESS['alice'])],
                         host='oa.example.test')
        self.assertEqual(r.status, 200, r)
        ws = up.requests[-1]
        self.assertEqual(ws.header('Sec-WebSocket-Protocol'), 'realtime, openai-beta.realtime-v1')
        self.assertIn(ws.header('Authorization'), ('Bearer ' + SERVER_KEYS['good-a'], 'Bearer ' + SERVER_KEYS['good-b']))
        # An Azure-style target: the key goes in api-key.
        r = self.post(p, chat_body(), [('Authorization', 'Bearer ' + ACCESS['alice'])], host='az.example.test')
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.json()['api_key'], r.json()['auth']), ('sk-az-' + AZ_SUFFIX, None))
        # X-Target-Host naming an unconfigured origin: no server key, and no access key either.
        r = self.post(p, chat_body(), [('Authorization', 'Bearer ' + ACCESS['alice']),
                                       ('X-Target-Host', other.url)])
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.json()['auth'], r.json()['api_key']), (None, None))
        # A target whose only key is refused: that 401 is relayed as it was (nothing else to
        # try), the key is set aside, and the next request gets the proxy's 503 at once.
        n = up.request_count
        r = self.post(p, chat_body(), [('api-key', ACCESS['bob'])], host='rv.example.test')
        self.assertEqual(r.status, 401, r)
        self.assertEqual(r.json()['error']['message'], 'upstream says 401')
        r = self.post(p, chat_body(), [('api-key', ACCESS['bob'])], host='rv.example.test')
        err = self.assertJsonError(r, 503)
        self.assertEqual(err['code'], 'upstream_keys_unavailable')
        self.assertIsNone(r.header('Retry-After'))  # refused until reload: no time to give
        self.assertEqual(up.request_count, n + 1)
        self.assertIn('Key rv#1 of target rv set aside until reload', p.stderr())
        # The access log's key labels and attempts; tokens by key in the metrics come from the same meter.
        lines = read_lines(self.log, 14)
        ok = [l for l in lines if l['status'] == 200]
        self.assertEqual(sorted({l['key'] for l in ok}), ['alice', 'bob'])
        self.assertEqual(sum(l['attempts'] for l in ok if l['target'] == up.url and l['method'] == 'POST'), 6 + 2)
        self.assertTrue(all(l['key'] is None for l in lines if l['status'] == 401 and l['source'] == 'proxy'))
        # Metrics: the two failed key attempts, three keys set aside, tokens by access-key label.
        text = request_once(admin, 'GET', '/metrics', host='127.0.0.1').body
        s = parse_metrics(text.decode())
        self.assertEqual(value(s, 'openai_proxy_failovers_total', target=up.url), 2, text)
        self.assertEqual(value(s, 'openai_proxy_keys_set_aside_total', target=up.url), 3)  # oa#1, oa#2, rv#1
        self.assertEqual(value(s, 'openai_proxy_retries_total', reason='failover'), 2)
        self.assertEqual(value(s, 'openai_proxy_key_tokens_total', key='alice', type='prompt'), 6 * 5)  # 3 POSTs, the upgrade, az, other
        self.assertEqual(value(s, 'openai_proxy_key_tokens_total', key='bob', type='completion'), 3 * 7)
        promtool = shutil.which('promtool')
        if promtool:  # test_metrics.py skips with the reason when it is absent
            r = subprocess.run([promtool, 'check', 'metrics'], input=text, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=60)
            self.assertEqual(r.returncode, 0, r.stdout.decode(errors='replace'))


AZ_SUFFIX = uuid.uuid4().hex
SERVER_KEYS['az'] = 'sk-az-' + AZ_SUFFIX
os.environ['AZ_KEYS'] = SERVER_KEYS['az']

if __name__ == '__main__':
    main()
