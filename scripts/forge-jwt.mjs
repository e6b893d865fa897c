#!/usr/bin/env node
// Forged variants of a real JWT access token, for the negative cases of
// scripts/e2e.sh. Node standard library only; prints one token (or JSON).
//
//   node scripts/forge-jwt.mjs decode TOKEN             {"header":…,"payload":…}
//   node scripts/forge-jwt.mjs kid TOKEN                the header's kid
//   node scripts/forge-jwt.mjs summary TOKEN            typ, alg, aud and cnf.x5t#S256, one line
//   node scripts/forge-jwt.mjs tamper TOKEN NAME=JSON   payload claim NAME set to JSON; header
//                                                       and signature unchanged
//   node scripts/forge-jwt.mjs none TOKEN               header alg "none", empty signature
//   node scripts/forge-jwt.mjs hs256 TOKEN JWKS_FILE    header alg "HS256", HMAC-SHA256 keyed with
//                                                       the PEM (SPKI) of the issuer's RSA public
//                                                       key named by kid: the RS/HS confusion attack
//   node scripts/forge-jwt.mjs foreign-kid TOKEN        validly signed (RS256) by a new key whose
//                                                       kid is in no JWKS
// Only the named part changes; everything else is the real token's.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';

const b64 = (data) => Buffer.from(data).toString('base64url');
function die(message) {
  console.error(`forge-jwt: ${message}`);
  process.exit(2);
}

function json(part) {
  try {
    return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
  } catch {
    return die('a part is not base64url JSON');
  }
}

const [command, token, arg] = process.argv.slice(2);
if (!command || !token) die('usage: forge-jwt.mjs decode|kid|summary|tamper|none|hs256|foreign-kid TOKEN [ARG]');
const parts = token.split('.');
if (parts.length !== 3) die('not a JWS compact serialization');
const [h, p, signature] = parts;
const header = json(h);
const payload = json(p);

switch (command) {
  case 'decode':
    console.log(JSON.stringify({ header, payload }));
    break;
  case 'kid':
    console.log(header.kid ?? '-');
    break;
  case 'summary':
    console.log(`JWT typ=${header.typ} alg=${header.alg} aud=${payload.aud} cnf.x5t#S256=${payload.cnf?.['x5t#S256']}`);
    break;
  case 'tamper': {
    const at = (arg ?? '').indexOf('=');
    if (at < 1) die('tamper needs NAME=JSON');
    payload[arg.slice(0, at)] = JSON.parse(arg.slice(at + 1));
    console.log(`${h}.${b64(JSON.stringify(payload))}.${signature}`);
    break;
  }
  case 'none':
    console.log(`${b64(JSON.stringify({ ...header, alg: 'none' }))}.${p}.`);
    break;
  case 'hs256': {
    if (!arg) die('hs256 needs the JWKS file');
    const jwk = JSON.parse(fs.readFileSync(arg, 'utf8')).keys.find((k) => k.kid === header.kid);
    if (!jwk || jwk.kty !== 'RSA') die(`no RSA key with kid ${header.kid} in ${arg}`);
    const pem = crypto.createPublicKey({ key: jwk, format: 'jwk' }).export({ type: 'spki', format: 'pem' });
    const input = `${b64(JSON.stringify({ ...header, alg: 'HS256' }))}.${p}`;
    console.log(`${input}.${crypto.createHmac('sha256', pem).update(input).digest('base64url')}`);
    break;
  }
  case 'foreign-kid': {
    const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
    const input = `${b64(JSON.stringify({ ...header, alg: 'RS256', kid: `foreign-${crypto.randomUUID()}` }))}.${p}`;
    console.log(`${input}.${crypto.sign('sha256', Buffer.from(input), privateKey).toString('base64url')}`);
    break;
  }
  default:
    die(`unknown command ${command}`);
}
