# shellcheck shell=bash
# Helpers shared by stack-up.sh, stack-down.sh, demo.sh and e2e.sh. Source it.

# shellcheck source=scripts/env.sh
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
REPO="$STACK_REPO"

log() { printf 'stack: %s\n' "$*" >&2; }
die() { printf 'stack: error: %s\n' "$*" >&2; exit 1; }

nginx_bin() { command -v nginx 2>/dev/null || echo /usr/sbin/nginx; }

# Install nginx/openssl/curl, and Python's venv module (the pinned tools and the
# reference diff run in virtualenvs), with apt only when missing; node and
# python3 must exist.
ensure_tools() {
  local missing=()
  [ -x "$(nginx_bin)" ] || missing+=(nginx)
  command -v openssl >/dev/null 2>&1 || missing+=(openssl)
  command -v curl >/dev/null 2>&1 || missing+=(curl)
  # Debian/Ubuntu ship ensurepip, which `python3 -m venv` needs, as python3-venv.
  python3 -c 'import ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
  if [ "${#missing[@]}" -gt 0 ]; then
    [ "$(id -u)" = 0 ] || die "missing ${missing[*]}; install them: sudo apt-get install -y ${missing[*]}"
    mkdir -p "$STACK_LOGS"
    log "installing ${missing[*]} with apt-get (log: $STACK_LOGS/apt.log)"
    { DEBIAN_FRONTEND=noninteractive apt-get update \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"; } \
      >>"$STACK_LOGS/apt.log" 2>&1 || die "apt-get failed; see $STACK_LOGS/apt.log"
  fi
  command -v node >/dev/null 2>&1 || die "node (20 or newer) is required for the AS and the echo backend"
  command -v npm >/dev/null 2>&1 || die "npm is required to install oidc-provider"
}

# npm ci in as/ only when node_modules is missing or older than the lock file.
ensure_node_modules() {
  local as="$REPO/as" marker="$REPO/as/node_modules/.package-lock.json"
  if [ ! -f "$marker" ] || [ "$as/package-lock.json" -nt "$marker" ] || [ "$as/package.json" -nt "$marker" ]; then
    log "npm ci in as/ (log: $STACK_LOGS/npm.log)"
    (cd "$as" && npm ci --no-audit --no-fund) >>"$STACK_LOGS/npm.log" 2>&1 \
      || die "npm ci failed; see $STACK_LOGS/npm.log"
  fi
}

# --- processes, tracked by PID file only --------------------------------------

pidfile() { echo "$STACK_RUN/$1.pid"; }

# What the command line of each service contains (guards against a reused PID).
pid_pattern() {
  case "$1" in
    as) echo "server.mjs" ;;
    echo) echo "echo.mjs" ;;
    certbound) echo "serve --listen 127.0.0.1:$CERTBOUND_PORT" ;;
    certbound-jwt) echo "serve --listen 127.0.0.1:$CERTBOUND_JWT_PORT" ;;
    certbound-cached) echo "serve --listen 127.0.0.1:${CERTBOUND_CACHED_PORT:-8085}" ;;
    nginx) echo "nginx" ;;
    *) echo "$1" ;;
  esac
}

# running NAME: print the PID and succeed if NAME's PID file names a live process of ours.
running() {
  local f pid
  f="$(pidfile "$1")"
  [ -s "$f" ] || return 1
  pid="$(tr -dc '0-9' <"$f")"
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$(pid_pattern "$1")" || return 1
  echo "$pid"
}

# record_secret LABEL VALUE: remember a secret this run handles, for the scan
# at the end of `make test` (scripts/secret_scan.py), when SECRET_SCAN_FILE is set.
record_secret() {
  if [ -n "${SECRET_SCAN_FILE:-}" ] && [ -n "${2:-}" ]; then
    printf '%s\t%s\n' "$1" "$2" >>"$SECRET_SCAN_FILE"
  fi
}

# start_bg NAME LOG CMD...: start CMD detached (own session), stdout+stderr to LOG.
start_bg() {
  local name="$1" logfile="$2"
  shift 2
  printf '\n==== %s start %s\n' "$name" "$(date -Is)" >>"$logfile"
  setsid "$@" >>"$logfile" 2>&1 </dev/null &
  local pid=$! i
  echo "$pid" >"$(pidfile "$name")"
  # Until the forked shell has exec'd the command, its command line is still
  # this script's, and `running` would take it for a dead service.
  for ((i = 0; i < 100; i++)); do
    running "$name" >/dev/null && return 0
    alive "$pid" || return 0
    sleep 0.05
  done
}

# wait_ready NAME LOG SECONDS CHECK...: poll CHECK until it succeeds; fail early
# if the process exits, or after SECONDS, pointing at the log.
wait_ready() {
  local name="$1" logfile="$2" seconds="$3" i
  shift 3
  for ((i = 0; i < seconds * 10; i++)); do
    if ! running "$name" >/dev/null; then
      log "$name exited during start; last lines of $logfile:"
      tail -n 20 "$logfile" >&2 || true
      die "$name did not start (log: $logfile)"
    fi
    if "$@" >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.1
  done
  log "$name did not answer within ${seconds}s; last lines of $logfile:"
  tail -n 20 "$logfile" >&2 || true
  die "$name is not ready (log: $logfile)"
}

# alive PID: the process exists and is not a zombie.
alive() {
  [ -r "/proc/$1/stat" ] && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]
}

# stop NAME: TERM, wait up to 5 s, then KILL. Tolerates an already stopped process.
stop() {
  local name="$1" pid i
  if ! pid="$(running "$name")"; then
    rm -f "$(pidfile "$name")"
    log "$name: not running"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    alive "$pid" || break
    sleep 0.1
  done
  if alive "$pid"; then
    log "$name ($pid) ignored TERM; sending KILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$(pidfile "$name")"
  log "$name: stopped (pid $pid)"
}

# restart_if_newer NAME FILE...: stop NAME if it runs and one of FILE changed
# since it started (its PID file is as old as the process).
restart_if_newer() {
  local name="$1" file
  shift
  running "$name" >/dev/null || return 0
  for file in "$@"; do
    if [ "$file" -nt "$(pidfile "$name")" ]; then
      log "$name: $file changed since it started; restarting"
      stop "$name"
      return 0
    fi
  done
}

# --- the authorization server --------------------------------------------------

as_ready() { curl -sf --max-time 2 "http://127.0.0.1:$AS_PORT/.well-known/openid-configuration"; }

# as_start: start the AS unless it runs, wait until it answers. Its signing
# keys are made first (as/keys.mjs), so the key file is never newer than a
# running AS unless the keys were rotated since.
as_start() {
  node "$REPO/as/keys.mjs" ensure "$STACK_AS_KEYS_FILE" >>"$STACK_LOGS/as.log" 2>&1 \
    || die "cannot create the AS signing keys ($STACK_AS_KEYS_FILE); see $STACK_LOGS/as.log"
  if running as >/dev/null; then
    log "as: already running (pid $(running as))"
  else
    start_bg as "$STACK_LOGS/as.log" node "$REPO/as/server.mjs"
  fi
  wait_ready as "$STACK_LOGS/as.log" 20 as_ready
}

# as_rotate_keys: a new signing key pair first in the AS's JWKS (the previous
# pair stays published), then an AS restart; prints the new RS256 kid.
as_rotate_keys() {
  local kid
  kid="$(node "$REPO/as/keys.mjs" rotate "$STACK_AS_KEYS_FILE")" || die "key rotation failed"
  stop as >/dev/null 2>&1
  as_start >/dev/null 2>&1
  echo "$kid"
}

# --- HTTP checks -------------------------------------------------------------

# http_up URL [curl args...]: any HTTP answer at all (status other than 000).
http_up() {
  local url="$1" code
  shift
  code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$@" "$url" || true)"
  [ -n "$code" ] && [ "$code" != 000 ]
}

# --- templates ---------------------------------------------------------------

# render TEMPLATE OUT NAME...: replace ${NAME} by the value of the environment
# variable NAME (nothing else, so nginx's own $variables stay untouched).
render() {
  local template="$1" out="$2"
  shift 2
  awk -v names="$*" '
    BEGIN { n = split(names, list, " ") }
    {
      for (i = 1; i <= n; i++) {
        value = ENVIRON[list[i]]
        gsub(/[\\&]/, "\\\\&", value)
        gsub("\\$\\{" list[i] "\\}", value)
      }
      print
    }' "$template" >"$out.tmp"
  if grep -qE '\$\{[A-Z_]+\}' "$out.tmp"; then
    grep -nE '\$\{[A-Z_]+\}' "$out.tmp" >&2
    rm -f "$out.tmp"
    die "unrendered variables left in $out"
  fi
  mv "$out.tmp" "$out"
}

# cors_origin_regex ORIGIN...: the anchored regular expression nginx's CORS map
# matches Origin against (nginx/certbound.conf.template): exactly these origins.
# Each must be scheme://host[:port] in lower case, as browsers send it; none
# gives a pattern that no real Origin matches.
cors_origin_regex() {
  local origin alternatives=()
  for origin in "$@"; do
    [[ "$origin" =~ ^https?://[a-z0-9.-]+(:[0-9]{1,5})?$ ]] \
      || die "CORS_ALLOWED_ORIGINS: '$origin' is not an origin (scheme://host[:port], lower case, no path, no '*')"
    alternatives+=("${origin//./\\.}")
  done
  if [ "${#alternatives[@]}" = 0 ]; then
    echo '^$'
  else
    local IFS='|'
    echo "^(${alternatives[*]})\$"
  fi
}

# --- certbound -----------------------------------------------------------------

# certbound_cmd [NAME=VALUE...]: set CERTBOUND_CMD to `env -i` with exactly the stack's
# CERTBOUND_* environment (plus PATH and HOME) and the binary, for `serve` and
# `invoke` alike.
certbound_cmd() {
  [ -n "${CERTBOUND_INTROSPECTION_CLIENT_SECRET:-}" ] \
    || die "the certbound-rs secret is missing ($STACK_RS_SECRET_FILE); run scripts/stack-up.sh"
  # The client secret is read from its file by the shell that execs certbound,
  # so it never appears on a command line (/proc/*/cmdline, ps).
  CERTBOUND_CMD=(env -i PATH="$PATH" HOME="${HOME:-/}"
    CERTBOUND_BACKEND="$CERTBOUND_BACKEND"
    CERTBOUND_INTROSPECTION_ENDPOINT="$CERTBOUND_INTROSPECTION_ENDPOINT"
    CERTBOUND_INTROSPECTION_CLIENT_ID="$CERTBOUND_INTROSPECTION_CLIENT_ID"
    STACK_RS_SECRET_FILE="$STACK_RS_SECRET_FILE"
    CERTBOUND_INTROSPECTION_CA_FILE="$CERTBOUND_INTROSPECTION_CA_FILE"
    CERTBOUND_PROXY="$CERTBOUND_PROXY"
    CERTBOUND_CERT_FORMAT="$CERTBOUND_CERT_FORMAT"
    CERTBOUND_SCOPE_RULES="$CERTBOUND_SCOPE_RULES"
    CERTBOUND_SCOPE_DEFAULT="$CERTBOUND_SCOPE_DEFAULT"
    RUST_LOG="$RUST_LOG"
    "$@"
    sh -c 'CERTBOUND_INTROSPECTION_CLIENT_SECRET="$(cat "$STACK_RS_SECRET_FILE")" exec "$0" "$@"'
    "$CERTBOUND_BIN")
}

# run_certbound ARGS...: e.g. run_certbound invoke --event FILE
run_certbound() {
  certbound_cmd
  "${CERTBOUND_CMD[@]}" "$@"
}

# certbound_jwt_cmd [NAME=VALUE...]: the same for the JWT instance (RFC 9068
# tokens of the AS for $STACK_JWT_AUDIENCE; the JWKS from the issuer's
# metadata through nginx, trusted with the stack CA). NAME=VALUE pairs are
# added last, so they override (e.g. CERTBOUND_JWT_ISSUER=…).
certbound_jwt_cmd() {
  CERTBOUND_CMD=(env -i PATH="$PATH" HOME="${HOME:-/}"
    CERTBOUND_BACKEND=jwt
    CERTBOUND_JWT_ISSUER="$AS_ISSUER"
    CERTBOUND_JWT_AUDIENCE="$STACK_JWT_AUDIENCE"
    CERTBOUND_INTROSPECTION_CA_FILE="$STACK_CA_CERT"
    CERTBOUND_PROXY="$CERTBOUND_PROXY"
    CERTBOUND_CERT_FORMAT="$CERTBOUND_CERT_FORMAT"
    CERTBOUND_SCOPE_RULES="$STACK_JWT_SCOPE_RULES"
    CERTBOUND_SCOPE_DEFAULT="$CERTBOUND_SCOPE_DEFAULT"
    RUST_LOG="$RUST_LOG"
    "$@"
    "$CERTBOUND_BIN")
}

# run_certbound_jwt [NAME=VALUE...] -- ARGS...: e.g.
#   run_certbound_jwt CERTBOUND_JWT_ISSUER=https://other.example -- invoke --event FILE
run_certbound_jwt() {
  local overrides=()
  while [ "$#" -gt 0 ] && [ "$1" != -- ]; do
    overrides+=("$1")
    shift
  done
  [ "${1:-}" != -- ] || shift
  certbound_jwt_cmd "${overrides[@]}"
  "${CERTBOUND_CMD[@]}" "$@"
}
