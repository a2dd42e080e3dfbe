#!/usr/bin/env python3
"""Keep-alives through CDNs (README "Keep-alive through CDNs"), with 100 ms periods:

-sse-keepalive: ": keep-alive" comments on a silent text/event-stream answer, each its
own chunk, only between events (never inside one, never on another content type or a
Content-Length body); a spec-conformant SSE parser (below) sees exactly the upstream's
events; the Python `openai` SDK's decoder too, when it is importable; keep-alives do not
keep an exchange with a silent upstream alive past -idle-timeout.

-json-keepalive: a slow non-streamed JSON POST gets a 200 head, whitespace chunks, then
the upstream's body (its error body too, inside the 200); the proxy's own 504 arrives as
the JSON body; "stream": true, GET and fast answers are untouched."""
import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ProxyTestCase, Resp, main, new_tmp_path, now  # noqa: E402

# -sse-keepalive / -json-keepalive in these tests. The proxy checks deadlines every 250 ms,
# so a keep-alive goes out 100-350 ms after the last byte; GAP leaves room beyond that.
PERIOD = 0.1
PERIOD_ARG = '100ms'
GAP = 0.6     # a silence of the upstream
COMMENT = b': keep-alive\n\n'


def sse_events(text):
    """The events of an SSE stream as the WHATWG HTML standard's parser dispatches them
    (section 9.2.6): lines end in CRLF, LF or CR; a blank line dispatches; a line starting
    with ':' is a comment; "field: value" with one leading space dropped. Returns
    [(type, data, id)] for each dispatched event."""
    events, data, etype, last_id = [], [], '', ''
    if text.startswith('\ufeff'):
        text = text[1:]
    lines = text.replace('\r\n', '\n').replace('\r', '\n').split('\n')
    complete = lines[:-1]  # the last piece has no line end yet: not processed
    for line in complete:
        if line == '':
            if data:
                events.append((etype or 'message', '\n'.join(data), last_id))
            data, etype = [], ''
            continue
        if line.startswith(':'):
            continue
        name, sep, value = line.partition(':')
        if sep and value.startswith(' '):
            value = value[1:]
        if name == 'data':
            data.append(value)
        elif name == 'event':
            etype = value
        elif name == 'id' and '\0' not in value:
            last_id = value
    return events


class SseParserSelfTest(unittest.TestCase):
    def test_parser(self):
        self.assertEqual(sse_events(': hi\n\ndata: a\r\ndata:b\r\n\r\nevent: x\ndata: c\r\r: c\n\ndata: cut'),
                         [('message', 'a\nb', ''), ('x', 'c', '')])


def read_chunks(c, deadline):
    """Reads a chunked body: [(arrival time, payload)] per chunk, and the response."""
    chunks = []
    while True:
        line = c.rd.read_until(b'\r\n', deadline, limit=4096)
        size = int(line[:-2].split(b';')[0], 16)
        if size == 0:
            c.rd.read_until(b'\r\n', deadline)
            return chunks
        payload = c.rd.read_exact(size, deadline)
        chunks.append((c.rd.last_recv_time, payload))
        assert c.rd.read_exact(2, deadline) == b'\r\n'


class SseKeepalive(ProxyTestCase):
    def stream(self, pieces, framing=None, ctype='text/event-stream; charset=utf-8'):
        # A stream for the first request; a short answer for any later one.
        return self.start_upstream(lambda req: Resp(200, [('Content-Type', ctype)], chunks=pieces, delay=GAP,
                                                     framing=framing) if req.method != 'GET' or req.target != '/v1/models'
                                   else Resp(200, body=b'{}'))

    def test_comments_between_events_only(self):
        pieces = [b'data: {"i":1}\n\n', b'data: {"i":2}\r\ndata: cont', b'inued\r\n\r\n', b'data: [DONE]\n\n']
        up = self.stream(pieces)
        p = self.start_proxy(self.targets(('a', up)) + ['-sse-keepalive', PERIOD_ARG])
        c = self.client(p)
        c.request('POST', '/v1/chat/completions', [('Content-Type', 'application/json')], b'{"stream":true}')
        r = c.read_final_head()
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header('Transfer-Encoding'), 'chunked')
        chunks = read_chunks(c, now() + 15)
        payloads = [pl for _t, pl in chunks]
        # Each comment its own chunk; the upstream's bytes otherwise unchanged and in order.
        self.assertEqual(b''.join(pl for pl in payloads if pl != COMMENT), b''.join(pieces))
        for pl in payloads:
            self.assertTrue(pl == COMMENT or COMMENT not in pl, payloads)
        # Where the comments went: after the first event (a boundary) and after the second
        # (CRLF boundary), never in the gap inside the second event.
        relayed, where = b'', []
        for pl in payloads:
            if pl == COMMENT:
                where.append(relayed)
            else:
                relayed += pl
        self.assertTrue(where, 'no keep-alive in %.1f s gaps' % GAP)
        for before in where:
            self.assertTrue(before.endswith(b'\n\n') or before.endswith(b'\r\n\r\n'), (before, payloads))
        self.assertNotIn(pieces[0] + pieces[1], where)  # mid-event
        self.assertIn(pieces[0], where)
        self.assertIn(b''.join(pieces[:3]), where)
        # The first one not before a period has passed since the event before it.
        t_event = chunks[0][0]
        t_comment = next(t for t, pl in chunks if pl == COMMENT)
        self.assertGreater(t_comment - t_event, PERIOD * 0.7)
        events = sse_events(b''.join(payloads).decode())
        self.assertEqual(events, [('message', '{"i":1}', ''), ('message', '{"i":2}\ncontinued', ''),
                                  ('message', '[DONE]', '')])
        # The connection is still good for the next request.
        c.request('GET', '/v1/models')
        self.assertTrue(c.read_response().complete)

    def test_python_openai_sdk_ignores_comments(self):
        try:
            from openai._streaming import SSEDecoder
        except ImportError as e:
            self.skipTest('the Python openai SDK is not importable (%s); pip install openai to run this' % e)
        if not hasattr(SSEDecoder, 'iter_bytes'):
            self.skipTest('this openai SDK is too old (its SSEDecoder has no iter_bytes)')
        pieces = [b'data: {"i":1}\n\n', b'data: {"i":2}\n\n', b'data: [DONE]\n\n']
        up = self.stream(pieces)
        p = self.start_proxy(self.targets(('a', up)) + ['-sse-keepalive', PERIOD_ARG])
        c = self.client(p)
        c.request('GET', '/v1/stream')
        c.read_final_head()
        body = b''.join(pl for _t, pl in read_chunks(c, now() + 15))
        self.assertIn(COMMENT, body)
        decoded = [(e.event, e.data) for e in SSEDecoder().iter_bytes(iter([body]))]
        self.assertEqual(decoded, [(None, '{"i":1}'), (None, '{"i":2}'), (None, '[DONE]')])

    def test_not_on_other_answers(self):
        pieces = [b'data: 1\n\n', b'data: 2\n\n']
        cases = [('json chunked', self.stream(pieces, ctype='application/json')),
                 ('sse with length', self.stream([b''.join(pieces)], framing='length')),
                 ('off by default', self.stream(pieces))]
        for name, up in cases:
            with self.subTest(name):
                args = [] if name == 'off by default' else ['-sse-keepalive', PERIOD_ARG]
                p = self.start_proxy(self.targets(('a', up)) + args)
                r = self.get(p, '/v1/stream')
                self.assertEqual(r.body, b''.join(pieces), r)

    def test_silent_upstream_still_times_out(self):
        up = self.start_upstream(lambda req: Resp(200, [('Content-Type', 'text/event-stream')],
                                                  chunks=[b'data: 1\n\n', b'data: 2\n\n'], delay=4.0))
        p = self.start_proxy(self.targets(('a', up)) + ['-sse-keepalive', PERIOD_ARG, '-idle-timeout', '1s'])
        c = self.client(p)
        t0 = now()
        c.request('GET', '/v1/stream')
        r = c.read_final_head()
        pieces = [pl for _t, pl in c.body_pieces(r, deadline=now() + 10)]
        self.assertFalse(r.complete, 'the stream ended cleanly: %r' % pieces)
        self.assertIn(COMMENT, b''.join(pieces))
        self.assertLess(now() - t0, 3.5, 'keep-alives held the exchange past -idle-timeout')


class JsonKeepalive(ProxyTestCase):
    def slow(self, status=200, delay=GAP, extra=()):
        body = json.dumps({'id': 'chatcmpl-1', 'object': 'chat.completion'} if status == 200 else
                          {'error': {'message': 'overloaded', 'type': 'server_error', 'code': None}}).encode()
        return self.start_upstream(lambda req: Resp(status, [('Content-Type', 'application/json'),
                                                             ('x-request-id', 'req_1')] + list(extra),
                                                    body=body, head_delay=delay)), body

    def post(self, p, body=b'{"model":"m","messages":[]}', path='/v1/chat/completions', method='POST'):
        c = self.client(p)
        t0 = now()
        c.request(method, path, [('Content-Type', 'application/json')], body if method == 'POST' else None)
        r = c.read_final_head()
        head_after = now() - t0
        chunks = read_chunks(c, now() + 15) if r.header('Transfer-Encoding') == 'chunked' else None
        return c, r, head_after, chunks

    def test_whitespace_then_body(self):
        up, body = self.slow()
        p = self.start_proxy(self.targets(('a', up)) + ['-json-keepalive', PERIOD_ARG])
        c, r, head_after, chunks = self.post(p)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header('Content-Type'), 'application/json')
        self.assertLess(head_after, GAP, 'the head waited for the upstream')
        self.assertIsNone(r.header('x-request-id'))  # the upstream's head is not relayed
        self.assertDateNow(r)  # the 200 head is the proxy's own
        whitespace = [pl for _t, pl in chunks if pl.strip() == b'']
        self.assertGreaterEqual(len(whitespace), 1)
        self.assertTrue(all(pl == b'\n' for pl in whitespace), chunks)
        data = b''.join(pl for _t, pl in chunks)
        self.assertEqual(data.lstrip(), body)
        self.assertEqual(json.loads(data), json.loads(body))  # whitespace before JSON is JSON
        c.request('GET', '/v1/models')  # the connection is kept
        self.assertEqual(c.read_response().status, 200)

    def test_logged_and_counted_with_the_upstreams_status_and_usage(self):
        # The 200 head is the proxy's; the access log and the metrics still carry the
        # upstream's status and head time, and the usage of its JSON body.
        body = json.dumps({'id': 'chatcmpl-1', 'object': 'chat.completion',
                           'usage': {'prompt_tokens': 11, 'completion_tokens': 7}}).encode()
        up = self.start_upstream(lambda req: Resp(200, [('Content-Type', 'application/json')], body=body,
                                                  head_delay=GAP))
        log = new_tmp_path('keepalive-access.log')
        p = self.start_proxy(self.targets(('a', up)) + ['-json-keepalive', PERIOD_ARG, '-access-log', log])
        c, r, _h, chunks = self.post(p)
        self.assertEqual(r.status, 200)
        self.assertEqual(json.loads(b''.join(pl for _t, pl in chunks)), json.loads(body))
        c.request('GET', '/v1/models')  # a second exchange: the first one's line is written
        self.assertEqual(c.read_response().status, 200)
        deadline = now() + 5
        lines = []
        while now() < deadline and len(lines) < 2:
            with open(log) as f:
                lines = [json.loads(line) for line in f if line.strip()]
            time.sleep(0.05)
        entry = lines[0]
        self.assertEqual((entry['status'], entry['source']), (200, 'upstream'), entry)
        self.assertIsNotNone(entry['head_ms'], entry)
        self.assertGreaterEqual(entry['head_ms'], int(GAP * 1000) - 50, entry)
        self.assertEqual((entry['prompt_tokens'], entry['completion_tokens']), (11, 7), entry)

    def test_upstream_error_arrives_inside_200(self):
        up, body = self.slow(status=503)
        p = self.start_proxy(self.targets(('a', up)) + ['-json-keepalive', PERIOD_ARG])
        _c, r, _h, chunks = self.post(p)
        self.assertEqual(r.status, 200)
        self.assertEqual(json.loads(b''.join(pl for _t, pl in chunks)), json.loads(body))

    def test_proxy_timeout_arrives_as_json_body(self):
        up, _body = self.slow(delay=4.0)
        p = self.start_proxy(self.targets(('a', up)) + ['-json-keepalive', PERIOD_ARG, '-response-timeout', '1s'])
        c, r, _h, chunks = self.post(p)
        self.assertEqual(r.status, 200)
        doc = json.loads(b''.join(pl for _t, pl in chunks))
        self.assertEqual(doc['error']['code'], 'upstream_timeout')
        self.assertTrue(c.wait_closed(5)[0], 'a half-sent exchange must close the connection')

    def test_untouched_cases(self):
        up, body = self.slow()
        p = self.start_proxy(self.targets(('a', up)) + ['-json-keepalive', PERIOD_ARG])
        cases = [('stream true', 'POST', 'application/json', b'{"model":"m","stream" :\n true,"messages":[]}'),
                 ('GET', 'GET', 'application/json', None),
                 ('not JSON', 'POST', 'text/plain', b'{}')]
        for name, method, ctype, req_body in cases:
            with self.subTest(name):
                c = self.client(p)
                c.request(method, '/v1/chat/completions', [('Content-Type', ctype)], req_body)
                r = c.read_response(method)
                self.assertEqual(r.header('x-request-id'), 'req_1', r)  # the upstream's own head
                self.assertEqual(r.body, body)

    def test_fast_answer_untouched(self):
        # An answer whose head comes before the period is relayed as it is. The period is
        # long here: "at once" includes the first upstream TLS handshake, which under qemu
        # (make test-small) took longer than PERIOD once.
        up, body = self.slow(delay=0)
        p = self.start_proxy(self.targets(('a', up)) + ['-json-keepalive', '3s'])
        r = self.get(p, '/v1/chat/completions', method='POST', body=b'{"model":"m"}',
                     headers=[('Content-Type', 'application/json')])
        self.assertEqual(r.header('x-request-id'), 'req_1')
        self.assertEqual(r.header('Content-Length'), str(len(body)))
        self.assertEqual(r.body, body)

    def test_with_cors(self):
        up, body = self.slow()
        p = self.start_proxy(self.targets(('a', up)) + ['-json-keepalive', PERIOD_ARG, '-cors-origins', '*'])
        c = self.client(p)
        c.request('POST', '/v1/chat/completions', [('Content-Type', 'application/json'),
                                                   ('Origin', 'https://app.example.test')], b'{}')
        r = c.read_response()
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header('Access-Control-Allow-Origin'), 'https://app.example.test')
        self.assertEqual(json.loads(r.body), json.loads(body))


if __name__ == '__main__':
    main()
