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
//   STACK_JWT_AUDIENCE       the resource server that gets JWT access tokens
//                            (default https://api.certbound.test)
//
// Access tokens (client_credentials, certificate-bound when the client has
// tls_client_certificate_bound_access_tokens):
//   - without a `resource` parameter: opaque, for introspection (RFC 7662);
//   - with resource=STACK_JWT_AUDIENCE: an RFC 9068 JWT (typ at+jwt, RS256,
//     aud = that resource, cnf.x5t#S256), verified by certbound's JWT backend
//     with the keys at /jwks; introspection refuses JWTs;
//   - with one of the test resources below: a JWT too, for the negative cases
//     of scripts/e2e.sh (another audience; an expired one).
// Signing keys: STACK_AS_KEYS_FILE (as/keys.mjs); rotate them with
// `node as/keys.mjs rotate FILE` and restart the AS.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';

import Provider, { errors } from 'oidc-provider';

import { loadOrCreateSigningKeys } from './keys.mjs';

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
const API_RESOURCE = env('STACK_JWT_AUDIENCE', 'https://api.certbound.test');
const API_SCOPES = 'api:read api:write';

// Resource servers (RFC 8707 resource indicators) that get JWT access tokens.
// `audience` is the token's aud; the key is the `resource` parameter.
const RESOURCE_SERVERS = {
  // The API behind the gateway's /jwt/ route (certbound CERTBOUND_BACKEND=jwt).
  [API_RESOURCE]: { audience: API_RESOURCE },
  // Another API: a token for it must not be accepted by the first (aud).
  'https://other.certbound.test': { audience: 'https://other.certbound.test' },
  // The first API, but the token comes out expired an hour ago (see
  // formats.customizers.jwt below): a real, provider-signed expired token,
  // without waiting for a short TTL plus certbound's clock-skew leeway.
  'https://expired.certbound.test': { audience: API_RESOURCE, expiredFor: 3600 },
};

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
  formats: {
    customizers: {
      // Runs before the JWT access token is signed.
      async jwt(ctx, token, jwt) {
        // expiredFor: the token's lifetime ended that many seconds ago.
        const expiredFor = RESOURCE_SERVERS[token.resourceServer?.identifier()]?.expiredFor;
        if (expiredFor) {
          const lifetime = jwt.payload.exp - jwt.payload.iat;
          jwt.payload.exp = jwt.payload.iat - expiredFor;
          jwt.payload.iat = jwt.payload.exp - lifetime;
        }
      },
    },
  },
  // A client_credentials token has no end-user: name the client as its
  // subject, so introspection answers carry a `sub` (RFC 7662, optional).
  async extraTokenClaims(ctx, token) {
    return token.kind === 'ClientCredentials' && !token.accountId ? { sub: token.clientId } : undefined;
  },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // No `resource` parameter: no resource server, so client_credentials
      // issues the opaque token the RFC 7662 path introspects (the
      // provider's default; spelled out because the JWT path depends on it).
      async defaultResource(ctx, client, oneOf) {
        return oneOf;
      },
      // Only for grants that carry an earlier grant's resources (authorization
      // code, refresh token); client_credentials never asks.
      async useGrantedResource() {
        return false;
      },
      // A known resource: a JWT access token for its audience, scopes limited
      // to the API's. An unknown one: invalid_target.
      async getResourceServerInfo(ctx, resourceIndicator) {
        const server = RESOURCE_SERVERS[resourceIndicator];
        if (!server) throw new errors.InvalidTarget();
        return {
          scope: API_SCOPES,
          audience: server.audience,
          accessTokenFormat: 'jwt',
          accessTokenTTL: TOKEN_TTL,
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
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
