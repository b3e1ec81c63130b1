// npm run bench:wasm — what running a proxy-wasm filter costs in weft's host:
// µs per request (new stream, request headers, response headers, on_done /
// on_log / on_delete) at p50 and p99 over --requests (default 100,000), for a
// pass-through module and each built-in filter in filters/dist, and the
// module's memory pages after --leak-requests (default 1,000,000): the same
// page count after warm-up and at the end means no leak. The "cold" column is
// the median over --cold-requests (default 2,000) with 8 MiB of memory
// touched before each request, so the caches hold none of the request path:
// closer to what a request costs in a sidecar sharing its cores (see
// docs/sidecar.md, Performance).
// The "sidecar path" columns drive each filter as the sidecar does: the
// synchronous ...Now phases, a response body chunk, upstream properties, and
// logging at info into the sidecar's own wasm log line and stdout batching
// (written to /dev/null), so a filter's access log costs what it costs there.
// Prints a table and writes bench/results/wasm.json. Not a test: no thresholds.
//
// Usage: npx tsx scripts/bench/wasm.ts [--requests N] [--leak-requests N]

import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { passThroughWasm } from './pass-through.ts';
import { bufferedLines } from '../../sidecar/access-log.ts';
import { wasmLogLine } from '../../sidecar/main.ts';
import { SharedState, WasmPlugin, type HeaderPairs, type StreamProperties } from '../../sidecar/wasm/index.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const arg = (name: string, fallback: number): number => {
  const at = process.argv.indexOf(name);
  return at > 0 ? Number(process.argv[at + 1]) : fallback;
};
const REQUESTS = arg('--requests', 100_000);
const LEAK_REQUESTS = arg('--leak-requests', 1_000_000);
const COLD_REQUESTS = arg('--cold-requests', 2_000);
const evictee = new Uint8Array(8 * 1024 * 1024);
let evicted = 0;
/** Touches a cache line in every 64 bytes of 8 MiB: L1, L2 and any L3 of this size hold nothing of ours after it. */
function evictCaches(): void {
  for (let i = 0; i < evictee.length; i += 64) evicted += evictee[i]!++;
}
const WARMUP = 1_000;

const PEER = 'spiffe://weft.local/ns/default/sa/frontend';
const requestHeaders: HeaderPairs = [
  [':method', 'GET'],
  [':path', '/orders/42?expand=items'],
  [':authority', 'orders'],
  [':scheme', 'http'],
  ['user-agent', 'bench/1.0'],
  ['accept', 'application/json'],
  ['x-user-id', 'user-1234'],
  ['x-request-id', '2f1e7c1a-4b7d-4f0e-9d55-0c7b9a2e11aa'],
];
const responseHeaders: HeaderPairs = [
  [':status', '200'],
  ['content-type', 'application/json'],
  ['content-length', '17'],
];
const properties: StreamProperties = { 'connection.uri_san_peer_certificate': PEER, 'source.address': '127.0.0.1', 'source.port': 40123 };

interface Subject {
  name: string;
  bytes: Uint8Array;
  configuration: string;
}

/** Exports every stream callback and does nothing in them: the host's own cost. */

/** Configurations that exercise each built-in filter's common path. */
const builtInConfig: Record<string, unknown> = {
  auth: { realm: 'orders', spiffe: { allow: [PEER] } },
  route: { canary: { hashOn: { header: 'x-user-id' }, salt: 'bench', splits: [{ subset: 'v2', percent: 10 }], defaultSubset: 'v1' } },
  telemetry: { service: 'orders' },
};

async function subjects(): Promise<{ list: Subject[]; skipped: string[] }> {
  const list: Subject[] = [{ name: 'pass-through (WAT)', bytes: await passThroughWasm(), configuration: '' }];
  const skipped: string[] = [];
  const dist = join(root, 'filters', 'dist');
  const manifest = join(dist, 'manifest.json');
  if (!existsSync(manifest)) skipped.push('built-in filters: filters/dist not built (run the filter build first)');
  else {
    for (const { name } of (JSON.parse(readFileSync(manifest, 'utf8')) as { filters: { name: string }[] }).filters) {
      const path = join(dist, `${name}.wasm`);
      if (!existsSync(path)) {
        skipped.push(`${name}: ${path} missing`);
        continue;
      }
      list.push({ name, bytes: readFileSync(path), configuration: JSON.stringify(builtInConfig[name] ?? {}) });
    }
  }
  const example = join(root, 'examples', 'filters', 'api-key', 'build', 'api-key.wasm');
  if (existsSync(example)) list.push({ name: 'api-key (example)', bytes: readFileSync(example), configuration: JSON.stringify({ keys: { k: 'bench' }, trustedPeers: [PEER] }) });
  return { list, skipped };
}

/** What the sidecar adds to a stream's properties by the time on_log runs. */
const sidecarProperties: StreamProperties = { ...properties, 'request.id': '2f1e7c1a-4b7d-4f0e-9d55-0c7b9a2e11aa', 'xds.route_name': 'orders', 'xds.listener_direction': 1, 'xds.cluster_name': 'inbound|8080||', 'upstream.address': '127.0.0.1:8080' };
const responseBody = Buffer.from('{"id":42,"ok":true}');
/** The sidecar's stdout: one write per batch of lines, here to /dev/null. */
const devNull = openSync('/dev/null', 'w');
const sidecarLog = bufferedLines((chunk) => writeSync(devNull, chunk));

/** One request as the sidecar drives it (filter-chain.ts, proxy.ts): no promise unless the filter waits on a call. */
async function oneSidecarRequest(plugin: WasmPlugin): Promise<void> {
  const stream = plugin.newHttpStream(sidecarProperties);
  let request = stream.requestHeadersNow(requestHeaders, true);
  if (request instanceof Promise) request = await request;
  if (request.action === 'continue') {
    const response = stream.responseHeadersNow(responseHeaders, false);
    if (response instanceof Promise) await response;
    const body = stream.responseBodyNow(responseBody, true);
    if (body instanceof Promise) await body;
  }
  stream.complete();
}

async function oneRequest(plugin: WasmPlugin): Promise<string> {
  const stream = plugin.newHttpStream(properties);
  const request = await stream.onRequestHeaders(requestHeaders, true);
  if (request.action === 'continue') await stream.onResponseHeaders(responseHeaders, true);
  stream.complete();
  return request.action;
}

/** µs per call of `one`, `n` times; `before` runs outside the timing (e.g. evicting the caches). */
async function timed(n: number, one: () => Promise<unknown>, before?: () => void): Promise<Float64Array> {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    before?.();
    const start = process.hrtime.bigint();
    await one();
    out[i] = Number(process.hrtime.bigint() - start) / 1000;
  }
  return out;
}

const pct = (sorted: Float64Array, p: number): number => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
const round = (x: number): number => Math.round(x * 100) / 100;

interface Result {
  filter: string;
  outcome: string;
  requests: number;
  p50Us: number;
  p99Us: number;
  meanUs: number;
  coldP50Us: number;
  sidecarP50Us: number;
  sidecarColdP50Us: number;
  pagesAfterLoad: number;
  pagesAfterWarmup: number;
  pagesAfterLeakRun: number;
  leakRequests: number;
  vmFailures: number;
}

const { list, skipped } = await subjects();
const results: Result[] = [];
for (const subject of list) {
  let plugin: WasmPlugin;
  try {
    plugin = await WasmPlugin.load(subject.bytes, { name: subject.name, configuration: subject.configuration }, { shared: new SharedState(), logLevel: 'critical', maxLogEntries: 10 });
  } catch (error) {
    skipped.push(`${subject.name}: ${(error as Error).message}`);
    continue;
  }
  const pagesAfterLoad = plugin.memoryPages();
  let outcome = '';
  for (let i = 0; i < WARMUP; i++) outcome = await oneRequest(plugin);
  const pagesAfterWarmup = plugin.memoryPages();

  const samples = await timed(REQUESTS, () => oneRequest(plugin));
  const mean = samples.reduce((a, b) => a + b, 0) / samples.length;
  samples.sort();
  const cold = (await timed(COLD_REQUESTS, () => oneRequest(plugin), evictCaches)).sort();

  for (let i = REQUESTS + WARMUP + COLD_REQUESTS; i < LEAK_REQUESTS; i++) await oneRequest(plugin);

  // The same filter as the sidecar runs it, logging at info into its stdout batching.
  const inSidecar = await WasmPlugin.load(subject.bytes, { name: subject.name, configuration: subject.configuration }, { shared: new SharedState(), logLevel: 'info', maxLogEntries: 0, onLog: (e) => sidecarLog.line(wasmLogLine(e)) });
  for (let i = 0; i < WARMUP; i++) await oneSidecarRequest(inSidecar);
  const warm = (await timed(REQUESTS, () => oneSidecarRequest(inSidecar))).sort();
  const sidecarCold = (await timed(COLD_REQUESTS, () => oneSidecarRequest(inSidecar), evictCaches)).sort();
  await inSidecar.close();
  results.push({
    filter: subject.name,
    outcome,
    requests: REQUESTS,
    p50Us: round(pct(samples, 50)),
    p99Us: round(pct(samples, 99)),
    meanUs: round(mean),
    coldP50Us: round(pct(cold, 50)),
    sidecarP50Us: round(pct(warm, 50)),
    sidecarColdP50Us: round(pct(sidecarCold, 50)),
    pagesAfterLoad,
    pagesAfterWarmup,
    pagesAfterLeakRun: plugin.memoryPages(),
    leakRequests: Math.max(LEAK_REQUESTS, REQUESTS + WARMUP + COLD_REQUESTS),
    vmFailures: plugin.vmFailures,
  });
  await plugin.close();
}

sidecarLog.close();
closeSync(devNull);
const header = ['filter', 'outcome', 'p50 µs', 'p99 µs', 'mean µs', 'cold p50 µs', 'sidecar path p50 / cold µs', 'pages: load / warm-up / end', 'requests (end)', 'VM failures'];
const rows = results.map((r) => [r.filter, r.outcome, String(r.p50Us), String(r.p99Us), String(r.meanUs), String(r.coldP50Us), `${r.sidecarP50Us} / ${r.sidecarColdP50Us}`, `${r.pagesAfterLoad} / ${r.pagesAfterWarmup} / ${r.pagesAfterLeakRun}`, String(r.leakRequests), String(r.vmFailures)]);
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
console.log(`proxy-wasm host, ${REQUESTS} timed requests per filter (new stream, request + response headers, done/log/delete), Node ${process.versions.node}`);
console.log(line(header));
console.log(widths.map((w) => '-'.repeat(w)).join('  '));
for (const row of rows) console.log(line(row));
for (const s of skipped) console.log(`skipped: ${s}`);

const out = join(root, 'bench', 'results');
mkdirSync(out, { recursive: true });
writeFileSync(join(out, 'wasm.json'), `${JSON.stringify({ date: new Date().toISOString(), node: process.versions.node, requests: REQUESTS, coldRequests: COLD_REQUESTS, leakRequests: LEAK_REQUESTS, results, skipped }, null, 2)}\n`);
if (evicted < 0) console.log(evicted); // keeps the eviction loop from being optimised away
console.log(`wrote ${join('bench', 'results', 'wasm.json')}`);
