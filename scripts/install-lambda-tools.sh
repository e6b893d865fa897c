#!/usr/bin/env bash
# Installs the Python-packaged tools certbound's checks and AWS deployment
# need, at the versions pinned in scripts/tools-requirements.txt, into a
# virtualenv of their own, .tools/venv (git-ignored):
#   cargo-lambda  (PyPI wheel: the cargo-lambda binary plus ziglang, for
#                  `cargo lambda build`, `cargo lambda watch` and `sam build`)
#   cfn-lint      (lints template.yaml offline)
# The Makefile and scripts/lambda_runtime_test.py run them from .tools/venv/bin,
# so another version on PATH (a pyenv shim, a user install) is never used.
#
# Idempotent: when the venv holds exactly the pinned packages at their
# versions it does nothing but say so (a fraction of a second). Otherwise (no
# venv, a broken one, a version or a package that differs) the venv is made
# anew from the pins, so it never keeps leftovers of an older set.
#
# Environment:
#   PYTHON   interpreter the venv is made from (default: python3; 3.11 or newer,
#            which the pinned versions need)
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
req=$repo/scripts/tools-requirements.txt
venv=$repo/.tools/venv
PYTHON=${PYTHON:-python3}

say() { printf 'install-lambda-tools: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

# pins_ok: the venv's Python runs and holds exactly the NAME==VERSION lines of
# $req (besides pip and setuptools); otherwise names what differs, on stderr.
pins_ok() {
  [ -x "$venv/bin/python" ] || return 1
  "$venv/bin/python" - "$req" <<'PY'
import re
import sys
from importlib.metadata import distributions


def norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()


pinned = {}
for line in open(sys.argv[1]):
    name, sep, version = line.split("#", 1)[0].strip().partition("==")
    if sep:
        pinned[norm(name)] = (name, version)
have = {norm(d.metadata["Name"]): d.version for d in distributions()}
diff = [f"{name} {have.get(key, 'missing')} (pinned: {version})"
        for key, (name, version) in pinned.items() if have.get(key) != version]
diff += [f"{key} {version} (not pinned)" for key, version in sorted(have.items())
         if key not in pinned and key not in ("pip", "setuptools")]
if diff:
    print("install-lambda-tools: .tools/venv differs: " + ", ".join(diff), file=sys.stderr)
    sys.exit(1)
PY
}

summary() {
  printf 'pinned tools in %s: %s\n' "${venv#"$repo"/}" \
    "$(grep -hE '^(cargo-lambda|cfn-lint)==' "$req" | paste -sd ' ')"
}

if [ -d "$venv" ]; then
  if pins_ok; then
    summary
    exit 0
  fi
  rm -rf "$venv"
fi

"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
  || die "'$PYTHON' is missing or older than Python 3.11 (the pinned tools need 3.11+); set PYTHON=/path/to/python3.11"

mkdir -p "$repo/.tools"
log=$repo/.tools/install.log
say "creating $venv (with $("$PYTHON" --version 2>&1))"
"$PYTHON" -m venv "$venv" >"$log" 2>&1 || {
  rm -rf "$venv"
  die "cannot create $venv (see $log); on Debian/Ubuntu: apt-get install python3-venv (make deps does)"
}

say "installing $(basename "$req") into $venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$req"
pins_ok || die "$venv still differs from $req after installing"

# Prove that the installed tools run.
"$venv/bin/cfn-lint" --version >/dev/null || die "$venv/bin/cfn-lint does not run"
"$venv/bin/cargo-lambda" lambda --version >/dev/null || die "$venv/bin/cargo-lambda does not run"
summary
