// npm run bench:store — what a durable revision costs: commit latency (one
// fsync each), commit throughput under concurrent writers, reopen time with
// and without a snapshot, stateAt of an old revision, validation rate.
// Prints a table and writes bench/results/store.json. Not a test: no thresholds.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openFileStore } from '../../control/store/file-store.ts';
import { validateRoute } from '../../control/model/route.ts';
import { createRegistry } from '../../control/registry/registry.ts';

interface Row {
  measure: string;
  value: number;
  unit: string;
}
const rows: Row[] = [];
const round = (x: number) => Math.round(x * 100) / 100;
const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
const service = (i: number) => ({ name: `svc-${i}`, namespace: 'default', ports: [{ port: 8080, protocol: 'http' }], healthCheck: { path: '/healthz', intervalMs: 10000, timeoutMs: 1000, healthyThreshold: 2, unhealthyThreshold: 3 } });
const put = (i: number, v = 0) => ({ op: 'put' as const, kind: 'Service', namespace: 'default', name: `svc-${i}`, spec: { ...service(i), v } });
const meta = { actor: 'bench', summary: 'bench' };

const dir = mkdtempSync(join(tmpdir(), 'weft-bench-store-'));
try {
  // 1. Sequential commits: each waits for its own fsync.
  let store = await openFileStore(dir, { compactEvery: 1000 });
  const latencies: number[] = [];
  for (let i = 0; i < 500; i++) {
    const start = performance.now();
    await store.commit([put(i)], meta);
    latencies.push(performance.now() - start);
  }
  latencies.sort((a, b) => a - b);
  rows.push({ measure: 'commit latency p50 (sequential, fsync each)', value: round(pct(latencies, 50)), unit: 'ms' });
  rows.push({ measure: 'commit latency p99 (sequential, fsync each)', value: round(pct(latencies, 99)), unit: 'ms' });

  // 2. Concurrent writers: commits queue behind each other.
  const concurrentStart = performance.now();
  await Promise.all(Array.from({ length: 500 }, (_, i) => store.commit([put(i, 1)], meta)));
  rows.push({ measure: 'commit throughput (500 concurrent writers)', value: Math.round(500 / ((performance.now() - concurrentStart) / 1000)), unit: 'commits/s' });

  // 3. Registry: registrations are revisions too.
  await store.commit([{ op: 'put', kind: 'Service', namespace: 'default', name: 'orders', spec: service(0) }], meta);
  const registry = createRegistry(store);
  const regStart = performance.now();
  for (let i = 0; i < 300; i++) await registry.register('orders', 'default', { address: `10.0.${i >> 8}.${i & 255}`, port: 15006, ttlSeconds: 30 });
  rows.push({ measure: 'instance registrations (sequential)', value: Math.round(300 / ((performance.now() - regStart) / 1000)), unit: 'per s' });
  const burstStart = performance.now();
  await Promise.all(Array.from({ length: 2000 }, (_, i) => registry.register('orders', 'default', { address: `10.1.${i >> 8}.${i & 255}`, port: 15006, ttlSeconds: 30 })));
  rows.push({ measure: 'instance registrations (2,000 concurrent, group commit)', value: Math.round(2000 / ((performance.now() - burstStart) / 1000)), unit: 'per s' });

  // 4. Grow to 10,000 revisions, then reopen with and without a recent snapshot.
  for (let i = store.revision(); i < 10_000; i++) await store.commit([put(i % 2000, i)], meta);
  await store.close();
  let start = performance.now();
  store = await openFileStore(dir, { compactEvery: 1000 });
  rows.push({ measure: `reopen at ${store.revision()} revisions (snapshot + ${store.openReport.replayed} replayed)`, value: round(performance.now() - start), unit: 'ms' });
  start = performance.now();
  const old = store.stateAt(5000);
  rows.push({ measure: `stateAt(5000), ${old.length} objects, replayed from the log`, value: round(performance.now() - start), unit: 'ms' });
  await store.close();

  rmSync(join(dir, 'store'), { recursive: true, force: true });
  store = await openFileStore(dir, { compactEvery: 1_000_000 });
  for (let i = 0; i < 5000; i++) await store.commit([put(i % 2000, i)], meta);
  await store.close();
  start = performance.now();
  store = await openFileStore(dir, { compactEvery: 1_000_000 });
  rows.push({ measure: `reopen at ${store.revision()} revisions (no snapshot, all replayed)`, value: round(performance.now() - start), unit: 'ms' });
  await store.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}

// 5. Validation rate of a realistic route.
const route = {
  name: 'reviews', service: 'reviews',
  rules: [
    { match: [{ path: { prefix: '/api' }, headers: [{ name: 'x-user', match: { regex: '^j.*' } }] }], destinations: [{ service: 'reviews', subset: 'v1', weight: 90 }, { service: 'reviews', subset: 'v2', weight: 10 }], retries: { attempts: 3 }, timeoutMs: 2000 },
    { destinations: [{ service: 'reviews' }] },
  ],
};
for (let i = 0; i < 5000; i++) validateRoute(route); // let the JIT settle
let ops = 0;
const until = performance.now() + 700;
const vStart = performance.now();
while (performance.now() < until) {
  validateRoute(route);
  ops++;
}
rows.push({ measure: 'validateRoute (2 rules, match, weights, retries)', value: Math.round(ops / ((performance.now() - vStart) / 1000)), unit: 'per s' });

console.table(rows);
const out = join(dirname(fileURLToPath(import.meta.url)), '../../bench/results/store.json');
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, JSON.stringify({ date: new Date().toISOString(), node: process.version, rows }, null, 2) + '\n');
console.log(`wrote ${out}`);
