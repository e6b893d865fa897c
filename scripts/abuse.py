#!/usr/bin/env python3
"""`certbound serve` under abuse, measured: memory with 10 000 concurrent
connections, slowloris, the connection cap, and a slow authorization server.

Starts (on 127.0.0.1, stopped by PID at the end):
  - a slow RFC 7662 stub that answers every introspection after --as-delay
    seconds (asyncio, stdlib only);
  - `certbound serve` (--bin, default target/release/certbound) with its
    defaults unless overridden: CERTBOUND_HEADER_READ_TIMEOUT_S=10,
    CERTBOUND_MAX_CONNECTIONS=4096, CERTBOUND_MAX_INFLIGHT=256.

Phases (each prints what it measured; the script exits 1 when an
expectation fails):
  1. idle: RSS of the fresh process;
  2. 10 000 connections, each sending half a request line and then nothing:
     MAX_CONNECTIONS of them held open, the rest answered 503 `overloaded`
     and closed at once; RSS with them open;
  3. slowloris: the held ones are cut at the header read timeout (how many
     closed, when); RSS after;
  4. slow AS storm: --storm concurrent authorization requests (each needs
     the AS); at most MAX_INFLIGHT wait for it, the rest get 503 at once;
     /healthz and token-less requests (answered locally) stay fast during the
     storm; RSS peak;
  5. after the storm: a normal request succeeds (the process is still up).

  python3 scripts/abuse.py                      # defaults
  python3 scripts/abuse.py --connections 2000   # smaller
"""

import argparse
import asyncio
import json
import os
import resource
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def rss_kib(pid):
    """(VmRSS, VmHWM) in KiB."""
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            fields[k] = v.strip()
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def mib(kib):
    return f"{kib / 1024:.1f} MiB"


def pct(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    k = min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))
    return values[k]


class SlowAs:
    """An RFC 7662 endpoint that answers after `delay` seconds."""

    def __init__(self, delay):
        self.delay = delay
        self.calls = 0
        self.server = None

    async def handle(self, reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
                self.calls += 1
                await asyncio.sleep(self.delay)
                body = json.dumps({"active": True, "sub": "abuse", "client_id": "abuse",
                                   "exp": int(time.time()) + 3600}).encode()
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                             b"content-length: %d\r\n\r\n%s" % (len(body), body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def start(self, port):
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", port, backlog=4096)


def authz_request(token=True, connection="close"):
    lines = ["GET /authorize HTTP/1.1", "Host: certbound", "X-Original-Method: GET",
             "X-Original-URI: /example"]
    if token:
        lines.append("Authorization: Bearer abuse-token")
    lines.append(f"Connection: {connection}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def one_request(port, payload, timeout=30):
    """Sends one request; returns (status, seconds)."""
    started = time.monotonic()
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port), timeout)
        writer.write(payload)
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), timeout)
        except (OSError, asyncio.TimeoutError):
            pass
        parts = line.split()
        status = int(parts[1]) if len(parts) > 1 else 0
    except (OSError, asyncio.TimeoutError, ValueError):
        status = 0
    return status, time.monotonic() - started


async def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(REPO, "target/release/certbound"))
    ap.add_argument("--connections", type=int, default=10_000)
    ap.add_argument("--storm", type=int, default=2_000)
    ap.add_argument("--as-delay", type=float, default=2.0)
    ap.add_argument("--header-timeout", type=int, default=20,
                    help="CERTBOUND_HEADER_READ_TIMEOUT_S for this run (long enough to hold all connections open at once)")
    args = ap.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = args.connections * 2 + 1024
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, need), hard))
    failures = []

    def expect(ok, what):
        print(f"   {'ok  ' if ok else 'FAIL'} {what}")
        if not ok:
            failures.append(what)

    as_port, cb_port = free_port(), free_port()
    slow = SlowAs(args.as_delay)
    await slow.start(as_port)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "CERTBOUND_BACKEND": "rfc7662",
        "CERTBOUND_INTROSPECTION_ENDPOINT": f"http://127.0.0.1:{as_port}/introspect",
        "CERTBOUND_INTROSPECTION_CLIENT_ID": "rs",
        "CERTBOUND_INTROSPECTION_CLIENT_SECRET": "abuse-secret",
        "CERTBOUND_REQUIRE_BINDING": "false",
        "CERTBOUND_TIMEOUT_MS": str(int(args.as_delay * 1000 + 2000)),
        "CERTBOUND_HEADER_READ_TIMEOUT_S": str(args.header_timeout),
        "CERTBOUND_WORKER_THREADS": "2",
        "RUST_LOG": "warn",
    }
    for k in ("CERTBOUND_MAX_CONNECTIONS", "CERTBOUND_MAX_INFLIGHT"):
        if k in os.environ:
            env[k] = os.environ[k]
    max_conn = int(env.get("CERTBOUND_MAX_CONNECTIONS", "4096"))
    max_inflight = int(env.get("CERTBOUND_MAX_INFLIGHT", "256"))
    log = tempfile.NamedTemporaryFile(prefix="certbound-abuse-", suffix=".log", delete=False)
    proc = subprocess.Popen([args.bin, "serve", "--listen", f"127.0.0.1:{cb_port}"], env=env,
                            stdout=subprocess.DEVNULL, stderr=log)
    try:
        for _ in range(200):
            status, _ = await one_request(cb_port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 1)
            if status == 200:
                break
            await asyncio.sleep(0.05)
        else:
            raise SystemExit("certbound serve did not start")
        print(f"certbound serve pid {proc.pid}; slow AS answers after {args.as_delay} s; "
              f"max connections {max_conn}, max in flight {max_inflight}, "
              f"header timeout {args.header_timeout} s")

        print("\n1. idle")
        idle_rss, _ = rss_kib(proc.pid)
        print(f"   RSS {mib(idle_rss)}")

        n = args.connections
        print(f"\n2. {n} connections, each sending half a request line and then nothing")
        conns, failed = [], 0
        opened = time.monotonic()
        for _ in range(n):
            c = socket.socket()
            c.settimeout(5)
            try:
                c.connect(("127.0.0.1", cb_port))
                c.send(b"GET /authorize HT")
            except OSError:
                c.close()
                failed += 1
                continue
            conns.append(c)
        opened_at = time.monotonic()
        await asyncio.sleep(1.0)
        rss_open, _ = rss_kib(proc.pid)
        # Which ones certbound turned away (503 and closed) and which it holds.
        held, turned_away, other = [], 0, 0
        for c in conns:
            c.setblocking(False)
            try:
                data = c.recv(4096)
            except BlockingIOError:
                held.append(c)
                continue
            except OSError:
                data = b""
            if data.startswith(b"HTTP/1.1 503") and b"x-certbound-reason: overloaded" in data:
                turned_away += 1
            else:
                other += 1
            c.close()
        conns = held
        print(f"   connected {n - failed} of {n} in {opened_at - opened:.1f} s: {len(held)} held open, "
              f"{turned_away} answered 503 overloaded and closed, {other} other")
        print(f"   RSS {mib(rss_open)} (+{(rss_open - idle_rss) / max(1, len(held)):.1f} KiB per held connection)")
        expect(failed == 0, "every connection attempt was accepted or answered")
        expect(len(held) == min(n, max_conn), f"held open: min({n}, {max_conn})")
        expect(turned_away == max(0, n - max_conn), "the rest: 503 overloaded, at once")
        expect(rss_open < 512 * 1024, "RSS below 512 MiB")

        print(f"\n3. slowloris: waiting for the {args.header_timeout} s header timeout")

        def wait_all_closed():
            sel = selectors.DefaultSelector()
            for c in conns:
                c.setblocking(False)
                sel.register(c, selectors.EVENT_READ)
            closed = []
            deadline = opened_at + args.header_timeout + 10
            if not conns:
                return closed
            while len(closed) < len(conns) and time.monotonic() < deadline:
                for key, _ in sel.select(timeout=0.5):
                    try:
                        data = key.fileobj.recv(4096)
                    except OSError:
                        data = b""
                    if not data:
                        sel.unregister(key.fileobj)
                        closed.append(time.monotonic() - opened_at)
            sel.close()
            return closed

        held_n = len(conns)
        closed_after = await asyncio.to_thread(wait_all_closed)
        for c in conns:
            c.close()
        conns.clear()
        print(f"   closed by certbound: {len(closed_after)} of {held_n}; "
              f"{min(closed_after or [0]):.1f} .. {max(closed_after or [0]):.1f} s after the last was opened")
        expect(len(closed_after) == held_n, "every slow connection was cut")
        await asyncio.sleep(1.0)
        rss_after, hwm = rss_kib(proc.pid)
        print(f"   RSS after {mib(rss_after)} (peak so far {mib(hwm)})")

        print(f"\n4. slow AS storm: {args.storm} concurrent requests that need the AS")
        calls_before = slow.calls
        health, local = [], []

        async def probe():
            end = time.monotonic() + args.as_delay + 1
            while time.monotonic() < end:
                s, t = await one_request(cb_port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 10)
                health.append((s, t))
                s, t = await one_request(cb_port, authz_request(token=False), 10)
                local.append((s, t))
                await asyncio.sleep(0.05)

        storm = [one_request(cb_port, authz_request(), 30) for _ in range(args.storm)]
        results = await asyncio.gather(probe(), *storm)
        answers = results[1:]
        _, hwm_storm = rss_kib(proc.pid)
        by_status = {}
        for s, t in answers:
            by_status.setdefault(s, []).append(t)
        for s in sorted(by_status):
            ts = by_status[s]
            print(f"   HTTP {s}: {len(ts):5d}  p50 {pct(ts, 50) * 1000:7.1f} ms  p99 {pct(ts, 99) * 1000:7.1f} ms")
        print(f"   AS calls made: {slow.calls - calls_before}")
        hs = [t for s, t in health if s == 200]
        ls = [t for s, t in local if s == 401]
        print(f"   during the storm: /healthz {len(hs)}/{len(health)} OK, p50 {pct(hs, 50) * 1000:.1f} ms "
              f"max {max(hs or [0]) * 1000:.1f} ms; token-less 401 {len(ls)}/{len(local)}, "
              f"p50 {pct(ls, 50) * 1000:.1f} ms max {max(ls or [0]) * 1000:.1f} ms")
        print(f"   RSS peak {mib(hwm_storm)}")
        served = len(by_status.get(200, []))
        refused = len(by_status.get(503, []))
        expect(served + refused == args.storm, "every storm request answered 200 or 503")
        expect(slow.calls - calls_before <= max_inflight, f"at most {max_inflight} AS calls")
        if refused:
            expect(pct(by_status[503], 99) < 1.0, "503s come at once (p99 < 1 s)")
        expect(len(hs) == len(health) and len(ls) == len(local), "health and local refusals all answered")
        expect(max(hs or [0]) < 1.0, "/healthz stays under 1 s")

        print("\n5. after the storm")
        status, took = await one_request(cb_port, authz_request(), 30)
        print(f"   a normal request: HTTP {status} in {took * 1000:.0f} ms")
        expect(status == 200, "served normally again")
        expect(proc.poll() is None, "the process is still up")
        rss_end, hwm_end = rss_kib(proc.pid)
        print(f"   RSS {mib(rss_end)}, peak {mib(hwm_end)}")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        slow.server.close()
    print(f"\nlog: {log.name}")
    if failures:
        print(f"abuse: {len(failures)} expectation(s) failed")
        sys.exit(1)
    print("abuse: all expectations met")


if __name__ == "__main__":
    asyncio.run(main())
