# shellcheck shell=bash
# The call matrix shared by demo.sh (a table) and e2e.sh (assertions).
# Source after lib.sh; the caller defines
#   report_row NUMBER NAME EXPECTED GOT RESULT DETAIL
# and then calls run_matrix [demo|full]. Counters: CASES_PASSED, CASES_FAILED.

CASES_PASSED=0
CASES_FAILED=0
CASE_NO=0
CASES_TMP="$(mktemp -d)"

TLS=(--cacert "$STACK_CA_CERT" -sS --max-time 20)

# cert_args a|b|none: the curl arguments presenting that client certificate.
cert_args() {
  case "$1" in
    a) CERT_ARGS=(--cert "$STACK_CLIENT_A_CERT" --key "$STACK_CLIENT_A_KEY") ;;
    b) CERT_ARGS=(--cert "$STACK_CLIENT_B_CERT" --key "$STACK_CLIENT_B_KEY") ;;
    none) CERT_ARGS=() ;;
    *) die "cert_args: unknown certificate $1" ;;
  esac
}

# thumbprint PEM_FILE: base64url(SHA-256(DER)), the cnf.x5t#S256 of RFC 8705.
thumbprint() {
  openssl x509 -in "$1" -outform DER | openssl dgst -sha256 -binary | base64 -w0 | tr '+/' '-_' | tr -d '='
}

# escaped_cert PEM_FILE: the certificate URL-encoded like nginx's $ssl_client_escaped_cert.
escaped_cert() {
  python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(open(sys.argv[1]).read(), safe=""))' "$1"
}

# token_for a|b SCOPE [RESOURCE]: a certificate-bound access token from the AS
# through the nginx mTLS proxy (CA-verified): opaque, or with RESOURCE (RFC
# 8707) a JWT for that resource server. Prints the token, or nothing on failure.
token_for() {
  local who="$1" scope="$2" resource=()
  [ -z "${3:-}" ] || resource=(-d "resource=$3")
  cert_args "$who"
  curl "${TLS[@]}" "${CERT_ARGS[@]}" -o "$CASES_TMP/token.json" \
    -d grant_type=client_credentials -d "client_id=client-$who" -d "scope=$scope" "${resource[@]}" \
    "$STACK_AS_URL/token" 2>"$CASES_TMP/token.err" || true
  local token
  token="$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["access_token"])' \
    "$CASES_TMP/token.json" 2>/dev/null || true)"
  record_secret "access token (client-$who)" "$token"
  printf '%s\n' "$token"
}

# revoke a|b TOKEN: revocation by the owning client (mTLS auth); prints the status.
revoke() {
  local who="$1" token="$2"
  cert_args "$who"
  curl "${TLS[@]}" "${CERT_ARGS[@]}" -o /dev/null -w '%{http_code}' \
    -d "client_id=client-$who" -d "token=$token" -d token_type_hint=access_token \
    "$STACK_AS_URL/token/revocation" 2>/dev/null || echo 000
}

# gw METHOD PATH CERT TOKEN [curl args...]: call the gateway. Sets GW_STATUS,
# GW_CHALLENGE (every WWW-Authenticate value, joined by " | "), GW_CHALLENGES
# (their number) and GW_BODY (file).
gw() {
  local method="$1" path="$2" cert="$3" token="$4"
  shift 4
  local auth=()
  [ -z "$token" ] || auth=(-H "Authorization: Bearer $token")
  cert_args "$cert"
  GW_BODY="$CASES_TMP/body"
  GW_STATUS="$(curl "${TLS[@]}" "${CERT_ARGS[@]}" "${auth[@]}" -X "$method" "$@" \
    -D "$CASES_TMP/headers" -o "$GW_BODY" -w '%{http_code}' "$STACK_GW_URL$path" 2>"$CASES_TMP/curl.err" || true)"
  [ -n "$GW_STATUS" ] || GW_STATUS=000
  GW_CHALLENGES="$(grep -ci '^www-authenticate:' "$CASES_TMP/headers" 2>/dev/null || true)"
  GW_CHALLENGE="$(grep -i '^www-authenticate:' "$CASES_TMP/headers" 2>/dev/null \
    | sed -e 's/^[^:]*:[[:space:]]*//' -e 's/\r$//' | paste -sd '|' - | sed 's/|/ | /g' || true)"
}

# start_cached_certbound: the stack's certbound configuration plus a 60 s
# answer cache, on 127.0.0.1:$CERTBOUND_CACHED_PORT (stopped by the caller).
start_cached_certbound() {
  export CERTBOUND_CACHED_PORT="${CERTBOUND_CACHED_PORT:-8085}"
  certbound_cmd CERTBOUND_CACHE_TTL_S=60
  start_bg certbound-cached "$STACK_LOGS/certbound-cached.log" \
    "${CERTBOUND_CMD[@]}" serve --listen "127.0.0.1:$CERTBOUND_CACHED_PORT"
  wait_ready certbound-cached "$STACK_LOGS/certbound-cached.log" 30 \
    curl -sf --max-time 2 "http://127.0.0.1:$CERTBOUND_CACHED_PORT/healthz"
}

# cached_call TOKEN a|b: GET /example through the cached certbound; prints the status.
cached_call() {
  local pem
  case "$2" in a) pem="$STACK_CLIENT_A_CERT" ;; *) pem="$STACK_CLIENT_B_CERT" ;; esac
  curl -s -o /dev/null -w '%{http_code}' --max-time 10 \
    -H "Authorization: Bearer $1" -H "X-Original-Method: GET" -H "X-Original-URI: /example" \
    -H "X-Ssl-Cert: $(escaped_cert "$pem")" "http://127.0.0.1:$CERTBOUND_CACHED_PORT/authorize" || echo 000
}

# gw_reason: the X-Certbound-Reason certbound gave (nginx passes it on 401/403
# through the error page), or "-".
gw_reason() {
  grep -i '^x-certbound-reason:' "$CASES_TMP/headers" 2>/dev/null | sed -e 's/^[^:]*:[[:space:]]*//' -e 's/\r$//' | head -n1 | grep . || echo -
}

# echoed NAME: a header value the echo backend saw (from GW_BODY).
echoed() {
  python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["headers"].get(sys.argv[2]) or "-")' \
    "$GW_BODY" "$1" 2>/dev/null || echo "?"
}

# explain_stolen TOKEN: `certbound explain` on a REST event carrying TOKEN
# (bound to A's certificate) and B's certificate. Prints "exit N, <what step 4
# says>" with the thumbprints replaced by A/B, and "TOKEN SHOWN" if the token
# appears anywhere in the output.
explain_stolen() {
  local event="$CASES_TMP/explain.json" rc=0 a b
  python3 "$REPO/scripts/make-event.py" "$1" "$STACK_CLIENT_B_CERT" GET /example "$event" \
    || { echo "error: make-event.py failed"; return; }
  run_certbound explain --event "$event" >"$CASES_TMP/explain.out" 2>"$CASES_TMP/explain.err" || rc=$?
  a="$(thumbprint "$STACK_CLIENT_A_CERT")"
  b="$(thumbprint "$STACK_CLIENT_B_CERT")"
  if grep -qF -- "$1" "$CASES_TMP/explain.out" "$CASES_TMP/explain.err"; then
    echo "TOKEN SHOWN"
    return
  fi
  printf 'exit %s, %s\n' "$rc" "$(grep -A1 '^4. decided by' "$CASES_TMP/explain.out" | tail -n1 \
    | sed -e 's/^ *//' -e "s/$a/A/g" -e "s/$b/B/g")"
}

# invoke_effect TOKEN CERT_FILE METHOD PATH [RUNNER...]: run `certbound invoke`
# (same environment as serve) on a REST REQUEST event; prints the policy
# Effect, or "error: ..." when there is none. RUNNER: run_certbound (default),
# or e.g. run_certbound_jwt [NAME=VALUE...] -- for the JWT instance.
invoke_effect() {
  local event="$CASES_TMP/event.json" runner=(run_certbound)
  python3 "$REPO/scripts/make-event.py" "$1" "$2" "$3" "$4" "$event" || { echo "error: make-event.py failed"; return; }
  [ "$#" -le 4 ] || runner=("${@:5}")
  local rc=0
  "${runner[@]}" invoke --event "$event" >"$CASES_TMP/invoke.out" 2>"$CASES_TMP/invoke.err" || rc=$?
  if [ "$rc" != 0 ] && [ ! -s "$CASES_TMP/invoke.out" ]; then
    echo "error: exit $rc: $(tail -n 1 "$CASES_TMP/invoke.err" 2>/dev/null)"
    return
  fi
  python3 - "$CASES_TMP/invoke.out" <<'EOF'
import json, sys
text = open(sys.argv[1]).read()
try:
    doc = json.loads(text)
except ValueError:
    print("error: not JSON: " + " ".join(text.split())[:120])
    sys.exit()
def effects(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Effect" and isinstance(value, str):
                yield value
            else:
                yield from effects(value)
    elif isinstance(node, list):
        for item in node:
            yield from effects(item)
found = sorted(set(effects(doc)))
if found:
    print(",".join(found))
elif isinstance(doc, dict) and "errorMessage" in doc:
    print("error: " + str(doc["errorMessage"]))
else:
    print("error: no Effect in " + " ".join(text.split())[:120])
EOF
}

# invoke_reason: the `reason` of the last invoke_effect's policy context, or "-".
invoke_reason() {
  python3 -c 'import json, sys; print(json.load(open(sys.argv[1])).get("context", {}).get("reason") or "-")' \
    "$CASES_TMP/invoke.out" 2>/dev/null || echo "?"
}

# forge COMMAND TOKEN [ARG]: a forged variant of a real JWT (scripts/forge-jwt.mjs).
forge() {
  local forged
  forged="$(node "$REPO/scripts/forge-jwt.mjs" "$@" 2>"$CASES_TMP/forge.err" || echo "forge-failed")"
  record_secret "forged JWT ($1)" "$forged"
  printf '%s\n' "$forged"
}

# jwt_header_kid TOKEN: the kid in a JWT's header ("?" if it is not a JWT).
jwt_header_kid() {
  node "$REPO/scripts/forge-jwt.mjs" kid "$1" 2>/dev/null || echo "?"
}

# jwt_summary TOKEN: what makes it an RFC 9068 certificate-bound token.
jwt_summary() {
  node "$REPO/scripts/forge-jwt.mjs" summary "$1" 2>/dev/null || echo "JWT ?"
}

# jwks_fetches: how many times the AS's JWKS was fetched through nginx so far
# (certbound's fetches; the e2e itself reads it straight from the AS).
jwks_fetches() {
  grep -c '"GET /jwks HTTP' "$STACK_LOGS/nginx-access.log" 2>/dev/null || true
}

# check NAME EXPECTED GOT [DETAIL]
check() {
  local name="$1" expected="$2" got="$3" detail="${4:-}" result
  CASE_NO=$((CASE_NO + 1))
  if [ "$expected" = "$got" ]; then
    result=PASS
    CASES_PASSED=$((CASES_PASSED + 1))
  else
    result=FAIL
    CASES_FAILED=$((CASES_FAILED + 1))
  fi
  report_row "$CASE_NO" "$name" "$expected" "$got" "$result" "$detail"
}

challenge_detail() {
  if [ "$GW_CHALLENGES" = 0 ]; then
    echo "WWW-Authenticate: (none)"
  else
    echo "WWW-Authenticate: $GW_CHALLENGE"
  fi
}

# run_matrix demo|full
run_matrix() {
  local mode="${1:-demo}" token_a token_b token_a2 thumb_a detail status
  thumb_a="$(thumbprint "$STACK_CLIENT_A_CERT")"

  token_a="$(token_for a api:read)"
  if [ -z "$token_a" ]; then
    check "token for client-a (mTLS, scope api:read)" "token" "none" \
      "$(cat "$CASES_TMP/token.json" "$CASES_TMP/token.err" 2>/dev/null | tr '\n' ' ')"
    return
  fi

  gw GET /example a "$token_a"
  detail="backend saw: sub=$(echoed x-certbound-sub) client_id=$(echoed x-certbound-client-id) scope=$(echoed x-certbound-scope) thumbprint=$(echoed x-certbound-cert-thumbprint)"
  check "GET /example   cert A, token A" 200 "$GW_STATUS" "$detail"

  if [ "$mode" = full ]; then
    check "  backend sees the thumbprint of A's cert" "$thumb_a" "$(echoed x-certbound-cert-thumbprint)"
    check "  backend sees client_id client-a" client-a "$(echoed x-certbound-client-id)"
    gw GET /example a "$token_a" -H "X-Certbound-Client-Id: client-b" -H "X-Certbound-Cert-Thumbprint: forged"
    check "GET /example   cert A, token A, forged X-Certbound-* headers" \
      "200 client-a $thumb_a" "$GW_STATUS $(echoed x-certbound-client-id) $(echoed x-certbound-cert-thumbprint)"
  fi

  gw GET /example b "$token_a"
  check "GET /example   cert B, token A" 401 "$GW_STATUS" "$(challenge_detail)"
  [ "$mode" != full ] || check "  exactly one WWW-Authenticate on 401" 1 "$GW_CHALLENGES" "$(challenge_detail)"
  if [ "$mode" = full ]; then
    check "certbound explain: token A, cert B (why was it refused?)" \
      "exit 1, cert_mismatch: the token is bound to x5t#S256 A, the request presented B" \
      "$(explain_stolen "$token_a")"
  fi

  gw GET /example none "$token_a"
  check "GET /example   no cert, token A" 401 "$GW_STATUS" "$(challenge_detail)"

  gw GET /example a ""
  check "GET /example   cert A, no token" 401 "$GW_STATUS" "$(challenge_detail)"

  gw POST /example a "$token_a" -d probe=1
  check "POST /example  cert A, token A (api:read only)" 403 "$GW_STATUS" "$(challenge_detail)"
  if [ "$mode" = full ]; then
    check "  exactly one WWW-Authenticate on 403" 1 "$GW_CHALLENGES" "$(challenge_detail)"
    case "$GW_CHALLENGE" in
      *insufficient_scope*) status=insufficient_scope ;;
      *) status="${GW_CHALLENGE:-(none)}" ;;
    esac
    check "  403 challenge says insufficient_scope" insufficient_scope "$status"
  fi

  if [ "$mode" = full ]; then
    token_b="$(token_for b "api:read api:write")"
    gw GET /example a "$token_b"
    check "GET /example   cert A, token B" 401 "$GW_STATUS" "$(challenge_detail)"
    gw GET /example b "$token_b"
    check "GET /example   cert B, token B" 200 "$GW_STATUS" \
      "backend saw: client_id=$(echoed x-certbound-client-id) thumbprint=$(echoed x-certbound-cert-thumbprint)"
    gw POST /example b "$token_b" -d probe=1
    check "POST /example  cert B, token B (api:write)" 200 "$GW_STATUS"
    gw GET /example a "bogus-$RANDOM-token"
    check "GET /example   cert A, bogus token" 401 "$GW_STATUS" "$(challenge_detail)"
    gw GET /example b "$token_a" -H "X-Ssl-Cert: $(escaped_cert "$STACK_CLIENT_A_CERT")"
    check "GET /example   cert B + spoofed X-Ssl-Cert of A, token A" 401 "$GW_STATUS" "$(challenge_detail)"
    gw GET /example none "$token_a" -H "X-Ssl-Cert: $(escaped_cert "$STACK_CLIENT_A_CERT")"
    check "GET /example   no cert + spoofed X-Ssl-Cert of A, token A" 401 "$GW_STATUS" "$(challenge_detail)"
    gw GET /_certbound a "$token_a"
    check "GET /_certbound (internal location)" 404 "$GW_STATUS"
    gw GET /elsewhere a "$token_a"
    check "GET /elsewhere  (no scope rule; CERTBOUND_SCOPE_DEFAULT=deny)" "403 route_unmatched" "$GW_STATUS $(gw_reason)"
    gw POST /%65xample a "$token_a" -d probe=1
    check "POST /%65xample (encoded spelling of /example, api:write missing)" 403 "$GW_STATUS"
    gw GET '/example;jsessionid=x' a "$token_a"
    check "GET /example;jsessionid=x (path parameters: refused)" "403 path_rejected" "$GW_STATUS $(gw_reason)"
    gw GET '/x/..%2Fexample' a "$token_a"
    check "GET /x/..%2Fexample (encoded slash: refused)" "403 path_rejected" "$GW_STATUS $(gw_reason)"
    cert_args none
    status="$(curl "${TLS[@]}" -o /dev/null -w '%{http_code}' -d grant_type=client_credentials \
      -d client_id=client-a -d scope=api:read "$STACK_AS_URL/token" 2>/dev/null || true)"
    check "AS: token for client-a without a client cert" 401 "$status"
  fi

  if [ "$mode" = full ]; then
    # The revocation window a cache opens: a second certbound with
    # CERTBOUND_CACHE_TTL_S=60 (straight, without nginx) has A's token cached.
    start_cached_certbound
    check "cached certbound: token A, cert A (miss, then kept)" 200 "$(cached_call "$token_a" a)"
  fi

  status="$(revoke a "$token_a")"
  gw GET /example a "$token_a"
  check "GET /example   cert A, token A after revocation" 401 "$GW_STATUS" \
    "revocation answered $status; $(challenge_detail)"
  if [ "$mode" = full ]; then
    check "cached certbound: token A after revocation, within CERTBOUND_CACHE_TTL_S (the window)" 200 \
      "$(cached_call "$token_a" a)" "the default (cache off) refused it at once"
    check "cached certbound: token A after revocation, cert B (hit, still refused)" 401 "$(cached_call "$token_a" b)"
    stop certbound-cached >/dev/null 2>&1
  fi

  token_a2="$(token_for a api:read)"
  check "Lambda REST event, fresh token A, cert A" Allow "$(invoke_effect "$token_a2" "$STACK_CLIENT_A_CERT" GET /example)" \
    "certbound invoke --event (requestContext.identity.clientCert)"
  check "Lambda REST event, fresh token A, cert B" Deny "$(invoke_effect "$token_a2" "$STACK_CLIENT_B_CERT" GET /example)"
  if [ "$mode" = full ]; then
    check "Lambda REST event, token A, POST (api:write missing)" Deny \
      "$(invoke_effect "$token_a2" "$STACK_CLIENT_A_CERT" POST /example)"
  fi

  run_jwt_matrix "$mode" || return 0

  if [ "$mode" = full ]; then
    # Last: the AS stopped. Introspection failing must give 500, not 401 or
    # 200; the JWT instance goes on deciding with the keys it holds.
    stop as 2>/dev/null
    gw GET /example a "$token_a2"
    check "GET /example   cert A, token A, AS down (introspection fails)" 500 "$GW_STATUS"
    run_jwt_down_matrix
  fi
}

# jwt_check NAME STATUS [REASON [DETAIL]]: check the last gw call (a /jwt/ row).
# full: status and X-Certbound-Reason; demo: the status, the reason as detail.
jwt_check() {
  local name="$1" status="$2" reason="${3:--}" detail="${4:-}"
  if [ "$status" != 200 ] && [ -z "$detail" ]; then
    detail="reason $(gw_reason); $(challenge_detail)"
  fi
  if [ "$JWT_MODE" = full ] && [ "$reason" != - ]; then
    check "$name" "$status $reason" "$GW_STATUS $(gw_reason)" "$detail"
  else
    check "$name" "$status" "$GW_STATUS" "$detail"
  fi
}

# run_jwt_matrix demo|full: the gateway's /jwt/ route (certbound-jwt: RFC 9068
# access tokens signed by the AS, verified with its JWKS) and the Lambda front
# with the JWT backend. Sets JWT_A (a valid token of client-a, api:read) for
# run_jwt_down_matrix. Fails (no further rows) when no JWT can be had.
run_jwt_matrix() {
  JWT_MODE="$1"
  local api="$STACK_JWT_AUDIENCE" jwt_a jwt_b jwt_new kid_before kid_after fetches_before \
    status_new status_new2 status_old fetched rotated
  jwt_a="$(token_for a api:read "$api")"
  if [ "$(jwt_header_kid "$jwt_a")" = "?" ]; then
    check "JWT for client-a (mTLS, resource $api)" "JWT" "none" \
      "$(cat "$CASES_TMP/token.json" "$CASES_TMP/token.err" 2>/dev/null | tr '\n' ' ')"
    return 1
  fi
  JWT_A="$jwt_a"

  gw GET /jwt/example a "$jwt_a"
  jwt_check "GET /jwt/example  cert A, JWT A" 200 - \
    "$(jwt_summary "$jwt_a"); backend saw: sub=$(echoed x-certbound-sub) client_id=$(echoed x-certbound-client-id) scope=$(echoed x-certbound-scope) thumbprint=$(echoed x-certbound-cert-thumbprint)"
  [ "$JWT_MODE" != full ] || check "  backend sees client-a, api:read and A's thumbprint (cnf.x5t#S256)" \
    "client-a api:read $(thumbprint "$STACK_CLIENT_A_CERT")" \
    "$(echoed x-certbound-client-id) $(echoed x-certbound-scope) $(echoed x-certbound-cert-thumbprint)"
  gw GET /jwt/example b "$jwt_a"
  jwt_check "GET /jwt/example  cert B, JWT A" 401 cert_mismatch
  gw GET /jwt/example none "$jwt_a"
  jwt_check "GET /jwt/example  no cert, JWT A" 401 cert_missing
  gw POST /jwt/example a "$jwt_a" -d probe=1
  jwt_check "POST /jwt/example cert A, JWT A (api:read only)" 403 scope_insufficient

  if [ "$JWT_MODE" = full ]; then
    jwt_b="$(token_for b "api:read api:write" "$api")"
    gw POST /jwt/example b "$jwt_b" -d probe=1
    jwt_check "POST /jwt/example cert B, JWT B (api:write)" 200
    gw GET /jwt/example a "$(forge tamper "$jwt_a" 'scope="api:read api:write"')"
    jwt_check "GET /jwt/example  cert A, JWT A with a tampered payload (scope)" 401 token_invalid
    gw GET /jwt/example a "$(forge none "$jwt_a")"
    jwt_check "GET /jwt/example  cert A, JWT A as alg none, no signature" 401 token_invalid
    curl -sS --max-time 5 -o "$CASES_TMP/jwks.json" "http://127.0.0.1:$AS_PORT/jwks" 2>/dev/null || true
    gw GET /jwt/example a "$(forge hs256 "$jwt_a" "$CASES_TMP/jwks.json")"
    jwt_check "GET /jwt/example  cert A, JWT A as HS256 keyed with the RSA public key" 401 token_invalid
    gw GET /jwt/example a "$(token_for a api:read https://expired.certbound.test)"
    jwt_check "GET /jwt/example  cert A, JWT A expired an hour ago (signed by the AS)" 401 token_expired
    gw GET /jwt/example a "$(token_for a api:read https://other.certbound.test)"
    jwt_check "GET /jwt/example  cert A, JWT A for another audience" 401 token_invalid
    gw GET /jwt/example a "$(token_for a api:read)"
    jwt_check "GET /jwt/example  cert A, opaque token A" 401 token_invalid
    gw GET /jwt/elsewhere a "$jwt_a"
    jwt_check "GET /jwt/elsewhere (no scope rule; CERTBOUND_SCOPE_DEFAULT=deny)" 403 route_unmatched
    # The AS answers 400 unsupported_token_type for a JWT at its introspection
    # endpoint: a token it does not take (401), not an AS failure (500).
    gw GET /example a "$jwt_a"
    jwt_check "GET /example (introspection route), cert A, JWT A" 401 token_invalid
  fi

  check "Lambda REST event, JWT A, cert A (JWT backend)" Allow \
    "$(invoke_effect "$jwt_a" "$STACK_CLIENT_A_CERT" GET /jwt/example run_certbound_jwt --)" \
    "certbound invoke --event, CERTBOUND_BACKEND=jwt"
  check "Lambda REST event, JWT A, cert B (JWT backend)" Deny \
    "$(invoke_effect "$jwt_a" "$STACK_CLIENT_B_CERT" GET /jwt/example run_certbound_jwt --)" \
    "reason $(invoke_reason)"
  [ "$JWT_MODE" = full ] || return 0

  check "Lambda REST event, JWT A, cert A, CERTBOUND_JWT_ISSUER=https://other.example" "Deny token_invalid" \
    "$(invoke_effect "$jwt_a" "$STACK_CLIENT_A_CERT" GET /jwt/example run_certbound_jwt \
      CERTBOUND_JWT_ISSUER=https://other.example CERTBOUND_JWT_JWKS_URI="$AS_ISSUER/jwks" --) $(invoke_reason)" \
    "the AS's real JWKS, another expected issuer"

  # Key rotation: a new signing key first in the AS's JWKS, AS restarted.
  # certbound-jwt has the old set cached: the new kid costs exactly one
  # refetch, and tokens signed with the previous key (still published) stay valid.
  kid_before="$(jwt_header_kid "$jwt_a")"
  fetches_before="$(jwks_fetches)"
  kid_after="$(as_rotate_keys)"
  jwt_new="$(token_for a api:read "$api")"
  gw GET /jwt/example a "$jwt_new"
  status_new="$GW_STATUS"
  gw GET /jwt/example a "$jwt_new"
  status_new2="$GW_STATUS"
  gw GET /jwt/example a "$jwt_a"
  status_old="$GW_STATUS"
  fetched=$(($(jwks_fetches) - fetches_before))
  rotated=not-rotated
  if [ -n "$kid_after" ] && [ "$kid_after" != "$kid_before" ] && [ "$(jwt_header_kid "$jwt_new")" = "$kid_after" ]; then
    rotated=rotated
  fi
  check "AS key rotation: new-kid JWT twice, old-kid JWT; JWKS fetches" "rotated 200 200 200 1" \
    "$rotated $status_new $status_new2 $status_old $fetched" \
    "kid ${kid_before:0:8}… -> ${kid_after:0:8}…, new token's kid $(jwt_header_kid "$jwt_new" | cut -c1-8)…"
  JWT_A="$jwt_new"
}

# run_jwt_down_matrix: the AS (hence its JWKS) is down, certbound-jwt runs on.
run_jwt_down_matrix() {
  gw GET /jwt/example a "$JWT_A"
  jwt_check "GET /jwt/example  cert A, JWT A, AS down (keys cached)" 200
  gw GET /jwt/example a "$(forge foreign-kid "$JWT_A")"
  jwt_check "GET /jwt/example  cert A, JWT with an unknown kid, AS down (refetch fails)" 500 - \
    "$(tail -n 1 "$STACK_LOGS/certbound-jwt.log" | grep -o '"error":"[^"]*"' || true)"
  gw GET /jwt/example a "$JWT_A"
  jwt_check "GET /jwt/example  cert A, JWT A, AS down, after the failed refetch" 200
}
