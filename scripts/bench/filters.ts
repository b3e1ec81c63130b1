// npm run bench:filters — the built-in filters' module sizes and their
// per-request cost in weft's proxy-wasm host for the paths that differ in
// cost (SPIFFE vs API key vs HS256 vs RS256 for auth, canary bucketing,
// telemetry with and without its access log). Complements bench:wasm (one
// common path per filter, leak check). Prints a table and writes
// bench/results/filters.json. Not a test: no thresholds.
//
// Usage: npx tsx scripts/bench/filters.ts [--requests N]

import { createHash, createHmac, generateKeyPairSync, sign } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { buildFilters } from '../build-filters.ts';
import { SharedState, WasmPlugin } from '../../sidecar/wasm/index.ts';
import type { HeaderPairs, LogLevelName, StreamProperties } from '../../sidecar/wasm/index.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const at = process.argv.indexOf('--requests');
const REQUESTS = at > 0 ? Number(process.argv[at + 1]) : 5_000;
const WARMUP = 500;
const PEER = 'spiffe://weft.local/ns/default/sa/frontend';
const NOW = 1_800_000_000;

const secret = Buffer.alloc(32, 7);
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const b64 = (v: string | Buffer): string => Buffer.from(v).toString('base64url');
function jwt(alg: 'HS256' | 'RS256', kid: string): string {
  const input = `${b64(JSON.stringify({ alg, kid }))}.${b64(JSON.stringify({ sub: 'alice', aud: 'orders', exp: NOW + 600 }))}`;
  const sig = alg === 'HS256' ? createHmac('sha256', secret).update(input).digest() : sign('sha256', Buffer.from(input), rsa.privateKey);
  return `${input}.${b64(sig)}`;
}

const authConfig = {
  jwt: {
    audiences: ['orders'],
    jwks: { keys: [{ kty: 'oct', kid: 'h', k: b64(secret) }, { ...rsa.publicKey.export({ format: 'jwk' }), kid: 'r' }] },
    forwardClaims: { sub: 'x-weft-user' },
  },
  apiKeys: { keys: [{ name: 'ci', sha256: createHash('sha256').update('key-123').digest('hex') }] },
  spiffe: { allow: [PEER] },
};

interface Scenario {
  filter: string;
  name: string;
  config: unknown;
  headers: HeaderPairs;
  peer?: string;
  logLevel?: LogLevelName;
}

const scenarios: Scenario[] = [
  { filter: 'auth', name: 'SPIFFE peer allowed', config: authConfig, headers: [], peer: PEER },
  { filter: 'auth', name: 'API key', config: authConfig, headers: [['x-api-key', 'key-123']] },
  { filter: 'auth', name: 'JWT HS256', config: authConfig, headers: [['authorization', `Bearer ${jwt('HS256', 'h')}`]] },
  { filter: 'auth', name: 'JWT RS256 (2048-bit)', config: authConfig, headers: [['authorization', `Bearer ${jwt('RS256', 'r')}`]] },
  { filter: 'auth', name: '401 no credentials', config: authConfig, headers: [] },
  { filter: 'route', name: 'canary by header', config: { canary: { hashOn: { header: 'x-user-id' }, splits: [{ subset: 'v2', percent: 10 }], defaultSubset: 'v1' } }, headers: [['x-user-id', 'user-1234']] },
  { filter: 'telemetry', name: 'metrics + trace, log off', config: { service: 'orders' }, headers: [], logLevel: 'warn' },
  { filter: 'telemetry', name: 'metrics + trace + access log', config: { service: 'orders' }, headers: [], logLevel: 'info' },
];

const manifest = await buildFilters();
const base: HeaderPairs = [[':method', 'GET'], [':path', '/orders/42'], [':authority', 'orders'], [':scheme', 'http'], ['user-agent', 'bench/1.0']];

interface Row { filter: string; scenario: string; outcome: string; p50Us: number; p99Us: number; meanUs: number }
const rows: Row[] = [];
for (const s of scenarios) {
  const bytes = readFileSync(join(root, 'filters', 'dist', `${s.filter}.wasm`));
  const plugin = await WasmPlugin.load(bytes, { name: s.filter, configuration: JSON.stringify(s.config) }, {
    shared: new SharedState(), logLevel: s.logLevel ?? 'warn', maxLogEntries: 10, now: () => BigInt(NOW) * 1_000_000_000n,
  });
  const properties: StreamProperties = s.peer ? { 'connection.uri_san_peer_certificate': s.peer } : {};
  const headers = [...base, ...s.headers];
  let outcome = '';
  const one = async (): Promise<void> => {
    const stream = plugin.newHttpStream(properties);
    const r = await stream.onRequestHeaders(headers, true);
    outcome = r.action === 'local_reply' ? `reply ${r.reply.status}` : r.action;
    if (r.action === 'continue') await stream.onResponseHeaders([[':status', '200']], true);
    stream.complete();
  };
  for (let i = 0; i < WARMUP; i++) await one();
  const samples = new Float64Array(REQUESTS);
  for (let i = 0; i < REQUESTS; i++) {
    const t = process.hrtime.bigint();
    await one();
    samples[i] = Number(process.hrtime.bigint() - t) / 1000;
  }
  const mean = samples.reduce((a, b) => a + b, 0) / REQUESTS;
  samples.sort();
  const r2 = (x: number): number => Math.round(x * 10) / 10;
  rows.push({ filter: s.filter, scenario: s.name, outcome, p50Us: r2(samples[Math.floor(REQUESTS / 2)]!), p99Us: r2(samples[Math.floor(REQUESTS * 0.99)]!), meanUs: r2(mean) });
  await plugin.close();
}

const sizes = manifest.filters.map((f) => {
  const bytes = readFileSync(join(root, 'filters', 'dist', `${f.name}.wasm`));
  return { filter: f.name, bytes: f.size, gzipBytes: gzipSync(bytes, { level: 9 }).length, budget: 32 * 1024 };
});

function table(head: string[], body: string[][]): void {
  const w = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i]!.length)));
  const line = (c: string[]): string => c.map((x, i) => x.padEnd(w[i]!)).join('  ');
  console.log(line(head));
  console.log(w.map((n) => '-'.repeat(n)).join('  '));
  for (const r of body) console.log(line(r));
}

console.log(`built-in filter modules (budget < 32768 bytes each)`);
table(['filter', 'bytes', 'gzip -9'], sizes.map((s) => [s.filter, String(s.bytes), String(s.gzipBytes)]));
console.log(`\nper request in weft's proxy-wasm host (new stream, request + response headers, done/log/delete), ${REQUESTS} requests, Node ${process.versions.node}`);
table(['filter', 'path', 'outcome', 'p50 µs', 'p99 µs', 'mean µs'], rows.map((r) => [r.filter, r.scenario, r.outcome, String(r.p50Us), String(r.p99Us), String(r.meanUs)]));
const note = 'For comparison (not measured here): proxy-wasm modules from the Rust SDK are typically tens to a few hundred KB after wasm-opt, TinyGo (proxy-wasm-go-sdk) modules typically hundreds of KB, and C++/Emscripten ones larger; these modules stay under 32 KB because they use AssemblyScript\'s minimal runtime and avoid its Unicode/strtod tables.';
console.log(`\n${note}`);

const out = join(root, 'bench', 'results');
mkdirSync(out, { recursive: true });
writeFileSync(join(out, 'filters.json'), `${JSON.stringify({ date: new Date().toISOString(), node: process.versions.node, requests: REQUESTS, sizes, rows, note }, null, 2)}\n`);
console.log(`wrote ${join('bench', 'results', 'filters.json')}`);
