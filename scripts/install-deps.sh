#!/usr/bin/env bash
# Everything `make test` / `make demo` need beyond the Rust toolchain, each
# installed only when missing: nginx, openssl, curl (apt); oidc-provider
# (npm ci in as/); cargo-lambda and cfn-lint (pip).
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
mkdir -p "$STACK_LOGS"
ensure_tools
ensure_node_modules
"$REPO/scripts/install-lambda-tools.sh" >/dev/null
