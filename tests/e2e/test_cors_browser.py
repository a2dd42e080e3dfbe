#!/usr/bin/env python3
"""CORS in a real browser: headless Chromium (Debian's `chromium`, scripts/deps.sh
--browser) loads a page from one loopback origin that calls the proxy, on another, with
fetch(), as a chat front-end does:

  - a JSON POST with Authorization and Content-Type: application/json (so a preflight,
    which the proxy answers; the upstream never sees an OPTIONS), reading the exposed
    x-request-id and not a header that is not exposed;
  - a streamed (SSE) answer read chunk by chunk through response.body.getReader(): the
    events arrive in order, complete, in several reads spread over time as sent;
  - the proxy's own error (a 502) readable by the page, status and JSON;
  - a request header outside the allow-set: the preflight grants nothing, fetch fails;
  - a page from an origin not in -cors-origins (an iframe from a third loopback origin):
    its fetch fails with a TypeError.

The pages post their results back to their own origin (no CORS involved there); the
test then stops Chromium (its process group, started here) and removes its profile.
Chromium only ever sees loopback URLs, and runs with background networking, component
updates and the like off, and a host-resolver rule that resolves nothing but loopback.
Skipped, saying why, when chromium is not installed (CI installs it)."""
import http.server
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ProxyTestCase, Resp, free_port, main, new_tmp_path, now, wait_until  # noqa: E402

BROWSER_TIMEOUT = 20.0
EVENTS = 5
EVENT_GAP = 0.25

ALLOWED_PAGE = r'''<!doctype html><meta charset="utf-8"><title>cors</title><body><script>
const PROXY = %(proxy)s, DEAD = %(dead)s, DENIED_PAGE = %(denied)s;
const results = {};
async function step(name, fn) {
  try { results[name] = await fn(); } catch (e) { results[name] = {thrown: e.name + ': ' + e.message}; }
}
async function run() {
  await step('json', async () => {
    const r = await fetch(PROXY + '/v1/chat/completions', {method: 'POST',
      headers: {'Authorization': 'Bearer sk-test', 'Content-Type': 'application/json',
                'X-Stainless-Lang': 'js'},
      body: JSON.stringify({model: 'm', messages: []})});
    return {status: r.status, request_id: r.headers.get('x-request-id'),
            hidden: r.headers.get('x-not-exposed'), body: await r.json()};
  });
  await step('stream', async () => {
    const t0 = performance.now();
    const r = await fetch(PROXY + '/v1/chat/completions', {method: 'POST',
      headers: {'Authorization': 'Bearer sk-test', 'Content-Type': 'application/json'},
      body: JSON.stringify({model: 'm', stream: true, messages: []})});
    const reader = r.body.getReader(), dec = new TextDecoder();
    const reads = [];
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      reads.push({t: performance.now() - t0, text: dec.decode(value, {stream: true})});
    }
    return {status: r.status, type: r.headers.get('content-type'), reads: reads};
  });
  await step('own_error', async () => {
    const r = await fetch(PROXY + '/v1/models', {headers: {'Authorization': 'Bearer sk-test',
                                                          'X-Target-Host': DEAD}});
    return {status: r.status, body: await r.json()};
  });
  await step('header_not_granted', async () => {
    const r = await fetch(PROXY + '/v1/models', {headers: {'X-Secret-Header': '1'}});
    return {status: r.status};
  });
  await fetch('/results/allowed', {method: 'POST', body: JSON.stringify(results)});
  const frame = document.createElement('iframe');
  frame.src = DENIED_PAGE;
  document.body.appendChild(frame);
}
run();
</script>'''

DENIED_PAGE = r'''<!doctype html><meta charset="utf-8"><title>denied</title><script>
(async () => {
  let result;
  try {
    const r = await fetch(%(proxy)s + '/v1/chat/completions', {method: 'POST',
      headers: {'Authorization': 'Bearer sk-test', 'Content-Type': 'application/json'},
      body: JSON.stringify({model: 'm', messages: []})});
    result = {status: r.status};
  } catch (e) { result = {thrown: e.name}; }
  await fetch('/results/denied', {method: 'POST', body: JSON.stringify(result)});
})();
</script>'''


class PageServer:
    """Serves `pages` (path -> html) on 127.0.0.1 and collects POSTs to /results/NAME."""

    def __init__(self, pages, results, cond):
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                page = outer.pages.get(self.path)
                if page is None:
                    self.send_error(404)
                    return
                data = page.encode()
                self.send_response(200)
                self.send_header('Content-Type', 'text/html; charset=utf-8')
                self.send_header('Content-Length', str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                n = int(self.headers.get('Content-Length', '0'))
                body = self.rfile.read(n)
                with cond:
                    results[self.path.rsplit('/', 1)[-1]] = json.loads(body)
                    cond.notify_all()
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.pages = pages
        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.port = self.httpd.server_address[1]
        self.origin = 'http://127.0.0.1:%d' % self.port
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def find_chromium():
    for name in ('chromium', 'chromium-browser'):
        path = shutil.which(name)
        if path:
            return path
    return None


def upstream_handler(req):
    body = json.loads(req.body or b'{}')
    if body.get('stream'):
        events = [b'data: {"i":%d}\n\n' % i for i in range(EVENTS)] + [b'data: [DONE]\n\n']
        return Resp(200, [('Content-Type', 'text/event-stream'), ('x-request-id', 'req_stream')],
                    chunks=events, delay=EVENT_GAP)
    return Resp(200, [('Content-Type', 'application/json'), ('x-request-id', 'req_json'),
                      ('x-not-exposed', 'secret'), ('Access-Control-Allow-Origin', 'https://upstream.example')],
                body=json.dumps({'ok': True, 'auth': req.header('Authorization')}).encode())


class CorsBrowser(ProxyTestCase):
    def setUp(self):
        self.chromium = find_chromium()
        if not self.chromium:
            raise unittest.SkipTest('chromium is not installed (scripts/deps.sh --browser installs it)')

    def run_browser(self, url):
        profile = tempfile.mkdtemp(prefix='chromium-', dir=os.path.dirname(new_tmp_path('x')))
        log_path = new_tmp_path('chromium.log')
        argv = [self.chromium, '--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
                '--user-data-dir=' + profile, '--no-first-run', '--no-default-browser-check',
                '--disable-background-networking', '--disable-component-update', '--disable-sync',
                '--disable-extensions', '--disable-default-apps', '--disable-domain-reliability',
                '--disable-client-side-phishing-detection', '--disable-breakpad', '--metrics-recording-only',
                '--safebrowsing-disable-auto-update', '--password-store=basic', '--use-mock-keychain',
                '--disable-features=OptimizationHints,MediaRouter,Translate,AutofillServerCommunication,'
                'CertificateTransparencyComponentUpdater,DialMediaRouteProvider,InterestFeedContentSuggestions',
                '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost',
                '--remote-debugging-port=0', url]
        with open(log_path, 'wb') as log:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    start_new_session=True)

        def stop():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)  # its own group: Chromium and its helpers
                except ProcessLookupError:
                    pass
            proc.wait(10)
            shutil.rmtree(profile, ignore_errors=True)
        self.addCleanup(stop)
        self.browser_log = log_path
        return proc

    def browser_log_text(self):
        with open(self.browser_log, 'rb') as f:
            return f.read().decode(errors='replace')[-3000:]

    def test_front_end_through_the_proxy(self):
        up = self.start_upstream(upstream_handler)
        results, cond = {}, threading.Condition()
        dead = free_port()
        denied = PageServer({}, results, cond)
        self.addCleanup(denied.close)
        allowed = PageServer({}, results, cond)
        self.addCleanup(allowed.close)
        p = self.start_proxy(['-default-target', up.url, '-cors-origins', allowed.origin])
        proxy_origin = 'http://127.0.0.1:%d' % p.port
        allowed.pages['/'] = ALLOWED_PAGE % {'proxy': json.dumps(proxy_origin),
                                             'dead': json.dumps('https://127.0.0.1:%d' % dead),
                                             'denied': json.dumps(denied.origin + '/')}
        denied.pages['/'] = DENIED_PAGE % {'proxy': json.dumps(proxy_origin)}

        t0 = now()
        proc = self.run_browser(allowed.origin + '/')
        with cond:
            cond.wait_for(lambda: ('allowed' in results and 'denied' in results) or proc.poll() is not None,
                          BROWSER_TIMEOUT)
        if 'allowed' not in results or 'denied' not in results:
            self.fail('the pages did not report within %.0f s (chromium %s); got %r\n--- chromium log:\n%s' % (
                BROWSER_TIMEOUT, 'exited %s' % proc.returncode if proc.poll() is not None else 'running',
                results, self.browser_log_text()))
        print('browser run: %.1f s' % (now() - t0))
        r = results['allowed']

        js = r['json']
        self.assertEqual(js.get('status'), 200, js)
        self.assertEqual(js['request_id'], 'req_json')   # exposed
        self.assertIsNone(js['hidden'])                  # not exposed
        self.assertEqual(js['body'], {'ok': True, 'auth': 'Bearer sk-test'})

        st = r['stream']
        self.assertEqual(st.get('status'), 200, st)
        self.assertTrue(st['type'].startswith('text/event-stream'), st)
        text = ''.join(read['text'] for read in st['reads'])
        expected = ''.join('data: {"i":%d}\n\n' % i for i in range(EVENTS)) + 'data: [DONE]\n\n'
        self.assertEqual(text, expected)  # every event, in order, complete
        # Read as they were sent (EVENT_GAP apart), not all at the end.
        self.assertGreaterEqual(len(st['reads']), 3, st['reads'])
        span = st['reads'][-1]['t'] - st['reads'][0]['t']
        self.assertGreater(span, 1000 * EVENT_GAP * (EVENTS - 1) / 2, st['reads'])

        own = r['own_error']
        self.assertEqual(own.get('status'), 502, own)
        self.assertEqual(own['body']['error']['code'], 'upstream_unreachable')

        self.assertIn('TypeError', r['header_not_granted'].get('thrown', ''), r['header_not_granted'])
        self.assertEqual(results['denied'].get('thrown'), 'TypeError', results['denied'])

        methods = [q.method for q in up.requests]
        self.assertNotIn('OPTIONS', methods)  # preflights answered by the proxy
        self.assertEqual(methods.count('POST'), 2, methods)  # the denied origin's POST never left the browser


if __name__ == '__main__':
    main()
