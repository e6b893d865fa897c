#!/usr/bin/env bash
# Installs the tools certbound's AWS deployment needs, only when missing:
#   cargo-lambda  (PyPI wheel: the cargo-lambda binary plus ziglang, for
#                  `cargo lambda build --release --arm64` and `sam build`)
#   cfn-lint      (lints template.yaml offline)
# then prints their versions. Safe to run again: a tool that already works is
# left alone.
#
# "Works" means the command really runs and exits 0. A pyenv shim can exist on
# PATH for a tool that is installed only in another Python version (the shim
# then fails with "command not found"), so `command -v` is not enough.
#
# Environment:
#   PYTHON   interpreter whose pip installs the tools (default: python3)
set -euo pipefail

PYTHON=${PYTHON:-python3}

say() { printf 'install-lambda-tools: %s\n' "$*" >&2; }
runs() { "$@" >/dev/null 2>&1; }

cargo_lambda_works() { runs cargo lambda --version; }
cfn_lint_works() { runs cfn-lint --version; }

if ! runs "$PYTHON" -c 'import sys'; then
  say "no working Python interpreter ('$PYTHON'); set PYTHON=/path/to/python3"
  exit 1
fi

# Where pip puts console scripts for this interpreter; make sure a fresh
# install is found even if that directory is not on PATH yet.
orig_path=$PATH
scripts_dir=$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
user_scripts_dir=$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_path("scripts", "posix_user"))' 2>/dev/null || true)
export PATH="$PATH:$scripts_dir${user_scripts_dir:+:$user_scripts_dir}"

rehash() {
  hash -r
  if command -v pyenv >/dev/null 2>&1; then pyenv rehash >/dev/null 2>&1 || true; fi
}

missing=()
cargo_lambda_works || missing+=(cargo-lambda)
cfn_lint_works || missing+=(cfn-lint)

if ((${#missing[@]} > 0)); then
  say "installing: ${missing[*]} (with $("$PYTHON" --version 2>&1))"
  if ! "$PYTHON" -m pip install --quiet --disable-pip-version-check "${missing[@]}"; then
    # Debian/Ubuntu system Pythons refuse pip installs (PEP 668): use pipx.
    if command -v pipx >/dev/null 2>&1; then
      say "pip refused; trying pipx"
      for pkg in "${missing[@]}"; do pipx install "$pkg"; done
      export PATH="$PATH:${PIPX_BIN_DIR:-$HOME/.local/bin}"
    else
      say "pip install failed and pipx is not available;"
      say "use a virtualenv or pyenv Python (PYTHON=...), or install pipx"
      exit 1
    fi
  fi
  rehash
fi

status=0
if cargo_lambda_works; then
  printf 'cargo-lambda: %s\n' "$(cargo lambda --version 2>&1 | head -n1)"
elif [[ -x "$scripts_dir/cargo-lambda" ]]; then
  say "cargo-lambda is installed in $scripts_dir but 'cargo lambda' does not run:"
  say "is cargo on PATH (rustup), and does PATH reach $scripts_dir/cargo-lambda"
  say "(found: $(command -v cargo-lambda || echo none))?"
  status=1
else
  say "cargo-lambda does not run after installation"
  status=1
fi

if cfn_lint_works; then
  printf 'cfn-lint: %s\n' "$(cfn-lint --version 2>&1 | head -n1)"
elif runs "$scripts_dir/cfn-lint" --version; then
  say "cfn-lint is installed ($("$scripts_dir/cfn-lint" --version 2>&1 | head -n1)) but the"
  say "'cfn-lint' found first on PATH ($(command -v cfn-lint || echo none)) does not run;"
  say "put $scripts_dir first in PATH, or run $scripts_dir/cfn-lint"
  status=1
else
  say "cfn-lint does not run after installation (is $scripts_dir on PATH?)"
  status=1
fi

# Only worth a note if the tools are not reachable through the caller's PATH
# (with pyenv, its shims already cover the version's bin directory).
if ! (PATH=$orig_path; hash -r; cargo_lambda_works && cfn_lint_works); then
  say "note: add $scripts_dir to PATH for later shells"
fi

exit "$status"
