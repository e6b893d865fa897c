#!/usr/bin/env python3
"""No secret in any output: scans what a test run wrote for the secrets it used.

`make test` runs the Lambda runtime tests, the fault matrix and the e2e matrix
with RUST_LOG=debug, captures their output under target/secret-scan/, and
every script appends the secrets it handles (access tokens it obtained or
forged, client secrets, API secrets, service access tokens) to the file named
by SECRET_SCAN_FILE, one `label<TAB>value` per line. This script then
looks for them, in every form a log could carry them (as is, URL-encoded,
JSON-escaped; a JWT's signature alone; an opaque token's first 24
characters), in:
  - the captured outputs;
  - every log written during the run (the part after the `mark`: logs grow
    across runs): .stack/logs/*, target/*.log and the fault matrix's logs;
and adds the stack's own secrets: the certbound-rs client secret, the body
lines of every PEM certificate and private key under .stack/certs (as is
and URL-encoded, as nginx escapes them), and the private parts of the AS's
signing keys.

  secret_scan.py mark --state FILE PATH...      remember where each log ends now
  secret_scan.py scan --state FILE --secrets FILE [--stack-dir DIR] [--pem-source FILE...] -- PATH...

A finding names the file, the line and the kind of secret, never the secret.
Exit 1 on any finding, or when nothing was scanned.
"""

import argparse
import glob
import json
import os
import re
import sys
import urllib.parse


def files_under(paths):
    for p in paths:
        for path in sorted(glob.glob(p)):
            if os.path.isdir(path):
                for root, _, names in os.walk(path):
                    for n in sorted(names):
                        yield os.path.join(root, n)
            elif os.path.isfile(path):
                yield path


def mark(args):
    state = {path: os.path.getsize(path) for path in files_under(args.paths)}
    os.makedirs(os.path.dirname(os.path.abspath(args.state)), exist_ok=True)
    with open(args.state, "w") as f:
        json.dump(state, f)
    print(f"secret-scan: marked {len(state)} files")


def pem_body_lines(text):
    """Base64 lines of every PEM block (certificates and keys)."""
    out = []
    for block in re.findall(r"-----BEGIN [A-Z ]+-----(.*?)-----END [A-Z ]+-----", text, re.S):
        out.extend(line.strip() for line in block.splitlines() if len(line.strip()) >= 40)
    return out


def collect(args):
    """(label, needle) pairs."""
    secrets = []
    if os.path.exists(args.secrets):
        with open(args.secrets) as f:
            for line in f:
                label, _, value = line.rstrip("\n").partition("\t")
                if value:
                    secrets.append((label, value))
    pems = []
    for path in files_under(args.pem_source or []):
        with open(path, errors="replace") as f:
            text = f.read().replace("\\n", "\n")
        pems.extend((f"certificate body ({os.path.basename(path)})", line) for line in pem_body_lines(text))
    if args.stack_dir:
        certs = os.path.join(args.stack_dir, "certs")
        for path in sorted(glob.glob(os.path.join(certs, "*"))):
            with open(path, errors="replace") as f:
                text = f.read()
            if path.endswith(".secret"):
                secrets.append((f"client secret ({os.path.basename(path)})", text.strip()))
            else:
                kind = "private key" if "PRIVATE KEY" in text else "certificate"
                pems.extend((f"{kind} body ({os.path.basename(path)})", line)
                            for line in pem_body_lines(text))
        keys = os.path.join(args.stack_dir, "as", "jwks.json")
        if os.path.exists(keys):
            with open(keys) as f:
                try:
                    jwks = json.load(f)
                except ValueError:
                    jwks = {}
            for key in jwks.get("keys", []):
                for param in ("d", "p", "q", "dp", "dq", "qi"):
                    if isinstance(key.get(param), str):
                        secrets.append((f"AS signing key ({param})", key[param]))
    needles = []
    for label, value in secrets:
        if len(value) < 8:
            continue
        forms = {value, urllib.parse.quote(value, safe=""), json.dumps(value)[1:-1]}
        parts = value.split(".")
        if len(parts) == 3 and len(parts[2]) >= 20:
            forms.add(parts[2])  # a JWT's signature alone still identifies it
        elif len(value) >= 32 and " " not in value:
            forms.add(value[:24])  # a clipped opaque token
        needles.extend((label, form) for form in forms if len(form) >= 8)
    for label, line in pems:
        needles.append((label, line))
        needles.append((label, urllib.parse.quote(line, safe="")))
    return needles, len(secrets), len(pems)


def scan(args):
    needles, n_secrets, n_pem_lines = collect(args)
    if not needles:
        print("secret-scan: no secrets recorded: nothing to look for")
        return 1
    state = {}
    if args.state and os.path.exists(args.state):
        with open(args.state) as f:
            state = json.load(f)
    by_form = {}
    for label, form in needles:
        by_form.setdefault(form, label)
    pattern = re.compile("|".join(re.escape(f) for f in sorted(by_form, key=len, reverse=True)))
    # The scan must be able to fail: every secret, planted URL-encoded in a
    # log-like line, is found.
    for label, form in needles:
        planted = f'{{"level":"DEBUG","message":"x","header":"{form}"}}'
        if not pattern.search(planted):
            print(f"secret-scan: self-test failed: a planted {label} was not found")
            return 1
    files = lines = size = 0
    findings = []
    for path in files_under(args.paths):
        start = state.get(path, 0)
        if os.path.getsize(path) < start:
            start = 0  # truncated since the mark
        with open(path, "rb") as f:
            f.seek(start)
            data = f.read().decode("utf-8", errors="replace")
        files += 1
        size += len(data)
        lines += data.count("\n")
        for m in pattern.finditer(data):
            line_no = data.count("\n", 0, m.start()) + 1
            findings.append((path, line_no, by_form[m.group(0)]))
    kinds = sorted({label.split(" (")[0] for label, _ in needles})
    print(f"secret-scan: {n_secrets} secrets and {n_pem_lines} PEM body lines "
          f"({len(by_form)} forms: {', '.join(kinds)}) looked for in {files} files, "
          f"{lines} lines, {size / 1e6:.1f} MB written during this run")
    for path, line_no, label in findings[:50]:
        where = "after the mark, " if state.get(path) else ""
        print(f"secret-scan: FOUND {label} in {path} ({where}line {line_no})")
    if findings:
        print(f"secret-scan: {len(findings)} finding(s)")
        return 1
    if files == 0 or lines == 0:
        print("secret-scan: nothing was scanned")
        return 1
    print("secret-scan: no secret in any output")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    m = sub.add_parser("mark")
    m.add_argument("--state", required=True)
    m.add_argument("paths", nargs="+")
    s = sub.add_parser("scan")
    s.add_argument("--state")
    s.add_argument("--secrets", required=True)
    s.add_argument("--stack-dir")
    s.add_argument("--pem-source", nargs="*", help="files holding PEM blocks (JSON-escaped too), e.g. events/*.json")
    s.add_argument("paths", nargs="+")
    args = ap.parse_args()
    if args.command == "mark":
        mark(args)
        return 0
    return scan(args)


if __name__ == "__main__":
    sys.exit(main())
