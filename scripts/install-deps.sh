#!/usr/bin/env bash
# Everything `make test` / `make demo` need beyond the Rust toolchain, node/npm
# and python3 (3.11+):
#   nginx openssl curl      apt, only when missing, at the distribution's version
#                           (not pinned: exact apt versions vanish from the
#                           mirrors). Verified on Debian 12: nginx 1.22.1-9+deb12u11,
#                           openssl 3.0.19-1~deb12u2, curl 7.88.1-10+deb12u15.
#   oidc-provider           npm ci in as/ (exact version in package.json, whole
#                           tree in package-lock.json) when node_modules is stale.
#   cargo-lambda cfn-lint   into .tools/venv at the versions pinned in
#                           scripts/tools-requirements.txt (install-lambda-tools.sh).
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
mkdir -p "$STACK_LOGS"
ensure_tools
ensure_node_modules
"$REPO/scripts/install-lambda-tools.sh" >/dev/null
