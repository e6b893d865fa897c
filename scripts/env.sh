# shellcheck shell=bash
# Shared settings of the local certbound stack. Source it:
#   . scripts/env.sh
# Every value can be overridden from the environment before sourcing (ports,
# STACK_DIR, CERTBOUND_BIN); the CERTBOUND_* variables are what certbound reads.

STACK_REPO="${STACK_REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"

# Ports (every server binds 127.0.0.1 only).
export AS_PORT="${AS_PORT:-3000}"                # oidc-provider (plain HTTP, behind nginx)
export AS_TLS_PORT="${AS_TLS_PORT:-8443}"        # nginx mTLS token proxy in front of the AS
export GW_PORT="${GW_PORT:-9443}"                # nginx API gateway (auth_request -> certbound)
export CERTBOUND_PORT="${CERTBOUND_PORT:-8081}"  # certbound serve, RFC 7662 backend (gateway /)
export CERTBOUND_JWT_PORT="${CERTBOUND_JWT_PORT:-8083}"  # certbound serve, JWT backend (gateway /jwt/)
export ECHO_PORT="${ECHO_PORT:-8082}"            # sample backend
export BROWSER_PAGE_PORT="${BROWSER_PAGE_PORT:-9480}"  # the browser test's page (scripts/browser-test.sh)

# CORS on the gateway: the browser origins allowed to call it, exact
# (scheme://host[:port], lower case), space-separated; empty = no CORS at all.
# Default: the browser test's page. stack-up.sh turns it into nginx's allow-list.
export CORS_ALLOWED_ORIGINS="${CORS_ALLOWED_ORIGINS-http://127.0.0.1:$BROWSER_PAGE_PORT}"

# State: certificates, keys, rendered configs, PID files, logs. Never committed.
export STACK_DIR="${STACK_DIR:-$STACK_REPO/.stack}"
export STACK_CERTS="$STACK_DIR/certs"
export STACK_LOGS="$STACK_DIR/logs"
export STACK_RUN="$STACK_DIR/run"
export STACK_CA_CERT="$STACK_CERTS/ca.pem"
export STACK_SERVER_CERT="$STACK_CERTS/server.pem"
export STACK_SERVER_KEY="$STACK_CERTS/server.key"
export STACK_CLIENT_A_CERT="$STACK_CERTS/client-a.pem"
export STACK_CLIENT_A_KEY="$STACK_CERTS/client-a.key"
export STACK_CLIENT_B_CERT="$STACK_CERTS/client-b.pem"
export STACK_CLIENT_B_KEY="$STACK_CERTS/client-b.key"
export STACK_RS_SECRET_FILE="$STACK_CERTS/certbound-rs.secret"
export STACK_AS_KEYS_FILE="$STACK_DIR/as/jwks.json"

# URLs as clients see them (the server certificate is for localhost/127.0.0.1).
export AS_ISSUER="https://localhost:$AS_TLS_PORT"
export STACK_AS_URL="$AS_ISSUER"
export STACK_GW_URL="https://localhost:$GW_PORT"

export CERTBOUND_BIN="${CERTBOUND_BIN:-$STACK_REPO/target/release/certbound}"

# The environment certbound gets (serve and invoke alike): the RFC 7662
# instance (opaque tokens, introspected at the AS).
export CERTBOUND_BACKEND=rfc7662
export CERTBOUND_INTROSPECTION_ENDPOINT="$AS_ISSUER/token/introspection"
export CERTBOUND_INTROSPECTION_CLIENT_ID=certbound-rs
if [ -r "$STACK_RS_SECRET_FILE" ]; then
  CERTBOUND_INTROSPECTION_CLIENT_SECRET="$(cat "$STACK_RS_SECRET_FILE")"
  export CERTBOUND_INTROSPECTION_CLIENT_SECRET
fi
export CERTBOUND_INTROSPECTION_CA_FILE="$STACK_CA_CERT"
export CERTBOUND_PROXY=nginx
export CERTBOUND_CERT_FORMAT=nginx
export CERTBOUND_SCOPE_DEFAULT=deny
export CERTBOUND_SCOPE_RULES="$STACK_REPO/nginx/scope-rules.toml"
export RUST_LOG="${RUST_LOG:-info}"

# The JWT instance (RFC 9068 access tokens verified with the AS's JWKS, found
# through its discovery document on the nginx proxy, TLS against the stack CA).
# Not exported under certbound's own names, so that this shell (and the RFC
# 7662 instance) keeps the settings above; certbound_jwt_cmd (lib.sh) maps them.
export STACK_JWT_AUDIENCE="${STACK_JWT_AUDIENCE:-https://api.certbound.test}"  # the resource (aud)
export STACK_JWT_SCOPE_RULES="$STACK_REPO/nginx/scope-rules-jwt.toml"  # GET /jwt/example api:read, POST api:write
