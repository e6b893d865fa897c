#!/usr/bin/env bash
# Load on certbound's HTTP mode against the real local stack: wrk sends
# `auth_request`-shaped calls (token, nginx-escaped certificate, original
# method/URI) straight to `certbound serve`:
#   - cache off (the stack's instance): every call introspected at the real AS
#     through nginx mTLS (keep-alive) — the miss path;
#   - cache on (a second instance, CERTBOUND_CACHE_TTL_S=60): after the first
#     call every decision is a cache hit — the fast path.
# Each run checks that every answer is the expected one (wrk's Non-2xx count)
# and prints requests/s and the latency percentiles; the end reports the peak
# RSS of both certbound processes. Bounded: DURATION seconds (default 10) per
# run, 127.0.0.1 only; brings the stack up and down itself.
#   scripts/load.sh            # DURATION=10 CONNECTIONS=8 THREADS=1
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

DURATION="${DURATION:-10}"
CONNECTIONS="${CONNECTIONS:-8}"
THREADS="${THREADS:-1}"
export CERTBOUND_CACHED_PORT="${CERTBOUND_CACHED_PORT:-8085}"
export CERTBOUND_METRICS_PORT="${CERTBOUND_METRICS_PORT:-9465}"

if ! command -v wrk >/dev/null 2>&1; then
  log "installing wrk with apt-get"
  { DEBIAN_FRONTEND=noninteractive apt-get update \
      && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends wrk; } >/dev/null 2>&1 \
    || die "cannot install wrk"
fi

cleanup() {
  stop certbound-cached >/dev/null 2>&1 || true
  "$REPO/scripts/stack-down.sh" >/dev/null 2>&1 || true
}
trap cleanup EXIT
"$REPO/scripts/stack-up.sh"
. "$REPO/scripts/env.sh"

# The cached instance also serves Prometheus metrics (METRICS=off: not), so
# the counters can be checked against what wrk counted.
if [ "${METRICS:-on}" = on ]; then
  certbound_cmd CERTBOUND_CACHE_TTL_S=60 CERTBOUND_WORKER_THREADS="${WORKERS:-1}" \
    CERTBOUND_METRICS_LISTEN="127.0.0.1:$CERTBOUND_METRICS_PORT"
else
  certbound_cmd CERTBOUND_CACHE_TTL_S=60 CERTBOUND_WORKER_THREADS="${WORKERS:-1}" CERTBOUND_METRICS=off
fi
start_bg certbound-cached "$STACK_LOGS/certbound-cached.log" \
  "${CERTBOUND_CMD[@]}" serve --listen "127.0.0.1:$CERTBOUND_CACHED_PORT"
wait_ready certbound-cached "$STACK_LOGS/certbound-cached.log" 30 \
  curl -sf --max-time 2 "http://127.0.0.1:$CERTBOUND_CACHED_PORT/healthz"

token="$(curl -sf --cacert "$STACK_CA_CERT" --cert "$STACK_CLIENT_A_CERT" --key "$STACK_CLIENT_A_KEY" \
  -d grant_type=client_credentials -d client_id=client-a -d scope=api:read "$STACK_AS_URL/token" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')"
cert_a="$(python3 -c 'import sys,urllib.parse; print(urllib.parse.quote(open(sys.argv[1]).read(), safe=""))' "$STACK_CLIENT_A_CERT")"
cert_b="$(python3 -c 'import sys,urllib.parse; print(urllib.parse.quote(open(sys.argv[1]).read(), safe=""))' "$STACK_CLIENT_B_CERT")"

# metric SELECTOR: the sum of the cached instance's Prometheus samples whose
# name and labels contain SELECTOR (e.g. 'certbound_cache_total{result="hit"}').
metric() {
  curl -sf --max-time 2 "http://127.0.0.1:$CERTBOUND_METRICS_PORT/metrics" | python3 -c '
import sys
name, _, labels = sys.argv[1].partition("{")
want = [l for l in labels.rstrip("}").split(",") if l]
total = 0
for line in sys.stdin:
    if line.startswith("#") or not line.strip():
        continue
    series, value = line.rsplit(" ", 1)
    sname, _, slabels = series.partition("{")
    if sname == name and all(w in slabels for w in want):
        total += float(value)
print(int(total))' "$1"
}

# run LABEL PORT CERT EXPECTED: one wrk run; fails when an answer is not EXPECTED.
run() {
  local label="$1" port="$2" cert="$3" expect="$4" url got out requests non2xx
  url="http://127.0.0.1:$port/authorize"
  got="$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" -H "X-Ssl-Cert: $cert" \
    -H "X-Original-Method: GET" -H "X-Original-URI: /example" "$url")"
  [ "$got" = "$expect" ] || die "$label: expected $expect before the load run, got $got"
  echo
  echo "== $label (expect $expect) — wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s"
  out="$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency \
    -H "Authorization: Bearer $token" -H "X-Ssl-Cert: $cert" \
    -H "X-Original-Method: GET" -H "X-Original-URI: /example" "$url")"
  printf '%s\n' "$out" | grep -E "Requests/sec|Latency|50%|90%|99%|Non-2xx|requests in|Socket errors"
  requests="$(printf '%s\n' "$out" | awk '/requests in/ {print $1}')"
  non2xx="$(printf '%s\n' "$out" | awk '/Non-2xx/ {print $NF}')"
  non2xx="${non2xx:-0}"
  if [ "$expect" = 200 ] && [ "$non2xx" != 0 ]; then
    die "$label: $non2xx of $requests answers were not 200"
  fi
  if [ "$expect" != 200 ] && [ "$non2xx" != "$requests" ]; then
    die "$label: $((requests - non2xx)) of $requests answers were 2xx"
  fi
  echo "   all $requests answers as expected"
  if [ "$port" = "$CERTBOUND_CACHED_PORT" ] && [ "${METRICS:-on}" = on ]; then
    # wrk counts the answers it read; certbound may have answered up to one
    # more per connection when wrk stopped, plus the curl check above.
    local selector after delta
    if [ "$expect" = 200 ]; then selector='certbound_decisions_total{verdict="Allow"}'
    else selector='certbound_decisions_total{reason="cert_mismatch"}'; fi
    after="$(metric "$selector")"
    delta=$((after - ${METRIC_BEFORE[$selector]:-0}))
    METRIC_BEFORE[$selector]=$after
    if [ "$delta" -lt $((requests + 1)) ] || [ "$delta" -gt $((requests + 1 + CONNECTIONS)) ]; then
      die "$label: $selector grew by $delta, wrk counted $requests (+1 check)"
    fi
    echo "   metrics: $selector +$delta (wrk: $requests + 1 check); cache hits $(metric 'certbound_cache_total{result="hit"}'), misses $(metric 'certbound_cache_total{result="miss"}')"
  fi
}
declare -A METRIC_BEFORE=()

run "cache off: A's token with A's certificate (every call introspected)" "$CERTBOUND_PORT" "$cert_a" 200
run "cache off: A's token with B's certificate" "$CERTBOUND_PORT" "$cert_b" 401
run "cache on: A's token with A's certificate (hits)" "$CERTBOUND_CACHED_PORT" "$cert_a" 200
run "cache on: A's token with B's certificate (hits, refused by the core)" "$CERTBOUND_CACHED_PORT" "$cert_b" 401

echo
for name in certbound certbound-cached; do
  pid="$(running "$name")" || continue
  echo "$name: peak RSS $(awk '/VmHWM/ {printf "%.1f MiB", $2/1024}' "/proc/$pid/status")"
done
