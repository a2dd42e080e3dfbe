#!/usr/bin/env python3
"""The static release binary starts and proxies inside an almost empty root.

The root holds only the binary, /etc/hosts, /etc/resolv.conf and a CA bundle at one
distro path: no shared libraries, no NSS modules, no OpenSSL directory. The proxy is
started with an empty environment (no SSL_CERT_FILE / SSL_CERT_DIR), so it must find
the bundle by probing the usual paths itself. Checked:
  - a target named "localhost" (resolved through /etc/hosts by the static glibc),
    one given as an IP literal, and one resolved through DNS (the nameserver in
    /etc/resolv.conf is a tiny one this test runs on 127.0.0.1:53, when that port is
    free): 200 and the upstream's exact body;
  - an upstream whose certificate comes from a CA not in the bundle: 502 with an
    OpenAI-style JSON error;
  - the bundle at the RHEL/Fedora path instead of Debian's is found too;
  - with no bundle at all the proxy refuses to start, or answers 502: it never
    proxies without verification.

Runs when OP_STATIC_BINARY names the static binary and we are root (chroot needs
it); otherwise exits 77, which ctest reports as skipped. Self-contained: it needs
python3 and the openssl command line tool only.
"""

import http.client
import json
import os
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SKIP = 77
BODY = b'{"object":"list","data":[{"id":"static-chroot-ok"}]}'
DNS_NAME = "upstream.op-test"  # answered by TinyDns with 127.0.0.1


def skip(reason):
    print(f"SKIPPED: {reason}")
    sys.exit(SKIP)


def fail(message):
    print(f"FAIL: {message}")
    sys.exit(1)


def is_static_elf(path):
    """True when the ELF file has no PT_INTERP program header (no dynamic loader)."""
    with open(path, "rb") as f:
        data = f.read(1 << 16)
    if data[:4] != b"\x7fELF":
        return False
    is64 = data[4] == 2
    order = "little" if data[5] == 1 else "big"
    num = lambda off, size: int.from_bytes(data[off:off + size], order)
    if is64:
        phoff, phentsize, phnum = num(0x20, 8), num(0x36, 2), num(0x38, 2)
    else:
        phoff, phentsize, phnum = num(0x1C, 4), num(0x2A, 2), num(0x2C, 2)
    for i in range(phnum):
        if num(phoff + i * phentsize, 4) == 3:  # PT_INTERP
            return False
    return True


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def make_ca(workdir, name):
    """A self-signed CA; returns (cert path, key path)."""
    cert, key = f"{name}.crt", f"{name}.key"
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", key, "-out", cert, "-days", "2",
            "-subj", f"/CN=openai-proxy test {name}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=workdir)
    return os.path.join(workdir, cert), os.path.join(workdir, key)


def make_server_cert(workdir, name, ca_cert, ca_key):
    """A certificate for localhost and 127.0.0.1 signed by the given CA."""
    key, csr, cert, ext = f"{name}.key", f"{name}.csr", f"{name}.crt", f"{name}.ext"
    with open(os.path.join(workdir, ext), "w") as f:
        f.write("basicConstraints=CA:FALSE\n"
                "keyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=serverAuth\n"
                f"subjectAltName=DNS:localhost,DNS:{DNS_NAME},IP:127.0.0.1\n")
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=localhost", cwd=workdir)
    openssl("x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key,
            "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", cert, cwd=workdir)
    return os.path.join(workdir, cert), os.path.join(workdir, key)


class Upstream:
    """A TLS HTTP/1.1 server on 127.0.0.1 answering every GET with BODY."""

    def __init__(self, cert, key):
        self.requests = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                outer.requests.append((self.path, self.headers.get("Host")))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(BODY)))
                self.end_headers()
                self.wfile.write(BODY)

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # refused handshakes are expected in the unknown-CA case

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True,
                                                 do_handshake_on_connect=False)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class TinyDns:
    """A UDP name server on 127.0.0.1:53: A records for DNS_NAME, nothing else.

    `available` is False when the port is taken (a local resolver); the DNS check is
    then left out, with a note."""

    def __init__(self):
        self.queries = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.sock.bind(("127.0.0.1", 53))
        except OSError as e:
            self.available, self.reason = False, str(e)
            self.sock.close()
            return
        self.available = True
        self.sock.settimeout(0.2)
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while self.running:
            try:
                query, peer = self.sock.recvfrom(512)
            except socket.timeout:
                continue
            except OSError:
                return
            answer = self._answer(query)
            if answer:
                self.sock.sendto(answer, peer)

    def _answer(self, query):
        if len(query) < 12:
            return None
        labels, i = [], 12
        while i < len(query) and query[i] != 0:
            labels.append(query[i + 1:i + 1 + query[i]].decode(errors="replace"))
            i += 1 + query[i]
        if i + 5 > len(query):
            return None
        name = ".".join(labels).lower()
        qtype = struct.unpack(">H", query[i + 1:i + 3])[0]
        self.queries.append((name, qtype))
        question = query[12:i + 5]
        if name != DNS_NAME:
            return query[:2] + struct.pack(">HHHHH", 0x8183, 1, 0, 0, 0) + question
        records = b""
        if qtype == 1:  # A; AAAA and the rest get an empty answer
            records = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + socket.inet_aton("127.0.0.1")
        return (query[:2] + struct.pack(">HHHHH", 0x8180, 1, 1 if records else 0, 0, 0)
                + question + records)

    def close(self):
        if self.available:
            self.running = False
            self.thread.join()
            self.sock.close()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_root(parent, binary, bundle_path, bundle):
    """The near-empty root: binary, /etc/hosts, /etc/resolv.conf, and the CA bundle."""
    root = tempfile.mkdtemp(dir=parent, prefix="root-")
    shutil.copy2(binary, os.path.join(root, "openai-proxy"))
    os.makedirs(os.path.join(root, "etc"))
    with open(os.path.join(root, "etc/hosts"), "w") as f:
        f.write("127.0.0.1 localhost\n")
    with open(os.path.join(root, "etc/resolv.conf"), "w") as f:
        f.write("nameserver 127.0.0.1\n")
    if bundle_path:
        target = os.path.join(root, bundle_path.lstrip("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(bundle, target)
    return root


class Proxy:
    """`chroot ROOT /openai-proxy ...` with an empty environment."""

    def __init__(self, root, targets):
        self.port = free_port()
        chroot = shutil.which("chroot") or "/usr/sbin/chroot"
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [chroot, root, "/openai-proxy", "-listen", f"127.0.0.1:{self.port}",
             "-targets", targets],
            env={}, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)

    def wait_listening(self, seconds=10):
        """True once the port accepts; False if the process exited first."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return True
            except OSError:
                time.sleep(0.05)
        fail(f"the proxy did not listen within {seconds} s; its log:\n{self.output()}")

    def get(self, host, path="/v1/models"):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        try:
            connection.request("GET", path, headers={"Host": host})
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def output(self):
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.output()


def expect_ok(proxy, host, upstream, what):
    before = len(upstream.requests)
    status, body = proxy.get(host)
    if status != 200 or body != BODY:
        fail(f"{what}: expected 200 and the upstream's body, got {status} {body[:300]!r}\n"
             f"proxy log:\n{proxy.output()}")
    if len(upstream.requests) != before + 1 or upstream.requests[-1][0] != "/v1/models":
        fail(f"{what}: the upstream did not see exactly one GET /v1/models: "
             f"{upstream.requests[before:]}")
    print(f"ok: {what}: 200, {len(body)} bytes as sent")


def expect_502(proxy, host, what):
    status, body = proxy.get(host)
    if status != 502:
        fail(f"{what}: expected 502, got {status} {body[:300]!r}\nproxy log:\n{proxy.output()}")
    try:
        error = json.loads(body)["error"]
        assert isinstance(error["message"], str)
    except (ValueError, KeyError, TypeError, AssertionError):
        fail(f"{what}: the 502 body is not an OpenAI-style error: {body[:300]!r}")
    print(f"ok: {what}: 502 {error['message']!r}")


def main():
    binary = os.environ.get("OP_STATIC_BINARY", "")
    if not binary:
        skip("OP_STATIC_BINARY is not set (`make test` sets it when run as root)")
    if os.geteuid() != 0:
        skip("chroot needs root; run `make test` as root to include this test")
    if not os.path.isfile(binary):
        fail(f"OP_STATIC_BINARY={binary} does not exist")
    if not is_static_elf(binary):
        fail(f"OP_STATIC_BINARY={binary} is not a static ELF executable (it has a PT_INTERP)")
    if shutil.which("openssl") is None:
        fail("the openssl command line tool is missing (scripts/deps.sh installs it)")

    with tempfile.TemporaryDirectory(prefix="op-chroot-") as work:
        os.chmod(work, 0o755)
        try:
            probe = make_root(work, binary, None, None)
            subprocess.run([shutil.which("chroot") or "/usr/sbin/chroot", probe,
                            "/openai-proxy", "--version"], env={}, check=True,
                           capture_output=True, timeout=10)
        except subprocess.CalledProcessError as e:
            if b"Operation not permitted" in e.stderr:
                skip("chroot is not permitted here (no CAP_SYS_CHROOT)")
            fail(f"`/openai-proxy --version` failed in an empty root: {e.stderr!r}")

        ca_cert, ca_key = make_ca(work, "ca")
        other_ca_cert, other_ca_key = make_ca(work, "other-ca")
        good = Upstream(*make_server_cert(work, "good", ca_cert, ca_key))
        stranger = Upstream(*make_server_cert(work, "stranger", other_ca_cert, other_ca_key))
        dns = TinyDns()
        targets = (f"a:https://localhost:{good.port},"
                   f"ip:https://127.0.0.1:{good.port},"
                   f"dns:https://{DNS_NAME}:{good.port},"
                   f"stranger:https://localhost:{stranger.port}")
        try:
            # Debian/Ubuntu layout: the whole check.
            root = make_root(work, binary, "/etc/ssl/certs/ca-certificates.crt", ca_cert)
            proxy = Proxy(root, targets)
            try:
                if not proxy.wait_listening():
                    fail(f"the proxy exited at start (status {proxy.process.returncode}):\n"
                         f"{proxy.output()}")
                expect_ok(proxy, "a.example.test", good, "Debian bundle, host from /etc/hosts")
                expect_ok(proxy, "ip.example.test", good, "Debian bundle, IP literal target")
                if dns.available:
                    expect_ok(proxy, "dns.example.test", good,
                              f"Debian bundle, {DNS_NAME} resolved through /etc/resolv.conf")
                    if (DNS_NAME, 1) not in dns.queries:
                        fail(f"the name server saw no A query for {DNS_NAME}: {dns.queries}")
                else:
                    print(f"note: DNS check left out: 127.0.0.1:53 is taken ({dns.reason})")
                expect_502(proxy, "stranger.example.test", "certificate from an unknown CA")
                expect_ok(proxy, "a.example.test", good, "still serving after the refusal")
            finally:
                log = proxy.stop()
            print("proxy log (Debian layout):\n" + log.rstrip())

            # RHEL/Fedora layout: the bundle is found by probing there too.
            root = make_root(work, binary, "/etc/pki/tls/certs/ca-bundle.crt", ca_cert)
            proxy = Proxy(root, targets)
            try:
                if not proxy.wait_listening():
                    fail(f"RHEL layout: the proxy exited at start:\n{proxy.output()}")
                expect_ok(proxy, "a.example.test", good, "RHEL/Fedora bundle path")
            finally:
                proxy.stop()

            # No bundle anywhere: never proxy unverified.
            root = make_root(work, binary, None, None)
            proxy = Proxy(root, targets)
            try:
                if proxy.wait_listening():
                    expect_502(proxy, "a.example.test", "no CA bundle in the root")
                else:
                    if proxy.process.returncode == 0:
                        fail("no CA bundle: the proxy exited with status 0")
                    print(f"ok: no CA bundle: refused to start (status "
                          f"{proxy.process.returncode}): {proxy.output().strip()}")
            finally:
                proxy.stop()
        finally:
            good.close()
            stranger.close()
            dns.close()
    print("PASS: static binary in a near-empty chroot")


if __name__ == "__main__":
    main()
