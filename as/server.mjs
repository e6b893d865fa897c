// Local OpenID provider for the certbound test stack.
//
// It sits behind nginx (scripts/stack-up.sh renders nginx/nginx.conf.template):
// nginx terminates TLS on https://localhost:8443, asks for a client certificate
// (ssl_verify_client optional_no_ca) and forwards it URL-encoded in X-Ssl-Cert.
// This process only listens on 127.0.0.1 and trusts that header, so it must
// never be reachable other than through nginx.
//
// Configuration (environment):
//   AS_PORT                  port on 127.0.0.1 (default 3000)
//   AS_ISSUER                issuer (default https://localhost:${AS_TLS_PORT:-8443})
//   STACK_AS_KEYS_FILE       private signing JWKS; generated on first start (mode 0600)
//   STACK_CLIENT_A_CERT      PEM certificate of client-a
//   STACK_CLIENT_B_CERT      PEM certificate of client-b
//   STACK_RS_SECRET_FILE     file holding the client secret of certbound-rs
//   STACK_TOKEN_TTL          access token lifetime in seconds (default 3600)

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

import Provider, { errors } from 'oidc-provider';

const env = (name, fallback) => {
  const value = process.env[name];
  if (value !== undefined && value !== '') return value;
  if (fallback !== undefined) return fallback;
  console.error(`as: environment variable ${name} is required`);
  process.exit(2);
};

const PORT = Number.parseInt(env('AS_PORT', '3000'), 10);
const ISSUER = env('AS_ISSUER', `https://localhost:${env('AS_TLS_PORT', '8443')}`);
const KEYS_FILE = env('STACK_AS_KEYS_FILE');
const TOKEN_TTL = Number.parseInt(env('STACK_TOKEN_TTL', '3600'), 10);
const RS_CLIENT_ID = 'certbound-rs';

// Signing keys: generated once into the stack state dir, never committed.
function thumbprint(jwk) {
  const members = jwk.kty === 'EC'
    ? { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y }
    : { e: jwk.e, kty: jwk.kty, n: jwk.n };
  return crypto.createHash('sha256').update(JSON.stringify(members)).digest('base64url');
}

function loadOrCreateSigningKeys(file) {
  if (fs.existsSync(file)) {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  }
  const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
  const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
  const jwks = {
    keys: [
      { ...rsa, alg: 'RS256', use: 'sig', kid: thumbprint(rsa) },
      { ...ec, alg: 'ES256', use: 'sig', kid: thumbprint(ec) },
    ],
  };
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  fs.writeFileSync(file, `${JSON.stringify(jwks, null, 2)}\n`, { mode: 0o600 });
  console.log(`as: generated signing keys in ${file}`);
  return jwks;
}

// A self_signed_tls_client_auth client registers its certificate in its jwks
// as x5c; the provider matches the presented certificate by x5t#S256.
function clientJwks(certFile) {
  const pem = fs.readFileSync(certFile, 'utf8');
  const cert = new crypto.X509Certificate(pem);
  const jwk = cert.publicKey.export({ format: 'jwk' });
  return { keys: [{ ...jwk, use: 'sig', x5c: [cert.raw.toString('base64')] }] };
}

function boundClient(clientId, certFile) {
  return {
    client_id: clientId,
    token_endpoint_auth_method: 'self_signed_tls_client_auth',
    tls_client_certificate_bound_access_tokens: true,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    scope: 'api:read api:write',
    jwks: clientJwks(certFile),
  };
}

const rsSecret = fs.readFileSync(env('STACK_RS_SECRET_FILE'), 'utf8').trim();
if (rsSecret.length < 16) {
  console.error('as: the certbound-rs secret is too short');
  process.exit(2);
}

const configuration = {
  jwks: loadOrCreateSigningKeys(KEYS_FILE),
  clients: [
    boundClient('client-a', env('STACK_CLIENT_A_CERT')),
    boundClient('client-b', env('STACK_CLIENT_B_CERT')),
    {
      // The resource server (certbound) introspects with HTTP Basic auth.
      client_id: RS_CLIENT_ID,
      client_secret: rsSecret,
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: [],
      response_types: [],
      redirect_uris: [],
    },
  ],
  clientAuthMethods: ['self_signed_tls_client_auth', 'client_secret_basic'],
  scopes: ['openid', 'api:read', 'api:write'],
  cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
  ttl: { ClientCredentials: TOKEN_TTL },
  // A client_credentials token has no end-user: name the client as its
  // subject, so introspection answers carry a `sub` (RFC 7662, optional).
  async extraTokenClaims(ctx, token) {
    return token.kind === 'ClientCredentials' && !token.accountId ? { sub: token.clientId } : undefined;
  },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: {
      enabled: true,
      // certbound-rs may introspect any client's token; any other client
      // only its own.
      async allowedPolicy(ctx, client, token) {
        return client.clientId === RS_CLIENT_ID || token.clientId === client.clientId;
      },
    },
    revocation: {
      enabled: true,
      // Only the client a token was issued to may revoke it.
      async allowedPolicy(ctx, client, token) {
        if (token.clientId !== client.clientId) {
          throw new errors.InvalidRequest('client is not authorized to revoke the presented token');
        }
        return true;
      },
    },
    mTLS: {
      enabled: true,
      certificateBoundAccessTokens: true,
      selfSignedTlsClientAuth: true,
      // nginx: proxy_set_header X-Ssl-Cert $ssl_client_escaped_cert;
      // (URL-encoded PEM, empty when no certificate was presented).
      getCertificate(ctx) {
        const value = ctx.get('x-ssl-cert');
        if (!value) return undefined;
        try {
          const pem = decodeURIComponent(value);
          return pem.includes('-----BEGIN CERTIFICATE-----') ? pem : undefined;
        } catch {
          return undefined;
        }
      },
    },
  },
};

const provider = new Provider(ISSUER, configuration);
provider.proxy = true;

// One access-log line per request, on stdout (the stack writes it to logs/as.log).
provider.use(async (ctx, next) => {
  const started = process.hrtime.bigint();
  try {
    await next();
  } finally {
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    const cert = ctx.get('x-ssl-cert') ? 'cert' : 'no-cert';
    console.log(`${new Date().toISOString()} ${ctx.method} ${ctx.originalUrl} ${ctx.status} ${ms.toFixed(1)}ms ${cert}`);
  }
});

for (const event of ['grant.error', 'introspection.error', 'revocation.error', 'server_error']) {
  provider.on(event, (ctx, err) => {
    console.log(`as: ${event}: ${err.name}: ${err.message}${err.error_description ? ` (${err.error_description})` : ''}`);
  });
}

const server = provider.listen(PORT, '127.0.0.1', () => {
  console.log(`as: issuer ${ISSUER} listening on http://127.0.0.1:${PORT}`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    server.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 1000).unref();
  });
}
