// npm run bench:envoy — how fast control/envoy loads, validates, encodes and decodes.
// Prints a table and writes bench/results/envoy-codec.json. Not a test: no thresholds.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeResource, encodeResource, protoLoadMillis, TypeUrl, validateResource } from '../../control/envoy/index.ts';
import { cluster, listener, loadAssignment, routeConfiguration } from '../../test/envoy/fixtures.ts';

const loadMs = protoLoadMillis();

interface Row {
  label: string;
  opsPerSec: number;
  /** Wall-clock and CPU microseconds per operation; they differ when the machine is shared. */
  microsPerOp: number;
  cpuMicrosPerOp: number;
}

function rate(label: string, fn: () => void, minMillis = 700): Row {
  // Warm the cached plans and let the JIT settle before measuring.
  const warmUntil = performance.now() + 300;
  while (performance.now() < warmUntil) fn();
  let ops = 0;
  const cpu = process.cpuUsage();
  const start = performance.now();
  let elapsed = 0;
  while (elapsed < minMillis) {
    for (let i = 0; i < 10; i++) fn();
    ops += 10;
    elapsed = performance.now() - start;
  }
  const used = process.cpuUsage(cpu);
  const round = (x: number): number => Math.round(x * 10) / 10;
  return { label, opsPerSec: Math.round((ops / elapsed) * 1000), microsPerOp: round((elapsed / ops) * 1000), cpuMicrosPerOp: round((used.user + used.system) / ops) };
}

function bytesOf(typeUrl: string, json: unknown): Uint8Array {
  const r = encodeResource(typeUrl, json);
  if ('errors' in r) throw new Error(JSON.stringify(r.errors));
  return r.bytes;
}

const rc100 = routeConfiguration(100);
const rc100Bytes = bytesOf(TypeUrl.RouteConfiguration, rc100);
const listenerBytes = bytesOf(TypeUrl.Listener, listener);
const clusters = Array.from({ length: 1000 }, (_, i) => ({ ...cluster, name: `svc-${i}` }));

const rows = [
  rate('validate RouteConfiguration, 100 vhosts', () => validateResource(TypeUrl.RouteConfiguration, rc100)),
  rate('encode RouteConfiguration, 100 vhosts', () => encodeResource(TypeUrl.RouteConfiguration, rc100)),
  rate('decode RouteConfiguration, 100 vhosts', () => decodeResource(TypeUrl.RouteConfiguration, rc100Bytes)),
  rate('validate Listener (HCM + router + access log)', () => validateResource(TypeUrl.Listener, listener)),
  rate('encode Listener', () => encodeResource(TypeUrl.Listener, listener)),
  rate('decode Listener', () => decodeResource(TypeUrl.Listener, listenerBytes)),
  rate('validate Cluster (EDS, breakers, outlier, HC)', () => validateResource(TypeUrl.Cluster, cluster)),
  rate('validate ClusterLoadAssignment (2 localities)', () => validateResource(TypeUrl.ClusterLoadAssignment, loadAssignment)),
  rate('validate 1,000 Clusters (one snapshot)', () => {
    for (const c of clusters) validateResource(TypeUrl.Cluster, c);
  }, 1000),
];

console.log(`proto load (once per process): ${loadMs.toFixed(0)} ms; RouteConfiguration(100 vhosts) = ${rc100Bytes.length} bytes`);
console.log('| operation | ops/s | µs/op (wall) | µs/op (CPU) |');
console.log('|---|---:|---:|---:|');
for (const r of rows) console.log(`| ${r.label} | ${r.opsPerSec.toLocaleString('en-US')} | ${r.microsPerOp} | ${r.cpuMicrosPerOp} |`);

const out = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'results', 'envoy-codec.json');
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, `${JSON.stringify({ date: new Date().toISOString(), node: process.version, protoLoadMs: Math.round(loadMs), rows }, null, 2)}\n`);
console.log(`wrote ${out}`);
