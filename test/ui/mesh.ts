// The demo mesh of `weft up` (examples/demo/mesh.yaml: frontend -> orders
// v1/v2 canary 90/10 -> inventory), run in the test process to spare the
// shared CPUs nine child processes: the real control plane (startControl,
// REST API + xDS on ephemeral ports), a real weft sidecar per workload
// (runSidecar) and a small app behind each that calls its upstream through
// its sidecar's outbound listener with `Host: <service>`.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startControl } from '../../control/main.ts';
import { runSidecar, type RunningSidecar } from '../../sidecar/main.ts';
import { ROOT } from './browser.ts';

export interface TestMesh {
  api: string;
  xdsPort: number;
  token: string;
  /** The frontend sidecar's inbound listener: the demo's entry point. */
  ingress: string;
  sidecars: Record<string, RunningSidecar>;
  /** Whether the telemetry filter is bound to orders (only where filters/dist is built). */
  telemetry: boolean;
  stop(): Promise<void>;
}

interface Workload {
  service: string;
  version: string;
  upstream?: string;
  /** Every n-th request answers 503 (deterministic, so error rates show). */
  failEvery?: number;
}

const WORKLOADS: Workload[] = [
  { service: 'inventory', version: 'v1', failEvery: 8 },
  { service: 'orders', version: 'v1', upstream: 'inventory' },
  { service: 'orders', version: 'v2', upstream: 'inventory' },
  { service: 'frontend', version: 'v1', upstream: 'orders' },
];

function startApp(w: Workload, outbound: () => number): Promise<http.Server> {
  const agent = new http.Agent({ keepAlive: true });
  let hits = 0;
  const server = http.createServer((req, res) => {
    hits++;
    if (w.failEvery && hits % w.failEvery === 0) {
      res.writeHead(503).end(`${w.service} ${w.version}: simulated failure\n`);
      return;
    }
    const reply = (status: number, upstream?: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ service: w.service, version: w.version, upstream }) + '\n');
    };
    if (!w.upstream) return reply(200);
    const up = http.request({ host: '127.0.0.1', port: outbound(), path: req.url, agent, headers: { host: w.upstream }, timeout: 5000 }, (r) => {
      const chunks: Buffer[] = [];
      r.on('data', (c: Buffer) => chunks.push(c));
      r.on('end', () => reply(r.statusCode === 200 ? 200 : 502, Buffer.concat(chunks).toString()));
    });
    up.on('timeout', () => up.destroy(new Error('timeout')));
    up.on('error', (e) => reply(502, e.message));
    up.end();
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

async function call(api: string, token: string, method: string, path: string, body: string, type: string): Promise<unknown> {
  const res = await fetch(`${api}/api/v1${path}`, { method, headers: { authorization: `Bearer ${token}`, 'content-type': type }, body });
  const json: unknown = await res.json();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

export async function startTestMesh(): Promise<TestMesh> {
  const dataDir = await mkdtemp(join(tmpdir(), 'weft-ui-'));
  const control = await startControl({ dataDir, apiPort: 0, xdsPort: 0, host: '127.0.0.1' });
  const apps: http.Server[] = [];
  const sidecars: Record<string, RunningSidecar> = {};
  const stop = async () => {
    for (const s of Object.values(sidecars)) await s.close();
    for (const a of apps) await new Promise<void>((r) => { a.close(() => r()); a.closeAllConnections(); });
    await control.close();
    await rm(dataDir, { recursive: true, force: true });
  };
  try {
    const token = (await readFile(join(dataDir, 'admin.token'), 'utf8')).trim();
    await call(control.apiUrl, token, 'POST', '/apply', await readFile(join(ROOT, 'examples', 'demo', 'mesh.yaml'), 'utf8'), 'application/yaml');
    // The service page lists bound filters: bind the built-in telemetry filter
    // to orders when this checkout has it built (filters/dist), quietly.
    const filters = (await (await fetch(`${control.apiUrl}/api/v1/filters`, { headers: { authorization: `Bearer ${token}` } })).json()) as { items: { name: string }[] };
    const telemetry = filters.items.some((f) => f.name === 'telemetry');
    if (telemetry) {
      const binding = { service: 'orders', direction: 'inbound', filter: 'telemetry', config: { accessLog: false }, failurePolicy: 'fail_open' };
      await call(control.apiUrl, token, 'PUT', '/filter-bindings/orders-telemetry', JSON.stringify(binding), 'application/json');
    }
    for (const w of WORKLOADS) {
      let outboundPort = 0;
      const app = await startApp(w, () => outboundPort);
      apps.push(app);
      const sidecar = await runSidecar({
        service: w.service,
        xds: `127.0.0.1:${control.xdsPort}`,
        appPort: (app.address() as AddressInfo).port,
        bindAddress: '127.0.0.1',
        accessLog: false,
        log: () => {},
      });
      sidecars[`${w.service}-${w.version}`] = sidecar;
      outboundPort = sidecar.outboundPort;
      await Promise.race([sidecar.ready, new Promise((_r, reject) => setTimeout(() => reject(new Error(`${w.service}-${w.version} sidecar not ready within 60 s`)), 60_000).unref())]);
      await call(control.apiUrl, token, 'POST', `/services/${w.service}/instances`, JSON.stringify({ address: '127.0.0.1', port: sidecar.inboundPort, labels: { version: w.version } }), 'application/json');
    }
    return { api: control.apiUrl, xdsPort: control.xdsPort, token, telemetry, ingress: `http://127.0.0.1:${sidecars['frontend-v1']!.inboundPort}`, sidecars, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
