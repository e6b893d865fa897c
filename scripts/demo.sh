#!/usr/bin/env bash
# `make demo`: bring the stack up, obtain a certificate-bound token for
# client-a, and show what the gateway (nginx + certbound) and the Lambda front
# (`certbound invoke`) decide for each combination of certificate and token:
# first with opaque tokens (RFC 7662 backend, /example), then with RFC 9068
# JWT access tokens (JWT backend, /jwt/example).
# The stack is stopped on exit (KEEP_STACK=1 leaves it running).
# Exits non-zero if any row fails.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

cleanup() {
  local rc=$?
  [ -z "${CASES_TMP:-}" ] || rm -rf "$CASES_TMP"
  if [ "${KEEP_STACK:-0}" = 1 ]; then
    log "KEEP_STACK=1: leaving the stack running (scripts/stack-down.sh stops it)"
  else
    "$REPO/scripts/stack-down.sh" 2>/dev/null || true
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$REPO/scripts/stack-up.sh"
. "$REPO/scripts/env.sh"
# shellcheck source=scripts/cases.sh
. "$REPO/scripts/cases.sh"

if [ -t 1 ]; then GREEN=$'\e[32m' RED=$'\e[31m' DIM=$'\e[2m' OFF=$'\e[0m'; else GREEN='' RED='' DIM='' OFF=''; fi

report_row() {
  local no="$1" name="$2" expected="$3" got="$4" result="$5" detail="$6" color="$GREEN"
  [ "$result" = PASS ] || color="$RED"
  printf '%3s  %-50s %-9s %-9s %s%s%s\n' "$no" "$name" "$expected" "$got" "$color" "$result" "$OFF"
  [ -z "$detail" ] || printf '     %s%s%s\n' "$DIM" "$detail" "$OFF"
}

echo
echo "certbound demo: gateway $STACK_GW_URL/example and /jwt/example, tokens from $STACK_AS_URL/token"
echo "  client-a: $(openssl x509 -in "$STACK_CLIENT_A_CERT" -noout -subject), x5t#S256 $(thumbprint "$STACK_CLIENT_A_CERT")"
echo "  client-b: $(openssl x509 -in "$STACK_CLIENT_B_CERT" -noout -subject), x5t#S256 $(thumbprint "$STACK_CLIENT_B_CERT")"
echo "  token:    curl --cert client-a.pem --key client-a.key -d grant_type=client_credentials -d client_id=client-a -d scope=api:read $STACK_AS_URL/token"
echo "            opaque, introspected by certbound (RFC 7662 backend) for $STACK_GW_URL/example;"
echo "            with -d resource=$STACK_JWT_AUDIENCE a JWT (typ at+jwt, cnf.x5t#S256), verified by"
echo "            certbound-jwt (JWT backend, the AS's JWKS) for $STACK_GW_URL/jwt/example"
echo
printf '%3s  %-50s %-9s %-9s %s\n' "#" "call" "expected" "got" "result"
printf '%3s  %-50s %-9s %-9s %s\n' "---" "----" "--------" "---" "------"
run_matrix demo
echo
echo "demo: $CASES_PASSED passed, $CASES_FAILED failed (logs: $STACK_LOGS)"
[ "$CASES_FAILED" = 0 ]
