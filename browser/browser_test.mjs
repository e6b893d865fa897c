// CORS for browser clients of the local stack, in a real headless browser
// (Debian's chromium, driven by playwright-core). Run by scripts/browser-test.sh,
// which installs what it needs, brings the stack up and stops certbound-jwt
// (for the 500 case) first; reads the stack's variables (scripts/env.sh).
//
// A page served from another origin (http://127.0.0.1:$BROWSER_PAGE_PORT, a
// small static server here) calls the mTLS API through nginx with
// fetch(url, {headers: {Authorization}, credentials: 'include'}). Chromium
// does the TLS itself, as for a person: it trusts the stack CA and holds the
// client's certificate and key in an NSS database of its own ($HOME/.pki/nssdb,
// one HOME per client, made here with certutil/pk12util), and presents the
// certificate to the gateway without a dialog because the profile's
// auto_select_certificate setting (what the AutoSelectCertificateForUrls
// policy sets) names the gateway's origin. Each case runs in a new browser
// with a new profile; the page renders it, the test asserts it from the DOM
// and saves a screenshot in $BROWSER_OUT (default target/browser). Then the
// logs show that every preflight was answered by nginx and none reached
// certbound. Last line: "browser-test: N passed, M failed".

import { execFileSync } from 'node:child_process';
import { X509Certificate, createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const env = (name, fallback) => {
  const value = process.env[name] ?? fallback;
  if (value === undefined) throw new Error(`${name} is not set (source scripts/env.sh)`);
  return value;
};

const CA = env('STACK_CA_CERT');
const CERTS = {
  a: { cert: env('STACK_CLIENT_A_CERT'), key: env('STACK_CLIENT_A_KEY') },
  b: { cert: env('STACK_CLIENT_B_CERT'), key: env('STACK_CLIENT_B_KEY') },
};
const AS_URL = env('STACK_AS_URL');
const GW_URL = env('STACK_GW_URL');
const LOGS = env('STACK_LOGS');
const WORK = path.join(env('STACK_DIR'), 'browser');
const PAGE_PORT = Number.parseInt(env('BROWSER_PAGE_PORT'), 10);
const CHROMIUM = env('CHROMIUM_BIN', '/usr/bin/chromium');
const OUT = path.resolve(env('BROWSER_OUT', path.join(here, '..', 'target', 'browser')));
const ALLOWED_ORIGIN = `http://127.0.0.1:${PAGE_PORT}`;
// The same page server under another name: another origin, not allowed.
const OTHER_ORIGIN = `http://localhost:${PAGE_PORT}`;

const GW_ORIGIN = new URL(GW_URL).origin;
// cnf.x5t#S256 of a certificate: base64url(SHA-256(DER)).
const thumbprint = (pem) => createHash('sha256').update(new X509Certificate(fs.readFileSync(pem)).raw).digest('base64url');
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

// A HOME for Chromium whose NSS database trusts the stack CA (for the
// gateway's server certificate) and holds client WHO's certificate and key.
function nssHome(who) {
  const home = path.join(WORK, `home-${who}`);
  const db = path.join(home, '.pki', 'nssdb');
  fs.rmSync(home, { recursive: true, force: true });
  fs.mkdirSync(db, { recursive: true, mode: 0o700 });
  const p12 = path.join(home, `client-${who}.p12`);
  const run = (cmd, args) => execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  run('certutil', ['-N', '-d', `sql:${db}`, '--empty-password']);
  run('certutil', ['-A', '-d', `sql:${db}`, '-n', 'certbound-stack-ca', '-t', 'C,,', '-i', CA]);
  run('openssl', ['pkcs12', '-export', '-in', CERTS[who].cert, '-inkey', CERTS[who].key,
    '-name', `client-${who}`, '-out', p12, '-passout', 'pass:']);
  run('pk12util', ['-d', `sql:${db}`, '-i', p12, '-W', '']);
  fs.rmSync(p12);
  return home;
}

let passed = 0;
let failed = 0;
function check(name, ok, detail) {
  if (ok) {
    passed += 1;
    console.log(`PASS ${name}`);
  } else {
    failed += 1;
    console.log(`FAIL ${name}${detail ? `: ${detail}` : ''}`);
  }
}

function recordSecret(label, value) {
  if (process.env.SECRET_SCAN_FILE && value) {
    fs.appendFileSync(process.env.SECRET_SCAN_FILE, `${label}\t${value}\n`);
  }
}

// A certificate-bound token for client-a: client_credentials over mTLS at the
// AS, through the nginx token proxy, as e2e's token_for does.
function tokenFor(who, scope) {
  const body = new URLSearchParams({ grant_type: 'client_credentials', client_id: `client-${who}`, scope }).toString();
  return new Promise((resolve, reject) => {
    const req = https.request(`${AS_URL}/token`, {
      method: 'POST',
      ca: fs.readFileSync(CA),
      cert: fs.readFileSync(CERTS[who].cert),
      key: fs.readFileSync(CERTS[who].key),
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body) },
      timeout: 10_000,
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => { text += chunk; });
      res.on('end', () => {
        try {
          const token = JSON.parse(text).access_token;
          if (res.statusCode !== 200 || !token) throw new Error(`status ${res.statusCode}`);
          recordSecret(`access token (client-${who}, browser test)`, token);
          resolve(token);
        } catch (e) {
          reject(new Error(`token request for client-${who} failed: ${e.message}`));
        }
      });
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('token request timed out')));
    req.end(body);
  });
}

// The page, from any host name on 127.0.0.1:PAGE_PORT.
function startPageServer() {
  const page = fs.readFileSync(path.join(here, 'page.html'));
  const server = http.createServer((req, res) => {
    if (req.method === 'GET' && new URL(req.url, 'http://page').pathname === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-length': page.length, 'cache-control': 'no-store' });
      res.end(page);
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found\n');
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(PAGE_PORT, '127.0.0.1', () => resolve(server));
  });
}

const logSize = (file) => { try { return fs.statSync(file).size; } catch { return 0; } };
const logSince = (file, offset) => {
  try {
    const fd = fs.openSync(file, 'r');
    const size = fs.fstatSync(fd).size;
    const buf = Buffer.alloc(Math.max(0, size - offset));
    fs.readSync(fd, buf, 0, buf.length, offset);
    fs.closeSync(fd);
    return buf.toString('utf8');
  } catch { return ''; }
};

// One case: a new Chromium with a new profile (no preflight cache, no
// connection, no certificate choice carried over) whose HOME holds client
// CERT's certificate, the page loaded from ORIGIN, the form filled and
// submitted like a person would, the outcome read back from the DOM, a
// screenshot.
let profiles = 0;
async function runCase(homes, { name, title, origin, cert, method = 'GET', apiPath, token }) {
  const profile = path.join(WORK, `profile-${++profiles}`);
  fs.rmSync(profile, { recursive: true, force: true });
  fs.mkdirSync(path.join(profile, 'Default'), { recursive: true });
  // Present a certificate to the gateway's origin without asking: any
  // certificate of the NSS database (there is one).
  fs.writeFileSync(path.join(profile, 'Default', 'Preferences'), JSON.stringify({
    profile: { content_settings: { exceptions: { auto_select_certificate: {
      [`${GW_ORIGIN},*`]: { setting: { filters: [{}] } },
    } } } },
  }));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    env: { ...process.env, HOME: homes[cert] },
    viewport: { width: 1000, height: 640 },
  });
  try {
    if (profiles === 1) console.log(`browser-test: ${CHROMIUM} ${context.browser()?.version() ?? ''}, page ${ALLOWED_ORIGIN}, API ${GW_URL}`);
    const page = context.pages()[0] ?? await context.newPage();
    await page.goto(`${origin}/`, { waitUntil: 'load' });
    await page.evaluate((text) => { document.getElementById('case').textContent = text; }, title);
    await page.selectOption('#method', method);
    await page.fill('#url', `${GW_URL}${apiPath}`);
    await page.fill('#token', token ?? '');
    await page.click('#call');
    await page.waitForFunction(() => document.body.dataset.done, null, { timeout: 20_000 });
    const got = await page.evaluate(() => {
      const headers = {};
      for (const tr of document.querySelectorAll('#headers tr')) headers[tr.dataset.header] = tr.dataset.value;
      return {
        done: document.body.dataset.done,
        status: document.getElementById('status').dataset.status ?? null,
        statusText: document.getElementById('status').textContent,
        headers,
        body: document.getElementById('body').textContent,
        error: document.getElementById('error').textContent,
        errorName: document.getElementById('error').dataset.name ?? null,
      };
    });
    const file = path.join(OUT, `${name}.png`);
    await page.screenshot({ path: file, fullPage: true });
    return { ...got, screenshot: file };
  } finally {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

async function main() {
  fs.mkdirSync(OUT, { recursive: true });
  const tokenA = await tokenFor('a', 'api:read');
  const pageServer = await startPageServer();
  const accessLog = path.join(LOGS, 'nginx-access.log');
  const certboundLog = path.join(LOGS, 'certbound.log');
  const jwtLog = path.join(LOGS, 'certbound-jwt.log');
  const accessStart = logSize(accessLog);
  const certboundStart = logSize(certboundLog);
  const jwtStart = logSize(jwtLog);
  const started = Date.now();

  const homes = { a: nssHome('a'), b: nssHome('b') };
  try {
    // 1. A's token with A's certificate: 200, the API's answer on the page.
    let r = await runCase(homes, {
      name: '1-allowed', title: "1. client A's token, client A's certificate", origin: ALLOWED_ORIGIN, cert: 'a', apiPath: '/example', token: tokenA,
    });
    let body = {};
    try { body = JSON.parse(r.body); } catch { /* checked below */ }
    check("1 allowed origin, A's token + A's certificate: page shows 200 and the API's answer (client-a, A's thumbprint)",
      r.done === 'response' && r.status === '200' && body.path === '/example'
        && body.headers?.['x-certbound-client-id'] === 'client-a'
        && body.headers?.['x-certbound-cert-thumbprint'] === thumbprint(CERTS.a.cert),
      `done=${r.done} status=${r.status} body=${r.body.slice(0, 120)} error=${r.error}`);

    // 2. A stolen token: A's token with B's certificate: 401 read by the page.
    r = await runCase(homes, {
      name: '2-stolen-token', title: "2. client A's token presented with client B's certificate (stolen token)", origin: ALLOWED_ORIGIN, cert: 'b', apiPath: '/example', token: tokenA,
    });
    check("2 stolen token (A's token, B's certificate): page reads 401, WWW-Authenticate invalid_token, X-Certbound-Reason cert_mismatch",
      r.done === 'response' && r.status === '401'
        && /^Bearer .*error="invalid_token"/.test(r.headers['www-authenticate'] ?? '')
        && r.headers['x-certbound-reason'] === 'cert_mismatch',
      `done=${r.done} status=${r.status} headers=${JSON.stringify(r.headers)} error=${r.error}`);

    // 3. No token at all (a simple request: no preflight): 401 token_missing.
    r = await runCase(homes, {
      name: '3-no-token', title: "3. no token, client A's certificate", origin: ALLOWED_ORIGIN, cert: 'a', apiPath: '/example', token: '',
    });
    check('3 no token: page reads 401, WWW-Authenticate Bearer, X-Certbound-Reason token_missing',
      r.done === 'response' && r.status === '401' && r.headers['www-authenticate'] === 'Bearer'
        && r.headers['x-certbound-reason'] === 'token_missing',
      `done=${r.done} status=${r.status} headers=${JSON.stringify(r.headers)} error=${r.error}`);

    // 4. A scope the token lacks (POST needs api:write): 403 read by the page.
    r = await runCase(homes, {
      name: '4-scope', title: "4. POST with a read-only token (client A's certificate)", origin: ALLOWED_ORIGIN, cert: 'a', method: 'POST', apiPath: '/example', token: tokenA,
    });
    check('4 missing scope: page reads 403, insufficient_scope, X-Certbound-Reason scope_insufficient',
      r.done === 'response' && r.status === '403'
        && /error="insufficient_scope"/.test(r.headers['www-authenticate'] ?? '')
        && r.headers['x-certbound-reason'] === 'scope_insufficient',
      `done=${r.done} status=${r.status} headers=${JSON.stringify(r.headers)} error=${r.error}`);

    // 5. The authorizer is down (browser-test.sh stopped certbound-jwt): 500,
    //    still readable by the page.
    r = await runCase(homes, {
      name: '5-authorizer-down', title: '5. /jwt/ while its authorizer (certbound-jwt) is down', origin: ALLOWED_ORIGIN, cert: 'a', apiPath: '/jwt/example', token: tokenA,
    });
    check('5 authorizer unreachable: page reads 500',
      r.done === 'response' && r.status === '500',
      `done=${r.done} status=${r.status} error=${r.error}`);

    // 6. The same call as 1 from an origin that is not allowed: the browser
    //    refuses (no CORS headers on the preflight's answer), nothing rendered.
    r = await runCase(homes, {
      name: '6-origin-not-allowed', title: `6. case 1 from ${OTHER_ORIGIN}, an origin that is not allowed`, origin: OTHER_ORIGIN, cert: 'a', apiPath: '/example', token: tokenA,
    });
    check('6 origin not allowed: fetch fails with TypeError, no status, no body rendered',
      r.done === 'error' && r.errorName === 'TypeError' && r.status === null && r.body === '',
      `done=${r.done} status=${r.status} error=${r.error}`);
  } finally {
    await new Promise((resolve) => pageServer.close(resolve));
  }

  // The preflights: answered by nginx (204), none reached certbound.
  // Cases 1, 2, 4, 5 and 6 send Authorization (not a simple request): one
  // preflight each (a new browser and profile each: no preflight cache). Case 3
  // is a simple request. Case 6 sends only its preflight.
  const access = logSince(accessLog, accessStart).split('\n').filter(Boolean);
  const preflights = access.filter((l) => /"OPTIONS \/(jwt\/)?example HTTP\/[0-9.]+" 204 /.test(l));
  const gets = access.filter((l) => /"(GET|POST) \/(jwt\/)?example HTTP/.test(l));
  check('preflights: 5 OPTIONS answered 204 by nginx (cases 1, 2, 4, 5, 6)', preflights.length === 5,
    `${preflights.length} in the access log:\n${access.join('\n')}`);
  check('actual requests: 5 (cases 1-5; case 6 never sent after its failed preflight)', gets.length === 5,
    `${gets.length}:\n${gets.join('\n')}`);
  const decisions = logSince(certboundLog, certboundStart).split('\n').filter((l) => l.includes('"message":"decision"'));
  const jwtDecisions = logSince(jwtLog, jwtStart).split('\n').filter((l) => l.includes('"message":"decision"'));
  check('certbound decided exactly the 4 actual requests of cases 1-4, none an OPTIONS',
    decisions.length === 4 && !decisions.some((l) => l.includes('"method":"OPTIONS"'))
      && jwtDecisions.length === 0,
    `${decisions.length} decisions (${decisions.map((l) => (l.match(/"method":"[A-Z]+"/) || ['?'])[0]).join(' ')}), certbound-jwt ${jwtDecisions.length}`);

  console.log(`browser-test: screenshots in ${OUT} (${((Date.now() - started) / 1000).toFixed(1)} s in the browser)`);
  console.log(`browser-test: ${passed} passed, ${failed} failed`);
  process.exitCode = failed === 0 ? 0 : 1;
}

main().catch((e) => {
  console.log(`browser-test: error: ${e.stack || e}`);
  console.log(`browser-test: ${passed} passed, ${failed + 1} failed`);
  process.exitCode = 1;
});
