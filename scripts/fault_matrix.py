#!/usr/bin/env python3
"""The fault matrix: every backend that calls an AS over HTTP (Authlete,
RFC 7662, JWT/JWKS) against every way scripts/hostile_as.py misbehaves.

For each backend and case, `certbound serve` is started with the backend
pointed at the hostile AS and asked once (the decision log line, the HTTP
status and the answer time are recorded), then `certbound invoke` is run with
the same configuration (Lambda policy, exit status, time minus the process's
own start). Every case must:
  - never Allow (the controls, a healthy AS, must Allow), never crash;
  - answer within CERTBOUND_TIMEOUT_MS + 100 ms;
  - give the expected reason (as_unavailable / as_error) and a detail that
    names the case, the same detail on every backend where the situation is
    the same;
  - leak nothing: no token, secret or PEM body in any output;
  - for the redirect: the other host receives nothing at all.
The keep-alive case makes several calls through one `serve` process while the
AS closes each connection when it has been idle for 200 ms: every call Allowed.

Usage: scripts/fault_matrix.py [--bin target/lambda/certbound/bootstrap] [--markdown FILE]
       [--timeout-ms 1000] [--connect-timeout-ms 300] [--backends a,b] [--cases x,y]
       scripts/fault_matrix.py --keepalive-race N [--bin …]
Last line: `fault-matrix: N passed, M failed`.

--keepalive-race N measures instead (no pass/fail): N calls through one
`serve` (RFC 7662) to an AS that closes connections after 200 ms idle, each
call landing within 4 ms of that close; once with an AS that closes silently,
once with one that announces `Keep-Alive: timeout=1`. Prints how many
answered 500 and why.
"""
import argparse
import base64
import hashlib
import http.client
import json
import os
import re
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
warnings.filterwarnings("ignore", category=DeprecationWarning)  # ssl.TLSVersion.TLSv1
import hostile_as as h  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OPAQUE_TOKEN = "hostile-opaque-token-Zq8xW3vN5tY7uR1k"
ISSUER = "https://issuer.hostile.test"
AUDIENCE = "https://api.hostile.test"
BACKENDS = ["authlete", "rfc7662", "jwt"]

# (id, what the AS does, hostile_as case, expected reason or "allow",
#  phrase the detail must contain)
CASES = [
    ("healthy", "healthy (control)", "ok", "allow", ""),
    ("tls-healthy", "healthy over TLS (control)", "tls-ok", "allow", ""),
    ("refused", "nothing listens (connection refused)", "refused", "as_unavailable",
     "connect refused"),
    ("connect-timeout", "SYNs dropped (accept queue full)", "blackhole", "as_unavailable",
     "connect timeout"),
    ("no-answer", "reads the request, never answers", "no-answer", "as_unavailable",
     "read timeout: no answer"),
    ("slow-drip", "answer head, then 1 body byte / 100 ms", "slow-drip", "as_unavailable",
     "read timeout mid-body"),
    ("reset", "reads the request, resets the connection", "reset", "as_unavailable",
     "connection reset by the AS"),
    ("5xx", "HTTP 503", "status-503", "as_error", "HTTP 503 (server error)"),
    ("401", "HTTP 401: certbound's credentials are wrong (JWKS: 401)", "wrong-credentials",
     "as_error", "HTTP 401 (credentials refused)"),
    ("403", "HTTP 403", "status-403", "as_error", "HTTP 403 (caller refused)"),
    ("empty", "200, empty body", "empty", "as_error", "empty body"),
    ("not-json", "200, text/html", "not-json", "as_error", "body is not JSON"),
    ("wrong-types", '`"active":"true"` / `action: 3` / `keys: "k1"`', "wrong-types", "as_error",
     "wrong types"),
    ("wrong-exp", '`exp: "soon"` / `expiresAt: "soon"` / JWK `n: 5`', "wrong-exp", "as_error",
     ""),
    ("10-mb", "10 MB body, Content-Length", "big", "as_error", "body larger than the limit"),
    ("10-mb-chunked", "10 MB body, chunked", "big-chunked", "as_error",
     "body larger than the limit"),
    ("nested", "JSON nested 100 000 deep (200 KB)", "nested", "as_error", "JSON nested too deeply"),
    ("redirect", "307 to another host", "redirect", "as_error",
     "HTTP 307 (redirects are not followed)"),
    ("tls-untrusted", "TLS, self-signed certificate", "tls-untrusted", "as_unavailable",
     "TLS: certificate not trusted"),
    ("tls-wrong-name", "TLS, certificate for another name", "tls-wrong-name", "as_unavailable",
     "TLS: certificate not valid for the host name"),
    ("tls-1.0", "TLS 1.0 only", "tls-1.0", "as_unavailable", "TLS: handshake refused"),
]
# (id, what the AS does, idle close ms, announces Keep-Alive, calls, seconds between calls)
KEEPALIVE = [
    ("keep-alive", "closes each connection after 200 ms idle, silently (as nginx); "
     "5 calls 400 ms apart", 200, False, 5, 0.4),
    ("keep-alive-announced", "says `Keep-Alive: timeout=1`, closes after 1 s idle; "
     "3 calls 1 s apart, i.e. as it closes", 1000, True, 3, 1.0),
]


def b64url(data):
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


class JwtSigner:
    """RS256 JWTs bound to a certificate thumbprint, signed with one RSA key
    made by openssl, published in the JWKS under any number of kids."""

    def __init__(self, workdir, thumbprint):
        self.key = os.path.join(workdir, "jwt.key")
        if not os.path.exists(self.key):
            subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                            "rsa_keygen_bits:2048", "-out", self.key], check=True,
                           capture_output=True)
        modulus = subprocess.run(["openssl", "rsa", "-in", self.key, "-noout", "-modulus"],
                                 check=True, capture_output=True, text=True).stdout
        self.n = h.b64url_uint(int(modulus.strip().split("=", 1)[1], 16))
        self.thumbprint = thumbprint

    def token(self, kid="k1"):
        now = int(time.time())
        header = {"alg": "RS256", "typ": "at+jwt", "kid": kid}
        claims = {"iss": ISSUER, "sub": "john", "client_id": "tpp", "aud": AUDIENCE,
                  "iat": now, "exp": now + 3600, "jti": f"hostile-{kid}", "scope": "accounts",
                  "cnf": {"x5t#S256": self.thumbprint}}
        signing_input = (b64url(json.dumps(header).encode()) + "." +
                         b64url(json.dumps(claims).encode()))
        signature = subprocess.run(["openssl", "dgst", "-sha256", "-sign", self.key],
                                   input=signing_input.encode(), check=True,
                                   capture_output=True).stdout
        return signing_input + "." + b64url(signature)

    def jwks(self, kids=("k1",)):
        return {"keys": [{"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
                          "n": self.n, "e": "AQAB"} for kid in kids]}


def environment(backend, base, args, ca_file, wrong_credentials=False):
    # make test runs this at debug (the secret scan reads the logs)
    env = {"PATH": os.environ.get("PATH", ""), "RUST_LOG": os.environ.get("RUST_LOG", "info"),
           "CERTBOUND_TIMEOUT_MS": str(args.timeout_ms),
           "CERTBOUND_CONNECT_TIMEOUT_MS": str(args.connect_timeout_ms),
           "CERTBOUND_INTROSPECTION_CA_FILE": ca_file}
    if backend == "authlete":
        env.update(CERTBOUND_BACKEND="authlete", AUTHLETE_BASE_URL=base,
                   AUTHLETE_API_VERSION="V2", AUTHLETE_SERVICE_APIKEY=h.API_KEY,
                   AUTHLETE_SERVICE_APISECRET="not-the-secret" if wrong_credentials
                   else h.API_SECRET)
    elif backend == "rfc7662":
        env.update(CERTBOUND_BACKEND="rfc7662",
                   CERTBOUND_INTROSPECTION_ENDPOINT=base + "/introspect",
                   CERTBOUND_INTROSPECTION_CLIENT_ID=h.RS_CLIENT_ID,
                   CERTBOUND_INTROSPECTION_CLIENT_SECRET="not-the-secret" if wrong_credentials
                   else h.RS_CLIENT_SECRET)
    else:
        env.update(CERTBOUND_BACKEND="jwt", CERTBOUND_JWT_ISSUER=ISSUER,
                   CERTBOUND_JWT_JWKS_URI=base + "/jwks", CERTBOUND_JWT_AUDIENCE=AUDIENCE)
    return env


def decisions(text):
    out = []
    for line in text.splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if obj.get("message") == "decision":
            out.append(obj)
    return out


def short(error):
    """The specific part of a decision's `error` (the backend-neutral prefix off)."""
    if not error:
        return ""
    for prefix in ("cannot connect to the authorization server (introspection, metadata or JWKS): ",
                   "the request to the authorization server failed: ",
                   "the authorization server (introspection, metadata or JWKS) answered ",
                   "the authorization server's answer is not valid: "):
        if error.startswith(prefix):
            return error[len(prefix):]
    return error


class Serve:
    """`certbound serve` with an environment, on a free port; stopped by PID."""

    def __init__(self, binary, env, log_path):
        self.port = h.refused_port()
        env = dict(env, CERTBOUND_LISTEN=f"127.0.0.1:{self.port}")
        self.log_path = log_path
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen([binary, "serve"], env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
                c.request("GET", "/healthz")
                if c.getresponse().status == 200:
                    c.close()
                    return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"serve did not start: {open(log_path).read()[-2000:]}")

    def ask(self, token, pem):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        started = time.perf_counter()
        c.request("GET", "/authorize", headers={
            "X-Original-Method": "GET", "X-Original-URI": "/accounts/1234/balances",
            "X-Ssl-Cert": urllib.parse.quote(pem, safe=""),
            "Authorization": f"Bearer {token}"})
        r = c.getresponse()
        r.read()
        elapsed = (time.perf_counter() - started) * 1000
        c.close()
        return r.status, elapsed

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return open(self.log_path).read()


def invoke(binary, env, event_path):
    started = time.perf_counter()
    p = subprocess.run([binary, "invoke", "--event", event_path], env=env,
                       capture_output=True, text=True, timeout=60)
    return p, (time.perf_counter() - started) * 1000


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default=os.path.join(REPO, "target", "debug", "certbound"))
    ap.add_argument("--markdown", help="write the table of outcomes (Markdown) here")
    ap.add_argument("--timeout-ms", type=int, default=1000)
    ap.add_argument("--connect-timeout-ms", type=int, default=300)
    ap.add_argument("--backends", default=",".join(BACKENDS))
    ap.add_argument("--cases", default="")
    ap.add_argument("--keepalive-race", type=int, default=0, metavar="N")
    args = ap.parse_args()
    binary = os.path.abspath(args.bin)
    backends = args.backends.split(",")
    wanted = set(filter(None, args.cases.split(",")))

    workdir = tempfile.mkdtemp(prefix="fault-matrix-")
    # Under `make test`, the logs and outputs go where the secret scan reads
    # them (only *.log there; the events and keys stay in workdir).
    scan_file = os.environ.get("SECRET_SCAN_FILE")
    logdir = os.path.join(os.path.dirname(scan_file), "fault-matrix") if scan_file else workdir
    os.makedirs(logdir, exist_ok=True)
    server = h.HostileAS(os.path.join(workdir, "pki"))
    event = json.load(open(os.path.join(REPO, "events", "rest-request.json")))
    pem = event["requestContext"]["identity"]["clientCert"]["clientCertPem"]
    thumbprint = b64url(hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).digest())
    signer = JwtSigner(workdir, thumbprint)
    jwt = signer.token("k1")
    server.behaviour.thumbprint = thumbprint
    server.behaviour.jwks = signer.jwks()
    # idle-close: the n-th JWKS fetch holds k1..kn (a key added at each call).
    server.behaviour.rotating_jwks = lambda n: signer.jwks([f"k{i}" for i in range(1, n + 1)])
    server.behaviour.issuer = ISSUER
    tokens = {"authlete": OPAQUE_TOKEN, "rfc7662": OPAQUE_TOKEN, "jwt": jwt}
    secrets = [OPAQUE_TOKEN, jwt, h.API_SECRET, h.RS_CLIENT_SECRET,
               pem.splitlines()[1]]  # a line of the PEM body
    if scan_file:
        with open(scan_file, "a") as f:
            for label, value in (("access token (fault matrix)", OPAQUE_TOKEN),
                                 ("JWT (fault matrix)", jwt),
                                 ("Authlete API secret (fault matrix)", h.API_SECRET),
                                 ("client secret (fault matrix)", h.RS_CLIENT_SECRET)):
                f.write(f"{label}\t{value}\n")

    def event_file(backend, authorization=True):
        e = json.loads(json.dumps(event))
        for headers in (e["headers"], e["multiValueHeaders"]):
            headers.pop("Authorization", None)
        if authorization:
            e["headers"]["Authorization"] = f"Bearer {tokens[backend]}"
            e["multiValueHeaders"]["Authorization"] = [f"Bearer {tokens[backend]}"]
        path = os.path.join(workdir, f"event-{backend}-{int(authorization)}.json")
        json.dump(e, open(path, "w"))
        return path

    if args.keepalive_race:
        keepalive_race(binary, server, args, tokens["rfc7662"], pem, workdir)
        server.stop()
        return 0

    # The process's own start and one decision answered without the AS.
    baseline_env = environment("rfc7662", server.base("ok"), args, server.ca_file)
    starts = [invoke(binary, baseline_env, event_file("rfc7662", False))[1] for _ in range(5)]
    start_ms = statistics.median(starts)
    print(f"invoke start-up (median of 5, decision without the AS): {start_ms:.1f} ms")

    budget = args.timeout_ms + 100
    results = {}  # (case, backend) -> dict
    passed = failed = 0

    def check(ok, label, message):
        nonlocal passed, failed
        if ok:
            passed += 1
        else:
            failed += 1
            print(f"  FAIL {label}: {message}")

    for case_id, what, hcase, expected, phrase in CASES:
        if wanted and case_id not in wanted:
            continue
        for backend in backends:
            label = f"{case_id}/{backend}"
            wrong_credentials = hcase == "wrong-credentials" and backend != "jwt"
            base_case = "ok" if wrong_credentials else (
                "status-401" if hcase == "wrong-credentials" else hcase)
            env = environment(backend, server.base(base_case), args, server.ca_file,
                              wrong_credentials)
            thief_before = server.recorder.count("thief")
            serve = Serve(binary, env, os.path.join(logdir, f"serve-{case_id}-{backend}.log"))
            try:
                status, ms = serve.ask(tokens[backend], pem)
            finally:
                log = serve.stop()
            p, invoke_ms = invoke(binary, env, event_file(backend))
            lines = decisions(log)
            d = lines[-1] if lines else {}
            inv = decisions(p.stderr)
            inv_d = inv[-1] if inv else {}
            try:
                out = json.loads(p.stdout)
                effect = out["policyDocument"]["Statement"][0]["Effect"]
                ctx_reason = out.get("context", {}).get("reason")
            except (ValueError, KeyError, IndexError, TypeError):
                effect, ctx_reason = "?", None
            r = dict(status=status, ms=ms, verdict=d.get("verdict"), reason=d.get("reason"),
                     detail=short(d.get("error")), invoke_ms=max(0.0, invoke_ms - start_ms),
                     invoke_step_ms=inv_d.get("introspection_ms") or 0.0,
                     invoke_effect=effect, invoke_reason=ctx_reason,
                     invoke_detail=short(inv_d.get("error")))
            results[(case_id, backend)] = r
            everything = log + p.stdout + p.stderr
            with open(os.path.join(logdir, f"invoke-{case_id}-{backend}.log"), "w") as f:
                f.write(p.stdout + p.stderr)
            check(not any(s in everything for s in secrets), label,
                  "a token, secret or PEM line appears in the output")
            check("panicked" not in everything and p.returncode == 0, label,
                  f"crash or exit {p.returncode}: {p.stderr[-300:]}")
            if expected == "allow":
                check(status == 200 and d.get("verdict") == "Allow" and effect == "Allow",
                      label, f"control not allowed: {status} {d}")
            else:
                check(status == 500 and d.get("verdict") not in (None, "Allow"), label,
                      f"serve answered {status}, decision {d.get('verdict')}")
                check(effect == "Deny" and ctx_reason == expected, label,
                      f"invoke: {effect} {ctx_reason}")
                check(d.get("reason") == expected, label,
                      f"reason {d.get('reason')} (want {expected}); {d.get('error')}")
                check(phrase in r["detail"], label, f"detail {r['detail']!r} lacks {phrase!r}")
                check(r["detail"] == r["invoke_detail"], label,
                      f"serve and invoke differ: {r['detail']!r} vs {r['invoke_detail']!r}")
            check(ms <= budget, label, f"serve answered in {ms:.0f} ms > {budget} ms")
            check(r["invoke_ms"] <= budget, label,
                  f"invoke answered in {r['invoke_ms']:.0f} ms (start-up off) > {budget} ms")
            if hcase == "redirect":
                check(server.recorder.count("thief") == thief_before, label,
                      "the other host received a connection")
            print(f"{label:28} serve {status} {r['verdict'] or '-':8} {r['reason'] or '-':15} "
                  f"{ms:7.1f} ms | invoke {effect:5} step {r['invoke_step_ms']:7.1f} ms, "
                  f"wall-start {r['invoke_ms']:7.1f} ms | {r['detail']}")
        if expected != "allow":
            details = {results[(case_id, b)]["detail"] for b in backends if (case_id, b) in results}
            same = len(details) == 1
            note = "" if same else " (differs: " + " / ".join(sorted(details)) + ")"
            if case_id in ("refused", "connect-timeout", "no-answer", "slow-drip", "reset", "5xx",
                           "401", "403", "empty", "not-json", "nested", "redirect",
                           "tls-untrusted", "tls-wrong-name", "tls-1.0"):
                check(same, case_id, f"not the same detail on every backend{note}")

    # Keep-alive: one serve process per backend, several calls, the AS closing
    # each connection once idle.
    for case_id, what, idle_ms, announce, calls, gap in KEEPALIVE:
        if wanted and case_id not in wanted:
            continue
        server.behaviour.idle_close_ms = idle_ms
        server.behaviour.announce_keep_alive = announce
        for backend in backends:
            label = f"{case_id}/{backend}"
            env = environment(backend, server.base("idle-close"), args, server.ca_file)
            server.behaviour.jwks_fetches = 0
            conns_before = server.recorder.count("http", "connection")
            serve = Serve(binary, env, os.path.join(logdir, f"serve-{case_id}-{backend}.log"))
            statuses, times = [], []
            try:
                for i in range(calls):
                    # JWT: each token names a key the cached set lacks (a
                    # rotation), so that every call fetches the JWKS again.
                    token = signer.token(f"k{i + 1}") if backend == "jwt" else tokens[backend]
                    s, ms = serve.ask(token, pem)
                    statuses.append(s)
                    times.append(ms)
                    time.sleep(gap)
            finally:
                log = serve.stop()
            conns = server.recorder.count("http", "connection") - conns_before
            r = dict(status=statuses, ms=max(times), detail=f"{conns} connections")
            results[(case_id, backend)] = r
            check(not any(x in log for x in secrets), label, "secret in the output")
            check(all(x == 200 for x in statuses), label, f"statuses {statuses}")
            check(conns == calls, label, f"{conns} connections for {calls} calls")
            print(f"{label:28} serve {statuses} max {max(times):.1f} ms, {conns} AS connections")

    if args.markdown:
        write_markdown(args, results, backends, wanted, start_ms)
    server.stop()
    print(f"fault-matrix: {passed} passed, {failed} failed")
    return 1 if failed else 0


def keepalive_race(binary, server, args, token, pem, workdir):
    server.behaviour.idle_close_ms = 200
    for announce in (False, True):
        server.behaviour.announce_keep_alive = announce
        env = environment("rfc7662", server.base("idle-close"), args, server.ca_file)
        serve = Serve(binary, env, os.path.join(logdir, f"race-{announce}.log"))
        statuses = []
        try:
            for i in range(args.keepalive_race):
                # The AS closes 200 ms after its answer; the next call reaches
                # it 196–200 ms later (≈ 1–2 ms of it in certbound).
                statuses.append(serve.ask(token, pem)[0])
                time.sleep(0.195 + 0.001 * (i % 5))
        finally:
            log = serve.stop()
        errors = {}
        for d in decisions(log):
            if d.get("error"):
                key = short(d["error"])
                errors[key] = errors.get(key, 0) + 1
        failed = sum(1 for x in statuses if x != 200)
        kind = "announces Keep-Alive: timeout=1" if announce else "closes silently"
        print(f"keep-alive race, AS {kind}: {failed}/{len(statuses)} answered 500; "
              f"{json.dumps(errors)}")


def write_markdown(args, results, backends, wanted, start_ms):
    names = {"authlete": "Authlete", "rfc7662": "RFC 7662", "jwt": "JWT (JWKS)"}
    rows = [f"Configured: `CERTBOUND_TIMEOUT_MS={args.timeout_ms}`, "
            f"`CERTBOUND_CONNECT_TIMEOUT_MS={args.connect_timeout_ms}`; budget "
            f"{args.timeout_ms + 100} ms. Times in ms: `certbound serve`'s answer (HTTP round "
            f"trip, measured by the client) / `certbound invoke`'s backend step "
            f"(`introspection_ms` of its decision line); every `invoke` also finished within "
            f"the budget once its own start-up (median {{start}} ms) is subtracted.",
            "",
            "| case | the AS | reason | detail (log `error`, after the prefix) | "
            + " | ".join(names[b] for b in backends) + " |",
            "|---|---|---|---|" + "---|" * len(backends)]
    for case_id, what, _, expected, _ in CASES:
        if wanted and case_id not in wanted:
            continue
        cells = [results.get((case_id, b)) for b in backends]
        if any(c is None for c in cells):
            continue
        details = [c["detail"] for c in cells]
        if expected == "allow":
            detail, reason = "—", "Allow"
        elif len(set(details)) == 1:
            detail, reason = details[0], expected
        else:
            detail = " / ".join(f"{names[b]}: {d}" for b, d in zip(backends, details))
            reason = expected
        per = [f"{'Allow' if c['verdict'] == 'Allow' else 'Deny'} {c['status']}, "
               f"{c['ms']:.0f} / {c['invoke_step_ms']:.0f}" for c in cells]
        rows.append(f"| {case_id} | {what} | `{reason}` | {detail} | " + " | ".join(per) + " |")
    for case_id, what, _, announce, calls, _ in KEEPALIVE:
        cells = [results.get((case_id, b)) for b in backends]
        if all(cells):
            per = [f"Allow ×{len(c['status'])} ({c['detail']}), max {c['ms']:.0f}" for c in cells]
            how = ("a connection the AS closed is never written to: each call on a new connection"
                   if not announce else "never reused past the announced timeout − 1 s")
            rows.append(f"| {case_id} | {what} | — | every call Allowed: {how} "
                        f"(JWT: a new kid at every call, so the JWKS is fetched each time) | "
                        + " | ".join(per) + " |")
    rows[0] = rows[0].replace("{start}", f"{start_ms:.0f}")
    with open(args.markdown, "w") as f:
        f.write("\n".join(rows) + "\n")


if __name__ == "__main__":
    sys.exit(main())
