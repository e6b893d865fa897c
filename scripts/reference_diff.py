#!/usr/bin/env python3
"""Differential test against the reference: Authlete's Python `Authorizer`
(authlete-python 1.3.0 from PyPI, installed into target/refvenv) and
`certbound invoke` get the same events and the same Authlete answers (a stdlib
double that, like Authlete, answers BAD_REQUEST when no token is sent); their
decisions, principals and context values are compared.

The matrix runs twice:
- with CERTBOUND_REQUIRE_BINDING=false (the reference's rule: whatever the AS
  says), where everything must agree;
- with certbound's default (binding required, the double reporting the
  events' certificateThumbprint for OK/FORBIDDEN), where certbound refuses more:
  a different decision where certbound refuses for a binding reason
  (cert_missing: answered without asking the AS; token_unbound; cert_mismatch)
  is an intended difference; any other difference, and any certbound Allow the
  reference refuses, is a failure.

Known, intended differences are not counted as failures but listed:
- AS failure with policy=true: the reference crashes (AttributeError); certbound Denies.
- No/malformed token: certbound answers BAD_REQUEST itself (same decision),
  so resultMessage/challenge come from certbound, not from the AS.
- principalId when the AS gives no subject: reference null, certbound the
  client id or "anonymous" (API Gateway refuses a null principal).
- Context: the reference always adds introspection_request/response (with
  the raw token) and null values; certbound adds cert_thumbprint.

Usage: scripts/reference_diff.py [--bin PATH]
Last line: `reference-diff: N passed, M failed`.
"""
import argparse
import base64
import copy
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from lambda_runtime_test import JsonReply  # same folder

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.path.join(REPO, "target", "refvenv")
API_KEY, API_SECRET = "5593494639", "double-secret"
COMPARED = ["scope", "client_id", "sub", "exp", "challenge", "action", "resultMessage"]


def ensure_reference():
    """Re-executes under a venv that has authlete 1.3.0 (installed once)."""
    try:
        import authlete.aws.apigateway.authorizer  # noqa: F401
        return
    except ImportError:
        pass
    py = os.path.join(VENV, "bin", "python")
    if not os.path.exists(py):
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
    check = subprocess.run([py, "-c", "import authlete"], capture_output=True)
    if check.returncode != 0:
        subprocess.run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", "authlete==1.3.0"],
                       check=True)
    os.execv(py, [py] + sys.argv)


def authlete_answer(action, **extra):
    content = {
        "BAD_REQUEST": 'Bearer error="invalid_request",error_description="[A065301] The access token is missing."',
        "UNAUTHORIZED": 'Bearer error="invalid_token",error_description="[A065304] The access token does not exist."',
        "FORBIDDEN": 'Bearer error="insufficient_scope",error_description="[A064302] scope",scope="payments"',
        "INTERNAL_SERVER_ERROR": 'Bearer error="server_error",error_description="[A001101] error"',
    }.get(action)
    body = {"type": "introspectionResponse", "action": action, "resultCode": "A000000",
            "resultMessage": f"[A000000] answer {action}", "responseContent": content,
            "clientId": 0, "clientIdAliasUsed": False, "expiresAt": 0,
            "existent": False, "usable": False, "sufficient": False, "refreshable": False}
    if action in ("OK", "FORBIDDEN"):
        body.update({"clientId": 57297408867, "clientIdAlias": "tpp-app", "subject": "john",
                     "scopes": ["accounts", "payments"], "expiresAt": 4102444800000,
                     "existent": True, "usable": True, "sufficient": action == "OK"})
    body.update(extra)
    return body


class Double(JsonReply, BaseHTTPRequestHandler):
    answer = (200, {})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        expected = "Basic " + base64.b64encode(f"{API_KEY}:{API_SECRET}".encode()).decode()
        if self.headers.get("Authorization") != expected:
            status, obj = 401, {"resultCode": "A001202"}
        elif not body.get("token"):
            status, obj = 200, authlete_answer("BAD_REQUEST")
        else:
            status, obj = Double.answer
        self.reply(status, obj)


def reference(event, policy):
    from authlete.aws.apigateway.authorizer import Authorizer
    try:
        return "ok", Authorizer(policy=policy).handle(copy.deepcopy(event), None)
    except Exception as e:  # the reference signals 401/500 (and its crashes) this way
        return "error", f"{type(e).__name__}: {e}"


def certbound(binary, event, policy, env):
    full = dict(env, CERTBOUND_POLICY="true" if policy else "false", RUST_LOG="off",
                PATH=os.environ.get("PATH", ""))
    out = subprocess.run([binary, "invoke"], input=json.dumps(event).encode(), env=full, capture_output=True)
    body = json.loads(out.stdout or b"null")
    if out.returncode == 0:
        return "ok", body
    return "error", f"RuntimeError: {body.get('errorMessage') if isinstance(body, dict) else body}"


def verdict(kind, value):
    if kind == "error":
        return value
    return value["policyDocument"]["Statement"][0]["Effect"]


def main():
    ensure_reference()
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(REPO, "target/debug/certbound"))
    args = ap.parse_args()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Double)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    env = {"AUTHLETE_BASE_URL": base, "AUTHLETE_SERVICE_APIKEY": API_KEY,
           "AUTHLETE_SERVICE_APISECRET": API_SECRET}
    os.environ.update(env)

    def load(name):
        with open(os.path.join(REPO, "events", name)) as f:
            return json.load(f)

    rest, no_cert, token = load("rest-request.json"), load("rest-request-no-cert.json"), load("token.json")
    tok = rest["headers"]["Authorization"].split(" ", 1)[1]

    def with_auth(value, lower=False):
        e = copy.deepcopy(rest)
        del e["headers"]["Authorization"]
        e["multiValueHeaders"].pop("Authorization", None)
        if value is not None:
            e["headers"]["authorization" if lower else "Authorization"] = value
        return e

    events = {
        "REST with cert": rest,
        "REST without cert": no_cert,
        "TOKEN": token,
        "lower-case header name": with_auth(f"Bearer {tok}", lower=True),
        "scheme in capitals, extra spaces": with_auth(f"BEARER   {tok}  "),
        "no Authorization header": with_auth(None),
        "Basic scheme": with_auth("Basic dXNlcjpwYXNz"),
        "Bearer without token": with_auth("Bearer"),
        "TOKEN event, bare token": dict(token, authorizationToken=tok),
    }
    answers = {
        "OK": (200, authlete_answer("OK")),
        "OK, alias used": (200, authlete_answer("OK", clientIdAliasUsed=True)),
        "OK, no expiry": (200, authlete_answer("OK", expiresAt=0)),
        "BAD_REQUEST": (200, authlete_answer("BAD_REQUEST")),
        "UNAUTHORIZED": (200, authlete_answer("UNAUTHORIZED")),
        "FORBIDDEN": (200, authlete_answer("FORBIDDEN")),
        "INTERNAL_SERVER_ERROR": (200, authlete_answer("INTERNAL_SERVER_ERROR")),
        "HTTP 500": (500, {"resultCode": "A001101"}),
    }
    passed = failed = 0
    known = []
    bound_tp = "t9i3fFFsi40iaYFo6grXDTsBiCbSEynf5czFoatax44"  # the events' certificate
    modes = {
        "binding off": ({"CERTBOUND_REQUIRE_BINDING": "false"}, answers),
        "binding required": ({}, {
            name: (st, dict(body, certificateThumbprint=bound_tp) if body.get("action") in ("OK", "FORBIDDEN") else body)
            for name, (st, body) in answers.items()}),
    }
    for mode, (mode_env, mode_answers) in modes.items():
        for ename, event in events.items():
            for aname, answer in mode_answers.items():
                Double.answer = answer
                for policy in (True, False):
                    label = f"{mode} | {ename} | {aname} | policy={policy}"
                    rk, rv = reference(event, policy)
                    ck, cv = certbound(args.bin, event, policy, dict(env, **mode_env))
                    ref_v, cb_v = verdict(rk, rv), verdict(ck, cv)
                    if "AttributeError" in ref_v:
                        known.append(f"{ename} | {aname}: reference crashes ({ref_v}); certbound {cb_v}")
                        if cb_v not in ("Deny", "RuntimeError: Internal Server Error"):
                            failed += 1
                            print(f"FAIL  {label}: certbound {cb_v} where the reference crashed")
                        continue
                    cctx = (cv.get("context") or {}) if ck == "ok" else {}
                    why = cctx.get("reason")
                    if ck == "error":
                        # An error carries no context: ask again in policy mode for the reason.
                        pk, pv = certbound(args.bin, event, True, dict(env, **mode_env))
                        why = (pv.get("context") or {}).get("reason") if pk == "ok" else None
                    if (mode == "binding required" and cb_v in ("Deny", "RuntimeError: Unauthorized")
                            and why in ("cert_missing", "token_unbound", "cert_mismatch")):
                        known.append(f"{ename} | {aname}: reference {ref_v}, certbound {cb_v} (binding enforced: {why})")
                        passed += 1
                        print(f"PASS  {label}: {cb_v} (binding enforced; reference {ref_v})")
                        continue
                    problems = []
                    if ref_v != cb_v:
                        problems.append(f"decision: reference {ref_v}, certbound {cb_v}")
                    if rk == "ok" and ck == "ok":
                        rctx = rv.get("context") or {}
                        local = not str(cctx.get("resultMessage", "[A")).startswith("[A")
                        keys = ["action"] if local else COMPARED
                        for k in keys:
                            if rctx.get(k) is not None and rctx.get(k) != cctx.get(k):
                                problems.append(f"context {k}: reference {rctx.get(k)!r}, certbound {cctx.get(k)!r}")
                            if rctx.get(k) is None and k in cctx and not local:
                                problems.append(f"context {k}: reference null, certbound {cctx.get(k)!r}")
                        for k, v in cctx.items():
                            if v is None or isinstance(v, (dict, list)):
                                problems.append(f"context {k} is not a flat value: {v!r}")
                        if rv["principalId"] is not None and rv["principalId"] != cv["principalId"]:
                            problems.append(f"principalId: reference {rv['principalId']!r}, certbound {cv['principalId']!r}")
                        if rv["principalId"] is None:
                            known.append(f"{ename} | {aname}: reference principalId null, certbound {cv['principalId']!r}")
                        if rv["policyDocument"]["Statement"][0]["Resource"] != cv["policyDocument"]["Statement"][0]["Resource"]:
                            problems.append("policy resource differs")
                        if tok in json.dumps(cctx):
                            problems.append("certbound context holds the raw token")
                    if problems:
                        failed += 1
                        print(f"FAIL  {label}: " + "; ".join(problems))
                    else:
                        passed += 1
                        print(f"PASS  {label}: {cb_v}")
    server.shutdown()
    print(f"known differences (intended): {len(known)}")
    for k in sorted(set(known))[:40]:
        print(f"  {k}")
    print(f"reference-diff: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
