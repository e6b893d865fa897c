// Signing keys of the local AS (a private JWKS file, never committed).
//
// Imported by server.mjs, and a command line for the stack scripts:
//
//   node as/keys.mjs ensure FILE   generate FILE (RS256 + ES256 key) if it is missing
//   node as/keys.mjs rotate FILE   put a new RS256 + ES256 key pair first in FILE and
//                                  keep the previous pair after it (older ones are
//                                  dropped); prints the new RS256 kid
//   node as/keys.mjs kid FILE      prints the RS256 kid the AS signs with (the first one)
//
// The provider signs with the first key of the wanted algorithm (RS256 for
// JWT access tokens and ID tokens), and publishes every key at /jwks: after
// a rotation and a restart of the AS, new tokens carry the new kid and
// tokens signed before still verify against the previous key.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';

// RFC 7638 JWK thumbprint (the kid).
function thumbprint(jwk) {
  const members = jwk.kty === 'EC'
    ? { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y }
    : { e: jwk.e, kty: jwk.kty, n: jwk.n };
  return crypto.createHash('sha256').update(JSON.stringify(members)).digest('base64url');
}

// A new RS256 and ES256 signing key, private JWKs with kid, alg and use.
export function newKeyPair() {
  const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
  const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
  return [
    { ...rsa, alg: 'RS256', use: 'sig', kid: thumbprint(rsa) },
    { ...ec, alg: 'ES256', use: 'sig', kid: thumbprint(ec) },
  ];
}

function write(file, jwks) {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.tmp`;
  fs.writeFileSync(tmp, `${JSON.stringify(jwks, null, 2)}\n`, { mode: 0o600 });
  fs.renameSync(tmp, file);
}

export function loadOrCreateSigningKeys(file) {
  if (fs.existsSync(file)) {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  }
  const jwks = { keys: newKeyPair() };
  write(file, jwks);
  console.log(`as: generated signing keys in ${file}`);
  return jwks;
}

export function rotateSigningKeys(file) {
  const previous = loadOrCreateSigningKeys(file).keys;
  // The current pair is the first RS256 and the first ES256 key.
  const keep = ['RS256', 'ES256'].map((alg) => previous.find((k) => k.alg === alg)).filter(Boolean);
  const jwks = { keys: [...newKeyPair(), ...keep] };
  write(file, jwks);
  return jwks;
}

export function signingKid(jwks, alg = 'RS256') {
  return jwks.keys.find((k) => k.alg === alg)?.kid;
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const [command, file] = process.argv.slice(2);
  if (!file || !['ensure', 'rotate', 'kid'].includes(command)) {
    console.error('usage: node keys.mjs ensure|rotate|kid FILE');
    process.exit(2);
  }
  if (command === 'ensure') {
    loadOrCreateSigningKeys(file);
  } else if (command === 'rotate') {
    console.log(signingKid(rotateSigningKeys(file)));
  } else {
    console.log(signingKid(JSON.parse(fs.readFileSync(file, 'utf8'))));
  }
}
