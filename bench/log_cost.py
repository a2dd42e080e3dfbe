#!/usr/bin/env python3
"""Instructions per small POST in the proxy, counted by callgrind: a figure the other jobs
on a shared machine do not move (bench/run.py's CPU figures they do).

    python3 bench/log_cost.py off=BINARY log=BINARY,-access-log,/tmp/log-cost.log ...

Each NAME=BINARY[,FLAG...] starts the proxy under `valgrind --tool=callgrind` (one worker,
bench/run.py's TLS upstream nginx and its 302-byte request / 707-byte answer), sends N1 and
then, in a second run, N2 POSTs one after another on one keep-alive connection (a short
pause after each, so the proxy has pooled its upstream connection before the next), and
prints the user-space instructions per request of all the proxy's threads: the difference
of the two runs over N2-N1, so start-up and shutdown cancel. Printed beside it:
  - without the TLS libraries: a new upstream TLS connection now and then (timing under
    valgrind) adds its handshake to libssl/libcrypto, the noise in the total;
  - metering + access log: the inclusive cost of ExchangeMeter begin/response_head/end,
    UsageScanner::feed and the log's writer thread (AccessLog::run; under valgrind the
    writer drains every 20 ms a few lines at a time, so this part is larger than at full
    speed, where one drain takes hundreds of lines).
Needs valgrind (Debian: valgrind) besides bench/run.py's packages. N1, N2 from the
environment (200, 1200). About a minute per configuration.
"""
import collections
import glob
import http.client
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run as B  # noqa: E402

METER = ("op::ExchangeMeter::begin(", "op::ExchangeMeter::end(", "op::ExchangeMeter::response_head(",
         "op::UsageScanner::feed(", "op::AccessLog::run(")


def counts(path):
    g = collections.Counter()
    for inclusive in ("no", "yes"):
        out = subprocess.run(["callgrind_annotate", "--threshold=100", f"--inclusive={inclusive}", path],
                             capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            m = re.match(r"\s*([\d,]+) \([ \d.]+%\)\s+(.*)$", line)
            if not m or "PROGRAM TOTALS" in line:
                continue
            n = int(m.group(1).replace(",", ""))
            if inclusive == "yes":
                g["meter"] += n if any(k in line for k in METER) else 0
                continue
            g["total"] += n
            if "libcrypto" in line or "libssl" in line:
                g["tls"] += n
    g["non-tls"] = g["total"] - g["tls"]
    return g


def one(bench, binary, flags, n):
    d = tempfile.mkdtemp(prefix="op-log-cost-")
    port = B.free_port()
    argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={d}/cg.%p", binary,
            f"-listen=127.0.0.1:{port}", f"-default-target=https://127.0.0.1:{bench.up_port}",
            f"-ca-file={bench.certdir}/ca.pem", "-workers=1", "-shutdown-grace=1s"] + flags
    a0 = bench.upstream_accepts()
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=open(f"{d}/stderr", "w"))
    try:
        if B.wait_listening(port, timeout=60) is None:
            sys.exit(f"{binary} did not start under valgrind; see {d}/stderr")
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for _ in range(n):
            c.request("POST", "/v1/chat/completions", body=B.SMALL_BODY,
                      headers={"Content-Type": "application/json", "Authorization": B.AUTH})
            r = c.getresponse()
            r.read()
            if r.status != 200:
                sys.exit(f"{binary}: status {r.status}")
            time.sleep(0.01)
        c.close()
    finally:
        p.terminate()
        p.wait(timeout=120)
    conns = bench.upstream_accepts() - a0 - 1
    g = counts(glob.glob(f"{d}/cg.*")[0])
    subprocess.run(["rm", "-rf", d])
    return g, conns


def main():
    if len(sys.argv) < 2 or any("=" not in a for a in sys.argv[1:]):
        sys.exit(__doc__)
    n1, n2 = int(os.environ.get("N1", 200)), int(os.environ.get("N2", 1200))

    class Args:
        binary = base_binary = None
        extra = {}

    tmp = tempfile.mkdtemp(prefix="op-log-cost-")
    bench = B.Bench(Args(), tmp)
    try:
        bench.start_upstream_nginx()
        for arg in sys.argv[1:]:
            name, spec = arg.split("=", 1)
            binary, *flags = spec.split(",")
            (g1, c1), (g2, c2) = one(bench, binary, flags, n1), one(bench, binary, flags, n2)
            per = {k: (g2[k] - g1[k]) / (n2 - n1) for k in ("total", "non-tls", "tls", "meter")}
            print(f"{name}: instructions/request {per['total']:,.0f}; without TLS libs {per['non-tls']:,.0f};"
                  f" metering + access log {per['meter']:,.0f} (upstream TLS connections opened: {c1}, {c2})",
                  flush=True)
    finally:
        B.PROCS.stop_all()
        subprocess.run(["rm", "-rf", tmp])


main()
