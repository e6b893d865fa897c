#!/usr/bin/env bash
# Stop the local certbound stack: every service by its PID file in
# $STACK_DIR/run (never by process name). Already stopped services are fine.
# Certificates, keys and logs stay in $STACK_DIR; remove it for a cold start.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

if [ ! -d "$STACK_RUN" ]; then
  log "nothing to stop ($STACK_RUN does not exist)"
  exit 0
fi
for name in nginx certbound-cached certbound-jwt certbound echo as; do
  stop "$name"
done
