#!/usr/bin/env bash
# Bring the local certbound stack up (idempotent; running services are kept):
#
#   certificates  -> $STACK_DIR/certs          (scripts/gen-certs.sh)
#   AS            -> http://127.0.0.1:$AS_PORT  (as/server.mjs, oidc-provider)
#   echo backend  -> http://127.0.0.1:$ECHO_PORT (as/echo.mjs)
#   certbound     -> http://127.0.0.1:$CERTBOUND_PORT ($CERTBOUND_BIN serve, RFC 7662 backend)
#   certbound-jwt -> http://127.0.0.1:$CERTBOUND_JWT_PORT ($CERTBOUND_BIN serve, JWT backend)
#   nginx         -> https://localhost:$AS_TLS_PORT (mTLS token proxy)
#                    https://localhost:$GW_PORT     (API gateway, auth_request:
#                                                    / -> certbound, /jwt/ -> certbound-jwt)
#
# Environment: STACK_DIR (default .stack), the *_PORT variables of env.sh,
# CERTBOUND_BIN (default target/release/certbound, built with cargo if missing),
# CERTBOUND_SKIP=1 to run everything but certbound (both instances).
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

on_exit() {
  local rc=$?
  [ "$rc" = 0 ] || log "stack-up failed; whatever already started keeps running (scripts/stack-down.sh stops it)"
}
trap on_exit EXIT

# The state dir stays traversable: nginx workers run as nobody when started by
# root. Keys and the secret are protected by their own modes (certs/ is 0700).
mkdir -p "$STACK_LOGS" "$STACK_RUN" "$STACK_DIR/as" "$STACK_DIR/nginx/tmp"
chmod 0700 "$STACK_DIR/as"

ensure_tools

# 1. certificates and the certbound-rs secret
certs_out="$("$REPO/scripts/gen-certs.sh" "$STACK_CERTS")" || die "certificate generation failed"
[ -z "$certs_out" ] || printf '%s\n' "$certs_out" >&2
certs_changed=0
[ -z "$certs_out" ] || certs_changed=1
# shellcheck source=scripts/env.sh
. "$REPO/scripts/env.sh"   # picks up the (new) secret

ensure_node_modules

# 2. authorization server
if [ "$certs_changed" = 1 ]; then
  # The AS holds the client certificates, certbound the CA: restart them.
  for name in as certbound certbound-jwt; do
    if running "$name" >/dev/null; then
      log "certificates changed: restarting $name"
      stop "$name"
    fi
  done
fi
# A rotated key file (node as/keys.mjs rotate) is picked up by a restart.
restart_if_newer as "$REPO/as/server.mjs" "$REPO/as/keys.mjs" "$REPO/as/package-lock.json" "$STACK_AS_KEYS_FILE"
as_start

# 3. echo backend
echo_ready() { curl -sf --max-time 2 "http://127.0.0.1:$ECHO_PORT/healthz"; }
restart_if_newer echo "$REPO/as/echo.mjs"
if running echo >/dev/null; then
  log "echo: already running (pid $(running echo))"
else
  start_bg echo "$STACK_LOGS/echo.log" node "$REPO/as/echo.mjs"
fi
wait_ready echo "$STACK_LOGS/echo.log" 10 echo_ready

# 4. certbound
if [ "${CERTBOUND_SKIP:-0}" = 1 ]; then
  log "certbound, certbound-jwt: skipped (CERTBOUND_SKIP=1); the gateway answers 500 until they run"
else
  if [ ! -x "$CERTBOUND_BIN" ]; then
    [ "$CERTBOUND_BIN" = "$REPO/target/release/certbound" ] \
      || die "CERTBOUND_BIN=$CERTBOUND_BIN is not an executable"
    log "building certbound (cargo build --release)"
    (cd "$REPO" && cargo build --release) || die "cargo build --release failed"
  fi
  certbound_ready() { curl -sf --max-time 2 "http://127.0.0.1:$CERTBOUND_PORT/healthz"; }
  certbound_jwt_ready() { curl -sf --max-time 2 "http://127.0.0.1:$CERTBOUND_JWT_PORT/healthz"; }
  # Scope rules are read at start, like the binary.
  restart_if_newer certbound "$CERTBOUND_BIN" "$CERTBOUND_SCOPE_RULES"
  restart_if_newer certbound-jwt "$CERTBOUND_BIN" "$STACK_JWT_SCOPE_RULES"
  if running certbound >/dev/null; then
    log "certbound: already running (pid $(running certbound))"
  else
    certbound_cmd
    start_bg certbound "$STACK_LOGS/certbound.log" \
      "${CERTBOUND_CMD[@]}" serve --listen "127.0.0.1:$CERTBOUND_PORT"
  fi
  # The JWT instance fetches the AS's keys on its first token, not at start.
  if running certbound-jwt >/dev/null; then
    log "certbound-jwt: already running (pid $(running certbound-jwt))"
  else
    certbound_jwt_cmd
    start_bg certbound-jwt "$STACK_LOGS/certbound-jwt.log" \
      "${CERTBOUND_CMD[@]}" serve --listen "127.0.0.1:$CERTBOUND_JWT_PORT"
  fi
  wait_ready certbound "$STACK_LOGS/certbound.log" 30 certbound_ready
  wait_ready certbound-jwt "$STACK_LOGS/certbound-jwt.log" 30 certbound_jwt_ready
fi

# 5. nginx (rendered config; reloaded when already running)
export LISTEN_ADDR=127.0.0.1 TLS_CERT="$STACK_SERVER_CERT" TLS_KEY="$STACK_SERVER_KEY"
render "$REPO/nginx/nginx.conf.template" "$STACK_DIR/nginx/nginx.conf" STACK_DIR STACK_RUN STACK_LOGS
# shellcheck disable=SC2086 # CORS_ALLOWED_ORIGINS is a space-separated list
CORS_ORIGIN_REGEX="$(cors_origin_regex $CORS_ALLOWED_ORIGINS)" || exit 1
export CORS_ORIGIN_REGEX
render "$REPO/nginx/certbound.conf.template" "$STACK_DIR/nginx/certbound.conf" \
  LISTEN_ADDR AS_PORT AS_TLS_PORT GW_PORT CERTBOUND_PORT CERTBOUND_JWT_PORT ECHO_PORT TLS_CERT TLS_KEY \
  CORS_ORIGIN_REGEX
nginx_cmd=("$(nginx_bin)" -p "$STACK_DIR/nginx" -c "$STACK_DIR/nginx/nginx.conf" -e "$STACK_LOGS/nginx-error.log")
"${nginx_cmd[@]}" -t -q >>"$STACK_LOGS/nginx-error.log" 2>&1 \
  || { tail -n 5 "$STACK_LOGS/nginx-error.log" >&2; die "nginx configuration test failed (log: $STACK_LOGS/nginx-error.log)"; }
if pid="$(running nginx)"; then
  log "nginx: already running (pid $pid), reloading its configuration"
  kill -HUP "$pid"
else
  "${nginx_cmd[@]}" >>"$STACK_LOGS/nginx-error.log" 2>&1 \
    || { tail -n 5 "$STACK_LOGS/nginx-error.log" >&2; die "nginx did not start (log: $STACK_LOGS/nginx-error.log)"; }
  # nginx daemonizes: its master writes the PID file just after the command returns.
  for ((i = 0; i < 50; i++)); do
    running nginx >/dev/null && break
    sleep 0.1
  done
fi
nginx_ready() {
  local discovery
  discovery="$(curl -sf --max-time 2 --cacert "$STACK_CA_CERT" "$STACK_AS_URL/.well-known/openid-configuration")" \
    && [[ "$discovery" == *"\"issuer\":\"$AS_ISSUER\""* ]] \
    && http_up "$STACK_GW_URL/" --cacert "$STACK_CA_CERT"
}
wait_ready nginx "$STACK_LOGS/nginx-error.log" 10 nginx_ready

log "up: AS $STACK_AS_URL (-> 127.0.0.1:$AS_PORT), gateway $STACK_GW_URL (-> certbound 127.0.0.1:$CERTBOUND_PORT -> echo 127.0.0.1:$ECHO_PORT)"
log "    gateway $STACK_GW_URL/jwt/ (-> certbound-jwt 127.0.0.1:$CERTBOUND_JWT_PORT, JWT access tokens for $STACK_JWT_AUDIENCE -> echo)"
log "state and logs in $STACK_DIR (logs/: as.log echo.log certbound.log certbound-jwt.log nginx-*.log); stop with scripts/stack-down.sh"
