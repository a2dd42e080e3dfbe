#!/usr/bin/env python3
"""The JSON access log (issue 15, item 3): one line per exchange with the model from the
request body and the token usage from a JSON answer or from the SSE event that carries
it; a request split across many TCP writes; malformed requests and proxy errors; the
log on standard output; logrotate's rename + SIGHUP."""
import json
import os
import re
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (ProxyTestCase, Resp, free_port, main, new_tmp_path, now, request_once,  # noqa: E402
                     wait_until, windows_skip)

MODEL = 'gpt-"4o"\x01\u00e9'  # a quote, a control byte and non-ASCII: escaped in the request and in the log


def handler(req):
    if req.target.startswith('/v1/chat/completions'):
        body = json.loads(req.body.decode())
        if body.get('stream'):
            events = [b'data: {"choices":[{"delta":{"content":"x"}}],"usage":null}\n\n',
                      b'data: {"choices":[],"usage":{"prompt_tokens":21,"completion_tokens":34}}\n\n',
                      b'data: [DONE]\n\n']
            return Resp(200, [('Content-Type', 'text/event-stream; charset=utf-8')], chunks=events)
        out = json.dumps({'model': 'echo', 'usage': {'prompt_tokens': 8, 'completion_tokens': 13}}).encode()
        return Resp(200, [('Content-Type', 'application/json')], body=out)
    if req.target == '/v1/responses':
        out = json.dumps({'object': 'response', 'usage': {'input_tokens': 2, 'output_tokens': 3}}).encode()
        return Resp(200, [('Content-Type', 'application/json')], body=out, framing='chunked')
    return Resp(404, [('Content-Type', 'application/json')], body=b'{"error":{"message":"no"}}')


def read_lines(path, n, timeout=5.0):
    """The first n lines of the log once there are n (the writer flushes within a second)."""
    def ready():
        try:
            with open(path, 'rb') as f:
                data = f.read()
        except OSError:
            return None
        lines = data.splitlines()
        return lines if len(lines) >= n else None
    lines = wait_until(ready, timeout=timeout)
    if not lines:
        raise AssertionError('fewer than %d lines in %s within %.0f s' % (n, path, timeout))
    return [json.loads(line) for line in lines]


class AccessLog(ProxyTestCase):
    def test_json_and_sse_lines(self):
        up = self.start_upstream(handler)
        log = new_tmp_path('access.log')
        p = self.start_proxy(self.targets(('a', up)) + ['-access-log', log])
        body = json.dumps({'messages': [{'role': 'user', 'content': '"model": "not this"'}], 'model': MODEL})
        r = request_once(p.port, 'POST', '/v1/chat/completions?api-version=1', [('Content-Type', 'application/json')],
                         body.encode())
        self.assertEqual(r.status, 200)
        sse = json.dumps({'model': 'm2', 'stream': True, 'stream_options': {'include_usage': True}}).encode()
        r2 = request_once(p.port, 'POST', '/v1/chat/completions', [('Content-Type', 'application/json')], sse)
        self.assertEqual(r2.status, 200)
        r3 = request_once(p.port, 'POST', '/v1/responses', [('Content-Type', 'application/json')], b'{"model":"r"}')
        self.assertEqual(r3.status, 200)
        self.assertEqual(request_once(p.port, 'GET', '/v1/models', host='zz.example.test').status, 404)
        with socket.create_connection(('127.0.0.1', p.port), timeout=5) as s:
            s.sendall(b'NOT HTTP\r\n\r\n')
            s.recv(4096)
        # One ring per worker: lines of different workers are not in time order.
        lines = read_lines(log, 5)
        by_model = {l['model']: l for l in lines}
        first, second, third = by_model[MODEL], by_model['m2'], by_model['r']
        no_route = [l for l in lines if l['method'] == 'GET'][0]
        malformed = [l for l in lines if l['method'] is None][0]
        self.assertEqual(set(first), {'time', 'client', 'key', 'method', 'path', 'target', 'status', 'source',
                                      'bytes_in', 'bytes_out', 'head_ms', 'duration_ms', 'model', 'prompt_tokens',
                                      'completion_tokens', 'attempts'})
        self.assertRegex(first['time'], r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$')
        self.assertLess(abs(time.mktime(time.strptime(first['time'][:19], '%Y-%m-%dT%H:%M:%S')) - time.timezone
                            - time.time()), 60)
        self.assertRegex(first['client'], r'^127\.0\.0\.1:\d+$')
        self.assertIsNone(first['key'])
        self.assertEqual((first['method'], first['path'], first['target']), ('POST', '/v1/chat/completions', up.url))
        self.assertEqual((first['status'], first['source']), (200, 'upstream'))
        self.assertEqual(first['model'], MODEL)
        self.assertEqual((first['prompt_tokens'], first['completion_tokens'], first['attempts']), (8, 13, 1))
        self.assertGreater(first['bytes_in'], len(body))
        self.assertGreater(first['bytes_out'], len(r.body))
        self.assertLessEqual(first['head_ms'], first['duration_ms'])
        self.assertEqual((second['model'], second['prompt_tokens'], second['completion_tokens']), ('m2', 21, 34))
        self.assertEqual((third['model'], third['prompt_tokens'], third['completion_tokens']), ('r', 2, 3))
        self.assertEqual((no_route['status'], no_route['source'], no_route['target'], no_route['model']),
                         (404, 'proxy', None, None))
        self.assertEqual((malformed['status'], malformed['method'], malformed['path']), (400, None, None))

    def test_request_split_across_many_writes(self):
        up = self.start_upstream(handler)
        log = new_tmp_path('access.log')
        p = self.start_proxy(self.targets(('a', up)) + ['-access-log', log])
        body = json.dumps({'messages': [{'role': 'user', 'content': 'x' * 50}], 'model': 'split-model'}).encode()
        raw = (b'POST /v1/chat/completions HTTP/1.1\r\nHost: a.example.test\r\nContent-Type: application/json\r\n'
               b'Content-Length: %d\r\n\r\n' % len(body)) + body
        with socket.create_connection(('127.0.0.1', p.port), timeout=10) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for i in range(0, len(raw), 3):
                s.sendall(raw[i:i + 3])
                time.sleep(0.002)
            data = b''
            while b'"completion_tokens": 13}}' not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        self.assertIn(b' 200 ', data.split(b'\r\n')[0])
        line = read_lines(log, 1)[0]
        self.assertEqual((line['model'], line['prompt_tokens'], line['completion_tokens']), ('split-model', 8, 13))
        self.assertEqual(line['bytes_in'], len(raw))

    def test_cors_preflights_are_logged(self):
        # Answered by the proxy itself (204, or 403 for an origin not allowed), each is
        # still one line with its method and path, and one count in the metrics.
        up = self.start_upstream(handler)
        log = new_tmp_path('access.log')
        p = self.start_proxy(self.targets(('a', up)) + ['-access-log', log, '-cors-origins', 'https://app.example'])
        for origin, status in (('https://app.example', 204), ('https://evil.example', 403)):
            r = self.get(p, '/v1/chat/completions', method='OPTIONS',
                         headers=[('Origin', origin), ('Access-Control-Request-Method', 'POST')])
            self.assertEqual(r.status, status, r)
        lines = read_lines(log, 2)
        self.assertEqual(sorted((line['method'], line['path'], line['status'], line['source']) for line in lines),
                         [('OPTIONS', '/v1/chat/completions', 204, 'proxy'),
                          ('OPTIONS', '/v1/chat/completions', 403, 'proxy')])
        self.assertTrue(all(line['bytes_in'] > 0 for line in lines), lines)
        self.assertEqual(up.request_count, 0)

    def test_standard_output(self):
        up = self.start_upstream(handler)
        p = self.start_proxy(self.targets(('a', up)) + ['-access-log', '-'])
        self.assertEqual(request_once(p.port, 'POST', '/v1/responses', body=b'{"model":"o"}').status, 200)
        self.assertTrue(wait_until(lambda: p.stdout().count('\n') >= 1, timeout=5), p.stdout())
        line = json.loads(p.stdout().splitlines()[0])
        self.assertEqual((line['model'], line['status']), ('o', 200))

    def test_metrics_count_log_lines(self):
        up = self.start_upstream(handler)
        admin = free_port()
        p = self.start_proxy(self.targets(('a', up)) + ['-access-log', new_tmp_path('x.log'),
                                                        '-admin-listen', '127.0.0.1:%d' % admin])
        for _ in range(2):
            self.assertEqual(request_once(p.port, 'POST', '/v1/responses', body=b'{}').status, 200)
        text = request_once(admin, 'GET', '/metrics').body.decode()
        self.assertRegex(text, r'(?m)^openai_proxy_access_log_lines_total 2$')
        self.assertRegex(text, r'(?m)^openai_proxy_access_log_dropped_total 0$')

    @windows_skip('no SIGHUP on Windows')
    def test_logrotate_rename_and_sighup(self):
        up = self.start_upstream(handler)
        log = new_tmp_path('access.log')
        p = self.start_proxy(self.targets(('a', up)) + ['-access-log', log])
        self.assertEqual(request_once(p.port, 'POST', '/v1/responses', body=b'{"model":"before"}').status, 200)
        read_lines(log, 1)
        os.rename(log, log + '.1')
        self.assertEqual(request_once(p.port, 'POST', '/v1/responses', body=b'{"model":"between"}').status, 200)
        time.sleep(0.5)  # written to the renamed file: the proxy has not reopened yet
        os.kill(p.pid, signal.SIGHUP)
        self.assertTrue(wait_until(lambda: os.path.exists(log), timeout=5), 'not reopened after SIGHUP')
        self.assertEqual(request_once(p.port, 'POST', '/v1/responses', body=b'{"model":"after"}').status, 200)
        new = read_lines(log, 1)
        old = read_lines(log + '.1', 2)
        self.assertEqual([l['model'] for l in old], ['before', 'between'])
        self.assertEqual([l['model'] for l in new], ['after'])
        self.assertTrue(p.alive())


if __name__ == '__main__':
    main()
