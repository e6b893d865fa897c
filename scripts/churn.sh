#!/usr/bin/env bash
# Memory under churn: TOKENS distinct tokens (default 1 000 000) through
# `certbound serve` with the cache on, every one a miss answered by a fast
# RFC 7662 stub (node, loopback). The cache must stay bounded by
# CERTBOUND_CACHE_MAX_ENTRIES (default 10 000 here) and RSS must level off.
# Prints the RSS every SAMPLE seconds and the peak; stops everything it
# started (by PID). Needs node, wrk, openssl; no stack.
# wrk runs in steps of STEP seconds until TOKENS requests were made.
#   scripts/churn.sh                     # TOKENS=1000000 CONNECTIONS=16
#   TOKENS=200000 scripts/churn.sh       # shorter
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
TOKENS="${TOKENS:-1000000}"
CONNECTIONS="${CONNECTIONS:-16}"
MAX_ENTRIES="${MAX_ENTRIES:-10000}"
STEP="${STEP:-10}"
BIN="${CERTBOUND_BIN:-$REPO/target/release/certbound}"
[ -x "$BIN" ] || (cd "$REPO" && cargo build --release)
command -v wrk >/dev/null || { echo "churn: wrk is needed (apt-get install wrk)"; exit 1; }

work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

openssl req -x509 -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -keyout "$work/k.pem" \
  -out "$work/c.pem" -days 1 -subj /CN=churn 2>/dev/null
thumb="$("$BIN" thumbprint "$work/c.pem")"
cert="$(python3 -c 'import sys,urllib.parse; print(urllib.parse.quote(open(sys.argv[1]).read(), safe=""))' "$work/c.pem")"

as_port="$(free_port)"
cat >"$work/stub.mjs" <<EOF
import http from 'node:http';
const body = JSON.stringify({active: true, sub: 'churn', client_id: 'churn', scope: 'api:read',
  exp: Math.floor(Date.now() / 1000) + 3600, cnf: {'x5t#S256': '$thumb'}});
http.createServer((req, res) => {
  req.resume();
  req.on('end', () => { res.writeHead(200, {'content-type': 'application/json'}); res.end(body); });
}).listen($as_port, '127.0.0.1');
EOF
node "$work/stub.mjs" & pids+=($!)

cb_port="$(free_port)"
env -i PATH="$PATH" CERTBOUND_BACKEND=rfc7662 \
  CERTBOUND_INTROSPECTION_ENDPOINT="http://127.0.0.1:$as_port/introspect" \
  CERTBOUND_INTROSPECTION_CLIENT_ID=rs CERTBOUND_INTROSPECTION_CLIENT_SECRET=churn-secret \
  CERTBOUND_CACHE_TTL_S=300 CERTBOUND_CACHE_MAX_ENTRIES="$MAX_ENTRIES" CERTBOUND_WORKER_THREADS=1 \
  RUST_LOG=warn "$BIN" serve --listen "127.0.0.1:$cb_port" & cb=$!
pids+=("$cb")
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$cb_port/healthz" >/dev/null 2>&1 && break; sleep 0.05; done

# Every request a new token: step number + counter.
cat >"$work/churn.lua" <<'EOF'
local counter = 0
local step = os.getenv("CHURN_STEP") or "0"
function init(args)
  wrk.headers["X-Ssl-Cert"] = os.getenv("CHURN_CERT")
  wrk.headers["X-Original-Method"] = "GET"
  wrk.headers["X-Original-URI"] = "/example"
end
function request()
  counter = counter + 1
  wrk.headers["Authorization"] = "Bearer churn-" .. step .. "-" .. counter
  return wrk.format("GET", "/authorize")
end
EOF

rss() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$cb/status"; }
peak() { awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$cb/status"; }
echo "churn: $TOKENS distinct tokens, cache max $MAX_ENTRIES entries; RSS at start $(rss) MiB"
started=$(date +%s)
done_requests=0
step=0
while [ "$done_requests" -lt "$TOKENS" ]; do
  step=$((step + 1))
  CHURN_STEP="$step" CHURN_CERT="$cert" wrk -t1 -c"$CONNECTIONS" -d"${STEP}s" -s "$work/churn.lua" \
    "http://127.0.0.1:$cb_port" >"$work/wrk.out" 2>&1
  n="$(awk '/requests in/ {print $1}' "$work/wrk.out")"
  bad="$(awk '/Non-2xx/ {print $NF}' "$work/wrk.out")"
  [ -z "$bad" ] || { echo "churn: $bad answers were not 200"; cat "$work/wrk.out"; exit 1; }
  done_requests=$((done_requests + n))
  echo "  $(( $(date +%s) - started ))s: $done_requests distinct tokens, $(awk '/Requests\/sec/ {print $2}' "$work/wrk.out") req/s, RSS $(rss) MiB"
done
echo "churn: $done_requests distinct tokens, all answered 200; RSS at the end $(rss) MiB, peak $(peak) MiB, $(( $(date +%s) - started )) s"
