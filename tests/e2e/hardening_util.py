"""Helpers for the hardening tests (issue 3) that the shared harness does not have.

  StrictProxy     Proxy that never gets -allow-private unless the test asks for it
  RawServer       bare TCP (or TLS) listener on loopback; a handler gets each socket
  Canary          a listener that only counts the connections it receives
  send_raw()      one connection, raw bytes out, one answer (or none) back, then EOF?
  proc_fds(), proc_rss_kb(), proc_cpu_seconds()   /proc figures of a process
  is_sanitized()  whether a binary is built with AddressSanitizer

Loopback only; every wait is bounded.
"""
import os
import socket
import ssl
import struct
import threading
import time
import unittest

from harness import DEFAULT_TIMEOUT, PeerClosed, Proxy, RawClient, certs, now, stop_listening, wait_until

ALLOW_PRIVATE = '-allow-private'


class StrictProxy(Proxy):
    """The proxy exactly as configured by the test: a harness default of -allow-private
    (every test upstream is on loopback) is removed, unless the test passed it itself."""

    def argv(self):
        argv = list(super().argv())
        wanted = sum(1 for a in self.args if a == ALLOW_PRIVATE or a.startswith(ALLOW_PRIVATE + '='))
        have = [i for i, a in enumerate(argv) if a == ALLOW_PRIVATE or a.startswith(ALLOW_PRIVATE + '=')]
        surplus = len(have) - wanted
        for i in reversed(have[:surplus]):
            del argv[i]
        return argv


class RawServer:
    """A listener on loopback that hands each accepted socket to handler(sock, index) in a
    thread of its own, then closes it. tls=True wraps the socket (server side) first.
    accepted: number of connections accepted so far."""

    def __init__(self, handler, host='127.0.0.1', tls=False, backlog=128):
        self.handler = handler
        self.host = host
        self.tls = tls
        self.accepted = 0
        self.errors = []
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._socks = set()
        self.ctx = None
        if tls:
            c = certs()
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*c.server)
            self.ctx = ctx
        family = socket.AF_INET6 if ':' in host else socket.AF_INET
        self.lsock = socket.socket(family, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((host, 0))
        self.lsock.listen(backlog)
        self.lsock.settimeout(0.2)
        self.port = self.lsock.getsockname()[1]
        self._thread = threading.Thread(target=self._accept_loop, daemon=True, name='raw-server')
        self._thread.start()

    @property
    def authority(self):
        return ('[%s]:%d' if ':' in self.host else '%s:%d') % (self.host, self.port)

    def _accept_loop(self):
        index = 0
        while not self._stop.is_set():
            try:
                s, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.accepted += 1
                self._socks.add(s)
            threading.Thread(target=self._serve, args=(s, index), daemon=True).start()
            index += 1

    def _serve(self, s, index):
        raw = s
        try:
            s.settimeout(DEFAULT_TIMEOUT)
            if self.tls:
                try:
                    s = self.ctx.wrap_socket(s, server_side=True)
                except (ssl.SSLError, OSError):
                    return
            self.handler(s, index)
        except (OSError, ssl.SSLError, PeerClosed):
            pass
        except Exception as e:  # a test bug: make it visible
            with self.lock:
                self.errors.append(repr(e))
        finally:
            try:
                s.close()
            except OSError:
                pass
            with self.lock:
                self._socks.discard(raw)

    def close(self):
        self._stop.set()
        with self.lock:
            socks = list(self._socks)
        stop_listening(self.lsock, socks, [self._thread])


class Canary(RawServer):
    """Counts connections and closes them at once. Nothing should ever reach it."""

    def __init__(self, host='127.0.0.1'):
        super().__init__(lambda s, i: None, host=host)


class ScriptedConn:
    def __init__(self, index):
        self.index = index
        self.closed_at = None
        self.closed_by_peer = False   # the proxy closed it (EOF or reset seen)
        self.targets = []


class ScriptedUpstream(RawServer):
    """An HTTP/1.1 upstream (TLS or plain) that answers each request with exactly the
    bytes script(target) returns: bytes, or a list of (delay seconds, bytes) steps. The
    connection stays open for further requests afterwards unless the script returns
    None (then it is closed). Requests with a Content-Length body are read whole.

    requests: (ScriptedConn, target) in arrival order; conns: every ScriptedConn."""

    def __init__(self, script, tls=True, host='127.0.0.1'):
        self.script = script
        self.requests = []
        self.conns = []
        super().__init__(self._serve_conn, host=host, tls=tls)

    @property
    def url(self):
        return ('https://' if self.tls else 'http://') + self.authority

    def _serve_conn(self, s, index):
        conn = ScriptedConn(index)
        with self.lock:
            self.conns.append(conn)
        buf = bytearray()
        try:
            while True:
                while b'\r\n\r\n' not in buf:
                    s.settimeout(60)
                    try:
                        data = s.recv(65536)
                    except (OSError, ssl.SSLError):
                        data = b''
                    if not data:
                        conn.closed_by_peer = True
                        return
                    buf += data
                end = buf.index(b'\r\n\r\n') + 4
                head = bytes(buf[:end]).decode('latin-1')
                del buf[:end]
                length = 0
                for line in head.split('\r\n')[1:]:
                    if line.lower().startswith('content-length:'):
                        length = int(line.split(':', 1)[1].strip())
                while len(buf) < length:
                    data = s.recv(65536)
                    if not data:
                        conn.closed_by_peer = True
                        return
                    buf += data
                del buf[:length]
                target = head.split(' ', 2)[1]
                conn.targets.append(target)
                with self.lock:
                    self.requests.append((conn, target))
                answer = self.script(target)
                if answer is None:
                    return
                steps = [(0, answer)] if isinstance(answer, bytes) else answer
                for delay, data in steps:
                    if delay:
                        time.sleep(delay)
                    s.sendall(data)
        finally:
            conn.closed_at = time.monotonic()


def read_request_head(sock, timeout=DEFAULT_TIMEOUT, limit=65536):
    """Reads up to the end of a request head on a plain socket. Returns the bytes (maybe
    incomplete if the peer closed)."""
    deadline = now() + timeout
    buf = bytearray()
    while b'\r\n\r\n' not in buf and len(buf) < limit:
        remaining = deadline - now()
        if remaining <= 0:
            break
        sock.settimeout(remaining)
        try:
            data = sock.recv(65536)
        except socket.timeout:
            break
        if not data:
            break
        buf += data
    return bytes(buf)


def reset_close(sock):
    """Closes with a TCP reset."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
    except OSError:
        pass
    sock.close()


def send_raw(port, data, host='127.0.0.1', timeout=DEFAULT_TIMEOUT, close_wait=5.0):
    """Opens a connection, sends `data`, reads one response (None if the connection ended
    without a complete one), then waits for EOF. Returns (response, closed, extra bytes
    received after the response)."""
    with RawClient(port, host=host, timeout=timeout) as c:
        try:
            c.send(data)
        except OSError:
            pass  # the proxy may close before reading everything; the answer may still be there
        try:
            r = c.read_response()
        except (PeerClosed, ValueError, socket.timeout):
            return None, True, bytes(c.rd.buf)
        closed, extra = c.wait_closed(close_wait)
        return r, closed, extra


# ---- /proc --------------------------------------------------------------------------

# For a test whose check is a /proc figure (descriptors, memory, CPU time, TCP queues):
# Linux only. Elsewhere (macOS, the BSDs) the test is skipped, never passed blind.
needs_linux_proc = unittest.skipUnless(os.path.isdir('/proc/self/fd') and os.path.exists('/proc/net/tcp'),
                                       "reads Linux's /proc")

def proc_fds(pid):
    """Open descriptors of the process. For the Windows build under Wine (OP_WINE_EXE set:
    tests/windows/wine-run), pipes are left out: Wine gives each thread its own pipes to
    wineserver, so the proxy's resolver threads, started by the first lookup, would count
    as leaks. A socket handle in use holds its Unix descriptor in Wine's per-process cache
    until it is closed, so a leaked socket still counts."""
    try:
        fds = os.listdir('/proc/%d/fd' % pid)
        if not os.environ.get('OP_WINE_EXE'):
            return len(fds)
        n = 0
        for fd in fds:
            try:
                if not os.readlink('/proc/%d/fd/%s' % (pid, fd)).startswith('pipe:'):
                    n += 1
            except OSError:
                pass
        return n
    except OSError:
        return -1


def proc_rss_kb(pid):
    try:
        with open('/proc/%d/status' % pid) as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


_CLK_TCK = os.sysconf('SC_CLK_TCK') if hasattr(os, 'sysconf') else 100


def proc_cpu_seconds(pid):
    """utime + stime of the process (all threads), in seconds."""
    with open('/proc/%d/stat' % pid) as f:
        stat = f.read()
    fields = stat[stat.rindex(')') + 2:].split()
    # fields[0] is field 3 (state); utime is field 14, stime field 15.
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def cpu_share(pid, seconds=1.0):
    """Fraction of one core the process used over `seconds`."""
    c0, t0 = proc_cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    c1, t1 = proc_cpu_seconds(pid), time.monotonic()
    return (c1 - c0) / (t1 - t0)


_sanitized = {}


def is_sanitized(path):
    """True if the binary carries AddressSanitizer's runtime (its RSS then includes the
    quarantine of freed memory, which tests must account for)."""
    if path not in _sanitized:
        found = False
        try:
            with open(path, 'rb') as f:
                tail = b''
                while True:
                    block = f.read(1 << 20)
                    if not block:
                        break
                    if b'__asan_init' in tail + block:
                        found = True
                        break
                    tail = block[-16:]
        except OSError:
            pass
        _sanitized[path] = found
    return _sanitized[path]


def asan_env(binary_path, extra_options=''):
    """Environment for a sanitized proxy whose RSS is measured: no quarantine of freed
    memory (it would look like a leak), everything else as the caller's ASAN_OPTIONS."""
    if not is_sanitized(binary_path):
        return {}
    opts = os.environ.get('ASAN_OPTIONS', '')
    add = 'quarantine_size_mb=0:thread_local_quarantine_size_kb=0'
    if extra_options:
        add += ':' + extra_options
    return {'ASAN_OPTIONS': (opts + ':' + add) if opts else add}


__all__ = ['StrictProxy', 'RawServer', 'Canary', 'ScriptedUpstream', 'read_request_head', 'reset_close', 'send_raw',
           'proc_fds', 'proc_rss_kb', 'proc_cpu_seconds', 'cpu_share', 'needs_linux_proc', 'is_sanitized', 'asan_env',
           'wait_until']
