#!/usr/bin/env bash
# `make test` end-to-end part: bring the stack up, run the whole matrix as
# assertions (one line per case), tear the stack down even on failure.
# Last line: "e2e: N passed, M failed"; exits non-zero if M > 0.
# KEEP_STACK=1 leaves the stack running afterwards.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

cleanup() {
  local rc=$?
  [ -z "${CASES_TMP:-}" ] || rm -rf "$CASES_TMP"
  if [ "${KEEP_STACK:-0}" != 1 ]; then
    "$REPO/scripts/stack-down.sh" >/dev/null 2>&1 || true
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if ! "$REPO/scripts/stack-up.sh"; then
  echo "e2e: stack-up failed (logs: $STACK_LOGS)"
  echo "e2e: 0 passed, 1 failed"
  exit 1
fi
. "$REPO/scripts/env.sh"
# shellcheck source=scripts/cases.sh
. "$REPO/scripts/cases.sh"

report_row() {
  local no="$1" name="$2" expected="$3" got="$4" result="$5" detail="$6"
  # collapse the alignment spaces of the shared case names
  name="$(printf '%s' "$name" | tr -s ' ')"
  if [ "$result" = PASS ]; then
    printf 'PASS %2s %s\n' "$no" "$name"
  else
    printf 'FAIL %2s %s: expected %s, got %s%s\n' "$no" "$name" "$expected" "$got" "${detail:+ ($detail)}"
  fi
}

# The Lambda binary under the Runtime API emulator, against this real AS
# (before the matrix, whose last case stops the AS).
if lambda_out="$(python3 "$REPO/scripts/lambda_runtime_test.py" --real-as --bin "$CERTBOUND_BIN" 2>&1)"; then
  lambda_rc=0
else
  lambda_rc=$?
fi
printf '%s\n' "$lambda_out" | sed 's/^/  /'
lambda_pass=$(printf '%s\n' "$lambda_out" | grep -c '^PASS' || true)
lambda_fail=$(printf '%s\n' "$lambda_out" | grep -c '^FAIL' || true)
if [ "$lambda_rc" != 0 ] && [ "$lambda_fail" = 0 ]; then lambda_fail=1; fi


run_matrix full

CASES_PASSED=$((CASES_PASSED + lambda_pass))
CASES_FAILED=$((CASES_FAILED + lambda_fail))
echo "e2e: $CASES_PASSED passed, $CASES_FAILED failed"
[ "$CASES_FAILED" = 0 ]
