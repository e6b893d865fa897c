#!/usr/bin/env bash
# Load on certbound's HTTP mode against the real local stack: wrk sends
# `auth_request`-shaped calls (token, nginx-escaped certificate, original
# method/URI) straight to `certbound serve`, which introspects every call at
# the real AS through nginx mTLS (keep-alive). Bounded: DURATION seconds
# (default 10) on 127.0.0.1 only; brings the stack up and down itself.
#   scripts/load.sh            # DURATION=10 CONNECTIONS=8 THREADS=2
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

DURATION="${DURATION:-10}"
CONNECTIONS="${CONNECTIONS:-8}"
THREADS="${THREADS:-2}"

if ! command -v wrk >/dev/null 2>&1; then
  log "installing wrk with apt-get"
  { DEBIAN_FRONTEND=noninteractive apt-get update \
      && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends wrk; } >/dev/null 2>&1 \
    || die "cannot install wrk"
fi

cleanup() { "$REPO/scripts/stack-down.sh" >/dev/null 2>&1 || true; }
trap cleanup EXIT
"$REPO/scripts/stack-up.sh"
. "$REPO/scripts/env.sh"

token="$(curl -sf --cacert "$STACK_CA_CERT" --cert "$STACK_CLIENT_A_CERT" --key "$STACK_CLIENT_A_KEY" \
  -d grant_type=client_credentials -d client_id=client-a -d scope=api:read "$STACK_AS_URL/token" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')"
cert_a="$(python3 -c 'import sys,urllib.parse; print(urllib.parse.quote(open(sys.argv[1]).read(), safe=""))' "$STACK_CLIENT_A_CERT")"
cert_b="$(python3 -c 'import sys,urllib.parse; print(urllib.parse.quote(open(sys.argv[1]).read(), safe=""))' "$STACK_CLIENT_B_CERT")"
url="http://127.0.0.1:$CERTBOUND_PORT/authorize"

run() {
  local label="$1" cert="$2" expect="$3"
  local got
  got="$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" -H "X-Ssl-Cert: $cert" \
    -H "X-Original-Method: GET" -H "X-Original-URI: /example" "$url")"
  [ "$got" = "$expect" ] || die "$label: expected $expect before the load run, got $got"
  echo
  echo "== $label (expect $expect) — wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s"
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency \
    -H "Authorization: Bearer $token" -H "X-Ssl-Cert: $cert" \
    -H "X-Original-Method: GET" -H "X-Original-URI: /example" "$url" \
    | grep -E "Requests/sec|Latency|50%|90%|99%|Non-2xx|requests in"
}

run "A's token with A's certificate" "$cert_a" 200
run "A's token with B's certificate" "$cert_b" 401
