"""End-to-end test harness for openai-proxy (Python 3 standard library only).

Everything runs on loopback (127.0.0.1 / ::1); no other name is ever resolved.

  certs()          test certificates made with the `openssl` CLI (cached per process)
  Upstream         threaded HTTP/1.1 test server (TLS or plain) with scripted responses
  Resp             what an Upstream handler returns (framing, delays, aborts, ...)
  ConnectProxy     HTTP CONNECT proxy that records targets and tunnels bytes
  Proxy            launcher for the binary named by $OP_BINARY
  RawClient        byte-exact HTTP/1.1 client over a socket
  ProxyTestCase    unittest.TestCase with helpers that clean up after themselves
  main()           runs a test file; exit 0 pass, 1 fail, 77 skipped

Every wait is bounded in time, every loop in count or time.
"""
import atexit
import hashlib
import email.utils
import json
import os
import re
import select
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import unittest

DEFAULT_TIMEOUT = 15.0       # any single read or wait in a test
PROXY_START_TIMEOUT = 10.0   # until the proxy accepts TCP connections
PROXY_STOP_TIMEOUT = 10.0    # SIGTERM -> exit, before SIGKILL
HOST = 'a.example.test'      # the Host the tests send by default (key "a"; never resolved)


def now():
    return time.monotonic()


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def wait_until(predicate, timeout=DEFAULT_TIMEOUT, interval=0.01):
    """Polls predicate() until it is true or `timeout` seconds pass; returns its last value."""
    deadline = now() + timeout
    while True:
        value = predicate()
        if value or now() >= deadline:
            return value
        time.sleep(interval)


def stop_listening(lsock, socks, threads):
    """Teardown shared by the test servers: close the listener, shut every open socket
    (so blocked reads return), then wait a bounded time for the threads."""
    try:
        lsock.close()
    except OSError:
        pass
    for s in socks:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    for t in threads:
        t.join(2.0)


# --------------------------------------------------------------------------------------
# Scratch directory and certificates
# --------------------------------------------------------------------------------------

_tmp_lock = threading.Lock()
_tmp_root = None


def tmp_dir():
    """A per-process scratch directory, removed at exit."""
    global _tmp_root
    with _tmp_lock:
        if _tmp_root is None:
            _tmp_root = tempfile.mkdtemp(prefix='op-e2e-')
            atexit.register(shutil.rmtree, _tmp_root, True)
        return _tmp_root


def new_tmp_path(name):
    d = tempfile.mkdtemp(dir=tmp_dir())
    return os.path.join(d, name)


class Certs:
    """Paths of the test certificates.

    ca            the test CA (trusted by the proxy via -ca-file by default)
    server        leaf for DNS:localhost, IP:127.0.0.1, IP:::1, signed by ca
    other_ca      an unrelated CA
    other_server  leaf for the same names, signed by other_ca (unknown-CA tests)
    wrong         leaf for DNS:wrong.example only (no IPs), signed by ca
    ca_dir        a hashed directory (openssl rehash) holding only ca, for SSL_CERT_DIR
    """


_certs = None
_certs_lock = threading.Lock()


def _openssl(args, cwd):
    try:
        r = subprocess.run(['openssl'] + args, cwd=cwd, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    except FileNotFoundError:
        raise unittest.SkipTest('the openssl command is not installed')
    if r.returncode != 0:
        raise RuntimeError('openssl %s failed: %s' % (' '.join(args), r.stderr.decode(errors='replace')))


def _make_ca(d, name, cn):
    _openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
              '-keyout', name + '.key', '-out', name + '.pem', '-days', '3', '-subj', '/CN=' + cn,
              '-addext', 'basicConstraints=critical,CA:TRUE',
              '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], d)


def _make_leaf(d, name, cn, san, ca):
    """san: an openssl subjectAltName value, or None for a certificate without the extension."""
    ext = os.path.join(d, name + '.ext')
    with open(ext, 'w') as f:
        f.write('basicConstraints=critical,CA:FALSE\n'
                'keyUsage=critical,digitalSignature\n'
                'extendedKeyUsage=serverAuth\n'
                'subjectKeyIdentifier=hash\n'
                'authorityKeyIdentifier=keyid,issuer\n')
        if san is not None:
            f.write('subjectAltName=%s\n' % san)
    _openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
              '-keyout', name + '.key', '-out', name + '.csr', '-subj', '/CN=' + cn], d)
    serial = str(int.from_bytes(os.urandom(8), 'big'))
    _openssl(['x509', '-req', '-in', name + '.csr', '-CA', ca + '.pem', '-CAkey', ca + '.key',
              '-set_serial', serial, '-days', '3', '-extfile', ext, '-out', name + '.pem'], d)


def certs():
    global _certs
    with _certs_lock:
        if _certs is None:
            d = tempfile.mkdtemp(prefix='certs-', dir=tmp_dir())
            _make_ca(d, 'ca', 'openai-proxy e2e test CA')
            _make_ca(d, 'other_ca', 'unrelated e2e CA')
            good_san = 'DNS:localhost,IP:127.0.0.1,IP:::1'
            _make_leaf(d, 'server', 'localhost', good_san, 'ca')
            _make_leaf(d, 'other_server', 'localhost', good_san, 'other_ca')
            _make_leaf(d, 'wrong', 'wrong.example', 'DNS:wrong.example', 'ca')
            ca_dir = os.path.join(d, 'ca_dir')
            os.mkdir(ca_dir)
            shutil.copy(os.path.join(d, 'ca.pem'), os.path.join(ca_dir, 'ca.pem'))
            _openssl(['rehash', ca_dir], d)
            c = Certs()
            c.dir = d
            c.ca = os.path.join(d, 'ca.pem')
            c.other_ca = os.path.join(d, 'other_ca.pem')
            c.ca_dir = ca_dir
            for leaf in ('server', 'other_server', 'wrong'):
                setattr(c, leaf, (os.path.join(d, leaf + '.pem'), os.path.join(d, leaf + '.key')))
            _certs = c
        return _certs


def leaf_cert(name, cn, san):
    """One more leaf signed by certs().ca, made once per process: CN `cn`, subjectAltName
    `san` (openssl syntax, e.g. 'DNS:*.test' or 'IP:127.0.0.1'; None: no such extension).
    Returns `name`, for Upstream(cert=name)."""
    c = certs()
    with _certs_lock:
        if not hasattr(c, name):
            _make_leaf(c.dir, name, cn, san, 'ca')
            setattr(c, name, (os.path.join(c.dir, name + '.pem'), os.path.join(c.dir, name + '.key')))
    return name


# --------------------------------------------------------------------------------------
# Byte-level reading helpers shared by the test peers and the client
# --------------------------------------------------------------------------------------

class PeerClosed(Exception):
    pass


class _Reader:
    """Buffered reads from a (TLS or plain) socket. EOF and resets end in PeerClosed."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()
        self.eof = False
        self.reset = False
        self.ragged = False    # a TLS socket's EOF came without close_notify (see Upstream)
        self.last_recv_time = None

    def fill(self, timeout):
        """Reads more bytes into buf. Returns False at EOF; raises socket.timeout."""
        if self.eof:
            return False
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data = self.sock.recv(262144)
        except socket.timeout:
            raise
        except ssl.SSLWantReadError:
            raise socket.timeout('TLS read would block')
        except ssl.SSLEOFError:  # only with suppress_ragged_eofs=False: an EOF, no close_notify
            self.eof = True
            self.ragged = True
            return False
        except (ConnectionError, ssl.SSLError, OSError):
            self.eof = True
            self.reset = True
            return False
        if not data:
            self.eof = True
            return False
        self.last_recv_time = now()
        self.buf += data
        return True

    def _need(self, deadline):
        remaining = deadline - now()
        if remaining <= 0:
            raise socket.timeout('timed out')
        if not self.fill(remaining):
            raise PeerClosed()

    def read_until(self, marker, deadline, limit=1 << 20):
        """Returns bytes up to and including `marker`."""
        start = 0
        while True:
            i = self.buf.find(marker, start)
            if i >= 0:
                out = bytes(self.buf[:i + len(marker)])
                del self.buf[:i + len(marker)]
                return out
            if len(self.buf) > limit:
                raise ValueError('no %r within %d bytes' % (marker, limit))
            start = max(0, len(self.buf) - len(marker) + 1)
            self._need(deadline)

    def read_exact(self, n, deadline):
        while len(self.buf) < n:
            self._need(deadline)
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_some(self, n, deadline):
        """Up to n bytes, at least 1 (PeerClosed at EOF)."""
        if not self.buf:
            self._need(deadline)
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out


def parse_head(raw):
    """Splits an HTTP head into (start line parts, [(name, value)]). Raises ValueError."""
    text = raw.decode('latin-1')
    if not text.endswith('\r\n\r\n'):
        raise ValueError('head does not end with CRLFCRLF')
    lines = text[:-4].split('\r\n')
    start = lines[0]
    headers = []
    for line in lines[1:]:
        if ':' not in line:
            raise ValueError('header line without colon: %r' % line)
        name, value = line.split(':', 1)
        if not name or name != name.strip() or not re.match(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", name):
            raise ValueError('bad header name: %r' % name)
        headers.append((name, value.strip(' \t')))
    return start, headers


def header_values(headers, name):
    name = name.lower()
    return [v for n, v in headers if n.lower() == name]


def header_value(headers, name):
    vals = header_values(headers, name)
    return vals[0] if vals else None


def has_token(headers, name, token):
    token = token.lower()
    for v in header_values(headers, name):
        if token in [t.strip().lower() for t in v.split(',')]:
            return True
    return False


def read_chunked_body(rd, deadline, sink=None):
    """Decodes a chunked body. Returns (body, trailers). Raises PeerClosed/ValueError."""
    body = bytearray()
    while True:
        line = rd.read_until(b'\r\n', deadline, limit=4096)
        size_text = line[:-2].split(b';', 1)[0].strip()
        if not re.match(rb'^[0-9A-Fa-f]+$', size_text):
            raise ValueError('bad chunk size line %r' % line)
        size = int(size_text, 16)
        if size == 0:
            trailers = []
            while True:
                t = rd.read_until(b'\r\n', deadline, limit=65536)
                if t == b'\r\n':
                    return bytes(body), trailers
                trailers.append(t)
        remaining = size
        while remaining:
            piece = rd.read_some(remaining, deadline)
            remaining -= len(piece)
            if sink:
                sink(piece)
            else:
                body += piece
        if rd.read_exact(2, deadline) != b'\r\n':
            raise ValueError('chunk data not followed by CRLF')


# --------------------------------------------------------------------------------------
# Upstream test server
# --------------------------------------------------------------------------------------

class Request:
    """A request as the upstream received it."""

    def __init__(self):
        self.method = self.target = self.version = None
        self.headers = []
        self.raw_head = b''
        self.body = b''
        self.sha256 = None
        self.conn = None          # the UpstreamConn it came on
        self.index_on_conn = 0    # 0 for the first request on a connection
        self.time = None          # when the head was complete
        self.expect_sent_100 = False

    @property
    def path(self):
        return self.target

    def header(self, name):
        return header_value(self.headers, name)

    def header_all(self, name):
        return header_values(self.headers, name)

    def __repr__(self):
        return '<Request %s %s conn=%s #%d body=%s>' % (
            self.method, self.target, self.conn.id if self.conn else None, self.index_on_conn,
            None if self.body is None else len(self.body))


class Resp:
    """What an Upstream handler answers.

    framing: 'length' (Content-Length, the default), 'chunked', 'close' (no length,
             the body ends when the server closes), or 'none' (head only, no framing field).
    body / chunks: the body as bytes, or an iterable of bytes sent one piece at a time.
    delay: seconds between pieces (the server watches for the peer closing meanwhile).
    head_delay: seconds before the head is sent (watching for the peer closing).
    content_length: overrides the Content-Length value (for 'length' framing).
    abort_after: close abruptly after this many body pieces (no terminator, short body).
    abort_tail: raw bytes written just before that abort (e.g. b'100\r\npartial': a chunk
             announced but cut short).
    rst: abort with a TCP reset (SO_LINGER 0) instead of a FIN.
    close: add 'Connection: close' and close after the response.
    close_after: close the connection this many seconds after the response, no header.
    drop: close the connection without answering at all.
    raw: bytes sent as-is instead of a response; the connection is then closed.

    After sending, `sent` holds (monotonic time, piece) for each body piece (stamped just
    after the piece was written), `head_sent_at` when the head was written, and
    `peer_closed_at` the time the peer was seen gone mid-response (None if not).
    """

    def __init__(self, status=200, headers=(), body=None, chunks=None, framing=None, delay=0.0,
                 head_delay=0.0, content_length=None, abort_after=None, abort_tail=b'', rst=False, close=False,
                 close_after=None, drop=False, raw=None, reason=None, version='HTTP/1.1'):
        self.status = status
        self.headers = list(headers)
        if chunks is None:
            chunks = [] if body is None else [body]
        self.chunks = chunks
        # Default framing: Content-Length for `body`, chunked for `chunks`.
        self.framing = framing or ('length' if body is not None or not chunks else 'chunked')
        self.delay = delay
        self.head_delay = head_delay
        self.content_length = content_length
        self.abort_after = abort_after
        self.abort_tail = abort_tail
        self.rst = rst
        self.close = close
        self.close_after = close_after
        self.drop = drop
        self.raw = raw
        self.reason = reason
        self.version = version
        self.sent = []
        self.head_sent_at = None
        self.peer_closed_at = None
        self.finished = threading.Event()


REASONS = {100: 'Continue', 200: 'OK', 201: 'Created', 204: 'No Content', 304: 'Not Modified',
           400: 'Bad Request', 401: 'Unauthorized', 404: 'Not Found', 500: 'Internal Server Error'}


def echo_handler(req):
    """Default handler: a JSON description of the request."""
    body = json.dumps({'method': req.method, 'path': req.target, 'length': len(req.body),
                       'sha256': req.sha256}).encode()
    return Resp(200, [('Content-Type', 'application/json')], body=body)


class UpstreamConn:
    def __init__(self, cid, peer):
        self.id = cid
        self.peer = peer
        self.accepted_at = now()
        self.closed_at = None
        self.close_reason = None     # 'peer' (EOF/reset seen), 'server', 'tls-error', ...
        self.requests = []
        self.sni = None
        self.tls_version = None
        self.session_reused = None
        self.sock = None
        self.reader = None

    @property
    def closed_by_peer(self):
        return self.close_reason in ('peer', 'peer-reset')

    @property
    def got_close_notify(self):
        """The peer ended this TLS connection with a close_notify alert before its EOF
        (RFC 8446 6.1), rather than with a bare EOF or a reset."""
        rd = self.reader
        return rd is not None and self.tls_version is not None and rd.eof and not rd.ragged and not rd.reset


class Upstream:
    """A threaded HTTP/1.1 server on loopback (TLS unless tls=False).

    handler(req) -> Resp. Attributes for assertions:
      requests     every Request, in arrival order
      conns        every accepted connection (UpstreamConn), in accept order
      accept_count len(conns)
      tls_errors   handshake failures (str)
      bad_requests heads the server could not parse
      errors       exceptions raised by handlers or the server (tests assert it is empty)
    """

    def __init__(self, handler=None, tls=True, cert='server', host='127.0.0.1', port=0,
                 expect_100=True, idle_timeout=60.0, body_delay=0.0, early_response=False):
        self.handler = handler or echo_handler
        self.body_delay = body_delay   # seconds to wait after a head before reading its body
        self.early_response = early_response  # answer (then close) without reading bodies
        self.heads = []                # (time, Request) as each head arrives, body not yet read
        self.tls = tls
        self.host = host
        self.expect_100 = expect_100
        self.idle_timeout = idle_timeout
        self.requests = []
        self.conns = []
        self.tls_errors = []
        self.bad_requests = []
        self.errors = []
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self._stop = threading.Event()
        self._threads = []
        self.ctx = None
        if tls:
            c = certs()
            cert_file, key_file = getattr(c, cert)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(cert_file, key_file)

            def on_sni(sslsock, name, _ctx):
                sslsock._op_sni = name
            ctx.sni_callback = on_sni
            self.ctx = ctx
        family = socket.AF_INET6 if ':' in host else socket.AF_INET
        self.lsock = socket.socket(family, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((host, port))
        self.lsock.listen(128)
        self.lsock.settimeout(0.2)
        self.port = self.lsock.getsockname()[1]
        t = threading.Thread(target=self._accept_loop, daemon=True, name='upstream-accept')
        t.start()
        self._threads.append(t)

    # -- public helpers --
    @property
    def authority(self):
        return ('[%s]:%d' if ':' in self.host else '%s:%d') % (self.host, self.port)

    @property
    def url(self):
        return ('https://' if self.tls else 'http://') + self.authority

    @property
    def accept_count(self):
        with self.lock:
            return len(self.conns)

    @property
    def closed_count(self):
        with self.lock:
            return sum(1 for c in self.conns if c.closed_at is not None)

    @property
    def request_count(self):
        with self.lock:
            return len(self.requests)

    def wait_requests(self, n, timeout=DEFAULT_TIMEOUT):
        return wait_until(lambda: self.request_count >= n, timeout)

    def wait_closed(self, conn, timeout=DEFAULT_TIMEOUT):
        return wait_until(lambda: conn.closed_at is not None, timeout)

    def close(self):
        self._stop.set()
        with self.lock:
            conns = list(self.conns)
        open_socks = [c.sock for c in conns if c.sock is not None and c.closed_at is None]
        stop_listening(self.lsock, open_socks, list(self._threads))

    # -- internals --
    def _accept_loop(self):
        cid = 0
        while not self._stop.is_set():
            try:
                s, peer = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            cid += 1
            conn = UpstreamConn(cid, peer)
            conn.sock = s
            with self.cond:
                self.conns.append(conn)
                self.cond.notify_all()
            t = threading.Thread(target=self._serve, args=(s, conn), daemon=True, name='upstream-conn')
            t.start()
            self._threads.append(t)

    def _mark_closed(self, conn, reason):
        if conn.closed_at is None:
            conn.closed_at = now()
            conn.close_reason = reason

    def _serve(self, s, conn):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            if self.tls:
                s.settimeout(10.0)
                try:
                    # A bare EOF raises SSLEOFError instead of reading as b'' (which is
                    # then a close_notify): UpstreamConn.got_close_notify tells the two apart.
                    s = self.ctx.wrap_socket(s, server_side=True, suppress_ragged_eofs=False)
                except (ssl.SSLError, OSError) as e:
                    with self.lock:
                        self.tls_errors.append(str(e))
                    self._mark_closed(conn, 'tls-error')
                    return
                conn.sock = s
                conn.sni = getattr(s, '_op_sni', None)
                conn.tls_version = s.version()
                conn.session_reused = s.session_reused
            rd = _Reader(s)
            conn.reader = rd
            index = 0
            while not self._stop.is_set():
                keep = self._serve_one(s, rd, conn, index)
                index += 1
                if not keep:
                    break
        except Exception as e:  # a bug in the harness or a handler: make it visible
            with self.lock:
                self.errors.append('%s\n%s' % (e, traceback.format_exc()))
            self._mark_closed(conn, 'server-error')
        finally:
            self._mark_closed(conn, 'server')
            try:
                s.close()
            except OSError:
                pass

    def _watch(self, s, rd, seconds):
        """Sleeps `seconds` while watching for the peer going away. True if it did."""
        deadline = now() + seconds
        while True:
            if rd.eof:
                return True
            remaining = deadline - now()
            if remaining <= 0:
                return False
            pending = s.pending() if isinstance(s, ssl.SSLSocket) else 0
            if not pending:
                try:
                    r, _, _ = select.select([s], [], [], remaining)
                except (OSError, ValueError):
                    return True
                if not r:
                    return False
            try:
                if not rd.fill(0.05):
                    return True
            except socket.timeout:
                pass  # TLS record without application data; keep watching

    def _serve_one(self, s, rd, conn, index):
        """Reads one request and answers it. Returns True to keep the connection."""
        try:
            if not rd.buf:
                rd._need(now() + self.idle_timeout)
            if not (rd.buf[:1].isalpha() and rd.buf[:1].isupper()):
                # Not HTTP at all (a TLS ClientHello, say): answer at once, as real servers do.
                with self.lock:
                    self.bad_requests.append((bytes(rd.buf[:64]), 'not an HTTP request'))
                self._send(s, b'HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n')
                self._mark_closed(conn, 'server-bad-request')
                return False
            head = rd.read_until(b'\r\n\r\n', now() + self.idle_timeout, limit=256 * 1024)
        except PeerClosed:
            self._mark_closed(conn, 'peer-reset' if rd.reset else 'peer')
            return False
        except socket.timeout:
            self._mark_closed(conn, 'server-idle-timeout')
            return False
        req = Request()
        req.time = now()
        req.raw_head = head
        req.conn = conn
        req.index_on_conn = index
        try:
            start, req.headers = parse_head(head)
            parts = start.split(' ')
            if len(parts) != 3 or not parts[2].startswith('HTTP/1.'):
                raise ValueError('bad request line %r' % start)
            req.method, req.target, req.version = parts
        except ValueError as e:
            with self.lock:
                self.bad_requests.append((head, str(e)))
            self._send(s, b'HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n')
            return False
        with self.cond:
            self.heads.append((req.time, req))
            self.cond.notify_all()
        te = req.header_all('Transfer-Encoding')
        cl = req.header_all('Content-Length')
        has_body = bool(te) or (cl and int(cl[0]) > 0)
        if has_body and self.early_response:
            return self._answer_early(s, rd, conn, req)
        if has_body and self.body_delay:
            time.sleep(self.body_delay)
        if has_body and self.expect_100 and has_token(req.headers, 'Expect', '100-continue'):
            self._send(s, b'HTTP/1.1 100 Continue\r\n\r\n')
            req.expect_sent_100 = True
        deadline = now() + 120
        try:
            if te:
                if te[-1].strip().lower() != 'chunked':
                    raise ValueError('unsupported Transfer-Encoding %r' % te)
                req.body, _ = read_chunked_body(rd, deadline)
            elif cl:
                req.body = rd.read_exact(int(cl[0]), deadline)
        except (PeerClosed, socket.timeout, ValueError) as e:
            with self.lock:
                self.bad_requests.append((head, 'body: %r' % e))
            self._mark_closed(conn, 'peer' if isinstance(e, PeerClosed) else 'server-bad-body')
            return False
        req.sha256 = sha256(req.body)
        with self.cond:
            self.requests.append(req)
            conn.requests.append(req)
            self.cond.notify_all()
        try:
            resp = self.handler(req)
        except Exception as e:
            with self.lock:
                self.errors.append('handler: %s\n%s' % (e, traceback.format_exc()))
            resp = Resp(500, body=b'handler error', close=True)
        return self._respond(s, rd, conn, req, resp)

    def _answer_early(self, s, rd, conn, req):
        """Answers before reading the request body (an auth failure on an upload, say),
        then closes the way nginx does: stop sending, drain what still comes for a while,
        so the answer is not destroyed by a reset."""
        req.body = None
        with self.cond:
            self.requests.append(req)
            conn.requests.append(req)
            self.cond.notify_all()
        try:
            resp = self.handler(req)
        except Exception as e:
            with self.lock:
                self.errors.append('handler: %s\n%s' % (e, traceback.format_exc()))
            resp = Resp(500, body=b'handler error')
        resp.close = True
        self._respond(s, rd, conn, req, resp, linger=True)
        deadline = now() + 5
        while now() < deadline:
            try:
                rd.buf.clear()
                if not rd.fill(deadline - now()):
                    break
            except socket.timeout:
                break
        self._mark_closed(conn, 'server')
        return False

    def _send(self, s, data):
        try:
            s.sendall(data)
            return True
        except (OSError, ssl.SSLError):
            return False

    def _abort(self, s, conn, rst):
        if rst:
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
            except OSError:
                pass
        self._mark_closed(conn, 'server-abort')
        try:
            # No TLS close_notify: the bytes just stop.
            raw = s.detach() if isinstance(s, ssl.SSLSocket) else None
            if raw is not None:
                sock = socket.socket(fileno=raw)
                if rst:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
                sock.close()
            else:
                s.close()
        except OSError:
            pass

    def _respond(self, s, rd, conn, req, r, linger=False):
        if r.drop:
            self._abort(s, conn, r.rst)
            r.finished.set()
            return False
        if r.head_delay and self._watch(s, rd, r.head_delay):
            r.peer_closed_at = now()
            self._mark_closed(conn, 'peer')
            r.finished.set()
            return False
        if r.raw is not None:
            self._send(s, r.raw)
            r.head_sent_at = now()
            self._abort(s, conn, r.rst)
            r.finished.set()
            return False
        no_body = req.method == 'HEAD' or r.status in (204, 304) or 100 <= r.status < 200
        headers = list(r.headers)
        names = {n.lower() for n, _ in headers}
        if r.framing == 'length' and 'content-length' not in names and r.status not in (204, 304) \
                and not 100 <= r.status < 200:
            length = r.content_length
            if length is None:
                length = sum(len(c) for c in r.chunks)
            headers.append(('Content-Length', str(length)))
        if r.framing == 'chunked' and 'transfer-encoding' not in names and r.status not in (204, 304):
            headers.append(('Transfer-Encoding', 'chunked'))
        if r.close and 'connection' not in names:
            headers.append(('Connection', 'close'))
        head = '%s %d %s\r\n' % (r.version, r.status, r.reason or REASONS.get(r.status, 'Status'))
        head += ''.join('%s: %s\r\n' % (n, v) for n, v in headers) + '\r\n'
        if not self._send(s, head.encode('latin-1')):
            r.peer_closed_at = now()
            self._mark_closed(conn, 'peer-reset')
            r.finished.set()
            return False
        r.head_sent_at = now()
        if not no_body:
            for i, chunk in enumerate(r.chunks):
                if r.abort_after is not None and i >= r.abort_after:
                    if r.abort_tail:
                        self._send(s, r.abort_tail)
                    self._abort(s, conn, r.rst)
                    r.finished.set()
                    return False
                if i and r.delay and self._watch(s, rd, r.delay):
                    r.peer_closed_at = now()
                    self._mark_closed(conn, 'peer')
                    r.finished.set()
                    return False
                if not chunk:
                    continue
                data = (b'%x\r\n' % len(chunk) + chunk + b'\r\n') if r.framing == 'chunked' else chunk
                if not self._send(s, data):
                    r.peer_closed_at = now()
                    self._mark_closed(conn, 'peer-reset')
                    r.finished.set()
                    return False
                r.sent.append((now(), chunk))
            if r.abort_after is not None:
                if r.abort_tail:
                    self._send(s, r.abort_tail)
                self._abort(s, conn, r.rst)
                r.finished.set()
                return False
            if r.framing == 'chunked':
                self._send(s, b'0\r\n\r\n')
        r.finished.set()
        if linger:
            return False
        if r.close or (r.framing == 'close' and not no_body):
            self._mark_closed(conn, 'server')
            try:
                if isinstance(s, ssl.SSLSocket):
                    s.setblocking(False)  # send close_notify, do not wait for the peer's
                    s.unwrap()
            except (OSError, ssl.SSLError, ValueError):
                pass
            return False
        if req.version == 'HTTP/1.0' and not has_token(req.headers, 'Connection', 'keep-alive'):
            return False
        if has_token(req.headers, 'Connection', 'close'):
            return False
        if r.close_after is not None:
            if self._watch(s, rd, r.close_after):
                self._mark_closed(conn, 'peer')
                return False
            self._mark_closed(conn, 'server-idle-close')
            return False
        return True


# --------------------------------------------------------------------------------------
# HTTP CONNECT test proxy
# --------------------------------------------------------------------------------------

class ConnectProxy:
    """A plain-TCP HTTP CONNECT proxy on 127.0.0.1 that records each request and tunnels.

    connects     the CONNECT request targets, e.g. ['127.0.0.1:4433']
    requests     (request line, headers) for every request it received
    status       the status to answer (200 tunnels; anything else refuses)
    interim      raw bytes (1xx answers) sent before the 200
    any_name     tunnel every name to 127.0.0.1 at the port asked, without resolving it
                 (for targets such as example.test or localhost.: tests of certificate names)
    Only loopback targets are tunnelled (others get 403): tests never leave the machine.
    """

    def __init__(self, status=200, port=0, interim=b'', any_name=False):
        self.status = status
        self.interim = interim
        self.any_name = any_name
        self.connects = []
        self.requests = []
        self.errors = []
        self.tunnels_closed = 0
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = []
        self._socks = []
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(('127.0.0.1', port))
        self.lsock.listen(64)
        self.lsock.settimeout(0.2)
        self.port = self.lsock.getsockname()[1]
        self.url = 'http://127.0.0.1:%d' % self.port
        t = threading.Thread(target=self._accept_loop, daemon=True, name='connect-proxy')
        t.start()
        self._threads.append(t)

    def close(self):
        self._stop.set()
        stop_listening(self.lsock, list(self._socks), list(self._threads))

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                s, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self._socks.append(s)
            t = threading.Thread(target=self._serve, args=(s,), daemon=True)
            t.start()
            self._threads.append(t)

    def _serve(self, s):
        up = None
        try:
            rd = _Reader(s)
            try:
                head = rd.read_until(b'\r\n\r\n', now() + 15, limit=65536)
            except (PeerClosed, socket.timeout, ValueError):
                return
            start, headers = parse_head(head)
            with self.lock:
                self.requests.append((start, headers))
            parts = start.split(' ')
            if len(parts) != 3 or parts[0] != 'CONNECT':
                s.sendall(b'HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n')
                return
            target = parts[1]
            with self.lock:
                self.connects.append(target)
            if self.status != 200:
                s.sendall(b'HTTP/1.1 %d Refused\r\nContent-Length: 0\r\nConnection: close\r\n\r\n' % self.status)
                return
            host, _, port = target.rpartition(':')
            host = '127.0.0.1' if self.any_name else host.strip('[]')
            if host not in ('127.0.0.1', '::1', 'localhost'):
                s.sendall(b'HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n')
                return
            try:
                up = socket.create_connection(('127.0.0.1' if host == 'localhost' else host, int(port)), timeout=5)
            except OSError:
                s.sendall(b'HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n')
                return
            self._socks.append(up)
            up.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.sendall(self.interim + b'HTTP/1.1 200 Connection established\r\n\r\n')
            if rd.buf:
                up.sendall(bytes(rd.buf))
            self._pipe(s, up)
        except Exception as e:
            with self.lock:
                self.errors.append('%s\n%s' % (e, traceback.format_exc()))
        finally:
            for x in (s, up):
                if x is not None:
                    try:
                        x.close()
                    except OSError:
                        pass
            with self.lock:
                self.tunnels_closed += 1

    def _pipe(self, a, b):
        a.setblocking(True)
        b.setblocking(True)
        open_dirs = {a: b, b: a}
        deadline = now() + 120
        while open_dirs and not self._stop.is_set() and now() < deadline:
            r, _, _ = select.select(list(open_dirs), [], [], 0.5)
            for src in r:
                try:
                    data = src.recv(65536)
                except OSError:
                    data = b''
                dst = open_dirs.get(src)
                if dst is None:
                    continue
                if not data:
                    del open_dirs[src]
                    try:
                        dst.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                    continue
                try:
                    dst.sendall(data)
                except OSError:
                    return


# --------------------------------------------------------------------------------------
# The proxy under test
# --------------------------------------------------------------------------------------

def binary():
    return os.environ.get('OP_BINARY', '')


# The Windows build under Wine (`make test-windows`): OP_BINARY is tests/windows/wine-run,
# which starts the .exe named by OP_WINE_EXE and turns SIGTERM/SIGINT into Ctrl-C events.
WINDOWS = bool(os.environ.get('OP_WINE_EXE'))


def windows_skip(reason):
    """unittest.skipIf for a test that cannot apply to the Windows build: `reason` says why
    (printed with the run's skips)."""
    return unittest.skipIf(WINDOWS, 'Windows build: ' + reason)


# Variables the proxy reads: cleared from the inherited environment unless a test sets them.
_PROXY_ENV = ('SSL_CERT_FILE', 'SSL_CERT_DIR', 'ENV', 'HTTP_PROXY', 'http_proxy', 'HTTPS_PROXY',
              'https_proxy', 'ALL_PROXY', 'all_proxy', 'NO_PROXY', 'no_proxy', 'OPENAI_PROXY_LISTEN',
              'OPENAI_PROXY_TARGETS', 'OPENAI_PROXY_DEFAULT_TARGET', 'OPENAI_PROXY_CORS_ORIGINS',
              'OPENAI_PROXY_ADMIN_LISTEN', 'OPENAI_PROXY_ACCESS_LOG', 'OPENAI_PROXY_CONFIG',
              'OPENAI_PROXY_ACCESS_KEYS')


def proxy_env(extra=None):
    env = {k: v for k, v in os.environ.items() if k not in _PROXY_ENV}
    env.update(extra or {})
    return env


def free_port(host='127.0.0.1'):
    family = socket.AF_INET6 if ':' in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    try:
        s.bind((host, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def fmt_addr(host, port):
    return ('[%s]:%d' if ':' in host else '%s:%d') % (host, port)


_ROUTE_FLAGS = re.compile(r'^--?(targets|default-target)(=|$)')


class Proxy:
    """Runs the binary. args: extra arguments; env: extra environment variables.

    ca_file: path passed as -ca-file (default: the test CA; None: no -ca-file).
    listen_host: where it listens; listen='flag' adds -listen HOST:PORT, 'env' sets
    OPENAI_PROXY_LISTEN, 'none' adds nothing (then set `port` yourself).
    A route (-targets / -default-target, flag or env) is required unless
    allow_no_route=True, so that no test ever sends a request to api.openai.com.
    """

    def __init__(self, args=(), env=None, ca_file='default', listen_host='127.0.0.1', listen='flag',
                 port=None, allow_no_route=False):
        self.args = list(args)
        self.extra_env = dict(env or {})
        self.ca_file = certs().ca if ca_file == 'default' else ca_file
        self.host = listen_host
        self.listen = listen
        self.port = port
        self.proc = None
        self.stderr_path = None
        self.stdout_path = None
        self.returncode = None
        has_route = any(_ROUTE_FLAGS.match(a) for a in self.args) or \
            self.extra_env.get('OPENAI_PROXY_TARGETS') or self.extra_env.get('OPENAI_PROXY_DEFAULT_TARGET')
        if not has_route and not allow_no_route:
            raise AssertionError('test bug: the proxy needs -targets or -default-target on loopback')

    @property
    def addr(self):
        return fmt_addr(self.host, self.port)

    def argv(self):
        argv = [binary()]
        # Every test upstream is on loopback, which the open-relay rule refuses for
        # X-Target-Host by default; tests of that rule drop this flag.
        argv += ['-allow-private']
        if self.ca_file:
            argv += ['-ca-file', self.ca_file]
        if self.listen == 'flag':
            argv += ['-listen', self.addr]
        return argv + self.args

    def start(self):
        fixed_port = self.port is not None
        last_err = ''
        for _attempt in range(5):
            if not fixed_port:
                self.port = free_port(self.host)
            env = proxy_env(self.extra_env)
            if self.listen == 'env':
                env['OPENAI_PROXY_LISTEN'] = self.addr
            self.stderr_path = new_tmp_path('proxy.stderr')
            self.stdout_path = new_tmp_path('proxy.stdout')
            with open(self.stderr_path, 'wb') as err, open(self.stdout_path, 'wb') as out:
                self.proc = subprocess.Popen(self.argv(), env=env, stdin=subprocess.DEVNULL, stdout=out,
                                             stderr=err, close_fds=True)
            deadline = now() + PROXY_START_TIMEOUT
            while now() < deadline:
                rc = self.proc.poll()
                if rc is not None:
                    self.returncode = rc
                    last_err = self.stderr()
                    break
                try:
                    family = socket.AF_INET6 if ':' in self.host else socket.AF_INET
                    with socket.socket(family, socket.SOCK_STREAM) as probe:
                        probe.settimeout(0.5)
                        probe.connect((self.host, self.port))
                except OSError:
                    time.sleep(0.03)
                    continue
                # The first listening socket accepts before the others exist (one per
                # worker); the start line comes once all are set up, so a test that counts
                # descriptors from here sees the steady state (under qemu the gap is long).
                if self._started_line(deadline):
                    return self
            else:
                self.kill()
                raise AssertionError('proxy did not accept connections within %.0f s; stderr:\n%s'
                                     % (PROXY_START_TIMEOUT, self.stderr()))
            if fixed_port or 'in use' not in last_err.lower():
                break
        raise AssertionError('proxy exited with status %s at start (argv %s); stderr:\n%s'
                             % (self.returncode, self.argv(), last_err))

    def _started_line(self, deadline):
        while now() < deadline:
            if 'Starting proxy server on ' in self.stderr() + self.stdout():
                return True
            if self.proc.poll() is not None:
                return False
            time.sleep(0.03)
        self.kill()
        raise AssertionError('proxy accepted a connection but did not log its start line within %.0f s; '
                             'stderr:\n%s' % (PROXY_START_TIMEOUT, self.stderr()))

    def stderr(self):
        try:
            with open(self.stderr_path, 'rb') as f:
                return f.read().decode(errors='replace')
        except (OSError, TypeError):
            return ''

    def stdout(self):
        try:
            with open(self.stdout_path, 'rb') as f:
                return f.read().decode(errors='replace')
        except (OSError, TypeError):
            return ''

    @property
    def pid(self):
        """The proxy's own process: proc.pid, or under tests/windows/wine-run the Wine
        process that runs the .exe (the wrapper's one child)."""
        if not WINDOWS or self.proc is None:
            return self.proc.pid if self.proc else None
        try:
            with open('/proc/%d/task/%d/children' % (self.proc.pid, self.proc.pid)) as f:
                children = f.read().split()
            return int(children[0]) if children else self.proc.pid
        except (OSError, ValueError):
            return self.proc.pid

    def rss_kib(self):
        """Resident set size of the proxy in KiB (Linux /proc), or None."""
        try:
            with open('/proc/%d/status' % self.pid) as f:
                for line in f:
                    if line.startswith('VmRSS:'):
                        return int(line.split()[1])
        except (OSError, ValueError, AttributeError):
            pass
        return None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=PROXY_STOP_TIMEOUT):
        """Sends `sig` (by PID), waits up to `timeout`, then SIGKILL. Returns the exit status
        (negative: killed by that signal; None if it needed SIGKILL)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                self.returncode = None
                return None
        self.returncode = self.proc.returncode
        return self.returncode

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass

    def stop_and_check(self):
        was_alive = self.alive()
        rc = self.stop()
        if not was_alive:
            raise AssertionError('the proxy died during the test (status %s); stderr:\n%s'
                                 % (self.proc.returncode, self.stderr()[-4000:]))
        if rc != 0:
            raise AssertionError('the proxy did not exit 0 on SIGTERM within %.0f s (status %s); stderr:\n%s'
                                 % (PROXY_STOP_TIMEOUT, rc, self.stderr()[-4000:]))


def run_cli(args, env=None, timeout=10):
    """Runs the binary to completion (for -h, --version, bad flags). Returns
    (status, stdout, stderr, seconds)."""
    t0 = now()
    r = subprocess.run([binary()] + list(args), env=proxy_env(env), stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    return r.returncode, r.stdout.decode(errors='replace'), r.stderr.decode(errors='replace'), now() - t0


# --------------------------------------------------------------------------------------
# Raw HTTP/1.1 client
# --------------------------------------------------------------------------------------

class HttpResponse:
    def __init__(self):
        self.version = self.status = self.reason = None
        self.headers = []
        self.raw_head = b''
        self.body = b''
        self.framing = None       # 'length', 'chunked', 'close', 'none'
        self.complete = False     # the body ended as its framing says it must
        self.error = None         # why not complete
        self.trailers = []
        self.interim = []         # 1xx responses seen before this one: (status, headers)

    def header(self, name):
        return header_value(self.headers, name)

    def header_all(self, name):
        return header_values(self.headers, name)

    def json(self):
        return json.loads(self.body.decode('utf-8'))

    def __repr__(self):
        return '<HttpResponse %s %s framing=%s complete=%s body=%r>' % (
            self.status, self.reason, self.framing, self.complete, self.body[:300])


class RawClient:
    """A byte-exact HTTP/1.1 client on one TCP connection (optionally TLS)."""

    def __init__(self, port, host='127.0.0.1', timeout=DEFAULT_TIMEOUT, tls_context=None, server_hostname=None):
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls_context is not None:
            self.sock = tls_context.wrap_socket(self.sock, server_hostname=server_hostname)
        self.rd = _Reader(self.sock)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        self.sock.settimeout(self.timeout)
        self.sock.sendall(data)

    @staticmethod
    def build(method='GET', target='/', headers=(), body=None, version='HTTP/1.1', host=HOST,
              content_length=True):
        lines = ['%s %s %s' % (method, target, version)]
        names = {n.lower() for n, _ in headers}
        if host is not None and 'host' not in names:
            lines.append('Host: ' + host)
        lines += ['%s: %s' % (n, v) for n, v in headers]
        if body is not None and content_length and 'content-length' not in names \
                and 'transfer-encoding' not in names:
            lines.append('Content-Length: %d' % len(body))
        data = ('\r\n'.join(lines) + '\r\n\r\n').encode('latin-1')
        return data + (body or b'')

    def request(self, method='GET', target='/', headers=(), body=None, version='HTTP/1.1', host=HOST):
        self.send(self.build(method, target, headers, body, version, host))

    def read_head(self, deadline=None):
        """Reads one response head (a 1xx included). Returns HttpResponse without body."""
        deadline = deadline or now() + self.timeout
        try:
            raw = self.rd.read_until(b'\r\n\r\n', deadline, limit=256 * 1024)
        except PeerClosed:
            raise PeerClosed('connection closed before a complete response head (got %r)' % bytes(self.rd.buf[:300]))
        except socket.timeout:
            raise socket.timeout('no complete response head in time (got %r)' % bytes(self.rd.buf[:300]))
        start, headers = parse_head(raw)
        m = re.match(r'^(HTTP/\d\.\d) (\d{3})(?: (.*))?$', start)
        if not m:
            raise ValueError('bad status line %r' % start)
        r = HttpResponse()
        r.raw_head = raw
        r.version, r.status, r.reason = m.group(1), int(m.group(2)), m.group(3) or ''
        r.headers = headers
        return r

    def read_final_head(self, deadline=None):
        interim = []
        for _ in range(20):
            r = self.read_head(deadline)
            if 100 <= r.status < 200 and r.status != 101:
                interim.append((r.status, r.headers))
                continue
            r.interim = interim
            return r
        raise ValueError('too many 1xx responses')

    @staticmethod
    def framing_of(r, method):
        if method == 'HEAD' or r.status in (204, 304) or 100 <= r.status < 200:
            return 'none', None
        te = r.header_all('Transfer-Encoding')
        if te:
            if te[-1].split(',')[-1].strip().lower() == 'chunked':
                return 'chunked', None
            return 'close', None
        cl = r.header_all('Content-Length')
        if cl:
            return 'length', int(cl[0])
        return 'close', None

    def body_pieces(self, r, method='GET', deadline=None):
        """Yields (arrival time, bytes) of the decoded body as it arrives; sets r.complete /
        r.error at the end. Does not store the body in r."""
        deadline = deadline or now() + self.timeout
        framing, length = self.framing_of(r, method)
        r.framing = framing
        rd = self.rd
        try:
            if framing == 'none':
                r.complete = True
            elif framing == 'length':
                remaining = length
                while remaining > 0:
                    piece = rd.read_some(remaining, deadline)
                    remaining -= len(piece)
                    yield rd.last_recv_time, piece
                r.complete = True
            elif framing == 'close':
                while True:
                    if rd.buf:
                        piece = bytes(rd.buf)
                        rd.buf.clear()
                        yield rd.last_recv_time, piece
                    remaining = deadline - now()
                    if remaining <= 0:
                        raise socket.timeout('timed out')
                    if not rd.fill(remaining):
                        break
                r.complete = not rd.reset
                if rd.reset:
                    r.error = 'connection reset'
            else:
                while True:
                    line = rd.read_until(b'\r\n', deadline, limit=4096)
                    size_text = line[:-2].split(b';', 1)[0].strip()
                    if not re.match(rb'^[0-9A-Fa-f]+$', size_text):
                        r.error = 'bad chunk size line %r' % line
                        return
                    size = int(size_text, 16)
                    if size == 0:
                        while True:
                            t = rd.read_until(b'\r\n', deadline, limit=65536)
                            if t == b'\r\n':
                                break
                            r.trailers.append(t)
                        r.complete = True
                        return
                    remaining = size
                    while remaining:
                        piece = rd.read_some(remaining, deadline)
                        remaining -= len(piece)
                        yield rd.last_recv_time, piece
                    if rd.read_exact(2, deadline) != b'\r\n':
                        r.error = 'chunk data not followed by CRLF'
                        return
        except PeerClosed:
            r.error = 'connection closed before the end of the %s body' % framing
        except ValueError as e:
            r.error = str(e)

    def read_response(self, method='GET', timeout=None):
        """Reads one full response (1xx skipped into .interim). A body cut short gives
        complete=False and .error; timeouts raise socket.timeout."""
        deadline = now() + (timeout or self.timeout)
        r = self.read_final_head(deadline)
        body = bytearray()
        for _t, piece in self.body_pieces(r, method, deadline):
            body += piece
        r.body = bytes(body)
        return r

    def wait_closed(self, timeout=5.0):
        """Waits for EOF. Returns (closed, bytes received meanwhile)."""
        deadline = now() + timeout
        got = bytearray(self.rd.buf)
        self.rd.buf.clear()
        while now() < deadline:
            try:
                if not self.rd.fill(deadline - now()):
                    return True, bytes(got)
            except socket.timeout:
                break
            got += self.rd.buf
            self.rd.buf.clear()
        return False, bytes(got)

    def read_until_close(self, timeout=DEFAULT_TIMEOUT):
        closed, data = self.wait_closed(timeout)
        if not closed:
            raise socket.timeout('connection not closed within %.1f s' % timeout)
        return data


def request_once(port, method='GET', target='/', headers=(), body=None, host=HOST, version='HTTP/1.1',
                 timeout=DEFAULT_TIMEOUT, addr='127.0.0.1'):
    """One request on a new connection; returns the HttpResponse."""
    with RawClient(port, host=addr, timeout=timeout) as c:
        c.request(method, target, headers, body, version, host)
        return c.read_response(method)


# --------------------------------------------------------------------------------------
# unittest glue
# --------------------------------------------------------------------------------------

class ProxyTestCase(unittest.TestCase):
    """Helpers that register their own cleanup."""

    maxDiff = 4000

    def start_upstream(self, handler=None, **kw):
        up = Upstream(handler, **kw)
        self.addCleanup(self._close_upstream, up)
        return up

    def _close_upstream(self, up):
        up.close()
        if up.errors:
            raise AssertionError('upstream test server errors:\n' + '\n'.join(up.errors))

    def start_connect_proxy(self, **kw):
        p = ConnectProxy(**kw)
        self.addCleanup(p.close)
        return p

    def start_proxy(self, args=(), **kw):
        p = Proxy(args, **kw)
        p.start()
        self.addCleanup(p.stop_and_check)
        return p

    def targets(self, *pairs):
        """['-targets', 'k1:url1,k2:url2'] from (key, upstream-or-spec) pairs."""
        parts = []
        for key, t in pairs:
            parts.append('%s:%s' % (key, t.url if isinstance(t, Upstream) else t))
        return ['-targets', ','.join(parts)]

    def client(self, proxy, timeout=DEFAULT_TIMEOUT):
        c = RawClient(proxy.port, host=proxy.host, timeout=timeout)
        self.addCleanup(c.close)
        return c

    def get(self, proxy, target='/v1/models', headers=(), host=HOST, method='GET', body=None, **kw):
        return request_once(proxy.port, method, target, headers, body, host=host, addr=proxy.host, **kw)

    def assertJsonError(self, resp, status=None, status_range=None):
        if status is not None:
            self.assertEqual(resp.status, status, resp)
        if status_range is not None:
            self.assertTrue(status_range[0] <= resp.status <= status_range[1], resp)
        self.assertTrue(resp.complete, resp)
        ctype = resp.header('Content-Type') or ''
        self.assertIn('application/json', ctype.lower(), resp)
        try:
            doc = json.loads(resp.body.decode('utf-8'))
        except ValueError:
            self.fail('error body is not JSON: %r' % resp.body)
        self.assertIsInstance(doc, dict, resp)
        err = doc.get('error')
        self.assertIsInstance(err, dict, 'no "error" object: %r' % doc)
        self.assertIsInstance(err.get('message'), str, doc)
        self.assertTrue(err['message'], doc)
        self.assertIsInstance(err.get('type'), str, doc)
        self.assertTrue(err['type'], doc)
        self.assertIn('code', err, doc)
        self.assertDateNow(resp)
        return err

    def assertDateNow(self, resp, slack=120):
        """A Date field (RFC 9110 6.6.1) in IMF-fixdate form, within `slack` seconds of now."""
        value = resp.header('Date')
        self.assertIsNotNone(value, 'no Date field: %r' % resp)
        self.assertRegex(value, r'^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)'
                                r' \d{4} \d\d:\d\d:\d\d GMT$')
        when = email.utils.parsedate_to_datetime(value).timestamp()
        self.assertLess(abs(when - time.time()), slack, value)


def main():
    """Entry point of each test file: exit 0 pass, 1 fail, 77 everything skipped."""
    b = binary()
    if not b:
        print('SKIP: OP_BINARY is not set (path of the built openai-proxy)')
        sys.exit(77)
    if not (os.path.isfile(b) and os.access(b, os.X_OK)):
        print('FAIL: OP_BINARY=%s is not an executable file' % b)
        sys.exit(1)
    if shutil.which('openssl') is None:
        print('SKIP: the openssl command is not installed (needed to make test certificates)')
        sys.exit(77)
    prog = unittest.main(module='__main__', exit=False, verbosity=2)
    r = prog.result
    name = os.path.basename(sys.argv[0])
    print('\n%s: ran %d, failures %d, errors %d, skipped %d' % (
        name, r.testsRun, len(r.failures), len(r.errors), len(r.skipped)))
    for test, reason in r.skipped:
        print('  skipped %s: %s' % (test.id(), reason))
    if not r.wasSuccessful():
        print('%s: FAILED' % name)
        sys.exit(1)
    if r.testsRun and len(r.skipped) == r.testsRun:
        print('%s: SKIPPED' % name)
        sys.exit(77)
    print('%s: OK' % name)
    sys.exit(0)
