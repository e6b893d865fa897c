#!/usr/bin/env python3
"""A misbehaving authorization server (Python 3.11 standard library only),
for certbound's fault matrix (scripts/fault_matrix.py) and for pointing any
certbound build at by hand. Every socket is bound to 127.0.0.1.

One plain-HTTP listener misbehaves according to the first path segments,
`/c/<case>/...`, and answers like the backend the rest of the path names:

  .../api/auth/introspection, .../api/<id>/auth/introspection   Authlete (v2, v3)
  .../introspect                                                RFC 7662
  .../jwks                                                      a JWKS
  .../.well-known/openid-configuration (and RFC 8414's)          metadata

Cases (HTTP behaviour):
  ok               a healthy answer (credentials checked: wrong ones get 401)
  status-503       503 with a JSON error body
  status-401       401 + WWW-Authenticate (the AS refuses the caller)
  status-403       403
  empty            200 with an empty body
  not-json         200 text/html
  wrong-types      the answer's fields of the wrong JSON types:
                   Authlete {"action": 3}, RFC 7662 {"active": "true"},
                   JWKS {"keys": "k1"}
  wrong-exp        Authlete {"action": "OK", "expiresAt": "soon"},
                   RFC 7662 {"active": true, "exp": "soon"},
                   JWKS {"keys": [...], "max_age": "soon"} -> a key whose n is a number
  big              a 10 MB body, Content-Length declared
  big-chunked      a 10 MB body, chunked (no length announced)
  nested           a JSON value nested 100 000 deep (200 KB: under every size cap)
  redirect         307 to another host (the "thief" listener, which records
                   every connection it gets)
  slow-drip        headers, then one body byte every 100 ms, forever
  no-answer        reads the request, never answers
  reset            reads the request, then resets the connection (RST)
  idle-close       a healthy answer with keep-alive, then closes the idle
                   connection after `idle_close_ms` (the AS's keep-alive
                   timeout shorter than the client's pool timeout); with
                   `announce_keep_alive`, says so (`Keep-Alive: timeout=N`)

Separate listeners for what happens below HTTP:
  refused          a port nothing listens on
  blackhole        a listening socket whose accept queue is full: the kernel
                   drops further SYNs, so a connect attempt times out
  tls-ok           TLS 1.2/1.3, certificate for 127.0.0.1/localhost issued by
                   the test CA (`ca.pem`): answers like `ok`
  tls-untrusted    a self-signed certificate the client does not trust
  tls-wrong-name   issued by the test CA for `wrong-name.test` only
  tls-1.0          TLS 1.0 only (OpenSSL needs @SECLEVEL=0 for it)
  thief            the redirect target: must never receive anything

Run alone: `scripts/hostile_as.py [--dir DIR]` prints the addresses (JSON)
and serves until interrupted. The fault matrix imports it.
"""
import argparse
import base64
import json
import os
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import warnings

HOST = "127.0.0.1"

# What `ok` expects from certbound (and what the matrix configures).
API_KEY = "hostile-api-key"
API_SECRET = "hostile-api-secret-value"
RS_CLIENT_ID = "hostile-rs"
RS_CLIENT_SECRET = "hostile-rs-secret-value"


def _openssl(args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(directory):
    """Test CA, leaf certificates and the self-signed one, made with the openssl CLI."""
    d = directory
    os.makedirs(d, exist_ok=True)
    if os.path.exists(os.path.join(d, "done")):
        return
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    _openssl(["req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
              "-subj", "/CN=hostile test CA",
              "-addext", "basicConstraints=critical,CA:TRUE",
              "-addext", "keyUsage=critical,keyCertSign,cRLSign"], d)
    for name, san in [("server", "IP:127.0.0.1,DNS:localhost"),
                      ("wrong-name", "DNS:wrong-name.test")]:
        _openssl(["req", "-new", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                  "-subj", f"/CN={name}"], d)
        with open(os.path.join(d, f"{name}.ext"), "w") as f:
            f.write(f"subjectAltName={san}\nbasicConstraints=CA:FALSE\n"
                    "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n")
        _openssl(["x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                  "-CAcreateserial", "-out", f"{name}.pem", "-days", "2",
                  "-extfile", f"{name}.ext"], d)
    _openssl(["req", "-x509", *ec, "-keyout", "untrusted.key", "-out", "untrusted.pem",
              "-days", "2", "-subj", "/CN=untrusted",
              "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
              "-addext", "basicConstraints=CA:FALSE"], d)
    open(os.path.join(d, "done"), "w").close()


class Recorder:
    """What each listener received (thread-safe)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.events = []

    def add(self, listener, what, **info):
        with self.lock:
            self.events.append(dict(listener=listener, what=what, t=time.monotonic(), **info))

    def count(self, listener=None, what=None, case=None, since=0.0):
        with self.lock:
            return sum(1 for e in self.events
                       if (listener is None or e["listener"] == listener)
                       and (what is None or e["what"] == what)
                       and (case is None or e.get("case") == case)
                       and e["t"] >= since)


def read_request(conn, buf):
    """One HTTP/1.1 request from `conn` (bytes already read in `buf`).
    Returns (method, target, headers, body, rest) or None at EOF."""
    while b"\r\n\r\n" not in buf:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        buf += chunk
        if len(buf) > 1 << 20:
            return None
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = (lines[0].split(" ") + ["", ""])[:3]
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    length = int(headers.get("content-length", "0") or 0)
    while len(rest) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        rest += chunk
    return method, target, headers, rest[:length], rest[length:]


def response(status, body=b"", content_type="application/json", extra=(), keep_alive=True):
    reason = {200: "OK", 307: "Temporary Redirect", 401: "Unauthorized", 403: "Forbidden",
              503: "Service Unavailable"}.get(status, "Status")
    lines = [f"HTTP/1.1 {status} {reason}", f"Content-Type: {content_type}",
             f"Content-Length: {len(body)}",
             "Connection: keep-alive" if keep_alive else "Connection: close", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def backend_kind(path):
    path = path.split("?", 1)[0]
    if path.endswith("/auth/introspection"):
        return "authlete"
    if path.endswith("/introspect"):
        return "rfc7662"
    if path.endswith("/jwks"):
        return "jwks"
    if "/.well-known/" in path:
        return "metadata"
    return "unknown"


def b64url_uint(n):
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


class Behaviour:
    """What the healthy answers say: the token's certificate thumbprint, the
    JWKS, the issuer. Set by the matrix before the first call."""

    def __init__(self):
        self.thumbprint = ""
        self.jwks = {"keys": []}
        self.issuer = "https://issuer.hostile.test"
        self.idle_close_ms = 200
        # idle-close: say `Keep-Alive: timeout=N` (N = idle_close_ms in whole
        # seconds, at least 1), as Node's HTTP server does; nginx does not by default.
        self.announce_keep_alive = False
        self.thief_url = ""
        # idle-close: the JWKS of the n-th fetch (None: always `jwks`).
        self.rotating_jwks = None
        self.jwks_fetches = 0

    def ok_body(self, kind, base_url):
        if kind == "authlete":
            return {"type": "introspectionResponse", "resultCode": "A056001",
                    "resultMessage": "[A056001] The access token is valid.", "action": "OK",
                    "clientId": 1234, "subject": "john", "scopes": ["accounts"],
                    "expiresAt": 4102444800000, "existent": True, "usable": True,
                    "sufficient": True, "certificateThumbprint": self.thumbprint}
        if kind == "rfc7662":
            return {"active": True, "client_id": "tpp", "sub": "john", "scope": "accounts",
                    "exp": 4102444800, "iat": int(time.time()) - 5, "token_type": "Bearer",
                    "cnf": {"x5t#S256": self.thumbprint}}
        if kind == "jwks":
            return self.jwks
        if kind == "metadata":
            return {"issuer": self.issuer, "jwks_uri": base_url + "/jwks"}
        return {"error": "not_found"}

    def credentials_ok(self, kind, headers):
        auth = headers.get("authorization", "")
        if kind == "authlete":
            v2 = "Basic " + base64.b64encode(f"{API_KEY}:{API_SECRET}".encode()).decode()
            return auth == v2 or auth == f"Bearer {API_SECRET}"
        if kind == "rfc7662":
            return auth == "Basic " + base64.b64encode(
                f"{RS_CLIENT_ID}:{RS_CLIENT_SECRET}".encode()).decode()
        return True


def wrong_types(kind):
    return {"authlete": {"action": 3},
            "rfc7662": {"active": "true"},
            "jwks": {"keys": "k1"}}.get(kind, {"issuer": 5})


def wrong_exp(kind):
    return {"authlete": {"action": "OK", "subject": "john", "expiresAt": "soon"},
            "rfc7662": {"active": True, "sub": "john", "exp": "soon"},
            "jwks": {"keys": [{"kty": "RSA", "kid": "k1", "n": 5, "e": "AQAB"}]}}.get(kind, {})


class HttpCases:
    """The plain-HTTP listener: one thread per connection, behaviour by path."""

    name = "http"

    def __init__(self, recorder, behaviour, tls_context=None, name="http"):
        self.recorder = recorder
        self.behaviour = behaviour
        self.tls_context = tls_context
        self.name = name
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((HOST, 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.recorder.add(self.name, "connection")
        try:
            if self.tls_context is not None:
                conn.settimeout(5)
                try:
                    conn = self.tls_context.wrap_socket(conn, server_side=True)
                except (ssl.SSLError, OSError) as e:
                    self.recorder.add(self.name, "tls_failure", error=str(e)[:200])
                    return
                conn.settimeout(None)
                self.recorder.add(self.name, "tls_ok", version=conn.version())
            buf = b""
            while True:
                req = read_request(conn, buf)
                if req is None:
                    return
                method, target, headers, body, buf = req
                if not self._answer(conn, method, target, headers, body):
                    return
                if buf == b"" and not self._wait_for_next(conn, target):
                    return
        except OSError:
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def _wait_for_next(self, conn, target):
        """`idle-close`: the connection is closed when idle for idle_close_ms."""
        if not target.startswith("/c/idle-close/"):
            return True
        conn.settimeout(self.behaviour.idle_close_ms / 1000)
        try:
            data = conn.recv(1, socket.MSG_PEEK)
        except (socket.timeout, TimeoutError):
            self.recorder.add(self.name, "idle_closed", case="idle-close")
            return False
        finally:
            conn.settimeout(None)
        return bool(data)

    def _answer(self, conn, method, target, headers, body):
        """Answers one request; False closes the connection."""
        parts = target.split("/")
        case = parts[2] if len(parts) > 3 and parts[1] == "c" else "ok"
        base_url = f"{'https' if self.tls_context else 'http'}://{HOST}:{self.port}/c/{case}"
        kind = backend_kind(target)
        self.recorder.add(self.name, "request", case=case, kind=kind, method=method,
                          path=target.split("?", 1)[0],
                          authorization=bool(headers.get("authorization")))
        send = conn.sendall
        b = self.behaviour

        def json_reply(status, obj, **kw):
            send(response(status, json.dumps(obj).encode(), **kw))
            return True

        if case in ("ok", "idle-close"):
            if not b.credentials_ok(kind, headers):
                return json_reply(401, {"error": "invalid_client"},
                                  extra=['WWW-Authenticate: Basic realm="as"'])
            body = b.ok_body(kind, base_url)
            if case == "idle-close" and kind == "jwks" and b.rotating_jwks:
                b.jwks_fetches += 1
                body = b.rotating_jwks(b.jwks_fetches)
            announce = case == "idle-close" and b.announce_keep_alive
            return json_reply(200, body,
                              extra=["Keep-Alive: timeout=%d" % max(1, b.idle_close_ms // 1000)]
                              if announce else ())
        if case == "status-503":
            return json_reply(503, {"error": "temporarily_unavailable"})
        if case == "status-401":
            return json_reply(401, {"error": "invalid_client"},
                              extra=['WWW-Authenticate: Basic realm="as"'])
        if case == "status-403":
            return json_reply(403, {"error": "access_denied"})
        if case == "empty":
            send(response(200, b""))
            return True
        if case == "not-json":
            send(response(200, b"<html><body>Service maintenance</body></html>",
                          content_type="text/html"))
            return True
        if case == "wrong-types":
            return json_reply(200, wrong_types(kind))
        if case == "wrong-exp":
            return json_reply(200, wrong_exp(kind))
        if case in ("big", "big-chunked"):
            size = 10 * 1000 * 1000
            filler = b'{"active": true, "pad": "' + b"x" * (size - 27) + b'"}'
            if case == "big":
                head = response(200, b"")[:-4].replace(b"Content-Length: 0",
                                                       f"Content-Length: {size}".encode())
                send(head + b"\r\n\r\n")
                for i in range(0, len(filler), 65536):
                    send(filler[i:i + 65536])
            else:
                send(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
                for i in range(0, len(filler), 65536):
                    part = filler[i:i + 65536]
                    send(b"%x\r\n" % len(part) + part + b"\r\n")
                send(b"0\r\n\r\n")
            return True
        if case == "nested":
            depth = 100_000
            doc = b'{"active": true, "x": ' + b"[" * depth + b"]" * depth + b"}"
            send(response(200, doc))
            return True
        if case == "redirect":
            send(response(307, b"", extra=[f"Location: {b.thief_url}{target}"]))
            return True
        if case == "slow-drip":
            body = json.dumps(b.ok_body(kind, base_url)).encode().ljust(100_000)
            send(response(200, body)[:-len(body)])
            for byte in body:
                time.sleep(0.1)
                send(bytes([byte]))
            return True
        if case == "no-answer":
            while conn.recv(65536):
                pass
            return False
        if case == "reset":
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False
        return json_reply(404, {"error": "unknown case"})

    def stop(self):
        self.stopped = True
        self.sock.close()


class Thief:
    """The redirect target: records every connection and every byte."""

    def __init__(self, recorder):
        self.recorder = recorder
        self.sock = socket.socket()
        self.sock.bind((HOST, 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.recorder.add("thief", "connection")
            conn.settimeout(2)
            try:
                data = conn.recv(65536)
                if data:
                    self.recorder.add("thief", "request", authorization=b"authorization" in data.lower())
            except OSError:
                pass
            conn.close()

    def stop(self):
        self.sock.close()


class Blackhole:
    """A listening socket that never accepts, its accept queue filled by
    connections of our own: the kernel drops further SYNs, and a client's
    connect attempt times out (loopback only, no external address)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind((HOST, 0))
        self.sock.listen(0)
        self.port = self.sock.getsockname()[1]
        self.fillers = []
        for _ in range(16):
            s = socket.socket()
            s.settimeout(0.3)
            try:
                s.connect((HOST, self.port))
            except (socket.timeout, TimeoutError, OSError):
                s.close()
                break
            self.fillers.append(s)
        else:
            raise RuntimeError("could not fill the accept queue of the blackhole listener")

    def stop(self):
        for s in self.fillers:
            s.close()
        self.sock.close()


def refused_port():
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def tls_context(cert, key, tls10=False):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    if tls10:
        # Debian's OpenSSL refuses TLS 1.0 at its default security level
        # ("no ciphers available" without @SECLEVEL=0: checked).
        ctx.set_ciphers("ALL:@SECLEVEL=0")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ssl.TLSVersion.TLSv1
            ctx.maximum_version = ssl.TLSVersion.TLSv1
    return ctx


class HostileAS:
    """Every listener, started; `urls` says where."""

    def __init__(self, directory):
        make_pki(directory)
        self.dir = directory
        self.ca_file = os.path.join(directory, "ca.pem")
        self.recorder = Recorder()
        self.behaviour = Behaviour()
        p = lambda name: os.path.join(directory, name)  # noqa: E731
        self.http = HttpCases(self.recorder, self.behaviour)
        self.thief = Thief(self.recorder)
        self.behaviour.thief_url = f"http://{HOST}:{self.thief.port}"
        self.blackhole = Blackhole()
        self.refused = refused_port()
        self.tls = {
            "tls-ok": HttpCases(self.recorder, self.behaviour,
                                tls_context(p("server.pem"), p("server.key")), "tls-ok"),
            "tls-untrusted": HttpCases(self.recorder, self.behaviour,
                                       tls_context(p("untrusted.pem"), p("untrusted.key")),
                                       "tls-untrusted"),
            "tls-wrong-name": HttpCases(self.recorder, self.behaviour,
                                        tls_context(p("wrong-name.pem"), p("wrong-name.key")),
                                        "tls-wrong-name"),
            "tls-1.0": HttpCases(self.recorder, self.behaviour,
                                 tls_context(p("server.pem"), p("server.key"), tls10=True),
                                 "tls-1.0"),
        }

    def base(self, case):
        """The base URL (no trailing slash) of a case."""
        if case == "refused":
            return f"http://{HOST}:{self.refused}/c/ok"
        if case == "blackhole":
            return f"http://{HOST}:{self.blackhole.port}/c/ok"
        if case in self.tls:
            return f"https://{HOST}:{self.tls[case].port}/c/ok"
        return f"http://{HOST}:{self.http.port}/c/{case}"

    def urls(self):
        cases = ["ok", "status-503", "status-401", "status-403", "empty", "not-json",
                 "wrong-types", "wrong-exp", "big", "big-chunked", "nested", "redirect",
                 "slow-drip", "no-answer", "reset", "idle-close", "refused", "blackhole",
                 *self.tls]
        return {"ca_file": self.ca_file, "thief": self.behaviour.thief_url,
                "cases": {c: self.base(c) for c in cases}}

    def stop(self):
        self.http.stop()
        self.thief.stop()
        self.blackhole.stop()
        for s in self.tls.values():
            s.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", help="where the test PKI goes (default: a temporary directory)")
    ap.add_argument("--thumbprint", default="", help="x5t#S256 the healthy answers bind the token to")
    args = ap.parse_args()
    directory = args.dir or tempfile.mkdtemp(prefix="hostile-as-")
    os.makedirs(directory, exist_ok=True)
    server = HostileAS(directory)
    server.behaviour.thumbprint = args.thumbprint
    print(json.dumps(server.urls(), indent=2), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
