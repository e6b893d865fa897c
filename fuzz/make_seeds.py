#!/usr/bin/env python3
"""Writes the committed seed corpora of the byte-input fuzz targets into
fuzz/seeds/<target>/ from events/*.json and answers the tests use.

Structure-aware targets (arbitrary) start from libFuzzer's own inputs and
need no seeds. Run from anywhere: python3 fuzz/make_seeds.py
"""
import base64
import json
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
SEEDS = ROOT / "fuzz" / "seeds"
A_DER = (ROOT / "fuzz" / "data" / "a.der").read_bytes()


def pem(der):
    b64 = base64.b64encode(der).decode()
    lines = [b64[i:i + 64] for i in range(0, len(b64), 64)]
    return "-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n"


def write(target, name, data):
    d = SEEDS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data if isinstance(data, bytes) else data.encode())


def with_cert(event, cert_pem):
    ctx = event.get("requestContext", {})
    for holder in ("identity", "authentication"):
        cc = ctx.get(holder, {}) if isinstance(ctx.get(holder), dict) else {}
        if isinstance(cc.get("clientCert"), dict):
            cc["clientCert"]["clientCertPem"] = cert_pem
    return event


def main():
    # Generated seeds are rewritten; what the fuzzers found (crash-*,
    # regression-*) is kept: the smoke replays it on every `make test`.
    for old in SEEDS.glob("*/*"):
        if not old.name.startswith(("crash-", "regression-")):
            old.unlink()
    # lambda_event: every sample event, and the certificate events with A.
    for path in sorted((ROOT / "events").glob("*.json")):
        text = path.read_text()
        write("lambda_event", path.stem + ".json", json.dumps(json.loads(text), separators=(",", ":")))
        event = json.loads(text)
        if "requestContext" in event:
            write("lambda_event", path.stem + "-cert-a.json",
                  json.dumps(with_cert(event, pem(A_DER)), separators=(",", ":")))

    # introspection_answers: policy byte, require-scope byte, then JSON.
    expires = 4102444800000
    answers = {
        "authlete-ok": {"type": "introspectionResponse", "resultCode": "A056001",
                        "resultMessage": "[A056001] The access token is valid.", "action": "OK",
                        "clientId": 57297408867, "clientIdAlias": "tpp-app", "clientIdAliasUsed": False,
                        "expiresAt": expires, "subject": "john", "scopes": ["accounts", "payments"],
                        "certificateThumbprint": "t9i3fFFsi40iaYFo6grXDTsBiCbSEynf5czFoatax44",
                        "responseContent": None},
        "authlete-forbidden": {"action": "FORBIDDEN", "resultCode": "A064302", "clientId": 57297408867,
                               "clientIdAlias": "tpp-app", "clientIdAliasUsed": True, "expiresAt": expires,
                               "subject": "john", "scopes": [{"name": "accounts"}],
                               "responseContent": "Bearer error=\"insufficient_scope\",error_description=\"x\",scope=\"payments\""},
        "authlete-unauthorized": {"action": "UNAUTHORIZED", "clientId": 0, "expiresAt": 0,
                                  "responseContent": "DPoP error=\"invalid_token\",algs=\"ES256 PS256\""},
        "rfc7662-active": {"active": True, "client_id": "svc-a", "exp": 1900000000, "iat": 1700000000,
                           "iss": "https://localhost:8443", "scope": "api:read api:write accounts",
                           "cnf": {"x5t#S256": "t9i3fFFsi40iaYFo6grXDTsBiCbSEynf5czFoatax44"},
                           "token_type": "Bearer", "aud": ["rs", "other"], "sub": "alice", "nbf": 1700000000},
        "rfc7662-inactive": {"active": False},
        "rfc7662-jkt": {"active": True, "scope": "accounts", "cnf": {"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}},
    }
    for i, (name, answer) in enumerate(answers.items()):
        write("introspection_answers", name, bytes([i % 3, 1]) + json.dumps(answer).encode())

    # jwks: max-keys byte, then a JWKS.
    n2048 = base64.urlsafe_b64encode(b"\xc5" * 256).rstrip(b"=").decode()
    x32 = base64.urlsafe_b64encode(b"\x01" * 32).rstrip(b"=").decode()
    x48 = base64.urlsafe_b64encode(b"\x01" * 48).rstrip(b"=").decode()
    jwks = {"keys": [
        {"kty": "RSA", "kid": "r1", "n": n2048, "e": "AQAB", "use": "sig", "alg": "RS256"},
        {"kty": "EC", "kid": "e1", "crv": "P-256", "x": x32, "y": x32, "alg": "ES256"},
        {"kty": "EC", "kid": "e2", "crv": "P-384", "x": x48, "y": x48},
        {"kty": "OKP", "kid": "o1", "crv": "Ed25519", "x": x32, "alg": "EdDSA"},
        {"kty": "oct", "kid": "h1", "k": "c2VjcmV0"},
        {"kty": "RSA", "kid": "enc", "n": n2048, "e": "AQAB", "use": "enc"},
    ]}
    write("jwks", "mixed", bytes([7]) + json.dumps(jwks).encode())


if __name__ == "__main__":
    main()
