#!/usr/bin/env python3
"""Runs the certbound binary under the Lambda Runtime API emulator
(`cargo lambda watch --only-lambda-apis`) and invokes it with every file in
events/, against an Authlete introspection double (stdlib HTTP server, JSON as
Authlete documents it). Asserts Allow / Deny / Unauthorized / Internal Server
Error as the Runtime API delivers them, and measures cold start (process start
to first answered invocation), binary size and peak RSS.

With --real-as (run by scripts/e2e.sh while the local stack is up, with
scripts/env.sh sourced) it uses the real AS instead: a certificate-bound token
for client-a obtained over nginx mTLS, events made by scripts/make-event.py,
and the RFC 7662 backend configured by the CERTBOUND_* variables.

Usage: scripts/lambda_runtime_test.py [--bin PATH] [--cold-starts N] [--real-as]
Prints one line per case and `lambda-runtime: N passed, M failed`.
"""
import argparse
import base64
import hashlib
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import ssl
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# cargo-lambda at the version pinned in scripts/tools-requirements.txt, which
# `make deps` installs there; first on PATH, so cargo runs it and not another
# cargo-lambda on PATH.
TOOLS_BIN = os.path.join(REPO, ".tools", "venv", "bin")
API_KEY, API_SECRET = "5593494639", "double-secret"
# The API key value of the double's client (alias "tpp") for REST usage plans.
USAGE_KEY = "usage-key-tpp-7Qm2xV9pL4sR8nK3"
EVENT_TOKEN = "Mx9c3Ufo1kcbl4Jd0Vn3nqGNM2vA3hT2-_8sWl2aHno"


def record_secret(label, value):
    """Remembers a secret for the scan at the end of `make test`
    (scripts/secret_scan.py), when SECRET_SCAN_FILE is set."""
    path = os.environ.get("SECRET_SCAN_FILE")
    if path and value:
        with open(path, "a") as f:
            f.write(f"{label}\t{value}\n")


def answer(action, **extra):
    contents = {
        "UNAUTHORIZED": 'Bearer error="invalid_token",error_description="[A065304] The access token does not exist."',
        "FORBIDDEN": 'Bearer error="insufficient_scope",error_description="[A064302] scope",scope="admin"',
        "INTERNAL_SERVER_ERROR": 'Bearer error="server_error",error_description="[A001101] error"',
    }
    body = {"type": "introspectionResponse", "action": action, "resultCode": "A0000",
            "resultMessage": f"[A0000] {action}", "responseContent": contents.get(action)}
    if action == "OK":
        body.update({"clientId": 1234, "clientIdAlias": "tpp", "clientIdAliasUsed": True,
                     "subject": "john", "scopes": ["accounts"], "expiresAt": 4102444800000})
    body.update(extra)
    return body


class JsonReply:
    """Quiet JSON answers for the stdlib HTTP doubles (also used by reference_diff.py)."""

    def log_message(self, *args):
        pass

    def reply(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def stop_process(proc):
    """Terminates a child we started, killing it if it lingers."""
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def thumbprint(pem):
    """x5t#S256 of a PEM certificate (base64url SHA-256 of the DER, no padding)."""
    der = ssl.PEM_cert_to_DER_cert(pem)
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).decode().rstrip("=")


# The certificate of events/*.json: the event token is bound to it.
EVENTS_THUMBPRINT = "t9i3fFFsi40iaYFo6grXDTsBiCbSEynf5czFoatax44"


class AuthleteDouble(JsonReply, BaseHTTPRequestHandler):
    """Like Authlete for a token bound to the events' certificate: UNAUTHORIZED
    for an unknown token, or without (or with another) client certificate;
    OK with certificateThumbprint otherwise."""

    def do_POST(self):
        expected = "Basic " + base64.b64encode(f"{API_KEY}:{API_SECRET}".encode()).decode()
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path != "/api/auth/introspection" or self.headers.get("Authorization") != expected:
            return self.reply(401, {"resultCode": "A001202", "resultMessage": "bad credentials"})
        req = json.loads(body)
        if req.get("token") != EVENT_TOKEN:
            return self.reply(200, answer("UNAUTHORIZED"))
        pem = req.get("clientCertificate")
        if not pem or thumbprint(pem) != EVENTS_THUMBPRINT:
            return self.reply(200, answer("UNAUTHORIZED"))
        return self.reply(200, answer("OK", certificateThumbprint=EVENTS_THUMBPRINT))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


def invoke(port, payload, timeout=20):
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/2015-03-31/functions/_/invocations",
        data=payload, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def outcome(status, body):
    if isinstance(body, dict) and "errorMessage" in body:
        return f"error:{body['errorMessage']}"
    if isinstance(body, dict) and "isAuthorized" in body:
        return "simple:" + ("Allow" if body["isAuthorized"] else "Deny")
    try:
        return body["policyDocument"]["Statement"][0]["Effect"]
    except (TypeError, KeyError, IndexError):
        return f"unexpected:{status}:{body}"


def peak_rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class Emulator:
    """`cargo lambda watch --only-lambda-apis`: the Runtime API, no function."""

    def __init__(self, log):
        if not os.access(os.path.join(TOOLS_BIN, "cargo-lambda"), os.X_OK):
            sys.exit(f"{TOOLS_BIN}/cargo-lambda is missing: run `make deps` (scripts/install-lambda-tools.sh)")
        self.port = free_port()
        env = dict(os.environ, PATH=TOOLS_BIN + os.pathsep + os.environ.get("PATH", ""))
        self.proc = subprocess.Popen(
            ["cargo", "lambda", "watch", "--only-lambda-apis", "-A", "127.0.0.1", "-P", str(self.port)],
            cwd=REPO, env=env, stdout=log, stderr=log)
        self.ready = wait_port(self.port)

    def stop(self):
        stop_process(self.proc)


class Function:
    """One certbound process attached to the emulator."""

    def __init__(self, binary, rt_port, env, log, stdout=None):
        full = {
            "PATH": os.environ.get("PATH", ""),
            "AWS_LAMBDA_FUNCTION_VERSION": "1",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
            # as template.yaml sets it for the functions
            "MIMALLOC_ARENA_EAGER_COMMIT": "0",
            "AWS_LAMBDA_FUNCTION_NAME": "_",
            "AWS_LAMBDA_RUNTIME_API": f"http://127.0.0.1:{rt_port}/.rt",
            # make test runs this at debug (the secret scan reads the logs)
            "RUST_LOG": os.environ.get("RUST_LOG", "info"),
        }
        full.update(env)
        self.started = time.perf_counter()
        self.proc = subprocess.Popen([binary], env=full, stdout=stdout or log, stderr=log)

    def stop(self):
        rss = peak_rss_kib(self.proc.pid)
        stop_process(self.proc)
        return rss


# The verdict an EMF document names, by outcome as the Runtime API delivers it.
EMF_VERDICT = {"Allow": "Allow", "simple:Allow": "Allow", "Deny": "Deny", "simple:Deny": "Deny",
               "error:Unauthorized": "Unauthorized",
               "error:Internal Server Error": "InternalServerError"}


class Stdout:
    """A function's stdout in a file of its own, read invocation by invocation."""

    def __init__(self, name):
        self.path = os.path.join(REPO, "target", name)
        self.file = open(self.path, "w")
        self.offset = 0

    def new_lines(self):
        with open(self.path) as f:
            f.seek(self.offset)
            text = f.read()
            self.offset = f.tell()
        return [line for line in text.splitlines() if line.strip()]


def check_emf(lines, want):
    """At most one EMF document per invocation; it parses, follows the EMF
    structure and names the verdict delivered. Returns a problem or None."""
    docs = []
    for line in lines:
        try:
            doc = json.loads(line)
        except ValueError:
            return f"stdout line is not JSON: {line[:80]}"
        if isinstance(doc, dict) and "_aws" in doc:
            docs.append(doc)
    if len(docs) != 1:
        return f"{len(docs)} EMF documents for one invocation"
    doc = docs[0]
    aws = doc["_aws"]
    if not isinstance(aws.get("Timestamp"), int) or not aws.get("CloudWatchMetrics"):
        return "no _aws.Timestamp / CloudWatchMetrics"
    for d in aws["CloudWatchMetrics"]:
        if not isinstance(d.get("Namespace"), str) or not d.get("Dimensions") or not d.get("Metrics"):
            return f"incomplete directive {d}"
        for dims in d["Dimensions"]:
            if any(not isinstance(doc.get(k), str) for k in dims):
                return f"dimension of {dims} not a top-level string"
        for m in d["Metrics"]:
            if not isinstance(doc.get(m["Name"]), (int, float, list)):
                return f"metric {m['Name']} has no value"
    if doc.get("Verdict") != EMF_VERDICT.get(want) or doc.get("Decisions") != 1:
        return f"Verdict {doc.get('Verdict')} / Decisions {doc.get('Decisions')} for {want}"
    return None


def main():
    ap = argparse.ArgumentParser()
    default_bin = os.path.join(REPO, "target/lambda/certbound/bootstrap")
    if not os.path.exists(default_bin):
        default_bin = os.path.join(REPO, "target/release/certbound")
    ap.add_argument("--bin", default=default_bin)
    ap.add_argument("--cold-starts", type=int, default=7)
    ap.add_argument("--real-as", action="store_true")
    args = ap.parse_args()
    if args.real_as:
        return real_as(args)
    record_secret("access token (events/)", EVENT_TOKEN)
    record_secret("Authlete API secret (double)", API_SECRET)
    record_secret("usage plan API key (double's client)", USAGE_KEY)

    double = ThreadingHTTPServer(("127.0.0.1", 0), AuthleteDouble)
    threading.Thread(target=double.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{double.server_address[1]}"

    os.makedirs(os.path.join(REPO, "target"), exist_ok=True)
    log = open(os.path.join(REPO, "target/lambda-runtime-test.log"), "w")
    emulator = Emulator(log)
    rt_port = emulator.port
    passed = failed = 0
    try:
        if not emulator.ready:
            print("emulator did not start; see target/lambda-runtime-test.log")
            return 1
        authlete = {"AUTHLETE_BASE_URL": base, "AUTHLETE_SERVICE_APIKEY": API_KEY,
                    "AUTHLETE_SERVICE_APISECRET": API_SECRET}
        down = dict(authlete, AUTHLETE_BASE_URL=f"http://127.0.0.1:{free_port()}")
        events = {name: open(os.path.join(REPO, "events", name), "rb").read()
                  for name in sorted(os.listdir(os.path.join(REPO, "events"))) if name.endswith(".json")}
        events["malformed (TOKEN without methodArn)"] = b'{"type":"TOKEN","authorizationToken":"Bearer x"}'
        events["not an object"] = b'"hello"'
        expected = {
            "policy=true": (dict(authlete), {
                "http-api-v2.json": "Allow", "rest-request-dpop.json": "Allow", "rest-request.json": "Allow",
                "rest-request-no-cert.json": "Deny", "token.json": "Deny",
                "malformed (TOKEN without methodArn)": "error:Internal Server Error",
                "not an object": "error:Internal Server Error"}),
            "policy=false, simple": (dict(authlete, CERTBOUND_POLICY="false", CERTBOUND_HTTP_API_RESPONSE="simple"), {
                "http-api-v2.json": "simple:Allow", "rest-request.json": "Allow",
                "rest-request-no-cert.json": "error:Unauthorized", "token.json": "error:Unauthorized"}),
            "AS down, policy=true": (dict(down), {"rest-request.json": "Deny", "http-api-v2.json": "Deny"}),
            "AS down, policy=false": (dict(down, CERTBOUND_POLICY="false"), {
                "rest-request.json": "error:Internal Server Error",
                "http-api-v2.json": "error:Internal Server Error"}),
        }
        rss = []
        emf_invocations = emf_problems = 0
        for i, (label, (env, cases)) in enumerate(expected.items()):
            stdout = Stdout(f"lambda-runtime-stdout-{i}.log")
            fn = Function(args.bin, rt_port, env, log, stdout.file)
            for name, want in cases.items():
                got = outcome(*invoke(rt_port, events[name]))
                ok = got == want
                passed += ok
                failed += not ok
                print(f"{'PASS' if ok else 'FAIL'}  [{label}] {name}: want {want}, got {got}")
                problem = check_emf(stdout.new_lines(), want)
                emf_invocations += 1
                if problem:
                    emf_problems += 1
                    print(f"FAIL  [{label}] {name}: EMF: {problem}")
            rss.append(fn.stop())
        ok = emf_problems == 0
        passed += ok
        failed += not ok
        print(f"{'PASS' if ok else 'FAIL'}  [EMF] one valid EMF document on stdout for each of "
              f"{emf_invocations} invocations, naming the verdict delivered")
        # Usage plans: the client's API key on a REST Allow, never on HTTP API
        # events, never in the function's own log (at trace).
        usage_log_path = os.path.join(REPO, "target/lambda-runtime-usage.log")
        with open(usage_log_path, "w") as usage_log:
            keys = json.dumps({"tpp": USAGE_KEY, "other-client": "usage-key-other-0000000000"})
            fn = Function(args.bin, rt_port, dict(authlete, CERTBOUND_USAGE_KEYS=keys, RUST_LOG="trace"),
                          usage_log, log)
            # events/rest-request.json carries `"version": "1.0"`, which makes it an
            # HTTP API 1.0 event (REST APIs send no version): without it, REST.
            rest_event = json.loads(events["rest-request.json"])
            rest_event.pop("version", None)
            _, rest = invoke(rt_port, json.dumps(rest_event).encode())
            _, http_v1 = invoke(rt_port, events["rest-request.json"])
            _, v2 = invoke(rt_port, events["http-api-v2.json"])
            fn.stop()
        ok = (outcome(200, rest) == "Allow" and rest.get("usageIdentifierKey") == USAGE_KEY
              and outcome(200, v2) == "Allow" and "usageIdentifierKey" not in v2
              and outcome(200, http_v1) == "Allow" and "usageIdentifierKey" not in http_v1
              and USAGE_KEY not in open(usage_log_path).read())
        passed += ok
        failed += not ok
        print(f"{'PASS' if ok else 'FAIL'}  [CERTBOUND_USAGE_KEYS] REST Allow carries the client's "
              f"usageIdentifierKey, HTTP API 1.0 and 2.0 none, the key in no log line"
              + ("" if ok else f": REST {outcome(200, rest)}, key {'right' if rest.get('usageIdentifierKey') == USAGE_KEY else 'wrong'}; "
                 f"HTTP API {outcome(200, v2)}, key {'absent' if 'usageIdentifierKey' not in v2 else 'present'}"))
        # CERTBOUND_METRICS=off: nothing on stdout.
        stdout = Stdout("lambda-runtime-stdout-off.log")
        fn = Function(args.bin, rt_port, dict(authlete, CERTBOUND_METRICS="off"), log, stdout.file)
        got = outcome(*invoke(rt_port, events["rest-request.json"]))
        lines = stdout.new_lines()
        fn.stop()
        ok = got == "Allow" and not lines
        passed += ok
        failed += not ok
        print(f"{'PASS' if ok else 'FAIL'}  [CERTBOUND_METRICS=off] {got}, {len(lines)} stdout lines")

        # RUST_LOG=trace: lambda_runtime would log every raw event (with the
        # Authorization header); certbound caps its dependencies at info.
        trace_log_path = os.path.join(REPO, "target/lambda-runtime-trace.log")
        with open(trace_log_path, "w") as trace_log:
            fn = Function(args.bin, rt_port, dict(authlete, RUST_LOG="trace"), trace_log)
            for name in ("rest-request.json", "http-api-v2.json", "token.json"):
                invoke(rt_port, events[name])
            invoke(rt_port, b'{"type":"REQUEST","headers":{"Authorization":["Bearer ' + EVENT_TOKEN.encode() + b'",5]}}')
            fn.stop()
        text = open(trace_log_path).read()
        pem_line = "MIIBzDCCAXGgAwIBAgIUOI3fMszDoInlRlHelxGUQ4MsWNMw"
        leaks = [what for what, needle in (("token", EVENT_TOKEN), ("PEM body", pem_line), ("API secret", API_SECRET))
                 if needle in text]
        ok = not leaks and '"message":"decision"' in text
        passed += ok
        failed += not ok
        print(f"{'PASS' if ok else 'FAIL'}  [RUST_LOG=trace] no token, PEM body or secret in {len(text.splitlines())} log lines"
              + (f": found {', '.join(leaks)}" if leaks else ""))

        # Cold start: spawn, invoke at once (the emulator holds the event
        # until the runtime asks for it), time to the answer.
        colds = []
        for _ in range(args.cold_starts):
            fn = Function(args.bin, rt_port, dict(authlete), log)
            got = outcome(*invoke(rt_port, events["rest-request.json"]))
            colds.append((time.perf_counter() - fn.started) * 1000)
            rss.append(fn.stop())
            if got != "Allow":
                failed += 1
                print(f"FAIL  cold start answered {got}")
        warm = []
        fn = Function(args.bin, rt_port, dict(authlete), log)
        for _ in range(50):
            t = time.perf_counter()
            invoke(rt_port, events["rest-request.json"])
            warm.append((time.perf_counter() - t) * 1000)
        rss.append(fn.stop())
        size = os.path.getsize(args.bin)
        rss = [r for r in rss if r]
        print(f"binary: {args.bin} {size / 1e6:.1f} MB")
        print(f"cold start (spawn → first answer, n={len(colds)}): median {statistics.median(colds):.1f} ms, "
              f"min {min(colds):.1f} ms, max {max(colds):.1f} ms")
        print(f"warm invocation through the emulator (n=50): median {statistics.median(warm):.2f} ms")
        if rss:
            print(f"peak RSS: median {statistics.median(rss) / 1024:.1f} MiB, max {max(rss) / 1024:.1f} MiB")
    finally:
        emulator.stop()
        double.shutdown()
    print(f"lambda-runtime: {passed} passed, {failed} failed")
    return 1 if failed else 0


def stack_token(scope="api:read"):
    out = subprocess.run(
        ["curl", "-sf", "--cacert", os.environ["STACK_CA_CERT"],
         "--cert", os.environ["STACK_CLIENT_A_CERT"], "--key", os.environ["STACK_CLIENT_A_KEY"],
         "-d", "grant_type=client_credentials", "-d", "client_id=client-a", "-d", f"scope={scope}",
         os.environ["STACK_AS_URL"] + "/token"], capture_output=True, text=True, check=True)
    token = json.loads(out.stdout)["access_token"]
    record_secret("access token (client-a, real AS)", token)
    return token


def stack_event(token, cert, method, path):
    out = subprocess.run([sys.executable, os.path.join(REPO, "scripts/make-event.py"),
                          token, cert, method, path, "-"], capture_output=True, check=True)
    return out.stdout


def real_as(args):
    """The release binary under the emulator, against the running stack's AS."""
    passed = failed = 0
    env = {k: v for k, v in os.environ.items() if k.startswith("CERTBOUND_") and k != "CERTBOUND_BIN"}
    env.pop("CERTBOUND_CERT_HEADER", None)
    a, b = os.environ["STACK_CLIENT_A_CERT"], os.environ["STACK_CLIENT_B_CERT"]
    token = stack_token()
    events = {
        "GET, A's cert": stack_event(token, a, "GET", "/example"),
        "GET, B's cert": stack_event(token, b, "GET", "/example"),
        "GET, no cert": stack_event(token, "", "GET", "/example"),
        "POST (needs api:write), A's cert": stack_event(token, a, "POST", "/example"),
        "GET, bogus token, A's cert": stack_event("bogus-token", a, "GET", "/example"),
    }
    expected = {
        "policy=true": (dict(env), ["Allow", "Deny", "Deny", "Deny", "Deny"]),
        "policy=false": (dict(env, CERTBOUND_POLICY="false"),
                         ["Allow", "error:Unauthorized", "error:Unauthorized", "Deny", "error:Unauthorized"]),
    }
    os.makedirs(os.path.join(REPO, "target"), exist_ok=True)
    log = open(os.path.join(REPO, "target/lambda-runtime-real-as.log"), "w")
    emulator = Emulator(log)
    rt_port = emulator.port
    try:
        if not emulator.ready:
            print("emulator did not start; see target/lambda-runtime-real-as.log")
            return 1
        for label, (fn_env, wants) in expected.items():
            fn = Function(args.bin, rt_port, fn_env, log)
            for (name, payload), want in zip(events.items(), wants):
                got = outcome(*invoke(rt_port, payload))
                ok = got == want
                passed += ok
                failed += not ok
                print(f"{'PASS' if ok else 'FAIL'}  [real AS, {label}] {name}: want {want}, got {got}")
            fn.stop()
    finally:
        emulator.stop()
    print(f"lambda-runtime (real AS): {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
