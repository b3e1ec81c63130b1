// npm run bench:soak — does a weft sidecar's memory stay flat under hours of
// traffic and config churn? Two sidecars (client outbound, server inbound)
// run as separate processes in front of an app, with the real ADS server in
// this process. Each phase sends wrk traffic (kept-alive connections, then
// one request per connection), and between phases the mesh changes as an
// operator's would: the canary split flips, a service (a cluster, its EDS
// and a virtual host) comes and another goes, an instance joins or leaves,
// and the telemetry filter is bound to the server's inbound listener or
// unbound (a new listener, a wasm VM made or dropped). After each phase the
// bench reads each sidecar's heap after a full collection, through the V8
// inspector (the sidecars run with --inspect on a loopback port; nothing in
// the sidecar is changed for the bench), and fits the growth per phase and
// per 100,000 requests over the phases after the warm-up.
//
// Prints a table and writes bench/results/soak.json.
//   BENCH_SOAK_PHASES (default 30), BENCH_SOAK_PHASE_SECONDS (wrk seconds per phase, default 5),
//   BENCH_SOAK_WARMUP (phases left out of the fit, default 4), BENCH_STDOUT_DIR (children's stdout),
//   BENCH_SOAK_SNAPSHOTS=dir (a heap snapshot of each sidecar after the warm-up and after the last phase;
//   `node --import tsx scripts/bench/heap-diff.ts A B` lists what the second holds more of).

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import inspector from 'node:inspector';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocket } from 'undici';
import { defaultTranslator } from '../../control/xds/index.ts';
import type { FilterBinding, Instance, Route } from '../../control/model/types.ts';
import { TestMesh, freePort, get, instance, service } from '../../test/sidecar/harness.ts';
import { sidecarNodeFlags } from '../../sidecar/main.ts';
import { need, ready, root, runBench, start, until, wrkCounts } from './processes.ts';

const PHASES = Number(process.env.BENCH_SOAK_PHASES ?? 30);
const PHASE_SECONDS = Number(process.env.BENCH_SOAK_PHASE_SECONDS ?? 5);
const WARMUP = Number(process.env.BENCH_SOAK_WARMUP ?? 4);
const CONNECTIONS = 16;
const SNAPSHOTS = process.env.BENCH_SOAK_SNAPSHOTS;

/** What the V8 inspector of one process says about its memory, right after a full collection. */
interface Memory {
  heapUsed: number;
  /**
   * The part of heapUsed that is compiled code and what the JIT keeps with it (V8's code spaces); it
   * grows as functions tier up and levels off. A leak shows in `data`.
   */
  code: number;
  /** heapUsed less code: the objects the process keeps. */
  data: number;
  external: number;
  rss: number;
}
/** This process's Memory; evaluated in the sidecars by its source text, so it names nothing from outside. */
function memoryNow(): Memory {
  const m = process.memoryUsage();
  const code = process
    .getBuiltinModule('node:v8')
    .getHeapSpaceStatistics()
    .filter((s) => s.space_name.startsWith('code_'))
    .reduce((a, s) => a + s.space_used_size, 0);
  return { heapUsed: m.heapUsed, code, data: m.heapUsed - code, external: m.external, rss: m.rss };
}

/** The control plane's Memory (it runs in this process) after a full collection. */
async function controlPlaneMemory(session: inspector.Session): Promise<Memory> {
  for (let i = 0; i < 2; i++) await new Promise<void>((resolve, reject) => session.post('HeapProfiler.collectGarbage', (e) => (e ? reject(e) : resolve())));
  return memoryNow();
}

/**
 * A V8 inspector session (Chrome DevTools Protocol over a WebSocket): a full
 * garbage collection, then process.memoryUsage() evaluated in the process.
 */
class Inspector {
  #ws: WebSocket;
  #next = 1;
  #chunks: string[] = [];
  #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  private constructor(ws: WebSocket) {
    this.#ws = ws;
    ws.addEventListener('message', (ev) => {
      const msg = JSON.parse(String(ev.data)) as { id?: number; method?: string; params?: { chunk?: string }; result?: unknown; error?: { message: string } };
      if (msg.method === 'HeapProfiler.addHeapSnapshotChunk') this.#chunks.push(msg.params!.chunk!);
      const p = msg.id === undefined ? undefined : this.#pending.get(msg.id);
      if (!p) return;
      this.#pending.delete(msg.id!);
      if (msg.error) p.reject(new Error(msg.error.message));
      else p.resolve(msg.result);
    });
  }

  static async connect(port: number): Promise<Inspector> {
    let url = '';
    await until(async () => {
      const targets = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as { webSocketDebuggerUrl: string }[];
      url = targets[0]?.webSocketDebuggerUrl ?? '';
      return url !== '';
    }, `inspector :${port}`);
    const ws = new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      ws.addEventListener('open', () => resolve(), { once: true });
      ws.addEventListener('error', () => reject(new Error(`inspector :${port}: WebSocket error`)), { once: true });
    });
    return new Inspector(ws);
  }

  call(method: string, params: Record<string, unknown> = {}): Promise<unknown> {
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#ws.send(JSON.stringify({ id, method, params }));
    });
  }

  async memoryAfterGc(): Promise<Memory> {
    // Twice: objects a first collection finalizes (weak callbacks, FinalizationRegistry) are freed by the second.
    await this.call('HeapProfiler.collectGarbage');
    await this.call('HeapProfiler.collectGarbage');
    const r = (await this.call('Runtime.evaluate', { expression: `JSON.stringify((${memoryNow.toString()})())`, returnByValue: true })) as { result: { value?: string; description?: string }; exceptionDetails?: unknown };
    if (r.result.value === undefined) throw new Error(`inspector: process.memoryUsage() failed: ${r.result.description ?? JSON.stringify(r)}`);
    return JSON.parse(r.result.value) as Memory;
  }

  /** A heap snapshot (after the collection a snapshot makes), for Chrome DevTools' Memory tab or scripts/bench/heap-diff.ts. */
  async heapSnapshot(file: string): Promise<void> {
    this.#chunks = [];
    await this.call('HeapProfiler.takeHeapSnapshot', { reportProgress: false });
    writeFileSync(file, this.#chunks.join(''));
    this.#chunks = [];
  }

  close(): void {
    this.#ws.close();
  }
}

/** Requests wrk sent in `seconds`, how many got neither a 2xx nor a 3xx, and socket errors. */
function wrk(port: number, host: string, seconds: number, extraHeaders: string[], script: string): { requests: number; non2xx: number; socketErrors: number } {
  return wrkCounts(execFileSync('wrk', ['-t1', `-c${CONNECTIONS}`, `-d${seconds}s`, '-s', script, '-H', `Host: ${host}`, ...extraHeaders.flatMap((h) => ['-H', h]), `http://127.0.0.1:${port}/`], { encoding: 'utf8' }));
}

/** Least squares y = a + b x; b and the share of y's variance the line explains (r²). */
function fit(xs: number[], ys: number[]): { slope: number; r2: number } {
  const n = xs.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    sxy += (xs[i]! - mx) * (ys[i]! - my);
    sxx += (xs[i]! - mx) ** 2;
    syy += (ys[i]! - my) ** 2;
  }
  const slope = sxx === 0 ? 0 : sxy / sxx;
  return { slope, r2: sxx === 0 || syy === 0 ? 0 : (sxy * sxy) / (sxx * syy) };
}

/** The sum of a stat over every scope that has it (`/stats?filter=`, Envoy's text format), from a sidecar's admin port. */
async function statSum(adminPort: number, regex: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${adminPort}/stats?filter=${encodeURIComponent(regex)}`)).text();
  return [...text.matchAll(/: (\d+)$/gm)].reduce((a, m) => a + Number(m[1]), 0);
}

/** Connections a sidecar holds open: its clusters' upstream ones and its listeners' downstream ones (not the admin listener's). */
async function openConnections(adminPort: number): Promise<number> {
  return (await statSum(adminPort, '^cluster\\..*\\.upstream_cx_active$')) + (await statSum(adminPort, '^listener\\.[0-9].*\\.downstream_cx_active$'));
}

/** Detaches from the sidecars (a sidecar with a debugger attached waits for it at exit). */
let closeInspectors = () => {};

/**
 * Least squares y = a + b1 x1 + b2 x2: the growth per phase with the open connections held constant (b1), and
 * the bytes each open connection holds (b2). A pool that fills up to the traffic's peak concurrency grows the heap
 * with it and stops with it; a leak grows per phase whatever the connections do.
 */
function fit2(x1: number[], x2: number[], ys: number[]): { perX1: number; perX2: number } {
  const n = ys.length;
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / n;
  const [m1, m2, my] = [mean(x1), mean(x2), mean(ys)];
  let s11 = 0;
  let s22 = 0;
  let s12 = 0;
  let s1y = 0;
  let s2y = 0;
  for (let i = 0; i < n; i++) {
    const [d1, d2, dy] = [x1[i]! - m1, x2[i]! - m2, ys[i]! - my];
    s11 += d1 * d1;
    s22 += d2 * d2;
    s12 += d1 * d2;
    s1y += d1 * dy;
    s2y += d2 * dy;
  }
  const det = s11 * s22 - s12 * s12;
  if (det === 0) return { perX1: NaN, perX2: NaN };
  return { perX1: (s22 * s1y - s12 * s2y) / det, perX2: (s11 * s2y - s12 * s1y) / det };
}

const kib = (b: number) => (b / 1024).toFixed(0);
const mib = (b: number) => (b / 1024 / 1024).toFixed(2);

async function main(): Promise<void> {
  need('wrk', 'wrk');
  if (WARMUP + 3 > PHASES) throw new Error(`BENCH_SOAK_PHASES (${PHASES}) must be at least BENCH_SOAK_WARMUP (${WARMUP}) + 3 for a fit`);
  // The app: a small answer, a 64 KiB one (bodies through the filter chain), and a path that fails every
  // fourth request (retries).
  const appPort = await freePort();
  start([
    '-e',
    `let n=0;const big=Buffer.alloc(65536,120);require('node:http').createServer((q,s)=>{s.setHeader('content-type','text/plain');` +
      `if(q.url==='/big')return s.end(big);if(q.url==='/flaky'&&++n%4===0){s.statusCode=503;return s.end('flaky')}` +
      `s.end('hello from the app\\n')}).listen(${appPort},'127.0.0.1')`,
  ]);
  await until(async () => (await fetch(`http://127.0.0.1:${appPort}/`)).ok, 'app');

  const telemetryWasm = join(root, 'filters', 'dist', 'telemetry.wasm');
  if (!existsSync(telemetryWasm)) throw new Error(`${telemetryWasm} is missing: npm run build:filters`);
  const wasm = readFileSync(telemetryWasm);
  const sha = createHash('sha256').update(wasm).digest('hex');
  const moduleServer = http.createServer((_q, s) => s.end(wasm));
  await new Promise<void>((r) => moduleServer.listen(0, '127.0.0.1', () => r()));
  const wasmBaseUrl = `http://127.0.0.1:${(moduleServer.address() as AddressInfo).port}`;

  const mesh = await TestMesh.start({ translator: defaultTranslator({ wasmBaseUrl, wasmClusterName: 'weft-control' }) });
  const ports = { clientOut: await freePort(), clientAdmin: await freePort(), clientInspect: await freePort(), serverIn: await freePort(), serverAdmin: await freePort(), serverInspect: await freePort() };
  const appInstances = [instance('app', ports.serverIn, { version: 'v1' }), instance('app', ports.serverIn, { version: 'v2' })];
  const route = (phase: number): Route => {
    const canary = phase % 2 === 0 ? 10 : 50;
    return {
      name: 'app',
      namespace: 'default',
      service: 'app',
      rules: [
        { name: 'flaky', match: [{ path: { exact: '/flaky' } }], destinations: [{ service: 'app', weight: 1 }], retries: { attempts: 3, retryOn: ['5xx'] }, timeoutMs: 5_000 },
        {
          name: 'split',
          destinations: [
            { service: 'app', subset: 'v1', weight: 100 - canary },
            { service: 'app', subset: 'v2', weight: canary },
          ],
          responseHeaders: { add: [{ name: 'x-soak-phase', value: String(phase) }] },
        },
      ],
    };
  };
  const telemetry: FilterBinding = { name: 'app-telemetry', namespace: 'default', service: 'app', direction: 'inbound', filter: 'telemetry', order: 0, config: {}, failurePolicy: 'fail_open' };
  // A service that lives for one phase: its cluster, endpoints and virtual host reach the client sidecar and leave again.
  const passing = (phase: number) => service(`passing-${phase}`, 8080);
  const passingInstance = (phase: number): Instance => instance(`passing-${phase}`, appPort);
  // An instance of app that comes and goes: a second endpoint in v1's subset, the app itself without its sidecar.
  const extra = instance('app', appPort, { version: 'v1', extra: 'yes' });
  const config = (phase: number) => ({
    services: [service('client', 9999), service('app', 8080), passing(phase)],
    instances: [...appInstances, passingInstance(phase), ...(phase % 3 === 1 ? [extra] : [])],
    routes: [route(phase)],
    destinationPolicies: [{ name: 'app', namespace: 'default', service: 'app', subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2' } }] }],
    filterModules: [{ name: 'telemetry', sha256: sha, size: wasm.length, abiVersion: '0.2.1' as const }],
    filterBindings: phase % 2 === 0 ? [telemetry] : [],
  });
  mesh.model.update(config(0));

  const weft = join(root, 'control', 'cli', 'main.ts');
  const xds = `127.0.0.1:${mesh.xdsPort}`;
  const sidecar = (svc: string, app: number, inbound: number, outbound: number, admin: number, inspect: number) =>
    start([...sidecarNodeFlags(), `--inspect=127.0.0.1:${inspect}`, '--import', 'tsx', weft, 'sidecar', '--service', svc, '--xds', xds, '--app-port', String(app), '--inbound-port', String(inbound), '--outbound-port', String(outbound), '--admin-port', String(admin)]);
  sidecar('client', 9999, await freePort(), ports.clientOut, ports.clientAdmin, ports.clientInspect);
  sidecar('app', appPort, ports.serverIn, await freePort(), ports.serverAdmin, ports.serverInspect);
  await ready(ports.clientAdmin);
  await ready(ports.serverAdmin);
  const inspectors = { client: await Inspector.connect(ports.clientInspect), server: await Inspector.connect(ports.serverInspect) };
  closeInspectors = () => Object.values(inspectors).forEach((i) => i.close());

  // wrk rotates over the app's paths; the canary split needs no header.
  const script = join(tmpdir(), `weft-bench-soak-${process.pid}.lua`);
  writeFileSync(script, `local paths = {"/", "/big", "/flaky", "/", "/orders?id=7"}\nlocal i = 0\nrequest = function()\n  i = i % #paths + 1\n  return wrk.format("GET", paths[i])\nend\n`);

  let seen = '';
  const applied = async (phase: number) => {
    // The phase's route reached the client sidecar once its response header says so.
    const r = await get(ports.clientOut, 'app', '/', { headers: { connection: 'close' } });
    seen = `${r.status} x-soak-phase: ${r.headers['x-soak-phase']}`;
    return r.headers['x-soak-phase'] === String(phase);
  };

  interface Sample {
    phase: number;
    requests: number;
    totalRequests: number;
    non2xx: number;
    socketErrors: number;
    client: Memory;
    server: Memory;
    /**
     * Connections each sidecar holds open, upstream and downstream (after a phase: the client's pooled upstream
     * connections, which its pools keep idle for the cluster's idle_timeout, 1 h by default as Envoy's; the server's
     * are the same connections seen from the other end, and its own pool to the app).
     */
    connections: { client: number; server: number };
    /** The control plane: the xDS server and its translator in this process (the bench's own few objects with it). */
    control: Memory;
  }
  const session = new inspector.Session();
  session.connect();
  const samples: Sample[] = [];
  let totalRequests = 0;
  console.log(`weft sidecar soak: ${PHASES} phases of ${PHASE_SECONDS} s of wrk (-c${CONNECTIONS}) kept alive + ${Math.max(1, Math.round(PHASE_SECONDS / 5))} s one request per connection, config churn between phases`);
  console.log('heap after a full GC, MiB: data (objects kept) and code (compiled code and JIT data)');
  console.log('phase  requests  not 2xx  socket errors  client data  client code  server data  server code  control plane data  client cx open  server cx open');
  for (let phase = 0; phase < PHASES; phase++) {
    if (phase > 0) {
      mesh.model.update(config(phase));
      await until(() => applied(phase), `phase ${phase} config`).catch((e: Error) => {
        throw new Error(`${e.message} (last answer: ${seen})`);
      });
    }
    const kept = wrk(ports.clientOut, 'app', PHASE_SECONDS, [], script);
    const closed = wrk(ports.clientOut, 'app', Math.max(1, Math.round(PHASE_SECONDS / 5)), ['Connection: close'], script);
    const requests = kept.requests + closed.requests;
    totalRequests += requests;
    const sample: Sample = { phase, requests, totalRequests, non2xx: kept.non2xx + closed.non2xx, socketErrors: kept.socketErrors + closed.socketErrors, client: await inspectors.client.memoryAfterGc(), server: await inspectors.server.memoryAfterGc(), control: await controlPlaneMemory(session), connections: { client: await openConnections(ports.clientAdmin), server: await openConnections(ports.serverAdmin) } };
    samples.push(sample);
    // A snapshot leaves its memory to the process: RSS is not comparable after one.
    if (SNAPSHOTS && (phase === WARMUP || phase === PHASES - 1)) {
      mkdirSync(SNAPSHOTS, { recursive: true });
      for (const [side, i] of Object.entries(inspectors)) await i.heapSnapshot(join(SNAPSHOTS, `${side}-phase${phase}.heapsnapshot`));
    }
    console.log(
      `${String(phase).padStart(5)}  ${String(requests).padStart(8)}  ${String(sample.non2xx).padStart(7)}  ${String(sample.socketErrors).padStart(13)}  ${mib(sample.client.data).padStart(11)}  ${mib(sample.client.code).padStart(11)}  ${mib(sample.server.data).padStart(11)}  ${mib(sample.server.code).padStart(11)}  ${mib(sample.control.data).padStart(18)}  ${String(sample.connections.client).padStart(14)}  ${String(sample.connections.server).padStart(14)}`,
    );
  }

  session.disconnect();

  // The fit over every phase after the warm-up, and over each half of them: a leak grows as fast in the
  // second half as in the first; warming (JIT code, pools, caches reaching their size) slows down.
  const measured = samples.slice(WARMUP);
  const half = Math.floor(measured.length / 2);
  type Side = 'client' | 'server' | 'control';
  const sides: Side[] = ['client', 'server', 'control'];
  const slope = (xs: Sample[], side: Side, field: keyof Memory, x: (s: Sample) => number) =>
    fit(
      xs.map(x),
      xs.map((s) => s[side][field]),
    );
  const growth = (side: Side, field: keyof Memory) => {
    const all = slope(measured, side, field, (s) => s.phase);
    return {
      first: measured[0]![side][field],
      last: measured.at(-1)![side][field],
      max: Math.max(...measured.map((s) => s[side][field])),
      bytesPerPhase: all.slope,
      r2: all.r2,
      bytesPerPhaseFirstHalf: slope(measured.slice(0, half), side, field, (s) => s.phase).slope,
      bytesPerPhaseSecondHalf: slope(measured.slice(half), side, field, (s) => s.phase).slope,
      bytesPer100kRequests: slope(measured, side, field, (s) => s.totalRequests).slope * 100_000,
    };
  };
  const fields = ['data', 'code', 'external', ...(SNAPSHOTS ? [] : ['rss' as const])] as const;
  const result = Object.fromEntries(sides.map((side) => [side, Object.fromEntries(fields.map((f) => [f, growth(side, f)]))])) as Record<Side, Record<(typeof fields)[number], ReturnType<typeof growth>>>;
  console.log(`\nover phases ${WARMUP}-${PHASES - 1} (${measured.reduce((a, s) => a + s.requests, 0)} requests, ${PHASES - WARMUP} config changes), after a full GC:`);
  console.log('process  measure    first KiB   last KiB    max KiB   KiB/phase  first half  second half  KiB/100k rq   r²');
  for (const side of sides) {
    for (const field of fields) {
      const g = result[side][field];
      const k = (b: number) => (b / 1024).toFixed(1);
      console.log(`${side.padEnd(7)}  ${field.padEnd(9)} ${kib(g.first).padStart(9)}  ${kib(g.last).padStart(9)}  ${kib(g.max).padStart(9)}  ${k(g.bytesPerPhase).padStart(9)}  ${k(g.bytesPerPhaseFirstHalf).padStart(10)}  ${k(g.bytesPerPhaseSecondHalf).padStart(11)}  ${k(g.bytesPer100kRequests).padStart(11)}  ${g.r2.toFixed(2)}`);
    }
  }
  const netOfConnections = Object.fromEntries(
    (['client', 'server'] as const).map((side) => {
      const f = fit2(
        measured.map((s) => s.phase),
        measured.map((s) => s.connections[side]),
        measured.map((s) => s[side].data),
      );
      return [side, { dataBytesPerPhase: f.perX1, dataBytesPerOpenConnection: f.perX2 }];
    }),
  );
  for (const side of ['client', 'server'] as const) {
    const f = netOfConnections[side]!;
    console.log(`${side} data with its open connections held constant: ${(f.dataBytesPerPhase / 1024).toFixed(1)} KiB/phase; each open connection: ${(f.dataBytesPerOpenConnection / 1024).toFixed(1)} KiB (connections ${Math.min(...measured.map((s) => s.connections[side]))}-${Math.max(...measured.map((s) => s.connections[side]))})`);
  }
  const non2xx = samples.reduce((a, s) => a + s.non2xx, 0);
  const socketErrors = samples.reduce((a, s) => a + s.socketErrors, 0);
  // The app fails every fourth /flaky request; a retry the client's max_retries circuit breaker (Envoy's default,
  // 3 at once) refuses passes the 503 on, so some non-2xx are expected. The client's own count of those:
  const retryOverflow = await statSum(ports.clientAdmin, 'upstream_rq_retry_overflow$');
  console.log(`requests: ${totalRequests}; not 2xx: ${non2xx} (retries refused by max_retries: ${retryOverflow}); socket errors: ${socketErrors}`);
  mkdirSync(join(root, 'bench', 'results'), { recursive: true });
  writeFileSync(
    join(root, 'bench', 'results', 'soak.json'),
    JSON.stringify({ at: new Date().toISOString(), node: process.version, loadAverage: (await import('node:os')).loadavg(), phases: PHASES, phaseSeconds: PHASE_SECONDS, warmup: WARMUP, connections: CONNECTIONS, sidecarNodeFlags: sidecarNodeFlags(), totalRequests, non2xx, retryOverflow, socketErrors, growth: result, netOfConnections, samples }, null, 2) + '\n',
  );
  console.log('wrote bench/results/soak.json');
  rmSync(script, { force: true });
  await mesh.close();
  moduleServer.close();
}

runBench(main, () => closeInspectors());
