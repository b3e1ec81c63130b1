// A mesh in one test process: the real ADS server (control/xds over an
// in-memory model), weft sidecars, and tiny node:http apps, all on
// 127.0.0.1 with ephemeral ports.

import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import http2 from 'node:http2';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import net, { type AddressInfo } from 'node:net';
import { createXdsServer, defaultTranslator } from '../../control/xds/index.ts';
import type { ModelChange, ModelSource, Translator, XdsServer } from '../../control/xds/index.ts';
import type { Instance, MeshModel, Service } from '../../control/model/types.ts';
import { freePort, runSidecar } from '../../sidecar/main.ts';
import type { RunningSidecar, SidecarOptions } from '../../sidecar/main.ts';
import { stopWithTestProcess } from '../weft-processes.ts';
import { ENVOY_DEFAULT_CIRCUIT_BREAKERS, type ClusterConfig, type HealthCheckConfig } from '../../sidecar/config.ts';

export class MemoryModel implements ModelSource {
  current: MeshModel = { revision: 1, services: [], instances: [], routes: [], destinationPolicies: [], filterBindings: [], filterModules: [] };
  readonly #listeners = new Set<(c: ModelChange) => void>();

  model(): MeshModel {
    return this.current;
  }

  subscribe(listener: (change: ModelChange) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Replaces part of the model and tells the controller, as the store would. */
  update(patch: Partial<Omit<MeshModel, 'revision'>>, kind: ModelChange['kind'] = 'config'): void {
    this.current = { ...this.current, ...patch, revision: this.current.revision + 1 };
    const services = kind === 'instances' ? [...new Set(this.current.instances.map((i) => `${i.namespace}/${i.service}`))] : undefined;
    for (const l of this.#listeners) l({ kind, revision: this.current.revision, committedAt: Date.now(), services });
  }
}

export interface TestApp {
  port: number;
  server: http.Server;
  hits: number;
  close(): Promise<void>;
}

/** An app whose every response streams `chunk` every 20 ms and never ends; `abandoned` counts responses closed before they ended. */
export async function startEndlessApp(name: string, chunk: string): Promise<TestApp & { abandoned: number }> {
  const app: TestApp & { abandoned: number } = Object.assign(
    await startApp(name, (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      const tick = setInterval(() => res.write(chunk), 20);
      res.once('close', () => {
        clearInterval(tick);
        if (!res.writableEnded) app.abandoned++;
      });
    }),
    { abandoned: 0 },
  );
  return app;
}

/** An app whose handler gets (req, res, hitNumber); `name` is echoed in x-app. */
export async function startApp(name: string, handler?: (req: http.IncomingMessage, res: http.ServerResponse, hit: number) => void, port = 0): Promise<TestApp> {
  const app: TestApp = { port: 0, server: undefined as unknown as http.Server, hits: 0, close: async () => undefined };
  const server = http.createServer((req, res) => {
    app.hits++;
    res.setHeader('x-app', name);
    if (handler) return handler(req, res, app.hits);
    const chunks: Buffer[] = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ app: name, method: req.method, url: req.url, headers: req.headers, body: Buffer.concat(chunks).toString() }));
    });
  });
  app.server = server;
  ({ port: app.port, close: app.close } = await listenLocal(server, port));
  return app;
}

/** Listens on 127.0.0.1; close() also drops kept-alive connections. */
async function listenLocal(server: http.Server, port = 0): Promise<{ port: number; close(): Promise<void> }> {
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

export function service(name: string, port: number, extra: Partial<Service> = {}): Service {
  return { name, namespace: 'default', ports: [{ port, protocol: 'http' }], ...extra };
}

let nextInstance = 1;
export function instance(svc: string, port: number, labels: Record<string, string> = {}, extra: Partial<Instance> = {}): Instance {
  return { id: `i-${nextInstance++}`, service: svc, namespace: 'default', address: '127.0.0.1', port, labels, health: 'healthy', ttlSeconds: 0, ...extra };
}

export class TestMesh {
  readonly model = new MemoryModel();
  xds!: XdsServer;
  xdsPort = 0;
  readonly #closers: (() => Promise<void>)[] = [];

  static async start(options: { translator?: Translator; port?: number; routesWaitMs?: number } = {}): Promise<TestMesh> {
    const mesh = new TestMesh();
    mesh.xds = createXdsServer({ source: mesh.model, debounceMs: 5, translator: options.translator, routesWaitMs: options.routesWaitMs });
    mesh.xdsPort = await mesh.xds.listen('127.0.0.1', options.port ?? 0);
    return mesh;
  }

  /** A started sidecar (ready awaited unless `wait` is false). */
  async sidecar(svc: string, appPort: number, opts: Partial<SidecarOptions> & { wait?: boolean } = {}): Promise<RunningSidecar> {
    const sc = await runSidecar({ service: svc, xds: `127.0.0.1:${this.xdsPort}`, appPort, accessLog: false, log: () => undefined, ...opts });
    this.#closers.push(() => sc.close());
    if (opts.wait !== false) await withTimeout(sc.ready, 10_000, `sidecar ${svc} ready`);
    return sc;
  }

  track(closer: () => Promise<void>): void {
    this.#closers.push(closer);
  }

  async close(): Promise<void> {
    for (const c of this.#closers.reverse()) await c().catch(() => undefined);
    await this.xds.close();
  }
}

export { freePort };

/**
 * An h2c server answering each stream after `delayMs`, with at most
 * `maxConcurrentStreams` open per connection (SETTINGS); records its
 * sessions, its streams, the most any one session had open at once
 * (`mostAtOnce`) and the most open over all of them (`mostOpen`).
 */
export async function slowH2(closers: (() => Promise<void>)[], delayMs: number, maxConcurrentStreams?: number) {
  const seen = { sessions: 0, streams: 0, open: 0, mostAtOnce: 0, mostOpen: 0 };
  const server = http2.createServer(maxConcurrentStreams !== undefined ? { settings: { maxConcurrentStreams } } : {});
  server.on('session', (session) => {
    seen.sessions++;
    let open = 0;
    session.on('stream', (stream) => {
      seen.mostAtOnce = Math.max(seen.mostAtOnce, ++open);
      stream.once('close', () => open--);
    });
  });
  server.on('stream', (stream) => {
    seen.streams++;
    seen.mostOpen = Math.max(seen.mostOpen, ++seen.open);
    stream.once('close', () => seen.open--);
    stream.on('error', () => undefined);
    setTimeout(() => {
      if (stream.destroyed) return;
      stream.respond({ ':status': 200 });
      stream.end('ok');
    }, delayMs);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  closers.push(() => new Promise((r) => server.close(() => r())));
  return { port: (server.address() as AddressInfo).port, seen };
}

/** An admin endpoint of a sidecar: its status and body text. */
export async function admin(port: number, path: string, method = 'GET'): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { method });
  return { status: res.status, body: await res.text() };
}

/** POST /runtime_modify?QUERY (already encoded), which the admin must take: 200 `OK`. */
export async function runtimeModify(port: number, query: string): Promise<void> {
  const r = await admin(port, `/runtime_modify?${query}`, 'POST');
  if (r.status !== 200 || r.body !== 'OK\n') throw new Error(`/runtime_modify?${query}: ${r.status} ${r.body}`);
}

/** A sidecar for service `caller` whose outbound reaches service `api` (port 7000), served by an app; both closed through `closers`. */
export async function callerToApi(closers: (() => Promise<void>)[]): Promise<{ app: TestApp; mesh: TestMesh; sc: RunningSidecar }> {
  const app = await startApp('api');
  closers.push(() => app.close());
  const mesh = await TestMesh.start();
  closers.push(() => mesh.close());
  mesh.model.update({ services: [service('caller', 8000), service('api', 7000)], instances: [instance('api', app.port)], routes: [] });
  const sc = await mesh.sidecar('caller', 8000);
  return { app, mesh, sc };
}

export interface WeftProcess {
  child: ChildProcessByStdio<null, Readable, Readable>;
  /** Everything it wrote to stdout and stderr so far. */
  output(): string;
  /** Its exit code. */
  exited: Promise<number | null>;
  /** Stops it if it is still running (for a finally): SIGINT, which `weft` passes on, then SIGKILL. */
  kill(): void;
}

/** `weft <args>` as a real process (bin/weft.mjs, from the repository root), its output collected. */
export function spawnWeft(args: string[], env: Record<string, string> = {}): WeftProcess {
  const root = fileURLToPath(new URL('../../', import.meta.url));
  const child = spawn(process.execPath, ['bin/weft.mjs', ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let out = '';
  child.stdout.on('data', (c) => (out += c));
  child.stderr.on('data', (c) => (out += c));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  stopWithTestProcess(child);
  return {
    child,
    output: () => out,
    exited,
    kill: () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      // bin/weft.mjs runs the command in a child of its own process group and
      // passes SIGINT on; a SIGKILL would orphan that child (and keep this
      // test's pipes open). SIGKILL only if SIGINT was not enough.
      child.kill('SIGINT');
      setTimeout(() => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      }, 3000).unref();
    },
  };
}

export async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, rej) => (t = setTimeout(() => rej(new Error(`timed out after ${ms} ms: ${what}`)), ms)))]);
  } finally {
    clearTimeout(t);
  }
}

/** Polls `check` until it returns true (bounded). */
export async function eventually(check: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

export interface SimpleResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** As on the wire, repeated fields kept (node's `headers` keeps one content-type of two). */
  rawHeaders: string[];
  body: string;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

/** One HTTP/1.1 request to 127.0.0.1:port with the given Host. */
export function get(port: number, host: string, path = '/', init: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<SimpleResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method: init.method ?? 'GET', agent, headers: { host, ...init.headers }, timeout: 20_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, rawHeaders: res.rawHeaders, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('client timeout')));
    req.on('error', reject);
    req.end(init.body);
  });
}

export function route(svc: string, rules: import('../../control/model/types.ts').HttpRouteRule[], name = svc): import('../../control/model/types.ts').Route {
  return { name, namespace: 'default', service: svc, rules };
}

export function policy(svc: string, extra: Partial<import('../../control/model/types.ts').DestinationPolicy>): import('../../control/model/types.ts').DestinationPolicy {
  return { name: svc, namespace: 'default', service: svc, ...extra };
}

/** Runs `count` requests with at most `concurrency` in flight; returns responses in completion order. */
export async function load(count: number, concurrency: number, one: (i: number) => Promise<SimpleResponse>): Promise<SimpleResponse[]> {
  const out: SimpleResponse[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        const i = next++;
        out.push(await one(i));
      }
    }),
  );
  return out;
}

/** The sum of metric `name`'s series whose labels include `labels` (every series of it with none given). */
export async function metric(adminPort: number, name: string, labels: Record<string, string> = {}): Promise<number> {
  const res = await get(adminPort, 'admin', '/stats/prometheus');
  let total = 0;
  for (const line of res.body.split('\n')) {
    if (!line.startsWith(name + '{') && !line.startsWith(name + ' ')) continue;
    // A per-downstream-cluster fault series repeats what the connection manager's total counts (Envoy's
    // fault.<cluster>.delays_injected beside fault.delays_injected): summed only when asked for by that tag.
    if (!('envoy_fault_downstream_cluster' in labels) && line.includes('envoy_fault_downstream_cluster=')) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}

export const MiB = 1024 * 1024;
const block = randomBytes(MiB);

export interface Received {
  bytes: number;
  sha256: string;
  contentLength?: string;
  transferEncoding?: string;
}

export interface SinkApp {
  port: number;
  hits: number;
  /** Requests whose body was cut short. */
  aborted: number;
  close(): Promise<void>;
}

/**
 * An app that hashes the body it is sent and answers with what it saw
 * (a Received); `progress` hears each chunk's running total. A handler that
 * returns true has answered the request itself.
 */
export async function startSinkApp(handler?: (req: http.IncomingMessage, res: http.ServerResponse, hit: number) => boolean, progress?: (bytes: number) => void): Promise<SinkApp> {
  const app: SinkApp = { port: 0, hits: 0, aborted: 0, close: async () => undefined };
  const server = http.createServer((req, res) => {
    app.hits++;
    if (handler?.(req, res, app.hits)) return;
    const hash = createHash('sha256');
    let bytes = 0;
    let ended = false;
    req.on('data', (c: Buffer) => {
      hash.update(c);
      bytes += c.length;
      progress?.(bytes);
    });
    req.on('end', () => {
      ended = true;
      const out: Received = { bytes, sha256: hash.digest('hex'), contentLength: req.headers['content-length'], transferEncoding: req.headers['transfer-encoding'] };
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(out));
    });
    req.on('close', () => {
      if (!ended) app.aborted++;
    });
  });
  ({ port: app.port, close: app.close } = await listenLocal(server));
  return app;
}

export interface Upload {
  status: number;
  body: string;
  sent: { bytes: number; sha256: string };
}

/**
 * POSTs `mib` MiB to the sidecar in 1 MiB writes, with a content-length or
 * chunked. `pauseAfter` MiB in, it waits for `resumeWhen` before the rest;
 * `abortAfter` MiB in, it destroys the connection instead.
 */
export function upload(port: number, host: string, mib: number, opts: { chunked?: boolean; pauseAfter?: number; resumeWhen?: Promise<void>; abortAfter?: number } = {}): Promise<Upload> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    const headers: Record<string, string> = { host, 'content-type': 'application/octet-stream' };
    if (!opts.chunked) headers['content-length'] = String(mib * MiB);
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/upload', headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, sent: { bytes: mib * MiB, sha256: hash.digest('hex') } }));
    });
    req.on('error', reject);
    const write = async () => {
      for (let i = 0; i < mib; i++) {
        if (opts.abortAfter === i) {
          req.destroy();
          return resolve({ status: 0, body: '', sent: { bytes: i * MiB, sha256: '' } });
        }
        if (opts.pauseAfter === i) await opts.resumeWhen;
        hash.update(block);
        if (!req.write(block)) await new Promise((r) => req.once('drain', r));
      }
      req.end();
    };
    write().catch(reject);
  });
}

/**
 * The default translator with these fields set on every HTTP connection
 * manager, every virtual host and every route action, and every cluster through `cluster`
 * (weft's API does not set them; an operator's Envoy config might).
 */
export function withFields(
  hcm: Record<string, unknown> | ((hcm: Record<string, any>) => Record<string, unknown>),
  routeAction: Record<string, unknown> = {},
  cluster: (c: Record<string, any>) => Record<string, unknown> = (c) => c,
  virtualHost: Record<string, unknown> = {},
): Translator {
  const base = defaultTranslator({ wasmBaseUrl: 'http://127.0.0.1:1', wasmClusterName: 'weft-control' });
  const patch = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(patch);
    if (v === null || typeof v !== 'object') return v;
    const o = Object.fromEntries(Object.entries(v).map(([k, x]) => [k, patch(x)]));
    if (String(o['@type']).endsWith('HttpConnectionManager')) return typeof hcm === 'function' ? hcm(o) : { ...o, ...hcm };
    if (Array.isArray(o.domains) && Array.isArray(o.routes)) Object.assign(o, virtualHost);
    const action = o.route as Record<string, unknown> | undefined;
    if (action && typeof action === 'object' && ('cluster' in action || 'weighted_clusters' in action)) return { ...o, route: { ...action, ...routeAction } };
    return o;
  };
  return {
    translateEndpoints: (m, n) => base.translateEndpoints(m, n),
    translateProxy: (m, p) => {
      const out = base.translateProxy(m, p);
      return {
        ...out,
        listeners: out.listeners.map((l) => ({ ...l, value: patch(l.value) })),
        routes: out.routes.map((r) => ({ ...r, value: patch(r.value) })),
        clusters: out.clusters.map((c) => ({ ...c, value: cluster(c.value as Record<string, any>) })),
      };
    },
  };
}

export interface RawResponse {
  status: number;
  /** The status line and headers, lowercased. */
  head: string;
  body: string;
}

/** A plain TCP connection to a loopback port (for exchanges on one kept-alive HTTP/1.1 connection). */
export function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
  });
}

/** One HTTP/1.1 GET on an open socket; the response is read by its content-length. Rejects if the peer closes first. */
export function exchange(socket: net.Socket, host: string, path = '/'): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const onData = (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = buf.subarray(0, end).toString('latin1');
      const length = Number(/\r\ncontent-length: (\d+)/i.exec(head)?.[1] ?? 0);
      if (buf.length < end + 4 + length) return;
      socket.off('data', onData);
      socket.off('error', reject);
      socket.off('close', onClose);
      resolve({ status: Number(head.slice(9, 12)), head: head.toLowerCase(), body: buf.subarray(end + 4, end + 4 + length).toString() });
    };
    const onClose = () => reject(new Error(`closed before a response (${buf.length} bytes read)`));
    socket.on('data', onData);
    socket.once('error', reject);
    socket.once('close', onClose);
    socket.write(`GET ${path} HTTP/1.1\r\nhost: ${host}\r\n\r\n`);
  });
}

/**
 * Serves wasm modules by sha256 at <url>/<sha256>.wasm, as the control plane's
 * /wasm route does (404 for any other); `close` stops it.
 */
export async function moduleServer(bytesBySha: Map<string, Uint8Array>): Promise<{ url: string; close: () => Promise<void> }> {
  const server = http.createServer((req, res) => {
    const m = /([0-9a-f]{64})\.wasm$/.exec(req.url ?? '');
    const bytes = m ? bytesBySha.get(m[1]!) : undefined;
    if (!bytes) {
      res.statusCode = 404;
      return res.end();
    }
    res.end(bytes);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => new Promise((r) => server.close(() => r())) };
}

export interface Tapped {
  status: number;
  /** Each JSON line of a 200 stream; `{ text }` for the lines of an error answer. */
  lines: Record<string, any>[];
  /** Resolves when the sidecar ends the stream. */
  ended: Promise<void>;
  close(): void;
}

/** Opens the sidecar's admin GET /tap (`query`, e.g. "?max=4") and collects its lines; resolves once the response head is in. */
export function tap(adminPort: number, query = ''): Promise<Tapped> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port: adminPort, path: `/tap${query}` }, (res) => {
      const lines: Record<string, any>[] = [];
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        buf += c;
        for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          lines.push(res.statusCode === 200 ? JSON.parse(line) : { text: line });
        }
      });
      const ended = new Promise<void>((r) => res.once('end', () => r()));
      resolve({ status: res.statusCode!, lines, ended, close: () => req.destroy() });
    });
    req.once('error', reject);
  });
}

/** A cluster as the sidecar holds it, with Envoy's defaults (round robin, default circuit breakers, 50% panic), for unit tests of ClusterManager. */
/** An active HTTP health check on /healthz, every interval a minute (a test drives the checks), thresholds 1; `extra` overrides. */
export const healthCheckConfig = (extra: Partial<HealthCheckConfig> = {}): HealthCheckConfig => ({
  path: '/healthz',
  intervalMs: 60_000,
  noTrafficIntervalMs: 60_000,
  unhealthyIntervalMs: 60_000,
  unhealthyEdgeIntervalMs: 60_000,
  healthyEdgeIntervalMs: 60_000,
  timeoutMs: 2000,
  healthyThreshold: 1,
  unhealthyThreshold: 1,
  expectedStatuses: [{ start: 200, end: 201 }],
  ...extra,
});

export const clusterConfig = (extra: Partial<ClusterConfig> = {}): ClusterConfig => ({
  name: 'c',
  type: 'EDS',
  edsServiceName: 'c',
  staticEndpoints: [],
  connectTimeoutMs: 1000,
  lbPolicy: 'ROUND_ROBIN',
  ringHash: { minimumRingSize: 64, maximumRingSize: 1024 },
  healthChecks: [],
  circuitBreakers: ENVOY_DEFAULT_CIRCUIT_BREAKERS,
  circuitBreakersHigh: ENVOY_DEFAULT_CIRCUIT_BREAKERS,
  http2: false,
  idleTimeoutMs: 60_000,
  maxRequestsPerConnection: 0,
  panicThresholdPercent: 50,
  ...extra,
});

/**
 * A mesh whose translator's routes go through `edit` (each route object of each route configuration), for what
 * weft's translator does not write and an operator's Envoy config might (runtime_fraction, a fault's targets, ...).
 * The caller closes it.
 */
export async function meshEditingRoutes(edit: (route: Record<string, any>) => void): Promise<TestMesh> {
  const base = defaultTranslator({ wasmBaseUrl: 'http://127.0.0.1:1', wasmClusterName: 'weft-control' });
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) return v.forEach(walk);
    if (v === null || typeof v !== 'object') return;
    const o = v as Record<string, any>;
    if (o.match && typeof o.name === 'string') edit(o);
    for (const x of Object.values(o)) walk(x);
  };
  return TestMesh.start({
    translator: {
      translateEndpoints: (x, n) => base.translateEndpoints(x, n),
      translateProxy: (x, p) => {
        const out = base.translateProxy(x, p);
        for (const r of out.routes) walk(r.value);
        return out;
      },
    },
  });
}

/** meshEditingRoutes for the fault filter's per-route configs (typed_per_filter_config), with their route's name. */
export function meshEditingFaults(edit: (fault: Record<string, any>, routeName: string) => void): Promise<TestMesh> {
  return meshEditingRoutes((r) => {
    const f = r.typed_per_filter_config?.['envoy.filters.http.fault'];
    if (f) edit(f, r.name);
  });
}
