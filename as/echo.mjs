// Sample backend behind the certbound gateway: answers every request with JSON
// echoing what the authorizer passed on (nginx copies certbound's response
// headers into these request headers, overwriting anything the client sent).
//
//   ECHO_PORT   port on 127.0.0.1 (default 8082)

import * as http from 'node:http';

const PORT = Number.parseInt(process.env.ECHO_PORT || '8082', 10);
const FORWARDED = [
  'x-certbound-sub',
  'x-certbound-client-id',
  'x-certbound-scope',
  'x-certbound-cert-thumbprint',
];

const server = http.createServer((req, res) => {
  // Drain the body (the gateway may forward one) before answering.
  req.resume();
  req.on('end', () => {
    const url = new URL(req.url, 'http://backend');
    const headers = Object.fromEntries(FORWARDED.map((name) => [name, req.headers[name] ?? null]));
    const body = `${JSON.stringify({ method: req.method, path: url.pathname, query: url.search, headers })}\n`;
    res.writeHead(200, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
    });
    res.end(body);
    console.log(`${new Date().toISOString()} ${req.method} ${req.url} client_id=${headers['x-certbound-client-id'] ?? '-'}`);
  });
});

server.keepAliveTimeout = 65_000;
server.listen(PORT, '127.0.0.1', () => {
  console.log(`echo: listening on http://127.0.0.1:${PORT}`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    server.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 1000).unref();
  });
}
