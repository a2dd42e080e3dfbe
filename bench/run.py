#!/usr/bin/env python3
"""Benchmark openai-proxy beside nginx (1 worker) and HAProxy (1 thread), on loopback.

One run: makes a test CA and server certificate (openssl CLI), starts a TLS upstream
(nginx answering POST /v1/chat/completions with a fixed chat.completion JSON, and an SSE
server, bench/sse_tool.c, that stamps every event with its send time), starts each proxy as
a reverse proxy to it with upstream TLS verified and a large upstream keep-alive pool, runs
the workloads and prints a Markdown table (also written to --out).

Python 3 standard library; needs nginx, haproxy, wrk and openssl on PATH, and cc with the
OpenSSL headers to build bench/sse_tool.c (Debian: scripts/deps.sh --bench). See
bench/README.md.
"""

import argparse
import errno
import http.client
import json
import os
import platform
import re
import resource
import selectors
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024

# ~300 bytes of JSON in, ~600 bytes of JSON out: a small chat completion.
SMALL_BODY = (
    '{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a helpful '
    'assistant."},{"role":"user","content":"Write one short sentence about the sea. Keep it '
    'simple and friendly, no lists."}],"temperature":0.7,"max_tokens":64,"stream":false,'
    '"user":"bench-user-0001"}'
)
SMALL_BODY = SMALL_BODY[:-1] + "," + '"metadata":{"run":"' + "x" * max(0, 300 - len(SMALL_BODY) - 20) + '"}}'
COMPLETION = (
    '{"id":"chatcmpl-9bench0000000000000000000000","object":"chat.completion",'
    '"created":1718000000,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,'
    '"message":{"role":"assistant","content":"The sea hums a quiet song as waves roll in '
    'and out, carrying the smell of salt and the light of the morning sun across the shore '
    'for anyone who stops to listen.","refusal":null},"logprobs":null,"finish_reason":'
    '"stop"}],"usage":{"prompt_tokens":38,"completion_tokens":34,"total_tokens":72,'
    '"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":'
    '{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,'
    '"rejected_prediction_tokens":0}},"system_fingerprint":"fp_bench00000"}'
)
AUTH = "Bearer sk-bench-0000000000000000000000000000000000000000000000000000"

PROXY_LABELS = {
    "op1": "openai-proxy, 1 worker",
    "op1-base": "openai-proxy, 1 worker, base build (--base-binary)",
    "op1-pool20": "openai-proxy, 1 worker, the original's pool caps (100/20)",
    "opN": "openai-proxy, default workers",
    "nginx": "nginx, 1 worker",
    "haproxy": "HAProxy, 1 thread",
    "direct": "direct (no proxy, ceiling)",
}


# --------------------------------------------------------------------------------------
# Processes: every one started is recorded and stopped by PID
# --------------------------------------------------------------------------------------

def proc_starttime(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
        return int(s[s.rindex(")") + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def proc_children(pid):
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    out += [int(x) for x in f.read().split()]
            except OSError:
                pass
    except OSError:
        pass
    return out


class Procs:
    """Every process the benchmark starts, as (pid, start time) so a reused PID is never hit."""

    def __init__(self):
        self.items = []  # dicts: name, popen, extra [(pid, starttime)]

    def spawn(self, name, argv, log_path, **kw):
        logf = open(log_path, "ab")
        try:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                 start_new_session=True, **kw)
            # Popen returns once the child has exec'd (its error pipe closed on exec).
            t_exec = time.perf_counter()
        finally:
            logf.close()
        item = {"name": name, "popen": p, "extra": [], "log": log_path, "t_exec": t_exec}
        self.items.append(item)
        return item

    def adopt_children(self, item):
        """Record the children (nginx workers) so they are stopped even if the master is not."""
        for c in proc_children(item["popen"].pid):
            st = proc_starttime(c)
            if st is not None and (c, st) not in item["extra"]:
                item["extra"].append((c, st))

    def stop(self, item, grace=5.0):
        p = item["popen"]
        if p.poll() is None:
            try:
                os.kill(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                try:
                    os.kill(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
        for pid, st in item["extra"]:
            deadline = time.time() + 2
            while proc_starttime(pid) == st and time.time() < deadline:
                time.sleep(0.02)
            if proc_starttime(pid) == st:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if item in self.items:
            self.items.remove(item)

    def stop_all(self):
        for item in list(reversed(self.items)):
            try:
                self.stop(item, grace=3.0)
            except Exception as e:  # keep stopping the others
                print(f"warning: stopping {item['name']}: {e}", file=sys.stderr)


PROCS = Procs()


def die(msg):
    raise SystemExit(f"bench: {msg}")


# --------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------

_used_ports = set()


def free_port():
    for _ in range(100):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port not in _used_ports:
            _used_ports.add(port)
            return port
    die("no free port")


def wait_listening(port, timeout=10.0, proc=None, poll_s=0.005):
    """Poll-connect until the port accepts; returns perf_counter() at success, or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return None
        s = socket.socket()
        try:
            s.connect(("127.0.0.1", port))
            return time.perf_counter()
        except OSError:
            time.sleep(poll_s)
        finally:
            s.close()
    return None


def cpu_ticks(pids, kernel_only=False):
    """User + system CPU ticks of pids so far (system alone with kernel_only)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                s = f.read()
            fields = s[s.rindex(")") + 2:].split()
            total += int(fields[12]) + (0 if kernel_only else int(fields[11]))
        except (OSError, ValueError):
            pass
    return total


def cpu_ns(pids):
    """CPU time of pids' threads so far, in ns (schedstat: exact, where /proc/PID/stat counts
    10 ms ticks, too coarse for an SSE run's few hundred ms)."""
    total = 0
    for pid in pids:
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                pass
    return total


def machine_ticks():
    """(idle, total) CPU ticks of the whole machine so far, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return v[3] + v[4], sum(v[:8])  # idle + iowait; user..steal


def status_kb(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def median_range(values, fmt="{:.0f}"):
    vals = [v for v in values if v is not None]
    if not vals:
        return "—"
    m = statistics.median(vals)
    if len(vals) == 1:
        return fmt.format(m)
    return f"{fmt.format(m)} ({fmt.format(min(vals))}–{fmt.format(max(vals))})"


def med(values):
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def ratio(a, b, fmt="{:.2f}×"):
    if a is None or b is None or b == 0:
        return "—"
    return fmt.format(a / b)


def percentile(sorted_vals, p):
    if not sorted_vals:
        return None
    k = (len(sorted_vals) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(sorted_vals) - 1)
    return sorted_vals[lo] + (sorted_vals[hi] - sorted_vals[lo]) * (k - lo)


def sh(argv, **kw):
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=60, **kw)


def first_line(argv):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return (r.stdout + r.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "?"


# --------------------------------------------------------------------------------------
# Certificates, configuration files
# --------------------------------------------------------------------------------------

def make_certs(d):
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    sh(["openssl", "req", "-x509", *ec, "-keyout", f"{d}/ca.key", "-out", f"{d}/ca.pem",
        "-days", "2", "-subj", "/CN=openai-proxy bench CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    sh(["openssl", "req", *ec, "-keyout", f"{d}/server.key", "-out", f"{d}/server.csr",
        "-subj", "/CN=localhost"])
    with open(f"{d}/server.ext", "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n")
    sh(["openssl", "x509", "-req", "-in", f"{d}/server.csr", "-CA", f"{d}/ca.pem",
        "-CAkey", f"{d}/ca.key", "-CAcreateserial", "-out", f"{d}/server.pem", "-days", "2",
        "-extfile", f"{d}/server.ext"])
    # The chain a CDN-fronted API host sends: the leaf and its issuer (--upstream-chain).
    with open(f"{d}/server-chain.pem", "w") as out:
        for name in ("server.pem", "ca.pem"):
            with open(f"{d}/{name}") as f:
                out.write(f.read())
    for name in ("ca.pem", "server.pem", "server-chain.pem", "server.key"):
        os.chmod(f"{d}/{name}", 0o644)  # nginx workers may run as another user


def fd_limit():
    return resource.getrlimit(resource.RLIMIT_NOFILE)[1]


MAX_HOLD = 0  # the largest held-stream count of this run (set in main)


def conn_slots():
    """Connection slots for nginx (worker_connections) and HAProxy (2 x maxconn): what the
    held streams need, at least 20,000, at most the descriptor limit. Not simply the limit:
    both size tables by it, and nginx touches every slot at start, so a raised limit
    (65,536) would inflate its idle RSS."""
    return min(fd_limit(), max(20000, 2 * MAX_HOLD + 4096))


def nginx_common(prefix):
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        os.makedirs(f"{prefix}/tmp/{sub}", exist_ok=True)
    return (f"pid {prefix}/nginx.pid;\nerror_log {prefix}/error.log warn;\n"
            f"worker_processes 1;\nworker_rlimit_nofile {fd_limit()};\n"
            f"events {{ worker_connections {conn_slots()}; }}\n")


def nginx_temp_paths(prefix):
    return "".join(f"    {k}_temp_path {prefix}/tmp/{v};\n" for k, v in
                   (("client_body", "body"), ("proxy", "proxy"), ("fastcgi", "fastcgi"),
                    ("uwsgi", "uwsgi"), ("scgi", "scgi")))


DOWNLOAD_PATH = "/v1/files/file-bench/content"


def upstream_nginx_conf(prefix, port, status_port, certdir, download_bytes):
    body = COMPLETION.replace("\\", "\\\\").replace("'", "\\'")
    os.makedirs(f"{prefix}/www/v1", exist_ok=True)
    for name in ("v1/responses", "completion.json"):
        with open(f"{prefix}/www/{name}", "w") as f:
            f.write(COMPLETION)
    # The download: a file's content (JSON lines, as a batch output file), answered with
    # Content-Length to a small GET.
    os.makedirs(f"{prefix}/www/v1/files/file-bench", exist_ok=True)
    line = '{"id":"batch_req_0","custom_id":"r","response":{"status_code":200,"body":{"text":"' + "b" * 900 + '"}}}\n'
    with open(f"{prefix}/www{DOWNLOAD_PATH}", "w") as f:
        f.write((line * (download_bytes // len(line) + 1))[:download_bytes])
    return nginx_common(prefix) + f"""http {{
    access_log off;
{nginx_temp_paths(prefix)}    keepalive_timeout 300s;
    keepalive_requests 100000000;
    server {{
        listen 127.0.0.1:{port} ssl backlog=8192;
        ssl_certificate {certdir}/server.pem;
        ssl_certificate_key {certdir}/server.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:up:10m;
        client_max_body_size 2m;
        client_body_buffer_size 2m;
        location = /v1/chat/completions {{
            default_type application/json;
            return 200 '{body}';
        }}
        # Large bodies: answer only once the whole body is read, as a real API does.
        # `return` runs before the body is read; here the mirror module reads it first
        # (precontent phase), then the static module refuses the POST (405) and error_page
        # turns that into a GET of the same fixed JSON, answered 200.
        location = /v1/responses {{
            mirror /_read_body;
            root {prefix}/www;
            error_page 405 =200 /completion.json;
        }}
        location = /completion.json {{
            internal;
            root {prefix}/www;
            default_type application/json;
            etag off;
        }}
        location = /_read_body {{ internal; return 204; }}
        location = {DOWNLOAD_PATH} {{
            root {prefix}/www;
            default_type application/octet-stream;
            etag off;
        }}
        location / {{ return 404; }}
    }}
    server {{
        listen 127.0.0.1:{status_port};
        location = /status {{ stub_status; }}
    }}
}}
"""


def proxy_nginx_conf(prefix, port, up_port, certdir):
    return nginx_common(prefix) + f"""http {{
    access_log off;
{nginx_temp_paths(prefix)}    keepalive_timeout 300s;
    keepalive_requests 100000000;
    upstream up {{
        server 127.0.0.1:{up_port};
        keepalive 1024;
        keepalive_requests 100000000;
        keepalive_timeout 300s;
    }}
    server {{
        listen 127.0.0.1:{port} backlog=8192;
        client_max_body_size 2m;
        location / {{
            proxy_pass https://up;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host localhost;
            proxy_ssl_verify on;
            proxy_ssl_verify_depth 2;
            proxy_ssl_trusted_certificate {certdir}/ca.pem;
            proxy_ssl_name localhost;
            proxy_ssl_server_name on;
            proxy_ssl_session_reuse on;
            proxy_buffering off;
            proxy_request_buffering off;
            proxy_read_timeout 600s;
            proxy_send_timeout 600s;
        }}
    }}
}}
"""


def haproxy_conf(port, up_port, certdir):
    # HAProxy refuses to start unless it gets 2 descriptors per maxconn plus a few.
    maxconn = min(60000, (conn_slots() - 100) // 2)
    return f"""global
    nbthread 1
    maxconn {maxconn}
    ssl-server-verify required
defaults
    mode http
    maxconn {maxconn}
    timeout connect 10s
    timeout client 600s
    timeout server 600s
    timeout http-request 30s
    timeout http-keep-alive 300s
    option http-no-delay
frontend fe
    bind 127.0.0.1:{port} backlog 8192
    default_backend be
backend be
    http-reuse always
    server up 127.0.0.1:{up_port} ssl verify required ca-file {certdir}/ca.pem sni str(localhost) verifyhost localhost pool-purge-delay 300s
"""


# --------------------------------------------------------------------------------------
# The services under test
# --------------------------------------------------------------------------------------

class Service:
    """A proxy (or the upstream itself, for "direct") reachable on 127.0.0.1:port."""

    def __init__(self, kind, port, item=None, tls=False):
        self.kind = kind
        self.port = port
        self.item = item
        self.tls = tls

    def pids(self):
        if self.item is None:
            return []
        PROCS.adopt_children(self.item)
        return [self.item["popen"].pid] + [p for p, _ in self.item["extra"]]

    def serving_pid(self):
        """The process holding the connections: the nginx worker, else the process itself."""
        if self.item is None:
            return None
        if self.kind == "nginx":
            PROCS.adopt_children(self.item)
            return self.item["extra"][0][0] if self.item["extra"] else None
        return self.item["popen"].pid

    def stop(self):
        if self.item is not None:
            PROCS.stop(self.item)
            self.item = None


class Bench:
    def __init__(self, args, tmp):
        self.a = args
        self.tmp = tmp
        self.certdir = f"{tmp}/certs"
        os.makedirs(self.certdir)
        make_certs(self.certdir)
        self.client_ctx = ssl.create_default_context(cafile=f"{self.certdir}/ca.pem")
        self.n = 0

    def _dir(self, name):
        self.n += 1
        d = f"{self.tmp}/{self.n:02d}-{name}"
        os.makedirs(d)
        os.chmod(d, 0o755)
        return d

    # upstreams ----------------------------------------------------------------------
    def start_upstream_nginx(self):
        d = self._dir("upstream-nginx")
        port, status = free_port(), free_port()
        with open(f"{d}/nginx.conf", "w") as f:
            f.write(upstream_nginx_conf(d, port, status, self.certdir, int(self.a.body_mib * 2**20)))
        item = PROCS.spawn("upstream nginx", ["nginx", "-p", d, "-e", f"{d}/error.log", "-c",
                                              f"{d}/nginx.conf", "-g", "daemon off;"],
                           f"{d}/stdout.log")
        if not wait_listening(port, proc=item["popen"]) or not wait_listening(status):
            die(f"upstream nginx did not start; see {d}/error.log")
        self.up_port, self.up_status = port, status
        self.upstream = Service("upstream", port, item, tls=True)
        return self.upstream

    def upstream_accepts(self):
        c = http.client.HTTPConnection("127.0.0.1", self.up_status, timeout=10)
        try:
            c.request("GET", "/status")
            text = c.getresponse().read().decode()
        finally:
            c.close()
        m = re.search(r"accepts handled requests\s+(\d+)", text)
        return int(m.group(1)) if m else 0

    def sse_tool(self):
        """bench/sse_tool.c (SSE upstream server and latency client), compiled once per run."""
        exe = f"{self.tmp}/sse_tool"
        if not os.path.exists(exe):
            cc = os.environ.get("CC", "cc")
            r = subprocess.run([cc, "-O2", "-o", exe, f"{HERE}/sse_tool.c", "-lssl", "-lcrypto"],
                               capture_output=True, text=True, timeout=120)
            if r.returncode != 0:
                die(f"could not build bench/sse_tool.c ({cc}; Debian: build-essential libssl-dev):\n"
                    f"{r.stderr[-2000:]}")
        return exe

    def start_sse_server(self):
        d = self._dir("sse-server")
        port = free_port()
        cert = "server-chain.pem" if self.a.upstream_chain else "server.pem"
        argv = [self.sse_tool(), "server", "--port", str(port), "--cert", f"{self.certdir}/{cert}",
                "--key", f"{self.certdir}/server.key", "--tickets", str(self.a.upstream_tickets)]
        if self.a.upstream_alpn:
            argv.append("--alpn")
        item = PROCS.spawn("sse server", argv, f"{d}/log")
        if not wait_listening(port, proc=item["popen"]):
            die(f"SSE server did not start; see {d}/log")
        self.sse_port = port
        self.sse = Service("sse-upstream", port, item, tls=True)
        self.control = None
        return self.sse

    def sse_control_later(self, path, timeout=15):
        """Send a control request now and return a function that reads its answer: the abort
        rows ask for the close time before they close, so that the client is already
        waiting (off the CPU) when the proxy and the upstream have to react."""
        if self.control is None:
            self.control = http.client.HTTPSConnection("127.0.0.1", self.sse_port, timeout=timeout,
                                                       context=self.client_ctx)
        self.control.request("GET", path)
        conn = self.control

        def answer():
            try:
                return json.loads(conn.getresponse().read())
            except (OSError, http.client.HTTPException):
                conn.close()
                self.control = None
                raise
        return answer

    def sse_control(self, path, timeout=15):
        for attempt in range(2):
            if self.control is None:
                self.control = http.client.HTTPSConnection("127.0.0.1", self.sse_port, timeout=timeout,
                                                           context=self.client_ctx)
            try:
                self.control.request("GET", path)
                return json.loads(self.control.getresponse().read())
            except (OSError, http.client.HTTPException):
                self.control.close()
                self.control = None
                if attempt:
                    raise

    # proxies ------------------------------------------------------------------------
    def start(self, kind, up_port, tight=False, binary=None):
        """Start one proxy to https://127.0.0.1:up_port; "direct" is the upstream itself."""
        if kind == "direct":
            return Service("direct", up_port, None, tls=True)
        d = self._dir(kind)
        port = free_port()
        ca = f"{self.certdir}/ca.pem"
        if kind.startswith("op"):
            if kind == "op1-base":
                binary = self.a.base_binary
            elif kind in self.a.extra:
                binary = self.a.extra[kind]
            argv = [binary or self.a.binary, f"-listen=127.0.0.1:{port}",
                    f"-default-target=https://127.0.0.1:{up_port}", f"-ca-file={ca}",
                    "-workers=" + ("0" if kind == "opN" else "1"), "-shutdown-grace=1s",
                    "-max-connections=60000"]
            if kind == "op1-pool20":  # what the original's caps cost (20 idle per host)
                argv += ["-pool-max-idle=100", "-pool-max-idle-per-host=20"]
            else:
                argv += ["-pool-max-idle=1024", "-pool-max-idle-per-host=1024"]
            item = PROCS.spawn(kind, argv, f"{d}/log")
        elif kind == "nginx":
            with open(f"{d}/nginx.conf", "w") as f:
                f.write(proxy_nginx_conf(d, port, up_port, self.certdir))
            item = PROCS.spawn(kind, ["nginx", "-p", d, "-e", f"{d}/error.log", "-c",
                                      f"{d}/nginx.conf", "-g", "daemon off;"], f"{d}/log")
        elif kind == "haproxy":
            with open(f"{d}/haproxy.cfg", "w") as f:
                f.write(haproxy_conf(port, up_port, self.certdir))
            item = PROCS.spawn(kind, ["haproxy", "-db", "-f", f"{d}/haproxy.cfg"], f"{d}/log")
        else:
            die(f"unknown proxy {kind}")
        t_listening = wait_listening(port, proc=item["popen"], poll_s=0.0002 if tight else 0.005)
        if t_listening is None:
            PROCS.stop(item)
            die(f"{kind} did not start; see {d}")
        svc = Service(kind, port, item)
        svc.start_ms = (t_listening - item["t_exec"]) * 1000.0
        deadline = time.monotonic() + 5
        while kind == "nginx" and svc.serving_pid() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        return svc

    def check_post(self, svc):
        """One POST through svc: the proxy works and verifies the upstream certificate."""
        if svc.tls:
            c = http.client.HTTPSConnection("127.0.0.1", svc.port, timeout=10,
                                            context=self.client_ctx)
        else:
            c = http.client.HTTPConnection("127.0.0.1", svc.port, timeout=10)
        try:
            c.request("POST", "/v1/chat/completions", body=SMALL_BODY,
                      headers={"Content-Type": "application/json", "Authorization": AUTH})
            r = c.getresponse()
            body = r.read()
            if r.status != 200 or b"chat.completion" not in body:
                die(f"{svc.kind}: POST answered {r.status}: {body[:300]!r}")
        finally:
            c.close()


# --------------------------------------------------------------------------------------
# wrk workloads
# --------------------------------------------------------------------------------------

WRK_LUA = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "%s"
local f = assert(io.open("%s", "rb"))
wrk.body = f:read("*a")
f:close()
"""
WRK_LUA_GET = """wrk.method = "GET"
wrk.headers["Authorization"] = "%s"
"""
WRK_LUA_DONE = """done = function(summary, latency, requests)
  io.write(string.format("BENCH %d %d %d %d %d %d %d %d %d %d\\n",
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(99),
    summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout))
end
"""


def write_lua(tmp, name, body):
    """A wrk script that POSTs body, or GETs when body is None."""
    lpath = f"{tmp}/{name}.lua"
    if body is None:
        text = WRK_LUA_GET % AUTH
    else:
        bpath = f"{tmp}/{name}.body"
        with open(bpath, "w") as f:
            f.write(body)
        text = WRK_LUA % (AUTH, bpath)
    with open(lpath, "w") as f:
        f.write(text + WRK_LUA_DONE)
    return lpath


def run_wrk(bench, svc, conns, seconds, lua, path="/v1/chat/completions"):
    scheme = "https" if svc.tls else "http"
    url = f"{scheme}://127.0.0.1:{svc.port}{path}"
    pids = svc.pids()
    t0 = cpu_ticks(pids)
    k0 = cpu_ticks(pids, kernel_only=True)
    m0 = machine_ticks()
    a0 = bench.upstream_accepts()
    r = subprocess.run(["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--timeout", "10s", "-s", lua, url],
                       capture_output=True, text=True, timeout=seconds + 60)
    a1 = bench.upstream_accepts()
    t1 = cpu_ticks(pids)
    k1 = cpu_ticks(pids, kernel_only=True)
    m1 = machine_ticks()
    m = re.search(r"^BENCH (.*)$", r.stdout, re.M)
    if r.returncode != 0 or not m:
        die(f"wrk failed against {svc.kind}: {r.stdout[-500:]} {r.stderr[-500:]}")
    req, dur_us, nbytes, p50, p99, e_conn, e_read, e_write, e_status, e_timeout = map(int, m.group(1).split())
    return {
        "rps": req / (dur_us / 1e6),
        "requests": req,
        "seconds": dur_us / 1e6,
        "p50_ms": p50 / 1000.0,
        "p99_ms": p99 / 1000.0,
        "errors": e_conn + e_read + e_write + e_status + e_timeout,
        "upstream_conns": a1 - a0 - 1,  # the status request itself is one accept
        "cpu_us": (t1 - t0) / CLK_TCK * 1e6 / req if (pids and req) else None,
        "kernel_pct": 100.0 * (k1 - k0) / (t1 - t0) if (pids and t1 > t0) else None,
        # Whether the proxy was the bottleneck: the cores it kept busy (1.0 = one core
        # all the time), and how much of the machine stayed idle meanwhile.
        "busy_cores": (t1 - t0) / CLK_TCK / (dur_us / 1e6) if pids else None,
        "idle_pct": 100.0 * (m1[0] - m0[0]) / max(1, m1[1] - m0[1]),
    }


# --------------------------------------------------------------------------------------
# SSE clients: event latency is measured by bench/sse_tool.c (sse_latency_run); the Python
# client below opens the held streams and the aborted one, where only counts and one
# close time matter.
# --------------------------------------------------------------------------------------

def sse_request(port, n, iv, sid, head_delay=0.0):
    body = '{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Hello"}]}'
    hd = f"&hd={head_delay}" if head_delay else ""
    return (f"POST /v1/chat/completions?n={n}&iv={iv}&id={sid}{hd} HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Accept: text/event-stream\r\nAuthorization: {AUTH}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n{body}").encode()


class Stream:
    __slots__ = ("sid", "sock", "state", "buf", "payload", "chunked", "clen", "csize", "cstate",
                 "events", "t_sent", "t_first", "t_last", "error", "done", "status")

    def __init__(self, sid):
        self.sid = sid
        self.sock = None
        self.state = "connect"
        self.buf = b""
        self.payload = b""
        self.chunked = False
        self.clen = None
        self.csize = 0
        self.cstate = "size"
        self.events = 0
        self.t_sent = self.t_first = self.t_last = None
        self.error = None
        self.done = False
        self.status = None


class StreamClient:
    """Many SSE streams on one selectors loop (times: time.monotonic())."""

    def __init__(self, port, tls_ctx, n_events, interval, head_delay=0.0):
        self.port = port
        self.tls_ctx = tls_ctx
        self.n_events = n_events
        self.interval = interval
        self.head_delay = head_delay  # seconds the upstream waits before the head
        self.sel = selectors.DefaultSelector()
        self.streams = []
        self.failed = 0
        self.finished = 0
        self.first_events = 0

    def open(self, sid):
        st = Stream(sid)
        self.streams.append(st)
        req = sse_request(self.port, self.n_events, self.interval, sid, self.head_delay)
        try:
            if self.tls_ctx is not None:
                raw = socket.create_connection(("127.0.0.1", self.port), timeout=10)
                raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                s = self.tls_ctx.wrap_socket(raw, server_hostname="localhost")
                s.sendall(req)
                st.t_sent = time.monotonic()
                s.setblocking(False)
                st.sock = s
                st.state = "head"
                self.sel.register(s, selectors.EVENT_READ, st)
            else:
                s = socket.socket()
                s.setblocking(False)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                st.sock = s
                st.buf = req  # to send once connected
                rc = s.connect_ex(("127.0.0.1", self.port))
                if rc not in (0, errno.EINPROGRESS):
                    return self._fail(st, f"connect: {os.strerror(rc)}")
                self.sel.register(s, selectors.EVENT_WRITE, st)
        except OSError as e:
            self._fail(st, f"open: {e}")
        return st

    def _fail(self, st, why):
        if st.error is None and not st.done:
            st.error = why
            self.failed += 1
        self._close(st)
        return st

    def _close(self, st):
        if st.sock is not None:
            try:
                self.sel.unregister(st.sock)
            except (KeyError, ValueError):
                pass
            st.sock.close()
            st.sock = None

    def close(self, st):
        self._close(st)

    def close_all(self):
        for st in self.streams:
            self._close(st)
        self.sel.close()

    def poll(self, timeout):
        for key, mask in self.sel.select(timeout):
            st = key.data
            if st.state == "connect":
                err = st.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    self._fail(st, f"connect: {os.strerror(err)}")
                    continue
                try:
                    st.sock.send(st.buf)  # small request: one send on a fresh socket
                except OSError as e:
                    self._fail(st, f"send: {e}")
                    continue
                st.t_sent = time.monotonic()
                st.buf = b""
                st.state = "head"
                self.sel.modify(st.sock, selectors.EVENT_READ, st)
                continue
            self._readable(st)

    def _readable(self, st):
        data = b""
        eof = False
        while True:
            try:
                chunk = st.sock.recv(65536)
            except (ssl.SSLWantReadError, BlockingIOError):
                break
            except (OSError, ssl.SSLError) as e:
                return self._fail(st, f"recv: {e}")
            if not chunk:
                eof = True
                break
            data += chunk
        now = time.monotonic()
        if data:
            if st.t_first is None:
                st.t_first = now
            self._data(st, data, now)
        if eof and st.sock is not None:
            if not st.done:
                self._fail(st, f"closed after {st.events} events")
            else:
                self._close(st)

    def _data(self, st, data, now):
        if st.state == "head":
            st.buf += data
            i = st.buf.find(b"\r\n\r\n")
            if i < 0:
                return
            head, data = st.buf[:i].decode("latin-1"), st.buf[i + 4:]
            st.buf = b""
            lines = head.split("\r\n")
            try:
                st.status = int(lines[0].split()[1])
            except (IndexError, ValueError):
                return self._fail(st, "bad status line")
            if st.status != 200:
                return self._fail(st, f"status {st.status}")
            for line in lines[1:]:
                k, _, v = line.partition(":")
                k = k.strip().lower()
                if k == "transfer-encoding" and "chunked" in v.lower():
                    st.chunked = True
                elif k == "content-length":
                    st.clen = int(v)
            st.state = "body"
        if st.chunked:
            data = self._dechunk(st, data)
        st.payload += data
        while True:
            i = st.payload.find(b"\n\n")
            if i < 0:
                break
            ev, st.payload = st.payload[:i], st.payload[i + 2:]
            if ev.startswith(b"data: [DONE]"):
                st.done = True
                self.finished += 1
                continue
            if b'"t":' in ev:
                st.events += 1
                st.t_last = now
                if st.events == 1:
                    self.first_events += 1

    def _dechunk(self, st, data):
        buf = st.buf + data
        out = []
        pos = 0
        while pos < len(buf):
            if st.cstate == "size":
                j = buf.find(b"\r\n", pos)
                if j < 0:
                    break
                st.csize = int(buf[pos:j].split(b";")[0], 16)
                pos = j + 2
                st.cstate = "data" if st.csize else "trailer"
            elif st.cstate == "data":
                take = min(st.csize, len(buf) - pos)
                out.append(buf[pos:pos + take])
                pos += take
                st.csize -= take
                if st.csize == 0:
                    st.cstate = "crlf"
            elif st.cstate == "crlf":
                if len(buf) - pos < 2:
                    break
                pos += 2
                st.cstate = "size"
            else:  # trailer: ignore the rest
                pos = len(buf)
        st.buf = buf[pos:]
        return b"".join(out)


def sse_latency_run(bench, services, streams, events, interval_ms, tag, stagger_ms=None):
    """bench/sse_tool.c's client, against every service at once: `streams` streams each,
    per-event latency (receive time - the upstream's stamp, both CLOCK_MONOTONIC) and time
    to first byte. Connections and TLS handshakes first; then the requests, one every
    stagger_ms, the services' streams interleaved (default: all spread over one interval).
    services: [(kind, Service)]; returns {kind: result}."""
    argv = [bench.sse_tool(), "client", "--streams", str(streams), "--events", str(events),
            "--iv-ms", f"{interval_ms:g}", "--tag", tag, "--ca", f"{bench.certdir}/ca.pem"]
    for kind, svc in services:
        argv += ["--target", f"{kind}:{svc.port}" + (":tls" if svc.tls else "")]
    if stagger_ms is not None:
        argv += ["--stagger-ms", f"{stagger_ms:g}"]
    pids = {kind: svc.pids() for kind, svc in services if svc.item is not None}
    cpu0 = {kind: cpu_ns(p) for kind, p in pids.items()}
    r = subprocess.run(argv, capture_output=True, text=True,
                       timeout=events * interval_ms / 1000.0 + 60)
    cpu1 = {kind: cpu_ns(p) for kind, p in pids.items()}
    if r.returncode != 0:
        die(f"SSE client failed: {r.stderr[-1000:]}")
    out = {}
    for t in json.loads(r.stdout)["targets"]:
        lat = sorted(v / 1e6 for v in t["lat_ns"])
        ttfb = [v / 1e6 for v in t["ttfb_ns"]]
        out[t["name"]] = {
            "p50": percentile(lat, 50), "p99": percentile(lat, 99), "max": lat[-1] if lat else None,
            "ttfb": statistics.median(ttfb) if ttfb else None,
            "errors": t["failed"] + t["unfinished"], "lost": t["lost"], "events": len(lat),
            "why": t["why"][:3],
            # the whole run's CPU (requests and stream ends included) per event received
            "cpu_us": ((cpu1[t["name"]] - cpu0[t["name"]]) / 1e3 / len(lat)
                       if t["name"] in pids and lat else None),
        }
    return out


def abort_run(bench, svc, tag, before_head=False):
    """Client closes mid-stream (after 3 events), or before_head: once the request has
    reached the upstream, which holds its head back 10 s. ms until the upstream SSE
    server sees its connection close."""
    ctx = bench.client_ctx if svc.tls else None
    cl = StreamClient(svc.port, ctx, 3000, 0.02, head_delay=10.0 if before_head else 0.0)
    sid = f"{tag}-abort"
    streams_before = bench.sse_control("/_bench/stats")["streams"] if before_head else 0
    st = cl.open(sid)
    deadline = time.monotonic() + 10
    try:
        if before_head:
            # the request is at the upstream once the upstream's stream count has moved
            while st.error is None and time.monotonic() < deadline:
                cl.poll(0.005)
                if bench.sse_control("/_bench/stats")["streams"] > streams_before:
                    break
            else:
                return None
            if st.error is not None:
                return None
        else:
            while st.events < 3 and st.error is None and time.monotonic() < deadline:
                cl.poll(0.05)
            if st.events < 3:
                return None
        # The close time is asked for first (the SSE server answers once the stream's
        # connection has closed), so that after its close() this client only waits: its
        # own work then (a Python HTTP request, ~0.3 ms) no longer holds a core the proxy
        # and the upstream need to react, which before 2026-12-04 made the figure depend on
        # where the scheduler put three processes on two cores more than on the proxy.
        answer = bench.sse_control_later(f"/_bench/wait-closed?id={sid}&timeout=10")
        cl.sel.unregister(st.sock)
        time.sleep(0.002)  # the SSE server has taken the request; all is quiet
        t_close = time.monotonic()  # the SSE server's closed_at is CLOCK_MONOTONIC too
        st.sock.close()
        st.sock = None
        r = answer()
    finally:
        cl.close_all()
    if r.get("closed_at") is None:
        return None
    return (r["closed_at"] - t_close) * 1000.0


def hold_run(bench, svc, n, hold_seconds, tag, after_seconds=3.0):
    """n streams at one event per second, held open, then closed; RSS of the serving process
    before, at the peak and after_seconds after the streams end."""
    pid = svc.serving_pid()
    # warm: one short stream, then the baseline
    warm = StreamClient(svc.port, None, 2, 0.01)
    warm.open(f"{tag}-warm")
    dl = time.monotonic() + 5
    while warm.finished + warm.failed < 1 and time.monotonic() < dl:
        warm.poll(0.05)
    warm.close_all()
    time.sleep(0.3)
    idle_kb = status_kb(pid, "VmRSS")
    cl = StreamClient(svc.port, None, 100000, 1.0)
    opened = 0
    peak_sampled = idle_kb
    open_limit = 256
    t_start = time.monotonic()
    ramp_deadline = t_start + 30 + n / 100.0
    last_sample = 0.0
    try:
        while time.monotonic() < ramp_deadline:
            pending = opened - cl.first_events - cl.failed
            while opened < n and pending < open_limit:
                cl.open(f"{tag}-{opened}")
                opened += 1
                pending += 1
            if opened == n and cl.first_events + cl.failed >= n:
                break
            cl.poll(0.02)
            now = time.monotonic()
            if now - last_sample > 0.25:
                peak_sampled = max(peak_sampled, status_kb(pid, "VmRSS"))
                last_sample = now
        ramp_s = time.monotonic() - t_start
        established = cl.first_events
        hold_end = time.monotonic() + hold_seconds
        while time.monotonic() < hold_end:
            cl.poll(0.05)
            now = time.monotonic()
            if now - last_sample > 0.25:
                peak_sampled = max(peak_sampled, status_kb(pid, "VmRSS"))
                last_sample = now
        steady_kb = status_kb(pid, "VmRSS")
        hwm_kb = status_kb(pid, "VmHWM")
        now = time.monotonic()
        stalled = sum(1 for st in cl.streams if st.error is None and
                      (st.t_last is None or now - st.t_last > 2.5))
        errors = cl.failed + stalled + (n - opened)
        peak = max(hwm_kb, peak_sampled)
        why = sorted({st.error for st in cl.streams if st.error})[:3]
    finally:
        cl.close_all()
    # The streams end (the client closes them all): what a user then sees of the memory,
    # once the proxy has closed the upstream side too. RSS sampled every 0.25 s for
    # after_seconds; "after" is the last sample.
    after_kb = status_kb(pid, "VmRSS")
    after_end = time.monotonic() + after_seconds
    while time.monotonic() < after_end:
        time.sleep(0.25)
        after_kb = status_kb(pid, "VmRSS")
    return {
        "errors": errors, "established": established, "ramp_s": ramp_s,
        "idle_mb": idle_kb / 1024.0, "peak_mb": peak / 1024.0, "after_mb": after_kb / 1024.0,
        "kb_per_stream": (peak - idle_kb) / n, "steady_kb_per_stream": (steady_kb - idle_kb) / n,
        "why": why,
    }


# --------------------------------------------------------------------------------------
# Static facts
# --------------------------------------------------------------------------------------

def stripped_size(path, tmp):
    if not path or not os.path.isfile(path):
        return None
    out = f"{tmp}/stripped-{os.path.basename(path)}"
    shutil.copyfile(path, out)
    try:
        subprocess.run(["strip", out], check=True, capture_output=True, timeout=30)
    except (OSError, subprocess.CalledProcessError):
        pass
    return os.path.getsize(out)


def is_static(path):
    try:
        r = subprocess.run(["file", "-L", path], capture_output=True, text=True, timeout=10)
        return "statically linked" in r.stdout or "static-pie" in r.stdout
    except OSError:
        return None


def start_timing(bench, kind, up_port, binary=None):
    """ms from exec to the first accepted connection, and to the first proxied answer."""
    svc = bench.start(kind, up_port, tight=True, binary=binary)
    try:
        bench.check_post(svc)
        t_answer = (time.perf_counter() - svc.item["t_exec"]) * 1000.0
        return svc.start_ms, t_answer
    finally:
        svc.stop()


def idle_rss(bench, kind, up_port, binary=None):
    svc = bench.start(kind, up_port, binary=binary)
    try:
        time.sleep(0.5)
        own = status_kb(svc.serving_pid(), "VmRSS") / 1024.0
        total = sum(status_kb(p, "VmRSS") for p in svc.pids()) / 1024.0
        return own, total
    finally:
        svc.stop()


# --------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------

def fmt_n(v):
    return "—" if v is None else f"{v:,.0f}"


def machine_facts(args):
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    rev = "?"
    try:
        rev = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10).stdout.strip() or "?"
        dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no", "src"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        if dirty:
            rev += " + uncommitted changes in src/"
    except OSError:
        pass
    # A binary older than the sources measures something else than the revision named.
    newest = 0.0
    for sub in ("src", "platform"):
        for root, _, files in os.walk(os.path.join(REPO, sub)):
            for name in files:
                try:
                    newest = max(newest, os.path.getmtime(os.path.join(root, name)))
                except OSError:
                    pass
    if args.binary and newest > os.path.getmtime(args.binary):
        rev += " (**the binary is older than the sources: rebuild**)"
    return {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "kernel": platform.release(),
        "nginx": first_line(["nginx", "-v"]).replace("nginx version: ", ""),
        "haproxy": first_line(["haproxy", "-v"]).split(" - ")[0],
        "wrk": first_line(["wrk", "-v"]).split(" Copyright")[0],
        "openssl": first_line(["openssl", "version"]),
        "python": platform.python_version(),
        "rev": rev,
    }


class Report:
    def __init__(self):
        self.parts = []

    def add(self, text):
        self.parts.append(text)
        print(text, flush=True)

    def table(self, header, rows):
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        for r in rows:
            lines.append("| " + " | ".join(str(c) for c in r) + " |")
        self.add("\n".join(lines) + "\n")

    def text(self):
        return "\n".join(self.parts)


def run(args):
    t_begin = time.monotonic()
    budget = args.budget_minutes * 60.0
    proxies = [p for p in args.proxies.split(",") if p]
    if args.base_binary and "op1-base" not in proxies:
        proxies.insert(1, "op1-base")
    if "op1-base" in proxies and not args.base_binary:
        die("op1-base needs --base-binary")
    # --extra-binary NAME=PATH: a row "op1-NAME" right after op1 (and op1-base) everywhere.
    at = proxies.index("op1-base") + 1 if "op1-base" in proxies else (proxies.index("op1") + 1 if "op1" in proxies else 0)
    for kind in args.extra:
        if kind not in proxies:
            proxies.insert(at, kind)
            at += 1
    extras = [k for k in args.extra if k in proxies]
    peers = [p for p in proxies if p in ("nginx", "haproxy")]
    one_thread = [p for p in proxies if p in ("op1", "nginx", "haproxy")]
    workloads = set(args.only.split(",")) if args.only else {"static", "post", "body", "download", "sse", "abort", "hold"}
    skipped = []

    def time_left(what, need_s):
        left = budget - (time.monotonic() - t_begin)
        if left < need_s:
            skipped.append(f"{what}: skipped, {left:.0f} s of the {args.budget_minutes} min budget left, needs ~{need_s:.0f} s")
            print(f"bench: {skipped[-1]}", file=sys.stderr)
            return False
        return True

    tmp = tempfile.mkdtemp(prefix="op-bench-")
    os.chmod(tmp, 0o755)
    rep = Report()
    facts = machine_facts(args)
    try:
        bench = Bench(args, tmp)
        rep.add(f"# openai-proxy benchmark\n\n"
                f"- date: {facts['date']}; openai-proxy {facts['rev']} ({args.binary})\n"
                f"- machine: {facts['nproc']} cores (`nproc`), {facts['cpu']}, Linux {facts['kernel']}\n"
                f"- nginx {facts['nginx']}, {facts['haproxy']}, {facts['wrk']}, {facts['openssl']}, "
                f"Python {facts['python']}\n"
                f"- every figure: median of {args.repeats} repeats (min–max); ratios are medians divided "
                f"by the peer's median from this same run. The machine is shared and noisy: "
                f"read the ratios, not the absolute figures.\n"
                f"- client, upstream and proxy share the {facts['nproc']} cores (loopback); upstream: "
                f"nginx 1 worker (JSON) and an SSE server in C (bench/sse_tool.c), both TLS 1.3, ECDSA P-256.\n")

        # ---------------- static facts ----------------
        if "static" in workloads:
            if not hasattr(bench, "upstream"):
                bench.start_upstream_nginx()
            rows = []
            entries = []
            if "op1" in proxies:
                entries.append(("op1", args.binary, "openai-proxy, tested build"))
                if os.path.isfile(args.static_binary):
                    entries.append(("op1", args.static_binary, "openai-proxy, static release binary"))
            entries += [(k, args.extra[k], PROXY_LABELS[k]) for k in extras]
            entries += [(k, None, PROXY_LABELS[k]) for k in ("nginx", "haproxy") if k in proxies]
            for kind, binary, label in entries:
                timings = [start_timing(bench, kind, bench.up_port, binary) for _ in range(args.start_repeats)]
                own, total = idle_rss(bench, kind, bench.up_port, binary)
                if binary:
                    size = stripped_size(binary, tmp)
                    age = time.strftime("%Y-%m-%d %H:%M", time.localtime(os.path.getmtime(binary)))
                    size_txt = (f"{size / 2**20:.2f} MiB stripped, "
                                f"{'static' if is_static(binary) else 'dynamic'} (`{binary}`, built {age})")
                else:
                    exe = shutil.which(kind)
                    size_txt = f"{os.path.getsize(exe) / 2**20:.2f} MiB (dynamic; + shared libraries)"
                rss_txt = f"{own:.1f} MiB" + (f" (worker; with master {total:.1f})" if kind == "nginx" else "")
                rows.append([label, size_txt, rss_txt,
                             median_range([t[0] for t in timings], "{:.2f}"),
                             median_range([t[1] for t in timings], "{:.1f}")])
            if "op1" in proxies and not os.path.isfile(args.static_binary):
                skipped.append(f"static binary size: no {args.static_binary} "
                               f"(make dist/linux_amd64/openai-proxy, or pass --static-binary)")
            rep.add("## Static facts\n")
            rep.table(["proxy", "binary size", "idle RSS", "ms exec → first accepted connection",
                       "ms exec → first proxied 200 (incl. upstream TLS handshake)"], rows)
            rep.add(f"({args.start_repeats} starts each, 1 worker/thread; from the moment `exec` "
                    f"returned in the parent, poll-connecting every 0.2 ms. Idle RSS: 0.5 s after start, "
                    f"no request yet.)\n")

        # ---------------- small POST, 1 MiB uploads and downloads (nginx upstream) ----------------
        post_kinds = [k for k in ("op1", "op1-base", *extras, "op1-pool20", "opN", "nginx", "haproxy", "direct") if k in proxies]
        if workloads & {"post", "body", "download"}:
            if not hasattr(bench, "upstream"):
                bench.start_upstream_nginx()
            services = {}
            for kind in post_kinds:
                services[kind] = bench.start(kind, bench.up_port)
                bench.check_post(services[kind])
            small_lua = write_lua(tmp, "small", SMALL_BODY)
            big = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"'
            big += "a" * (int(args.body_mib * 2**20) - len(big) - 4) + '"}]}'
            big_lua = write_lua(tmp, "big", big)
            down_lua = write_lua(tmp, "download", None)

            if "post" in workloads:
                for conns in args.connections:
                    need = len(post_kinds) * (args.repeats * args.duration + args.warmup + 1)
                    if not time_left(f"small POST c={conns}", need):
                        continue
                    results = {k: [] for k in post_kinds}
                    for kind in post_kinds:  # warm the pools
                        if args.warmup:
                            run_wrk(bench, services[kind], conns, args.warmup, small_lua)
                    for rnd in range(args.repeats):
                        order = post_kinds if rnd % 2 == 0 else list(reversed(post_kinds))
                        for kind in order:
                            results[kind].append(run_wrk(bench, services[kind], conns, args.duration, small_lua))
                    rep.add(f"## Small POST ({len(SMALL_BODY)} B JSON in, {len(COMPLETION)} B out), "
                            f"keep-alive, `wrk -t1 -c{conns} -d{args.duration}s`\n")
                    ref = {p: med([r["rps"] for r in results[p]]) for p in peers}
                    refcpu = {p: med([r["cpu_us"] for r in results[p]]) for p in peers}
                    rows = []
                    for kind in post_kinds:
                        rs = results[kind]
                        rps = med([r["rps"] for r in rs])
                        cpu = med([r["cpu_us"] for r in rs])
                        rows.append([PROXY_LABELS[kind], median_range([r["rps"] for r in rs], "{:,.0f}"),
                                     ratio(rps, ref.get("nginx")), ratio(rps, ref.get("haproxy")),
                                     median_range([r["p50_ms"] for r in rs], "{:.2f}"),
                                     median_range([r["p99_ms"] for r in rs], "{:.2f}"),
                                     median_range([r["upstream_conns"] for r in rs], "{:,.0f}"),
                                     median_range([r["cpu_us"] for r in rs], "{:.1f}") if kind != "direct" else "—",
                                     (ratio(cpu, refcpu.get("nginx")) + " / " + ratio(cpu, refcpu.get("haproxy"))) if kind != "direct" else "—",
                                     (median_range([r["busy_cores"] for r in rs], "{:.2f}") if kind != "direct" else "—")
                                     + " / " + median_range([r["idle_pct"] for r in rs], "{:.0f}%"),
                                     sum(r["errors"] for r in rs)])
                    rep.table(["proxy", "requests/s", "× nginx", "× HAProxy", "p50 ms", "p99 ms",
                               "upstream TLS conns opened", "proxy CPU µs/req", "CPU × nginx / × HAProxy",
                               "proxy cores busy / machine idle", "errors"], rows)
                    rep.add("(Proxy cores busy: the proxy's CPU time over the run's length; 1.00 is one "
                            "core all the time. A one-worker proxy well below 1.00 spent part of the run "
                            "waiting, so the bottleneck was elsewhere: wrk and the upstream share the same "
                            "cores. Machine idle: the share of all cores' time left idle meanwhile.)\n")

            # 1 MiB request bodies (uploads) and 1 MiB response bodies (downloads: a small
            # GET answered with a file's content), each proxy in the same run, interleaved.
            bulk = [("body", big_lua, "/v1/responses", "request bodies", "request bodies"),
                    ("download", down_lua, DOWNLOAD_PATH, "response bodies to a small GET", "response bodies")]
            for work, lua, path, title, unit in bulk:
                if work not in workloads:
                    continue
                need = len(post_kinds) * (args.repeats * args.body_duration + 2)
                if not time_left(f"{args.body_mib:g} MiB {title}", need):
                    continue
                results = {k: [] for k in post_kinds}
                for kind in post_kinds:
                    run_wrk(bench, services[kind], args.body_connections, 1, lua, path)
                for rnd in range(args.repeats):
                    order = post_kinds if rnd % 2 == 0 else list(reversed(post_kinds))
                    for kind in order:
                        results[kind].append(run_wrk(bench, services[kind], args.body_connections,
                                                     args.body_duration, lua, path))
                size_mib = args.body_mib
                for rs in results.values():
                    for r in rs:
                        r["mibs"] = r["rps"] * size_mib
                        if r["cpu_us"] is not None:
                            r["cpu_mib"] = r["cpu_us"] / size_mib
                ref = {p: med([r["mibs"] for r in results[p]]) for p in peers}
                refcpu = {p: med([r["cpu_mib"] for r in results[p]]) for p in peers}
                rows = []
                for kind in post_kinds:
                    rs = results[kind]
                    v = med([r["mibs"] for r in rs])
                    proxy = kind != "direct"
                    cpu = med([r["cpu_mib"] for r in rs]) if proxy else None
                    rows.append([PROXY_LABELS[kind], median_range([r["mibs"] for r in rs], "{:,.0f}"),
                                 ratio(v, ref.get("nginx")), ratio(v, ref.get("haproxy")),
                                 median_range([r["p99_ms"] for r in rs], "{:.1f}"),
                                 median_range([r["cpu_mib"] for r in rs], "{:,.0f}") if proxy else "—",
                                 (ratio(cpu, refcpu.get("nginx")) + " / " + ratio(cpu, refcpu.get("haproxy")))
                                 if proxy else "—",
                                 median_range([r["kernel_pct"] for r in rs], "{:.0f}%") if proxy else "—",
                                 sum(r["errors"] for r in rs)])
                rep.add(f"## {args.body_mib:g} MiB {title}, `wrk -t1 -c{args.body_connections} "
                        f"-d{args.body_duration}s`\n")
                rep.table(["proxy", f"MiB/s ({unit})", "× nginx", "× HAProxy", "p99 ms",
                           "proxy CPU µs/MiB", "CPU × nginx / × HAProxy", "of it in the kernel", "errors"], rows)
            for svc in services.values():
                svc.stop()

        # ---------------- SSE latency, abort, hold (SSE upstream: bench/sse_tool.c) ----------------
        sse_kinds = [k for k in ("op1", "op1-base", *extras, "nginx", "haproxy", "direct") if k in proxies or k == "direct"]
        if "sse" in workloads or "abort" in workloads:
            bench.start_sse_server()
            services = {k: bench.start(k, bench.sse_port) for k in sse_kinds}
            if "sse" in workloads:
                per = args.sse_events * args.sse_interval_ms / 1000.0 + 1
                if time_left("SSE latency", len(sse_kinds) * (args.repeats + 1) * per):
                    # Every row in the same run, their streams interleaved: load from outside the
                    # benchmark falls on all rows alike, so the "added" columns compare like with like.
                    warm = sse_latency_run(bench, [(k, services[k]) for k in sse_kinds], args.sse_streams, 5,
                                           args.sse_interval_ms, "warm", args.sse_stagger_ms)
                    for kind in sse_kinds:  # warm the pools, check it streams
                        if warm[kind]["errors"]:
                            die(f"SSE through {kind} failed: {warm[kind]['why']}")
                    results = {k: [] for k in sse_kinds}
                    for rnd in range(args.repeats):
                        order = sse_kinds if rnd % 2 == 0 else list(reversed(sse_kinds))
                        groups = [[k] for k in order] if args.sse_apart else [order]
                        for g in groups:
                            r = sse_latency_run(bench, [(k, services[k]) for k in g], args.sse_streams,
                                                args.sse_events, args.sse_interval_ms, f"lat{rnd}",
                                                args.sse_stagger_ms)
                            for kind in g:
                                results[kind].append(r[kind])
                    rows = []
                    for kind in sse_kinds:
                        rs = results[kind]
                        added50 = [r["p50"] - d["p50"] for r, d in zip(rs, results["direct"])]
                        added99 = [r["p99"] - d["p99"] for r, d in zip(rs, results["direct"])]
                        rows.append([PROXY_LABELS[kind],
                                     median_range([r["p50"] for r in rs], "{:.3f}"),
                                     median_range([r["p99"] for r in rs], "{:.3f}"),
                                     median_range([r["max"] for r in rs], "{:.2f}"),
                                     median_range(added50, "{:+.3f}") if kind != "direct" else "—",
                                     median_range(added99, "{:+.3f}") if kind != "direct" else "—",
                                     median_range([r["ttfb"] for r in rs], "{:.2f}"),
                                     median_range([r["cpu_us"] for r in rs], "{:.1f}") if kind != "direct" else "—",
                                     f"{sum(r['errors'] for r in rs)} / {sum(r['lost'] for r in rs)}"])
                    together = 1 if args.sse_apart else len(sse_kinds)
                    stagger = (args.sse_stagger_ms if args.sse_stagger_ms is not None
                               else args.sse_interval_ms / (args.sse_streams * together))
                    how = (f"Each row runs on its own, one after the other ({args.sse_streams} streams "
                           f"started {stagger:g} ms apart)" if args.sse_apart else
                           f"All {len(sse_kinds)} rows run at the same time from one client, "
                           f"{args.sse_streams} streams each, the {args.sse_streams * len(sse_kinds)} "
                           f"streams started {stagger:g} ms apart")
                    rep.add(f"## SSE: {args.sse_streams} concurrent streams × {args.sse_events} events "
                            f"every {args.sse_interval_ms:g} ms\n")
                    rep.table(["proxy", "event latency p50 ms", "p99 ms", "max ms", "added p50 ms vs direct",
                               "added p99 ms vs direct", "time to first byte ms", "proxy CPU µs per event",
                               "errors / events lost"], rows)
                    rep.add(f"(Latency: CLOCK_MONOTONIC when the client's read returned the event minus "
                            f"the stamp the upstream wrote into it just before its SSL_write; client and "
                            f"upstream are bench/sse_tool.c (C, epoll, OpenSSL). {how}, so no two events "
                            f"fall on the same instant. The direct row is what client and "
                            f"upstream cost themselves; the \"added\" columns subtract it per repeat "
                            f"({args.repeats} repeats). Time to first byte: request written → first bytes "
                            f"of the answer, pools warm. Proxy CPU per event: the process tree's CPU time over the "
                            f"whole run (requests and stream ends included; schedstat, ns) per event "
                            f"received.)\n")
            if "abort" in workloads and time_left("client abort", 2 * len(sse_kinds) * args.abort_repeats * 0.5):
                for before_head in (False, True):
                    results = {k: [] for k in sse_kinds}
                    for rnd in range(args.abort_repeats):
                        # Each round starts with the next proxy: with a fixed order, two
                        # copies of one binary differed by up to 0.25× nginx's median in
                        # the same run (the first row fastest mid-stream, slowest before
                        # the head), more than the proxies differ (bench/results.md).
                        k0 = rnd % len(sse_kinds)
                        for kind in sse_kinds[k0:] + sse_kinds[:k0]:
                            tag = f"ab{'h' if before_head else 'm'}{rnd}-{kind}"
                            results[kind].append(abort_run(bench, services[kind], tag, before_head))
                    mids = {k: statistics.median([v for v in results[k] if v is not None])
                           if any(v is not None for v in results[k]) else None for k in sse_kinds}
                    rows = [[PROXY_LABELS[k], median_range(results[k], "{:.2f}"),
                             "—" if k in ("direct", "nginx") or not mids.get("nginx") or mids[k] is None
                             else f"{mids[k] / mids['nginx']:.2f}×",
                             sum(1 for v in results[k] if v is None)] for k in sse_kinds]
                    what = ("before the response head (the upstream holds it back 10 s)" if before_head
                            else "mid-stream (events every 20 ms, after the third)")
                    rep.add(f"## Client abort {what}; {args.abort_repeats} aborts each\n")
                    rep.table(["proxy", "ms from client close until the upstream sees its connection closed",
                               "median × nginx's", "not seen within 10 s"], rows)
            for svc in services.values():
                svc.stop()

        if "hold" in workloads and args.hold:
            if not hasattr(bench, "sse_port"):
                bench.start_sse_server()
            hold_kinds = [k for k in ("op1", "op1-base", *extras, "nginx", "haproxy") if k in proxies]
            rows = []
            for n in args.hold:
                reps = args.hold_repeats if n <= 2000 else args.hold_big_repeats
                # The proxy holds 2 descriptors per stream, plus its listener, epoll, logs and
                # a few streams in transit (nginx starts closing connections at its limit).
                cap = (fd_limit() - 200) // 2
                if n > cap:
                    skipped.append(f"{n:,} held streams: ran {cap:,} instead; a proxy needs 2 descriptors "
                                   f"per stream and the hard open-file limit here is {fd_limit()} "
                                   f"(raising it needs CAP_SYS_RESOURCE)")
                    n = cap
                need = len(hold_kinds) * reps * (args.hold_seconds + args.hold_after + 4 + n / 700.0)
                if not time_left(f"{n} held streams", need):
                    continue
                results = {k: [] for k in hold_kinds}
                for rnd in range(reps):
                    for kind in hold_kinds:
                        svc = bench.start(kind, bench.sse_port)
                        try:
                            results[kind].append(hold_run(bench, svc, n, args.hold_seconds, f"h{n}-{rnd}-{kind}",
                                                           args.hold_after))
                        finally:
                            svc.stop()
                        time.sleep(0.5)  # let the SSE server see its connections close
                ref = {p: med([r["kb_per_stream"] for r in results[p]]) for p in peers if p in results}
                for kind in hold_kinds:
                    rs = results[kind]
                    kb = med([r["kb_per_stream"] for r in rs])
                    why = sorted({w for r in rs for w in r["why"]})[:2]
                    rows.append([PROXY_LABELS[kind], f"{n:,}" + (f" ×{reps}" if reps > 1 else ""),
                                 f"{sum(r['errors'] for r in rs)}" + (f" ({'; '.join(why)})" if why else ""),
                                 median_range([r["idle_mb"] for r in rs], "{:.1f}"),
                                 median_range([r["peak_mb"] for r in rs], "{:.1f}"),
                                 median_range([r["kb_per_stream"] for r in rs], "{:.1f}"),
                                 median_range([r["steady_kb_per_stream"] for r in rs], "{:.1f}"),
                                 median_range([r["after_mb"] for r in rs], "{:.1f}"),
                                 "yes" if all(r["after_mb"] <= 1.1 * r["idle_mb"] for r in rs) else
                                 "no (" + ", ".join(f"{r['after_mb'] / r['idle_mb']:.2f}×" for r in rs) + ")",
                                 ratio(kb, ref.get("nginx")), ratio(kb, ref.get("haproxy")),
                                 median_range([r["ramp_s"] for r in rs], "{:.1f}")])
            if rows:
                rep.add(f"## Held SSE streams, one event per second, held {args.hold_seconds:g} s after all are open\n")
                rep.table(["proxy", "streams", "errors", "RSS before MiB", "peak RSS MiB",
                           "KB/stream (peak − before)", "KB/stream (end of hold − before)",
                           f"RSS {args.hold_after:g} s after the streams end MiB", "after ≤ 1.1 × before",
                           "KB × nginx", "KB × HAProxy", "s to open all"], rows)
                rep.add("(RSS of the process holding the connections: the nginx worker, the HAProxy "
                        "process, the openai-proxy process; \"before\" is after one warm-up stream. "
                        "Each stream costs the proxy a client connection and an upstream TLS connection.)\n")

        rep.add(f"Total wall time: {(time.monotonic() - t_begin) / 60:.1f} min.\n")
        if skipped:
            rep.add("Not run:\n\n" + "\n".join(f"- {s}" for s in skipped) + "\n")
    finally:
        PROCS.stop_all()
        if args.keep_tmp:
            print(f"bench: kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    if args.out:
        with open(args.out, "w") as f:
            f.write(rep.text())
        print(f"bench: wrote {args.out}", file=sys.stderr)


def raise_fd_limit(need):
    """Many held streams: the client holds n sockets, each proxy 2n, the SSE server n. Raise
    RLIMIT_NOFILE, soft and hard, for this process and so for every process it starts, to
    65,536 (or `need` if larger), at most /proc/sys/fs/nr_open. Raising the hard limit needs
    CAP_SYS_RESOURCE (root usually has it; some containers drop it): without it, the soft
    limit goes up to the hard one and the held-stream rows hold what fits."""
    try:
        with open("/proc/sys/fs/nr_open") as f:
            nr_open = int(f.read())
    except (OSError, ValueError):
        nr_open = 1 << 20
    want = min(nr_open, max(need, 65536))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= want:
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(hard, want)))
        return
    except (ValueError, OSError):
        pass
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        pass
    if hard < need:
        print(f"bench: warning: open-file limit {hard} < {need} and it cannot be raised here "
              f"(no CAP_SYS_RESOURCE); held-stream rows hold what fits (raise it: ulimit -Hn {need}, "
              f"as root, before running)", file=sys.stderr)


def default_binary():
    env = os.environ.get("OPENAI_PROXY_BIN")
    if env:
        return env
    for p in (f"{REPO}/build/release/openai-proxy", f"{REPO}/openai-proxy", "/tmp/bench-build/openai-proxy"):
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return None


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "_sse-server":
        return sse_server_main(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=default_binary(),
                    help="openai-proxy to test (default: $OPENAI_PROXY_BIN, build/release/openai-proxy, ./openai-proxy)")
    ap.add_argument("--static-binary", default=f"{REPO}/dist/linux_amd64/openai-proxy",
                    help="static release binary whose stripped size is reported (default: %(default)s)")
    ap.add_argument("--out", help="also write the Markdown report here")
    ap.add_argument("--base-binary", default=None,
                    help="a second openai-proxy build (e.g. the previous revision) measured beside "
                         "--binary in the same run, as 'op1-base' (1 worker, same settings)")
    ap.add_argument("--extra-binary", action="append", default=[], metavar="NAME=PATH",
                    help="another openai-proxy build measured in the same run as row 'op1-NAME' (1 worker, "
                         "same settings as op1), in every workload op1 runs, idle RSS and hold included; "
                         "repeatable (e.g. small=dist/linux_amd64-small/openai-proxy)")
    ap.add_argument("--proxies", default="op1,op1-pool20,opN,nginx,haproxy,direct",
                    help="which to run (default: %(default)s)")
    ap.add_argument("--only", help="workloads, comma-separated: static,post,body (1 MiB uploads),download (1 MiB "
                         "downloads),sse,abort,hold (default: all)")
    ap.add_argument("--repeats", type=int, default=3, help="repeats per figure (default: %(default)s)")
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk run, small POST (default: %(default)s)")
    ap.add_argument("--warmup", type=int, default=1, help="seconds of wrk warm-up per proxy (default: %(default)s)")
    ap.add_argument("--connections", default="64,256", help="small-POST concurrency levels (default: %(default)s)")
    ap.add_argument("--body-mib", type=float, default=1.0, help="large request body and download size, MiB (default: %(default)s)")
    ap.add_argument("--body-connections", type=int, default=8, help="connections for large bodies and downloads (default: %(default)s)")
    ap.add_argument("--body-duration", type=int, default=3, help="seconds per wrk run, large bodies (default: %(default)s)")
    ap.add_argument("--sse-streams", type=int, default=20, help="(default: %(default)s)")
    ap.add_argument("--sse-events", type=int, default=100, help="(default: %(default)s)")
    ap.add_argument("--sse-interval-ms", type=float, default=20, help="(default: %(default)s)")
    ap.add_argument("--sse-apart", action="store_true",
                    help="SSE latency: run the rows one after the other instead of all at once (the "
                         "rows do not share the cores with each other, but each meets different "
                         "outside load)")
    ap.add_argument("--sse-stagger-ms", type=float, default=None,
                    help="ms between the SSE streams' starts (default: interval / (streams x rows), so "
                         "no two events fall on the same instant; 0: all on the same tick)")
    ap.add_argument("--abort-repeats", type=int, default=20, help="(default: %(default)s)")
    ap.add_argument("--hold", default="2000",
                    help="held-stream counts, comma-separated; empty to skip (default: %(default)s)")
    ap.add_argument("--hold-10k", action="store_true",
                    help="also hold 10,000 streams (about 3 more minutes, so the budget grows by "
                         "3.5 min; alone: --only hold --hold 10000)")
    ap.add_argument("--upstream-tickets", type=int, default=2,
                    help="TLS 1.3 session tickets the SSE upstream sends after each handshake "
                         "(default: %(default)s, OpenSSL's and Node's default)")
    ap.add_argument("--upstream-chain", action="store_true",
                    help="the SSE upstream sends its chain (leaf + CA) instead of the leaf alone")
    ap.add_argument("--upstream-alpn", action="store_true",
                    help="the SSE upstream offers ALPN h2 and http/1.1 (chooses http/1.1)")
    ap.add_argument("--hold-seconds", type=float, default=4, help="hold time once all are open (default: %(default)s)")
    ap.add_argument("--hold-after", type=float, default=3,
                    help="seconds after the held streams end before the \"after\" RSS (default: %(default)s)")
    ap.add_argument("--hold-repeats", type=int, default=3, help="repeats for counts <= 2000 (default: %(default)s)")
    ap.add_argument("--hold-big-repeats", type=int, default=1,
                    help="repeats for counts > 2000 (default: %(default)s; memory per stream varies little)")
    ap.add_argument("--start-repeats", type=int, default=9, help="(default: %(default)s)")
    ap.add_argument("--budget-minutes", type=float, default=None,
                    help="skip workloads that would not fit (default: 10.5, +3.5 with --hold-10k)")
    ap.add_argument("--quick", action="store_true",
                    help="tiny sizes to check the setup: 1 repeat, 1 s runs, 200 held streams")
    ap.add_argument("--keep-tmp", action="store_true", help="keep the temporary directory (configs, logs)")
    a = ap.parse_args()
    if a.quick:
        a.repeats, a.duration, a.warmup, a.body_duration = 1, 1, 0, 1
        a.sse_events, a.abort_repeats, a.hold, a.hold_seconds = 20, 2, "200", 2
        a.hold_repeats, a.start_repeats = 1, 2
    a.extra = {}
    for spec in a.extra_binary:
        name, sep, path = spec.partition("=")
        if not sep or not name or not os.path.isfile(path):
            die(f"--extra-binary {spec}: want NAME=PATH of an existing file")
        if name in ("base", "pool20"):  # op1-base and op1-pool20 are rows of their own
            die(f"--extra-binary {spec}: the name {name} is taken (--base-binary gives a base row)")
        a.extra["op1-" + name] = os.path.abspath(path)
        PROXY_LABELS["op1-" + name] = f"openai-proxy, 1 worker, {name} (`{path}`)"
    a.connections = [int(x) for x in a.connections.split(",") if x]
    a.hold = [int(x) for x in a.hold.split(",") if x]
    if a.hold_10k and 10000 not in a.hold:
        a.hold.append(10000)
    if a.budget_minutes is None:
        a.budget_minutes = 10.5 + (3.5 if a.hold_10k else 0)
    if a.repeats < 1:
        die("--repeats must be >= 1")
    if not a.binary or not os.path.isfile(a.binary):
        die("no openai-proxy binary: build it (make) or pass --binary PATH")
    a.binary = os.path.abspath(a.binary)
    for tool in ("nginx", "haproxy", "wrk", "openssl"):
        if not shutil.which(tool):
            die(f"{tool} not found on PATH (Debian: scripts/deps.sh --bench)")
    global MAX_HOLD
    MAX_HOLD = max([0] + a.hold)
    raise_fd_limit(MAX_HOLD * 2 + 10000)

    def on_signal(signum, _frame):
        raise SystemExit(f"bench: interrupted by signal {signum}")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    try:
        run(a)
    except KeyboardInterrupt:
        PROCS.stop_all()
        raise SystemExit("bench: interrupted")
    finally:
        PROCS.stop_all()


if __name__ == "__main__":
    main()
