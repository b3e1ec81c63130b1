// npm run bench:translate — what translation costs per proxy as the mesh
// grows: translateProxy with full-mesh visibility and with dependsOn scoping,
// translateEndpoints for every cluster (startup) and for one (an instance
// change), and the JSON size a proxy receives. Prints a table and writes
// bench/results/translate.json. Not a test: no thresholds.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Instance, MeshModel, ProxyRef, Service } from '../../control/model/types.ts';
import { translateEndpoints, translateProxy } from '../../control/translate/index.ts';
import { Registry as PromRegistry } from 'prom-client';
import { createApiDeps } from '../../control/api/adapters.ts';
import { filterCatalogPort } from '../../control/api/filter-catalog.ts';
import { memoryTokenStore } from '../../control/api/tokens.ts';
import { applyChanges } from '../../control/api/desired-state.ts';
import { deliveryErrors } from '../../control/api/write-check.ts';
import { FilterCatalog } from '../../control/filters/catalog.ts';
import { createRegistry } from '../../control/registry/registry.ts';
import { createMemoryStore } from '../../control/store/memory-store.ts';
import type { Change } from '../../control/store/store.ts';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';

interface Row { measure: string; value: number; unit: string }
const rows: Row[] = [];
const round = (x: number) => Math.round(x * 100) / 100;
const options = { wasmBaseUrl: 'http://127.0.0.1:8080', wasmClusterName: 'weft-control' };

function mesh(serviceCount: number, endpointsPerService: number, dependsOn?: number): MeshModel {
  const services: Service[] = [];
  const instances: Instance[] = [];
  for (let i = 0; i < serviceCount; i++) {
    const service: Service = { name: `svc-${i}`, namespace: 'default', ports: [{ port: 8080, protocol: 'http' }] };
    if (dependsOn !== undefined) service.dependsOn = Array.from({ length: dependsOn }, (_, k) => `svc-${(i + k + 1) % serviceCount}`);
    services.push(service);
    for (let j = 0; j < endpointsPerService; j++) {
      instances.push({
        id: `svc-${i}-${j}`, service: `svc-${i}`, namespace: 'default', address: `10.${i >> 8}.${i & 255}.${j + 1}`, port: 15006,
        labels: { version: j % 2 === 0 ? 'v1' : 'v2' }, zone: `zone-${j % 3}`, health: 'healthy', ttlSeconds: 30,
      });
    }
  }
  return {
    revision: 1, services, instances, routes: [], filterBindings: [], filterModules: [],
    destinationPolicies: services.map((s) => ({
      name: s.name, namespace: 'default', service: s.name,
      subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2' } }],
    })),
  };
}

const proxy: ProxyRef = {
  id: 'bench', service: 'svc-0', namespace: 'default', kind: 'sidecar',
  inboundPort: 15006, outboundPort: 15001, appPort: 8080, appAddress: '127.0.0.1', bindAddress: '0.0.0.0',
};

/** Mean milliseconds per call after a warm-up (the JIT's first runs are not what a running server sees). */
function time(fn: () => unknown, runs: number): number {
  for (let i = 0; i < 3; i++) fn();
  const start = performance.now();
  for (let i = 0; i < runs; i++) fn();
  return (performance.now() - start) / runs;
}

for (const [services, dependsOn] of [[100, undefined], [1000, undefined], [1000, 5]] as const) {
  const model = mesh(services, 4, dependsOn);
  const scope = dependsOn === undefined ? 'full mesh' : `dependsOn ${dependsOn}`;
  const resources = translateProxy(model, proxy, options);
  rows.push({ measure: `translateProxy, ${services} services, ${scope}`, value: round(time(() => translateProxy(model, proxy, options), 10)), unit: 'ms' });
  rows.push({ measure: `  resources JSON for that proxy`, value: Math.round(JSON.stringify(resources).length / 1024), unit: 'KiB' });
  rows.push({ measure: `translateEndpoints, all ${resources.endpointNames.length} clusters, ${scope}`, value: round(time(() => translateEndpoints(model, resources.endpointNames), 10)), unit: 'ms' });
  rows.push({ measure: `translateEndpoints, one cluster, ${services} services`, value: round(time(() => translateEndpoints(model, [resources.endpointNames[0]!]), 100)), unit: 'ms' });
}

// The write-time delivery check (control/api/write-check.ts) runs before every operator write commits: the
// proxies a change reaches, translated under both states, and the changed resources validated as Envoy would.
for (const services of [100, 1000]) {
  const store = createMemoryStore();
  const model = mesh(services, 4);
  await store.commit(
    [
      ...model.services.map((s): Change => ({ op: 'put', kind: 'Service', namespace: s.namespace, name: s.name, spec: s })),
      ...model.destinationPolicies.map((p): Change => ({ op: 'put', kind: 'DestinationPolicy', namespace: p.namespace, name: p.name, spec: p })),
    ],
    { actor: 'bench', summary: 'mesh' },
  );
  const dataDir = mkdtempSync(join(tmpdir(), 'weft-bench-'));
  const deps = createApiDeps({
    store, registry: createRegistry(store), tokens: memoryTokenStore(), metrics: [new PromRegistry()],
    filters: filterCatalogPort(store, new FilterCatalog({ dataDir, manifestPath: join(dataDir, 'none.json') })),
    translateOptions: options,
  });
  const route: Change = {
    op: 'put', kind: 'Route', namespace: 'default', name: 'svc-7',
    spec: { name: 'svc-7', namespace: 'default', service: 'svc-7', rules: [{ match: [{ path: { prefix: '/v2' } }], destinations: [{ service: 'svc-7', subset: 'v2', weight: 1 }] }] },
  };
  const state = applyChanges(store.list(), [route]);
  rows.push({ measure: `write check, one Route, ${services} services, full mesh`, value: round(time(() => deliveryErrors(deps, [route], state), 5)), unit: 'ms' });
}

const width = Math.max(...rows.map((r) => r.measure.length));
console.log(`${'measure'.padEnd(width)}  value`);
for (const r of rows) console.log(`${r.measure.padEnd(width)}  ${r.value} ${r.unit}`);

const out = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'results', 'translate.json');
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, JSON.stringify({ node: process.version, rows }, null, 2) + '\n');
console.log(`\nwrote ${out}`);
