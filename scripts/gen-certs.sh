#!/usr/bin/env bash
# Generate the certificates and secrets of the local stack into DIR (idempotent:
# only what is missing, expiring or inconsistent is (re)generated).
#
#   scripts/gen-certs.sh DIR          (the stack uses $STACK_DIR/certs)
#
#   ca.pem / ca.key              local CA (EC P-256) that signs the nginx server cert
#   server.pem / server.key      nginx TLS: SAN DNS:localhost, IP:127.0.0.1
#   client-a.pem / client-a.key  self-signed client cert, EC P-256, CN=client-a
#   client-b.pem / client-b.key  self-signed client cert, RSA 2048, CN=client-b
#   certbound-rs.secret          client secret of the resource server (introspection)
#
# Nothing here may be committed (.stack/ is in .gitignore).
set -euo pipefail

DIR="${1:?usage: gen-certs.sh DIR}"
CA_DAYS=3650
LEAF_DAYS=825
RENEW_SECONDS=$((7 * 24 * 3600))   # regenerate what expires within a week

umask 077
mkdir -p "$DIR"
cd "$DIR"

conf="$(mktemp)"
trap 'rm -f "$conf" server.csr' EXIT
cat >"$conf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ext_ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[ext_server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ext_client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
EOF

say() { echo "gen-certs: $*"; }

# usable CERT KEY: both exist, the cert is not about to expire, the key matches.
usable() {
  local cert="$1" key="$2"
  [ -s "$cert" ] && [ -s "$key" ] || return 1
  openssl x509 -in "$cert" -noout -checkend "$RENEW_SECONDS" >/dev/null 2>&1 || return 1
  [ "$(openssl x509 -in "$cert" -noout -pubkey 2>/dev/null)" = "$(openssl pkey -in "$key" -pubout 2>/dev/null)" ]
}

new_ec_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
new_rsa_key() { openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" 2>/dev/null; }

# Local CA.
ca_new=0
if ! usable ca.pem ca.key; then
  new_ec_key ca.key
  openssl req -x509 -new -config "$conf" -key ca.key -subj "/CN=certbound local CA" \
    -days "$CA_DAYS" -extensions ext_ca -out ca.pem
  ca_new=1
  say "generated local CA ($DIR/ca.pem)"
fi

# nginx server certificate, signed by the CA.
if [ "$ca_new" = 1 ] || ! usable server.pem server.key \
  || ! openssl verify -CAfile ca.pem server.pem >/dev/null 2>&1; then
  new_ec_key server.key
  openssl req -new -config "$conf" -key server.key -subj "/CN=localhost" -out server.csr
  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -set_serial "0x$(openssl rand -hex 16)" \
    -days "$LEAF_DAYS" -extfile "$conf" -extensions ext_server -out server.pem 2>/dev/null
  rm -f server.csr
  say "generated server certificate for localhost/127.0.0.1"
fi

# Self-signed client certificates (CN = client id).
client_cert() {
  local id="$1" keygen="$2"
  if ! usable "$id.pem" "$id.key"; then
    "$keygen" "$id.key"
    openssl req -x509 -new -config "$conf" -key "$id.key" -subj "/CN=$id" \
      -days "$LEAF_DAYS" -extensions ext_client -out "$id.pem"
    say "generated self-signed client certificate $id"
  fi
}
client_cert client-a new_ec_key
client_cert client-b new_rsa_key

# Resource-server client secret.
if [ ! -s certbound-rs.secret ]; then
  openssl rand -hex 32 >certbound-rs.secret
  say "generated certbound-rs client secret"
fi

# Certificates are public; keys and the secret stay 0600.
chmod 0644 ca.pem server.pem client-a.pem client-b.pem
chmod 0600 ca.key server.key client-a.key client-b.key certbound-rs.secret
