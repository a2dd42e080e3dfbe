#!/usr/bin/env python3
"""make sdk-check: the official OpenAI Node SDK (npm `openai` v4) through the proxy must
behave exactly as it does talking to the API directly.

A fake OpenAI API runs on loopback over TLS (a test CA made here, tests/e2e/harness.py).
Each check runs tests/sdk/sdk_check.mjs twice: once straight at the fake API (the
baseline; Node trusts the test CA through NODE_EXTRA_CA_CERTS) and once through the proxy
(plain HTTP to http://127.0.0.1:<port>/v1; the proxy trusts the CA with -ca-file and
sends everything to -default-target https://127.0.0.1:<upstream port>). A check passes
when the SDK's result through the proxy equals the baseline, meets the check's own
expectations, and the upstream saw the same requests both times.

  chat     chat.completions.create, a JSON answer (fields, usage, _request_id)
  stream   stream: true, SSE events sent 150 ms apart, then [DONE]; arriving as sent
  upload   files.create of a 1 MiB random file (multipart); the upstream returns the
           sha256 of the part it received, which must be the file's
  error    401 with OpenAI's JSON error body -> AuthenticationError, status 401, message
  abort    a long stream the client aborts after 3 events: the upstream must see its
           connection closed within ABORT_CLOSE_SECONDS
  https    chat again, the SDK talking HTTPS to the proxy's own listener (-tls-cert)
  realtime the Realtime API's WebSocket client (openai/beta/realtime/ws), which always
           uses wss://, through the HTTPS listener to a fake Realtime upstream (RFC 6455
           over TLS): session.created, two client events, a text response, the close
  gappy    through a second proxy with -sse-keepalive 100ms: a stream whose events are
           GAPPY_DELAY apart, so ": keep-alive" comments go between them (checked on the
           wire); the SDK must see exactly the events it sees directly
  slowjson through that proxy with -json-keepalive 100ms: a JSON answer whose head comes
           after SLOW_HEAD_DELAY, so it arrives after a 200 head and whitespace; the SDK's
           result must be the direct one (but _request_id, which that head cannot carry)
  failover through a third proxy with a -config file (access-keys; [default] with attempts
           = 3, origin 1 answering 503, origin 2 the fake API, each with its server key;
           -workers 1): the SDK with the access key, chat then stream in one process, both
           from origin 2 with its key; origin 1 tried with its own key, never again within
           the 1 s backoff; the access key on no upstream header and in no log line.
           Then a wrong access key: AuthenticationError 401 from the proxy, nothing
           forwarded. No direct baseline for these two (failover is the proxy's own).
A build without a TLS server side (the small router builds) skips https and realtime, saying so.

Environment: OP_BINARY (the proxy; tests/windows/wine-run with OP_WINE_EXE for the
Windows .exe under Wine), OP_SDK_NODE_DIR (default build/sdk-node, filled by
tests/sdk/setup.sh), NODE (default node). Prints PASS/FAIL per check and
"N passed, N failed"; exit 1 on any failure, 0 with a SKIP line when Node or the SDK is
missing.
"""
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(TOP, 'tests', 'e2e'))
import harness  # noqa: E402
from harness import Resp, Upstream, Proxy, certs, now, wait_until  # noqa: E402
from test_websocket import TlsWsServer, frame, read_frame  # noqa: E402

GOOD_KEY = 'sk-sdk-check-good'
UPLOAD_BYTES = 1 << 20
STREAM_EVENTS = 6
STREAM_DELAY = 0.15
LONG_EVENTS = 400           # 400 x 0.1 s: 40 s, far longer than the check waits
LONG_DELAY = 0.1
ABORT_CLOSE_SECONDS = 5.0   # upstream connection closed after the client aborted
GAPPY_EVENTS = 3
GAPPY_DELAY = 0.5           # between events of the gappy stream (-sse-keepalive 100ms)
SLOW_HEAD_DELAY = 0.5       # before the head of the slow JSON answer (-json-keepalive 100ms)
KEEPALIVE_ARGS = ['-sse-keepalive', '100ms', '-json-keepalive', '100ms']
NODE_TIMEOUT = 90


def skip(reason):
    print('SKIP sdk: %s' % reason)
    sys.exit(0)


def openai_error(status, message, type_, code, param=None, request_id=None):
    body = json.dumps({'error': {'message': message, 'type': type_, 'param': param, 'code': code}}).encode()
    headers = [('Content-Type', 'application/json')]
    if request_id:
        headers.append(('x-request-id', request_id))
    return Resp(status, headers, body=body)


def sse_chunk(cid, model, content=None, finish=None, role=None):
    delta = {}
    if role:
        delta['role'] = role
    if content is not None:
        delta['content'] = content
    return ('data: ' + json.dumps({
        'id': cid, 'object': 'chat.completion.chunk', 'created': 1700000000, 'model': model,
        'choices': [{'index': 0, 'delta': delta, 'logprobs': None, 'finish_reason': finish}],
    }) + '\n\n').encode()


def parse_multipart(content_type, body):
    """{name: (headers dict, bytes)} of a multipart/form-data body."""
    m = re.search(r'boundary=(?:"([^"]+)"|([^;\s]+))', content_type or '')
    if not m:
        raise ValueError('no boundary in Content-Type %r' % content_type)
    boundary = (m.group(1) or m.group(2)).encode()
    segments = (b'\r\n' + body).split(b'\r\n--' + boundary)
    if len(segments) < 3 or segments[0] != b'' or not segments[-1].startswith(b'--'):
        raise ValueError('malformed multipart body (%d segments)' % len(segments))
    parts = {}
    for seg in segments[1:-1]:
        if not seg.startswith(b'\r\n'):
            raise ValueError('part without CRLF after the boundary')
        head, sep, data = seg[2:].partition(b'\r\n\r\n')
        if not sep:
            raise ValueError('part without a blank line')
        headers = {}
        for line in head.split(b'\r\n'):
            k, _, v = line.decode('utf-8', 'replace').partition(':')
            headers[k.strip().lower()] = v.strip()
        name = re.search(r'\bname="([^"]*)"', headers.get('content-disposition', ''))
        if not name:
            raise ValueError('part without a name: %r' % headers)
        parts[name.group(1)] = (headers, data)
    return parts


class FakeOpenAI:
    """The upstream's answers. `problems` collects what it found wrong in a request;
    `long_streams` the Resp of every long stream (the abort check watches them)."""

    def __init__(self, key=GOOD_KEY):
        self.key = key
        self.problems = []
        self.long_streams = []

    def __call__(self, req):
        if req.header('Authorization') != 'Bearer ' + self.key:
            return openai_error(401, 'Incorrect API key provided: sk-sdk-***-bad. You can find your API key '
                                'at https://platform.openai.com/account/api-keys.',
                                'invalid_request_error', 'invalid_api_key', request_id='req_sdk_401')
        if req.method == 'POST' and req.target == '/v1/chat/completions':
            return self.chat(req)
        if req.method == 'POST' and req.target == '/v1/files':
            return self.files(req)
        self.problems.append('unexpected request %s %s' % (req.method, req.target))
        return openai_error(404, 'Unknown request URL: %s %s' % (req.method, req.target),
                            'invalid_request_error', 'unknown_url')

    def chat(self, req):
        try:
            body = json.loads(req.body)
        except ValueError as e:
            self.problems.append('chat body is not JSON: %s' % e)
            return openai_error(400, 'bad JSON', 'invalid_request_error', None)
        model = body.get('model')
        if body.get('messages') != [{'role': 'user', 'content': 'Say hello through the proxy'}]:
            self.problems.append('chat messages arrived as %r' % body.get('messages'))
        if model in ('sdk-json', 'sdk-slow-json'):
            answer = {
                'id': 'chatcmpl-sdk-json', 'object': 'chat.completion', 'created': 1700000000, 'model': model,
                'choices': [{'index': 0, 'message': {'role': 'assistant', 'content': 'Hello from the fake API \u2713',
                                                     'refusal': None},
                             'logprobs': None, 'finish_reason': 'stop'}],
                'usage': {'prompt_tokens': 7, 'completion_tokens': 6, 'total_tokens': 13},
                'system_fingerprint': 'fp_sdk',
            }
            return Resp(200, [('Content-Type', 'application/json'), ('x-request-id', 'req_sdk_json'),
                              ('openai-processing-ms', '12')], body=json.dumps(answer).encode(),
                        head_delay=SLOW_HEAD_DELAY if model == 'sdk-slow-json' else 0)
        if model in ('sdk-stream', 'sdk-long', 'sdk-gappy') and body.get('stream') is True:
            n = {'sdk-stream': STREAM_EVENTS, 'sdk-long': LONG_EVENTS, 'sdk-gappy': GAPPY_EVENTS}[model]
            cid = 'chatcmpl-' + model
            chunks = [sse_chunk(cid, model, content='', role='assistant')]
            chunks += [sse_chunk(cid, model, content='piece %d; ' % i) for i in range(1, n - 1)]
            chunks += [sse_chunk(cid, model, finish='stop'), b'data: [DONE]\n\n']
            r = Resp(200, [('Content-Type', 'text/event-stream; charset=utf-8'), ('Cache-Control', 'no-cache'),
                           ('x-request-id', 'req_' + model)], chunks=chunks,
                     delay={'sdk-stream': STREAM_DELAY, 'sdk-long': LONG_DELAY, 'sdk-gappy': GAPPY_DELAY}[model])
            if model == 'sdk-long':
                self.long_streams.append(r)
            return r
        self.problems.append('chat request for model %r, stream %r' % (model, body.get('stream')))
        return openai_error(400, 'unknown model', 'invalid_request_error', 'model_not_found')

    def files(self, req):
        try:
            parts = parse_multipart(req.header('Content-Type'), req.body)
        except ValueError as e:
            self.problems.append('upload: %s' % e)
            return openai_error(400, str(e), 'invalid_request_error', None)
        if 'file' not in parts or 'purpose' not in parts:
            self.problems.append('upload parts: %r' % sorted(parts))
            return openai_error(400, 'missing file or purpose', 'invalid_request_error', None)
        headers, data = parts['file']
        fname = re.search(r'\bfilename="([^"]*)"', headers.get('content-disposition', ''))
        answer = {
            'id': 'file-sdk', 'object': 'file', 'bytes': len(data), 'created_at': 1700000000,
            'filename': fname.group(1) if fname else None, 'purpose': parts['purpose'][1].decode(),
            'status': 'processed', 'sha256': hashlib.sha256(data).hexdigest(),
            'content_type': headers.get('content-type'),
        }
        return Resp(200, [('Content-Type', 'application/json'), ('x-request-id', 'req_sdk_file')],
                    body=json.dumps(answer).encode())


class FakeRealtime(TlsWsServer):
    """A fake Realtime API over WebSocket (TLS on loopback, the test CA's certificate):
    session.created on open; conversation.item.create -> conversation.item.created;
    response.create -> response.created, three text deltas, response.done; a close frame
    is answered and the connection closed. Records each handshake's head."""

    DELTAS = ['Hello', ' through the', ' proxy \u2713']

    def __init__(self):
        self.heads = []
        self.errors = []
        super().__init__()

    def handle(self, s, method, target, fields, names, rest):
        self.heads.append({'target': target, 'authorization': names.get('authorization'),
                           'openai_beta': names.get('openai-beta'), 'upgrade': names.get('upgrade'),
                           'version': names.get('sec-websocket-version')})
        try:
            self.accept(s, names)

            def send(event):
                s.sendall(frame(0x1, json.dumps(event).encode(), mask=False))
            send({'type': 'session.created', 'event_id': 'ev_1', 'session': {'id': 'sess_sdk', 'model': 'sdk'}})
            while True:
                _fin, op, payload = read_frame(s)
                if op == 0x8:
                    s.sendall(frame(0x8, payload[:2], mask=False))
                    return
                if op != 0x1:
                    continue
                ev = json.loads(payload)
                if ev.get('type') == 'conversation.item.create':
                    send({'type': 'conversation.item.created', 'event_id': 'ev_2', 'item': ev.get('item')})
                elif ev.get('type') == 'response.create':
                    send({'type': 'response.created', 'event_id': 'ev_3', 'response': {'id': 'resp_1'}})
                    for i, d in enumerate(self.DELTAS):
                        send({'type': 'response.text.delta', 'event_id': 'ev_d%d' % i, 'response_id': 'resp_1',
                              'delta': d})
                    send({'type': 'response.done', 'event_id': 'ev_4', 'response': {'id': 'resp_1'}})
        except (EOFError, OSError, ValueError) as e:
            if not isinstance(e, (EOFError, ConnectionResetError)):
                self.errors.append(repr(e))
        finally:
            s.close()


class Runner:
    def __init__(self, node, module, upload_path):
        self.node = node
        self.module = module
        self.upload_path = upload_path
        self.fake = FakeOpenAI()
        self.up = Upstream(self.fake)
        self.proxy = Proxy(['-default-target', self.up.url]).start()
        self.realtime = FakeRealtime()
        # The same, serving HTTPS itself; and one in front of the fake Realtime API.
        server, key = certs().server
        self.tls_proxies = {}
        self.no_tls_server = None
        for name, target in (('https', self.up.url), ('realtime', self.realtime.url)):
            try:
                self.tls_proxies[name] = Proxy(['-default-target', target, '-tls-cert', server,
                                                '-tls-key', key]).start()
            except AssertionError as e:
                if 'has no TLS server side' not in str(e):
                    raise
                self.no_tls_server = 'this build has no TLS server side (a small router build)'
        self.keepalive_proxy = Proxy(['-default-target', self.up.url] + KEEPALIVE_ARGS).start()
        self.passed = self.failed = 0

    def node_run(self, check, base_url, api_key=None):
        """Runs one check; returns (result dict, monotonic time the process ended).
        api_key: the key the SDK sends instead of GOOD_KEY."""
        env = {k: v for k, v in os.environ.items() if not k.upper().startswith(('OPENAI_', 'NODE_', 'HTTP'))
               and k.upper() not in ('ALL_PROXY', 'NO_PROXY')}
        env['OP_SDK_MODULE'] = self.module
        if api_key:
            env['OP_SDK_API_KEY'] = api_key
        if base_url.startswith('https:'):
            env['NODE_EXTRA_CA_CERTS'] = certs().ca   # the test CA, for the direct baseline only
        argv = [self.node, os.path.join(HERE, 'sdk_check.mjs'), check, base_url]
        if check == 'upload':
            argv.append(self.upload_path)
        try:
            p = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                               timeout=NODE_TIMEOUT)
        except subprocess.TimeoutExpired:
            return {'error': 'node did not finish within %d s' % NODE_TIMEOUT}, now()
        ended = now()
        lines = p.stdout.decode(errors='replace').strip().splitlines()
        try:
            out = json.loads(lines[-1])
        except (ValueError, IndexError):
            out = {'error': 'node exited %d without a result; stderr: %s'
                   % (p.returncode, p.stderr.decode(errors='replace')[-2000:])}
        return out, ended

    def upstream_view(self, reqs):
        """What the upstream received, minus what differs by nature between the two runs
        (Host, and the multipart boundary: its parts are judged by the handler)."""
        view = []
        for r in reqs:
            ct = r.header('Content-Type') or ''
            multipart = ct.startswith('multipart/')
            view.append({
                'method': r.method, 'target': r.target, 'authorization': r.header('Authorization'),
                'content_type': 'multipart/form-data' if multipart else ct,
                'accept': r.header('Accept'), 'user_agent': r.header('User-Agent'),
                'stainless': sorted((n.lower(), v) for n, v in r.headers if n.lower().startswith('x-stainless-')
                                    and n.lower() not in ('x-stainless-retry-count', 'x-stainless-timeout')),
                'body_sha256': None if multipart else r.sha256,
            })
        return view

    def one_side(self, check, base_url):
        if check == 'realtime':
            h0, e0 = len(self.realtime.heads), len(self.realtime.errors)
            out, ended = self.node_run(check, base_url)
            wait_until(lambda: len(self.realtime.heads) > h0, timeout=5)
            return out, {'ended': ended, 'requests': self.realtime.heads[h0:], 'problems': self.realtime.errors[e0:]}
        n0 = len(self.up.requests)
        p0 = len(self.fake.problems)
        l0 = len(self.fake.long_streams)
        out, ended = self.node_run(check, base_url)
        extra = {'ended': ended}
        if check == 'abort':
            # The SDK has aborted and the node process has exited: the upstream must see
            # its connection closed within ABORT_CLOSE_SECONDS.
            longs = self.fake.long_streams[l0:]
            if longs:
                r = longs[0]
                r.finished.wait(ABORT_CLOSE_SECONDS)
                extra['closed_after'] = None if r.peer_closed_at is None else r.peer_closed_at - ended
                extra['events_sent'] = len(r.sent)
        else:
            wait_until(lambda: len(self.up.requests) > n0, timeout=5)
        extra['requests'] = self.upstream_view(self.up.requests[n0:])
        extra['problems'] = self.fake.problems[p0:]
        return out, extra

    def run(self, check, title, expect, note=None, proxy=None, via_tls=None):
        """proxy: the plain proxy to go through (default self.proxy); via_tls: instead, the
        name of the HTTPS-listener proxy."""
        if via_tls and via_tls not in self.tls_proxies:
            print('SKIP  %s (%s)' % (title, self.no_tls_server), flush=True)
            return True
        proxy = self.tls_proxies[via_tls] if via_tls else (proxy or self.proxy)
        sdk_check = 'chat' if check == 'https' else check
        direct_url = (self.realtime.url if check == 'realtime' else self.up.url) + '/v1'
        via_url = ('https://127.0.0.1:%d/v1' % proxy.port) if via_tls else 'http://%s/v1' % proxy.addr
        direct, dx = self.one_side(sdk_check, direct_url)
        via, vx = self.one_side(sdk_check, via_url)
        why = []
        if 'error' in direct:
            why.append('direct baseline failed: %s' % direct['error'])
        if 'error' in via:
            why.append('through the proxy: %s' % via['error'])
        if not why:
            if via['observed'] != direct['observed']:
                why.append('SDK result differs from direct:\n      direct %s\n      proxy  %s'
                           % (json.dumps(direct['observed']), json.dumps(via['observed'])))
            if vx['requests'] != dx['requests']:
                why.append('upstream saw different requests:\n      direct %s\n      proxy  %s'
                           % (json.dumps(dx['requests']), json.dumps(vx['requests'])))
            for side, ext in (('direct', dx), ('proxy', vx)):
                if ext['problems']:
                    why.append('%s: upstream found: %s' % (side, '; '.join(ext['problems'])))
            for side, out, ext in (('direct', direct, dx), ('proxy', via, vx)):
                why += ['%s: %s' % (side, w) for w in expect(out, ext)]
        if self.up.errors:
            why.append('upstream errors: %s' % self.up.errors)
            del self.up.errors[:]
        if not proxy.alive():
            why.append('the proxy died; stderr:\n%s' % proxy.stderr()[-2000:])
        if why:
            self.failed += 1
            print('FAIL  %s\n    %s' % (title, '\n    '.join(why)), flush=True)
        else:
            self.passed += 1
            print('PASS  %s' % title + (' (%s)' % note(direct, dx, via, vx) if note else ''), flush=True)
        return not why


def chat_problems(o):
    """What is wrong in the SDK's view of the fake API's JSON chat answer."""
    want = {'id': 'chatcmpl-sdk-json', 'object': 'chat.completion', 'model': 'sdk-json',
            'content': 'Hello from the fake API \u2713', 'role': 'assistant', 'finish_reason': 'stop',
            'usage': {'prompt_tokens': 7, 'completion_tokens': 6, 'total_tokens': 13},
            'request_id': 'req_sdk_json'}
    return ['%s is %r, not %r' % (k, o.get(k), v) for k, v in want.items() if o.get(k) != v]


def expect_chat(out, ext):
    return chat_problems(out['observed']) + \
        ([] if len(ext['requests']) == 1 else ['the upstream got %d requests, not 1' % len(ext['requests'])])


def expect_stream(out, ext):
    o = out['observed']
    why = []
    want = [''] + ['piece %d; ' % i for i in range(1, STREAM_EVENTS - 1)] + [None]
    if o['deltas'] != want:
        why.append('deltas %r, not %r' % (o['deltas'], want))
    if o['finish_reason'] != 'stop':
        why.append('finish_reason %r' % o['finish_reason'])
    # Events sent 150 ms apart must arrive spread out, not all at once at the end
    # (a proxy that buffered the stream would deliver them together).
    arr = out['timing']['arrivals_ms']
    span = (arr[-1] - arr[0]) / 1000.0 if arr else 0
    sent_span = STREAM_DELAY * (STREAM_EVENTS - 1)   # first to last event ([DONE] is none)
    if span < sent_span / 2:
        why.append('the %d events arrived within %.3f s; sent over %.2f s: buffered?' % (len(arr), span, sent_span))
    return why


def expect_gappy(out, ext):
    o = out['observed']
    want = [''] + ['piece %d; ' % i for i in range(1, GAPPY_EVENTS - 1)] + [None]
    return [] if o['deltas'] == want else ['deltas %r, not %r' % (o['deltas'], want)]


def comments_on_the_wire(proxy):
    """The gappy stream read raw through the keep-alive proxy: how many ': keep-alive'
    comments it carries (the gappy check means nothing if there are none)."""
    body = json.dumps({'model': 'sdk-gappy', 'stream': True,
                       'messages': [{'role': 'user', 'content': 'Say hello through the proxy'}]}).encode()
    with harness.RawClient(proxy.port) as c:
        c.request('POST', '/v1/chat/completions', [('Authorization', 'Bearer ' + GOOD_KEY),
                                                  ('Content-Type', 'application/json')], body)
        r = c.read_response('POST', timeout=30)
    return r.body.count(b'\n: keep-alive\n\n') if r.status == 200 and r.complete else -1


def expect_slowjson(out, ext):
    o = out['observed']
    want = {'id': 'chatcmpl-sdk-json', 'object': 'chat.completion', 'model': 'sdk-slow-json',
            'content': 'Hello from the fake API \u2713', 'finish_reason': 'stop',
            'usage': {'prompt_tokens': 7, 'completion_tokens': 6, 'total_tokens': 13}}
    return ['%s is %r, not %r' % (k, o.get(k), v) for k, v in want.items() if o.get(k) != v]


def note_stream(direct, dx, via, vx):
    def span(out):
        arr = out['timing']['arrivals_ms']
        return (arr[-1] - arr[0]) / 1000.0
    return 'first to last event: direct %.2f s, proxy %.2f s' % (span(direct), span(via))


def note_abort(direct, dx, via, vx):
    return 'upstream saw the close %+.2f s from the client exiting, direct %+.2f s; %d/%d events sent' % (
        vx['closed_after'], dx['closed_after'], vx['events_sent'], LONG_EVENTS)


def expect_upload(sha, size, name):
    def check(out, ext):
        o = out['observed']
        want = {'id': 'file-sdk', 'object': 'file', 'bytes': size, 'filename': name, 'purpose': 'assistants',
                'sha256': sha}
        return ['%s is %r, not %r' % (k, o.get(k), v) for k, v in want.items() if o.get(k) != v]
    return check


def expect_error(out, ext):
    o = out['observed']
    msg = ('Incorrect API key provided: sk-sdk-***-bad. You can find your API key at '
           'https://platform.openai.com/account/api-keys.')
    want = {'class': 'AuthenticationError', 'is_authentication_error': True, 'is_api_error': True, 'status': 401,
            'message': '401 ' + msg, 'error_message': msg, 'code': 'invalid_api_key',
            'type': 'invalid_request_error', 'param': None, 'request_id': 'req_sdk_401'}
    why = ['%s is %r, not %r' % (k, o.get(k), v) for k, v in want.items() if o.get(k) != v]
    if len(ext['requests']) != 1:   # maxRetries 0: exactly one request
        why.append('the upstream got %d requests, not 1' % len(ext['requests']))
    return why


def expect_abort(out, ext):
    o = out['observed']
    why = []
    if o['chunks'] != 3 or o['ended'] != 'aborted':
        why.append('the SDK read %d events and %s' % (o['chunks'], o['ended']))
    closed = ext.get('closed_after', 'no long stream seen')
    if closed is None:
        why.append('the upstream still sent after %.0f s: %d of %d events went out' % (
            ABORT_CLOSE_SECONDS, ext.get('events_sent', -1), LONG_EVENTS))
    elif isinstance(closed, str):
        why.append(closed)
    elif closed > ABORT_CLOSE_SECONDS:
        why.append('the upstream saw its connection closed %.2f s after the abort' % closed)
    return why


def expect_realtime(out, ext):
    o = out['observed']
    want = {'types': ['session.created', 'conversation.item.created', 'response.created'] +
            ['response.text.delta'] * len(FakeRealtime.DELTAS) + ['response.done'],
            'text': ''.join(FakeRealtime.DELTAS), 'session': 'sess_sdk', 'close_code': 1000}
    why = ['%s is %r, not %r' % (k, o.get(k), v) for k, v in want.items() if o.get(k) != v]
    heads = ext['requests']
    if len(heads) != 1:
        why.append('the upstream saw %d WebSocket handshakes, not 1' % len(heads))
    elif heads[0] != {'target': '/v1/realtime?model=sdk-realtime', 'authorization': 'Bearer ' + GOOD_KEY,
                      'openai_beta': 'realtime=v1', 'upgrade': 'websocket', 'version': '13'}:
        why.append('the upstream saw the handshake %r' % heads[0])
    return why


# ---- failover: a -config target with two origins, server-side keys and an access key ----

SERVER_KEY_1 = 'sk-server-origin1-' + os.urandom(8).hex()
SERVER_KEY_2 = 'sk-server-origin2-' + os.urandom(8).hex()
ACCESS_KEY = 'ak-sdk-check-' + os.urandom(8).hex()
BACKOFF_SECONDS = 1.0     # README, Keys and failover: a failed origin is passed over for 1 s
BACKOFF_SLACK = 0.1       # the two clocks (the proxy's, the upstream's) and their granularity


class FailoverCheck:
    """The proxy with -config: [default] with origin 1 answering every request 503 and
    origin 2 the fake OpenAI API expecting SERVER_KEY_2, each with its server-side key,
    attempts = 3, -access-keys with ACCESS_KEY, -workers 1 (the backoff is per worker)."""

    def __init__(self, runner):
        self.r = runner
        self.bad = Upstream(lambda req: openai_error(503, 'The server is overloaded or not ready yet.',
                                                     'server_error', None, request_id='req_sdk_503'))
        self.fake = FakeOpenAI(key=SERVER_KEY_2)
        self.good = Upstream(self.fake)
        access = harness.new_tmp_path('sdk-check-access.keys')
        with open(access, 'w') as f:
            f.write('# label = key\nsdk-check = %s\n' % ACCESS_KEY)
        conf = harness.new_tmp_path('sdk-check-failover.conf')
        with open(conf, 'w') as f:
            f.write('access-keys = %s\n\n[default]\nattempts = 3\norigin = %s\nkey = %s\norigin = %s\nkey = %s\n'
                    % (access, self.bad.url, SERVER_KEY_1, self.good.url, SERVER_KEY_2))
        for path in (access, conf):
            os.chmod(path, 0o600)
        try:
            self.proxy = Proxy(['-config', conf, '-workers', '1'], allow_no_route=True).start()
        except AssertionError:
            self.close()
            raise

    def close(self):
        self.bad.close()
        self.good.close()

    def secrets_seen(self, ups):
        """(upstream name, header name) of every header that carried the access key."""
        return [(name, n) for name, up in ups for req in up.requests for n, v in req.headers if ACCESS_KEY in v]

    def verdict(self, title, why, note=''):
        for name, up in (('503 upstream', self.bad), ('healthy upstream', self.good)):
            if up.errors:
                why.append('%s errors: %s' % (name, up.errors))
                del up.errors[:]
        if not self.proxy.alive():
            why.append('the proxy died; stderr:\n%s' % self.proxy.stderr()[-2000:])
        if why:
            self.r.failed += 1
            print('FAIL  %s\n    %s' % (title, '\n    '.join(why)), flush=True)
        else:
            self.r.passed += 1
            print('PASS  %s' % title + (' (%s)' % note if note else ''), flush=True)

    def run_good_key(self):
        title = ('-config failover: access key in, 503 origin then the healthy one with its server key; '
                 'chat and stream')
        url = 'http://%s/v1' % self.proxy.addr
        out, _ended = self.r.node_run('failover', url, api_key=ACCESS_KEY)
        wait_until(lambda: len(self.good.requests) >= 2, timeout=5)
        bad_reqs, good_reqs = list(self.bad.requests), list(self.good.requests)
        why = []
        if 'error' in out:
            why.append('through the proxy: %s' % out['error'])
        else:
            why += ['chat: %s' % w for w in chat_problems(out['observed']['chat'])]
            why += ['stream: %s' % w for w in expect_stream({'observed': out['observed']['stream'],
                                                             'timing': out['timing']}, {})]
        why += ['healthy upstream found: %s' % p for p in self.fake.problems]
        auths = [q.header('Authorization') for q in good_reqs]
        if auths != ['Bearer ' + SERVER_KEY_2] * 2:
            why.append('the healthy upstream saw %d requests with Authorization %r, not 2 with origin 2\'s key'
                       % (len(auths), ['<access key>' if a and ACCESS_KEY in a else a for a in auths]))
        if [q.target for q in good_reqs] != ['/v1/chat/completions'] * 2:
            why.append('the healthy upstream saw %r' % [q.target for q in good_reqs])
        if not bad_reqs:
            why.append('the 503 upstream was never tried')
        bad_auths = {q.header('Authorization') for q in bad_reqs}
        if bad_reqs and bad_auths != {'Bearer ' + SERVER_KEY_1}:
            why.append('the 503 upstream saw Authorization %r, not origin 1\'s key'
                       % sorted('<access key>' if a and ACCESS_KEY in a else str(a) for a in bad_auths))
        leaks = self.secrets_seen((('503 upstream', self.bad), ('healthy upstream', self.good)))
        if leaks:
            why.append('the access key reached an upstream: %r' % leaks)
        # The backoff promise (one worker): origin 1, once failed, is not tried again for 1 s.
        gaps = [b.time - a.time for a, b in zip(bad_reqs, bad_reqs[1:])]
        if any(g < BACKOFF_SECONDS - BACKOFF_SLACK for g in gaps):
            why.append('the 503 origin was tried again %s s after failing (backoff 1 s)'
                       % ', '.join('%.3f' % g for g in gaps))
        if bad_reqs and len(good_reqs) == 2:
            # The first request went to origin 1 first, then to origin 2.
            if not bad_reqs[0].time <= good_reqs[0].time:
                why.append('the first request reached the healthy upstream before the 503 one')
            after = good_reqs[1].time - bad_reqs[0].time
            if after < BACKOFF_SECONDS - BACKOFF_SLACK and len(bad_reqs) != 1:
                why.append('the stream came %.3f s after the failure, within the backoff, yet origin 1 was tried '
                           '%d times' % (after, len(bad_reqs)))
            note = ('503 origin tried %d time(s) for the 2 requests; the stream reached the healthy one %.2f s '
                    'after the failure' % (len(bad_reqs), after))
        else:
            note = ''
        stderr = self.proxy.stderr()
        for name, secret in (('access key', ACCESS_KEY), ('server key 1', SERVER_KEY_1),
                             ('server key 2', SERVER_KEY_2)):
            if secret in stderr:
                why.append('the %s appears in the proxy\'s stderr' % name)
        if bad_reqs and 'Failover: target' not in stderr:
            why.append('no "Failover:" line in the proxy\'s log')
        self.verdict(title, why, note)

    def run_wrong_key(self):
        title = '-config access keys: a wrong key -> AuthenticationError 401 from the proxy, nothing forwarded'
        n_bad, n_good = len(self.bad.requests), len(self.good.requests)
        out, _ended = self.r.node_run('error', 'http://%s/v1' % self.proxy.addr)   # BAD_KEY of sdk_check.mjs
        why = []
        if 'error' in out:
            why.append('through the proxy: %s' % out['error'])
        else:
            o = out['observed']
            want = {'class': 'AuthenticationError', 'is_authentication_error': True, 'is_api_error': True,
                    'status': 401, 'code': 'invalid_api_key', 'type': 'invalid_request_error'}
            why += ['%s is %r, not %r' % (k, o.get(k), v) for k, v in want.items() if o.get(k) != v]
            if not (o.get('error_message') or '').startswith('Incorrect API key provided'):
                why.append('error message %r' % o.get('error_message'))
        if len(self.bad.requests) != n_bad or len(self.good.requests) != n_good:
            why.append('forwarded: the 503 upstream got %d, the healthy one %d request(s)'
                       % (len(self.bad.requests) - n_bad, len(self.good.requests) - n_good))
        self.verdict(title, why)


def prepare_wine():
    """For the Windows .exe: a Wine prefix (build/wineprefix unless WINEPREFIX is set), made
    once as scripts/test-windows.sh does, and a wineserver that stays up between proxies."""
    wine = os.environ.get('OP_WINE') or shutil.which('wine64') or '/usr/lib/wine/wine64'
    prefix = os.environ.setdefault('WINEPREFIX', os.path.join(TOP, 'build', 'wineprefix'))
    os.environ.setdefault('WINEDEBUG', '-all')
    server = shutil.which('wineserver') or '/usr/lib/wine/wineserver'
    if not os.path.exists(os.path.join(prefix, 'system.reg')):
        print('sdk-check: creating the Wine prefix %s (once)' % prefix, flush=True)
        subprocess.run([wine, 'wineboot', '-i'], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=300)
        if os.path.exists(server):
            subprocess.run([server, '-w'], timeout=120)
    if os.path.exists(server):
        subprocess.run([server, '-p30'], timeout=30)   # exits by itself 30 s after the last client


def main():
    node = os.environ.get('NODE', 'node')
    if not shutil.which(node):
        skip('node is not installed')
    node_dir = os.environ.get('OP_SDK_NODE_DIR', os.path.join(TOP, 'build', 'sdk-node'))
    module = os.path.join(node_dir, 'node_modules', 'openai', 'index.mjs')
    if not os.path.exists(module):
        skip('the openai package is not in %s (tests/sdk/setup.sh installs it)' % node_dir)
    if not harness.binary():
        sys.exit('sdk-check: set OP_BINARY to the proxy to test')
    exe = os.environ.get('OP_WINE_EXE')
    for path in [harness.binary()] + ([exe] if exe else []):
        if not os.path.isfile(path):
            sys.exit('sdk-check: %s does not exist' % path)
    with open(os.path.join(node_dir, 'node_modules', 'openai', 'package.json')) as f:
        version = json.load(f)['version']
    print('sdk-check: openai %s on node %s, proxy %s' % (
        version, subprocess.run([node, '--version'], capture_output=True, text=True).stdout.strip(),
        harness.binary() + (' ' + exe if exe else '')), flush=True)
    if exe:
        prepare_wine()

    upload_path = harness.new_tmp_path('sdk-check-upload.bin')
    data = os.urandom(UPLOAD_BYTES)
    with open(upload_path, 'wb') as f:
        f.write(data)
    try:
        r = Runner(node, module, upload_path)
    except AssertionError as e:   # the proxy did not start
        print('FAIL  the proxy starts\n    %s\n0 passed, 1 failed' % e)
        return 1
    try:
        r.run('chat', 'chat.completions.create: JSON answer', expect_chat)
        r.run('stream', 'chat.completions.create stream: true: %d SSE events and [DONE]' % STREAM_EVENTS,
              expect_stream, note_stream)
        r.run('upload', 'files.create: 1 MiB multipart upload arrives byte for byte (sha256)',
              expect_upload(hashlib.sha256(data).hexdigest(), UPLOAD_BYTES, 'sdk-check-upload.bin'))
        r.run('error', '401 with OpenAI error body -> AuthenticationError, status and message', expect_error)
        r.run('abort', 'stream aborted by the client after 3 events -> upstream connection closed',
              expect_abort, note_abort)
        r.run('https', 'chat.completions.create over HTTPS to the proxy (-tls-cert)', expect_chat,
              via_tls='https')
        r.run('realtime', 'Realtime API WebSocket client (wss://) through the HTTPS listener', expect_realtime,
              via_tls='realtime')
        comments = comments_on_the_wire(r.keepalive_proxy)
        if comments > 0:
            r.run('gappy', '-sse-keepalive: stream with %.2f s silences, keep-alive comments ignored' % GAPPY_DELAY,
                  expect_gappy, lambda *a: '%d comments on the wire' % comments, proxy=r.keepalive_proxy)
        else:
            r.failed += 1
            print('FAIL  -sse-keepalive: no keep-alive comment on the wire (%d)' % comments)
        r.run('slowjson', '-json-keepalive: JSON answer after a 200 head and whitespace', expect_slowjson,
              proxy=r.keepalive_proxy)
        try:
            fo = FailoverCheck(r)
        except AssertionError as e:   # the proxy did not start with the -config file
            fo = None
            r.failed += 1
            print('FAIL  the proxy starts with the failover -config file\n    %s' % e, flush=True)
        if fo:
            try:
                fo.run_good_key()
                fo.run_wrong_key()
            finally:
                fo.close()
                try:
                    fo.proxy.stop_and_check()
                except AssertionError as e:
                    r.failed += 1
                    print('FAIL  the failover proxy stops cleanly on SIGTERM\n    %s' % e)
    finally:
        r.up.close()
        r.realtime.close()
        for name, p in [('the proxy', r.proxy), ('the keep-alive proxy', r.keepalive_proxy)] + \
                [('the HTTPS-listener proxy (%s)' % n, p) for n, p in r.tls_proxies.items()]:
            try:
                p.stop_and_check()
            except AssertionError as e:
                r.failed += 1
                print('FAIL  %s stops cleanly on SIGTERM\n    %s' % (name, e))
    print('%d passed, %d failed' % (r.passed, r.failed))
    return 1 if r.failed else 0


if __name__ == '__main__':
    sys.exit(main())
