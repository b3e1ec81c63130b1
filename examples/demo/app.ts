// One demo service: answers JSON about itself and, if it has an upstream,
// calls it through its weft sidecar's outbound listener with `Host: <service>`,
// exactly as an app in the mesh would. Configured by environment only:
//   SERVICE, VERSION, PORT        who it is and where it listens (127.0.0.1)
//   UPSTREAM, OUTBOUND_PORT       the service it calls and its sidecar's outbound port
//   FAIL_PERCENT                  answer this share of requests with 503 (to show retries)

import http from 'node:http';

const service = process.env.SERVICE ?? 'demo';
const version = process.env.VERSION ?? 'v1';
const port = Number(process.env.PORT ?? 0);
const upstream = process.env.UPSTREAM;
const outboundPort = Number(process.env.OUTBOUND_PORT ?? 0);
const failPercent = Number(process.env.FAIL_PERCENT ?? 0);
const agent = new http.Agent({ keepAlive: true });

/** Headers an app in a mesh forwards to its own calls: the request id joins access logs of every hop; x-canary steers the canary route. */
const PROPAGATED = ['x-request-id', 'x-canary', 'traceparent'];

function callUpstream(path: string, incoming: http.IncomingHttpHeaders): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve) => {
    const headers: Record<string, string> = { host: upstream! };
    for (const h of PROPAGATED) if (typeof incoming[h] === 'string') headers[h] = incoming[h];
    const req = http.request({ host: '127.0.0.1', port: outboundPort, path, agent, headers, timeout: 5000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          // Local replies from the sidecar are plain text.
        }
        resolve({ status: res.statusCode ?? 0, body });
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => resolve({ status: 0, body: e.message }));
    req.end();
  });
}

const server = http.createServer(async (req, res) => {
  if (req.url === '/healthz') {
    res.writeHead(200, { 'content-type': 'text/plain' });
    return res.end('ok\n');
  }
  if (failPercent > 0 && Math.random() * 100 < failPercent) {
    res.writeHead(503, { 'content-type': 'text/plain' });
    return res.end(`${service} ${version}: simulated failure\n`);
  }
  const out: Record<string, unknown> = { service, version, path: req.url };
  let status = 200;
  if (upstream) {
    const up = await callUpstream(req.url ?? '/', req.headers);
    out.upstream = up.body;
    if (up.status !== 200) status = 502;
  }
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(out) + '\n');
});

server.listen(port, '127.0.0.1', () => {
  const a = server.address();
  console.log(`${service} ${version} listening on 127.0.0.1:${typeof a === 'object' && a ? a.port : port}`);
});

for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => server.close(() => process.exit(0)));
