// npm run bench:xds — the xDS control plane under a swarm of proxies.
// This process runs the control plane (memory store, registry, translator,
// cache, ADS server); a child process (xds-swarm.ts) runs N simulated proxies
// over real gRPC, half SotW and half Delta by default. M services of K
// endpoints; every service depends on svc-0 (the hub) plus a few others, so a
// change to one hub endpoint reaches every proxy. Measures: initial sync of
// all proxies, convergence (store commit -> ACK, per proxy, p50/p99) after a
// single-endpoint change, bytes sent per change per proxy (SotW vs Delta),
// control-plane peak RSS and CPU seconds. Prints a table, writes
// bench/results/xds.json. Not a test: targets are reported, not asserted.
// One warm-up change runs first and is reported separately.
// Then config changes (a Route PUT on the hub: every group retranslates): the
// max event-loop delay (perf_hooks monitorEventLoopDelay) during each, which
// is how long /healthz, the API and heartbeats wait, and when every proxy has
// converged. Run with --clients 1000 for the 1,000-group case.
//   flags: --clients 500 --services 1000 --endpoints 4 --depends 10 --changes 5 --delta-share 0.5 --config-changes 3
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import type { Instance, Service } from '../../control/model/types.ts';
import { createRegistry } from '../../control/registry/index.ts';
import { createMemoryStore } from '../../control/store/index.ts';
import type { StreamType } from '../../control/xds/index.ts';
import { createXdsServer, storeModelSource } from '../../control/xds/index.ts';

const opts = new Command()
  .option('--clients <n>', 'simulated proxies', '500')
  .option('--services <n>', 'services in the mesh', '1000')
  .option('--endpoints <n>', 'instances per service', '4')
  .option('--depends <n>', 'services each service depends on (hub included)', '10')
  .option('--changes <n>', 'single-endpoint changes to measure', '5')
  .option('--delta-share <x>', 'share of proxies using Delta xDS', '0.5')
  .option('--config-changes <n>', 'config changes (Route on the hub) to measure', '3')
  .option('--out <file>', 'JSON results', 'bench/results/xds.json')
  .parse()
  .opts<Record<string, string>>();
const clients = Number(opts.clients);
const serviceCount = Number(opts.services);
const endpoints = Number(opts.endpoints);
const depends = Math.min(Number(opts.depends), serviceCount - 1);
const changes = Number(opts.changes);
const deltaShare = Number(opts.deltaShare);
const configChanges = Number(opts.configChanges);

const loadAtStart = (await import('node:os')).loadavg()[0]!.toFixed(1);
const root = fileURLToPath(new URL('../..', import.meta.url));
const percentile = (xs: number[], p: number) => {
  if (xs.length === 0) return NaN;
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
};
const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;

// --- the mesh --------------------------------------------------------------
const store = createMemoryStore();
const services: Service[] = [];
const instances: Instance[] = [];
for (let i = 0; i < serviceCount; i++) {
  const dependsOn = new Set<string>(i === 0 ? [] : ['svc-0']);
  for (let k = 1; dependsOn.size < depends; k++) {
    const j = (i * 7 + k * 13) % serviceCount;
    if (j !== i) dependsOn.add(`svc-${j}`);
  }
  services.push({ name: `svc-${i}`, namespace: 'default', ports: [{ port: 8080, protocol: 'http' }], dependsOn: [...dependsOn] });
  for (let j = 0; j < endpoints; j++) {
    instances.push({ id: `svc-${i}-${j}`, service: `svc-${i}`, namespace: 'default', address: `10.${(i >> 8) & 255}.${i & 255}.${j + 1}`, port: 15006, labels: {}, zone: `zone-${j % 3}`, health: 'healthy', ttlSeconds: 0 });
  }
}
await store.commit(
  [
    ...services.map((s) => ({ op: 'put' as const, kind: 'Service', namespace: 'default', name: s.name, spec: s })),
    ...instances.map((i) => ({ op: 'put' as const, kind: 'Instance', namespace: 'default', name: i.id, spec: i })),
  ],
  { actor: 'bench', summary: 'mesh' },
);
const registry = createRegistry(store);

// --- measurement hooks -------------------------------------------------------
let convergence: number[] = [];
/** commit -> response written, per push of the measured change (server side only). */
let pushLatency: number[] = [];
let measuring = false;
const bytes: Record<StreamType, number> = { sotw: 0, delta: 0 };
const responses: Record<StreamType, number> = { sotw: 0, delta: 0 };
const proxies: Record<StreamType, number> = { sotw: 0, delta: 0 };
let snapshotErrors = 0;
const xds = createXdsServer({
  source: storeModelSource(store, registry),
  hooks: {
    streamOpened: (s) => proxies[s.streamType]++,
    streamClosed: (s) => proxies[s.streamType]--,
    responseSent: (s, r) => {
      bytes[s.streamType] += r.bytes;
      responses[s.streamType]++;
      if (measuring && r.stamp) pushLatency.push(Date.now() - r.stamp.committedAt);
    },
    converged: (_s, _stamp, seconds) => convergence.push(seconds * 1000),
  },
  onErrors: (_kind, errors) => {
    snapshotErrors++;
    if (snapshotErrors <= 3) console.error('snapshot refused:', JSON.stringify(errors.slice(0, 3)));
  },
});
const port = await xds.listen('127.0.0.1', 0);

let peakRss = process.memoryUsage().rss;
const rssTimer = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 50);
const cpuStart = process.cpuUsage();

// --- the swarm -----------------------------------------------------------------
const swarm = spawn(process.execPath, ['--import', 'tsx', join(root, 'scripts/bench/xds-swarm.ts'), String(port), String(clients), String(serviceCount), String(deltaShare)], {
  cwd: root,
  stdio: ['pipe', 'pipe', 'inherit'],
});
const events = new Map<string, (t: number) => void>();
createInterface({ input: swarm.stdout }).on('line', (line) => {
  const e = JSON.parse(line) as { event: string; t: number };
  events.get(e.event)?.(e.t);
});
const when = (event: string, timeoutMs: number) =>
  new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`swarm: no "${event}" within ${timeoutMs} ms`)), timeoutMs);
    events.set(event, (t) => {
      clearTimeout(timer);
      resolve(t);
    });
  });
const connecting = await when('connecting', 60_000);
const synced = await when('synced', 600_000);
const initialSyncMs = synced - connecting;
const rssAfterSync = process.memoryUsage().rss;
console.error(`initial sync of ${clients} proxies: ${initialSyncMs} ms`);

// --- single-endpoint changes -----------------------------------------------
const waitConverged = async (expected: number, timeoutMs: number) => {
  const deadline = Date.now() + timeoutMs;
  while (convergence.length < expected && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
};
const allConvergence: number[] = [];
const allPush: number[] = [];
// proxies of svc-0 itself do not depend on svc-0: every other proxy receives each change
const affected = clients - Math.ceil(clients / serviceCount);
const perChange: { sotwBytesPerProxy: number; deltaBytesPerProxy: number; converged: number; cpuMs: number; p50: number; p99: number }[] = [];
let extraId: string | undefined;
// one unmeasured warm-up change first: the JIT's first pass is not what a running control plane sees
let warmup: { p50: number; p99: number } | undefined;
for (let c = -1; c < changes; c++) {
  await new Promise((r) => setTimeout(r, 200)); // let the previous change's ACKs settle
  convergence = [];
  pushLatency = [];
  measuring = true;
  const before = { ...bytes };
  const cpuBefore = process.cpuUsage();
  // alternately add and remove one hub endpoint: one CLA changes, every proxy depends on it
  if (extraId) {
    await registry.deregister(extraId);
    extraId = undefined;
  } else {
    const r = await registry.register('svc-0', 'default', { address: '10.255.255.1', port: 15006 });
    if (r.ok) extraId = r.value.id;
  }
  await waitConverged(affected, 30_000);
  await new Promise((r) => setTimeout(r, 100));
  measuring = false;
  const cpuChange = process.cpuUsage(cpuBefore);
  if (c < 0) {
    warmup = { p50: round(percentile(convergence, 50)), p99: round(percentile(convergence, 99)) };
    console.error(`warm-up change (not counted): ${JSON.stringify(warmup)}`);
    continue;
  }
  allPush.push(...pushLatency);
  const sotwBytes = bytes.sotw - before.sotw;
  const deltaBytes = bytes.delta - before.delta;
  allConvergence.push(...convergence);
  perChange.push({
    sotwBytesPerProxy: proxies.sotw ? round(sotwBytes / proxies.sotw, 0) : 0,
    deltaBytesPerProxy: proxies.delta ? round(deltaBytes / proxies.delta, 0) : 0,
    converged: convergence.length,
    cpuMs: round((cpuChange.user + cpuChange.system) / 1000, 0),
    p50: round(percentile(convergence, 50)),
    p99: round(percentile(convergence, 99)),
  });
  console.error(`change ${c + 1}: ${JSON.stringify(perChange[perChange.length - 1])}`);
}

// --- config changes: every group retranslates ------------------------------------
const loopDelay = monitorEventLoopDelay({ resolution: 5 });
loopDelay.enable();
const perConfigChange: { maxLoopDelayMs: number; p99LoopDelayMs: number; lastConvergedMs: number; converged: number }[] = [];
for (let c = 0; c < configChanges; c++) {
  await new Promise((r) => setTimeout(r, 300));
  convergence = [];
  loopDelay.reset();
  const t0 = Date.now();
  await store.commit([{ op: 'put', kind: 'Route', namespace: 'default', name: 'hub', spec: { name: 'hub', namespace: 'default', service: 'svc-0', rules: [{ name: 'd', destinations: [{ service: 'svc-0' }], timeoutMs: 1000 + c }] } }], { actor: 'bench', summary: `hub route ${c}` });
  await waitConverged(affected, 120_000);
  const lastConvergedMs = Date.now() - t0;
  await new Promise((r) => setTimeout(r, 100));
  perConfigChange.push({ maxLoopDelayMs: round(loopDelay.max / 1e6), p99LoopDelayMs: round(loopDelay.percentile(99) / 1e6), lastConvergedMs, converged: convergence.length });
  console.error(`config change ${c + 1}: ${JSON.stringify(perConfigChange[perConfigChange.length - 1])}`);
}
loopDelay.disable();
const median = (xs: number[]) => percentile(xs, 50);

const cpu = process.cpuUsage(cpuStart);
clearInterval(rssTimer);
const connected = { ...proxies };
swarm.stdin.end();
await xds.close();

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
const result = {
  config: { clients, services: serviceCount, endpointsPerService: endpoints, dependsOn: depends, changes, deltaShare, sotwProxies: connected.sotw, deltaProxies: connected.delta },
  initialSyncMs,
  convergenceMs: { p50: round(percentile(allConvergence, 50)), p99: round(percentile(allConvergence, 99)), max: round(Math.max(...allConvergence)), samples: allConvergence.length },
  warmupChangeConvergenceMs: warmup,
  pushLatencyMs: { p50: round(percentile(allPush, 50)), p99: round(percentile(allPush, 99)), note: 'commit -> response written by the server; convergence adds the proxies\' ACK' },
  bytesPerChangePerProxy: { sotw: round(mean(perChange.map((c) => c.sotwBytesPerProxy)), 0), delta: round(mean(perChange.map((c) => c.deltaBytesPerProxy)), 0) },
  controlPlane: { peakRssMB: round(peakRss / 2 ** 20), rssAfterSyncMB: round(rssAfterSync / 2 ** 20), cpuSeconds: round((cpu.user + cpu.system) / 1e6, 2) },
  snapshotErrors,
  loadAverageAtStart: Number(loadAtStart),
  perChange,
  configChange: {
    medianMaxLoopDelayMs: median(perConfigChange.map((c) => c.maxLoopDelayMs)),
    medianConvergedMs: median(perConfigChange.map((c) => c.lastConvergedMs)),
    perChange: perConfigChange,
  },
  targets: { convergenceP99Ms: 250, deltaBytesPerProxy: 2048, rssMB: 400 },
  machine: { node: process.version, platform: process.platform, cpus: (await import('node:os')).cpus().length },
  date: new Date().toISOString(),
};
const met = (ok: boolean) => (ok ? 'met' : 'NOT met');
const rows: [string, string, string][] = [
  ['proxies (sotw / delta)', `${connected.sotw} / ${connected.delta}`, ''],
  ['mesh', `${serviceCount} services x ${endpoints} endpoints, dependsOn ${depends}`, ''],
  ['initial sync, all proxies', `${initialSyncMs} ms`, ''],
  ['convergence p50', `${result.convergenceMs.p50} ms`, ''],
  ['convergence p99', `${result.convergenceMs.p99} ms`, `< 250 ms: ${met(result.convergenceMs.p99 < 250)}`],
  ['push latency p50 / p99 (commit -> sent)', `${result.pushLatencyMs.p50} / ${result.pushLatencyMs.p99} ms`, ''],
  ['convergence samples', String(allConvergence.length), `expected ${affected * changes}`],
  ['bytes per change per proxy, SotW', `${result.bytesPerChangePerProxy.sotw} B`, ''],
  ['bytes per change per proxy, Delta', `${result.bytesPerChangePerProxy.delta} B`, `< 2 KB: ${met(result.bytesPerChangePerProxy.delta < 2048)}`],
  ['control plane peak RSS', `${result.controlPlane.peakRssMB} MB`, `< 400 MB: ${met(result.controlPlane.peakRssMB < 400)}`],
  ['control plane CPU', `${result.controlPlane.cpuSeconds} s`, ''],
  ['control plane CPU per change (incl. ACK handling)', `${round(mean(perChange.map((c) => c.cpuMs)), 0)} ms`, `load average at start ${loadAtStart}`],
  ['snapshot errors', String(snapshotErrors), ''],
  [`config change: max event-loop delay (median of ${configChanges})`, `${result.configChange.medianMaxLoopDelayMs} ms`, ''],
  [`config change: all proxies converged (median of ${configChanges})`, `${result.configChange.medianConvergedMs} ms`, `${affected} proxies`],
];
const w0 = Math.max(...rows.map((r) => r[0].length));
const w1 = Math.max(...rows.map((r) => r[1].length));
console.log(`\nbench:xds\n${rows.map(([a, b, c]) => `  ${a.padEnd(w0)}  ${b.padEnd(w1)}  ${c}`).join('\n')}\n`);
const out = join(root, opts.out!);
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
console.log(`wrote ${opts.out}`);
process.exit(0);
