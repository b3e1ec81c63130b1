// docker-compose.yml, the committed sidecar bootstraps, deploy/prometheus.yml
// and the Dockerfile are checked here without Docker: every sidecar's
// bootstrap is current, valid for Envoy and matches the app next to it; every
// sidecar points at the control plane; no app starts before its sidecar is
// ready; host ports are few and distinct; every filter the demo binds is
// built, with the sha256 the control plane will advertise.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, parseAllDocuments } from 'yaml';
import { validateMessage } from '../../control/envoy/index.ts';
import { BOOTSTRAP_TYPE } from '../../proxy-config/bootstrap.ts';
import { bootstrapPath, DEMO_WORKLOADS, INGRESS, renderBootstrap, sidecarName } from '../../proxy-config/compose-demo.ts';
import { OTEL_CLUSTER_NAME, resolveBootstrapOptions, WASM_CLUSTER_NAME, XDS_CLUSTER_NAME } from '../../proxy-config/options.ts';
import { startApi } from '../api/harness.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const read = (path: string) => readFileSync(join(root, path), 'utf8');

interface ComposeService {
  image?: string;
  build?: unknown;
  command?: string[];
  entrypoint?: string[];
  ports?: string[];
  volumes?: string[];
  environment?: Record<string, string>;
  network_mode?: string;
  networks?: string[];
  depends_on?: Record<string, { condition: string; restart?: boolean }>;
  healthcheck?: { test: string[] };
  profiles?: string[];
}
// Compose interpolation: ${VAR-default} takes the default when VAR is unset, as for a user.
const composeText = read('docker-compose.yml').replace(/\$\{\w+-([^}]*)\}/g, '$1');
const compose = parse(composeText, { merge: true }) as { services: Record<string, ComposeService> };
const services = compose.services;
const bootstrapOf = (mount: string) => parse(read(mount.replace(/^\.\//, '').split(':')[0]!)) as any;
const sidecars = Object.entries(services).filter(([, s]) => s.image?.startsWith('envoyproxy/envoy'));
const apps = Object.entries(services).filter(([, s]) => s.network_mode?.startsWith('service:'));
const flag = (args: string[] | undefined, name: string) => args?.[args.indexOf(name) + 1];

test('the compose file parses, and the demo is the one `weft up` runs', () => {
  assert.ok(!composeText.includes('${'), 'every interpolation has a default');
  assert.ok(!JSON.stringify(compose).includes('"<<"'), 'merge keys resolved');
  assert.deepEqual(apps.map(([name]) => name).sort(), DEMO_WORKLOADS.map((w) => w.name).sort());
  assert.deepEqual(sidecars.map(([name]) => name).sort(), DEMO_WORKLOADS.map(sidecarName).sort());
  // Each workload's app port is its service's first port in the demo mesh.
  const mesh = parseAllDocuments(read('examples/demo/mesh.yaml')).map((d) => d.toJSON()).filter((d) => d.kind === 'Service');
  for (const w of DEMO_WORKLOADS) {
    const service = mesh.find((s) => s.metadata.name === w.service);
    assert.ok(service, `${w.service} is not a Service in examples/demo/mesh.yaml`);
    assert.equal(service.spec.ports[0].port, w.appPort, w.name);
    const env = services[w.name]!.environment!;
    assert.deepEqual({ SERVICE: env.SERVICE, VERSION: env.VERSION, PORT: env.PORT, UPSTREAM: env.UPSTREAM, FAIL_PERCENT: env.FAIL_PERCENT },
      { SERVICE: w.service, VERSION: w.version, PORT: String(w.appPort), UPSTREAM: w.upstream ?? '', FAIL_PERCENT: String(w.failPercent ?? 0) });
  }
});

test('Envoy is a pinned release, never latest', () => {
  for (const [name, s] of sidecars) assert.match(s.image!, /^envoyproxy\/envoy:v1\.(3[6-9]|[4-9]\d)\.\d+$/, name);
  for (const [name, s] of Object.entries(services)) assert.ok(!/:latest$/.test(s.image ?? '') && /:/.test(s.image ?? ':'), `${name}: ${s.image}`);
});

test('every sidecar bootstrap is current, valid for Envoy, and points at the control plane', () => {
  const control = services.control!;
  const xdsPort = Number(flag(control.command, '--xds-port'));
  const apiPort = Number(flag(control.command, '--api-port'));
  const ids = new Set<string>();
  for (const w of DEMO_WORKLOADS) {
    const sidecar = services[sidecarName(w)]!;
    const mount = sidecar.volumes!.find((v) => v.endsWith(':/etc/envoy/envoy.yaml:ro'))!;
    assert.ok(mount, `${sidecarName(w)} mounts no bootstrap at /etc/envoy/envoy.yaml`);
    assert.equal(join(root, mount.split(':')[0]!), bootstrapPath(w));
    assert.equal(read(mount.split(':')[0]!), renderBootstrap(w), `deploy/envoy/${w.name}.yaml is stale: npm run gen:compose`);
    const b = bootstrapOf(mount);
    assert.deepEqual(validateMessage(BOOTSTRAP_TYPE, b), [], w.name);
    const endpoint = (cluster: string) => b.static_resources.clusters.find((c: any) => c.name === cluster)?.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address;
    assert.deepEqual(endpoint(XDS_CLUSTER_NAME), { address: 'control', port_value: xdsPort }, `${w.name}: xDS`);
    assert.deepEqual(endpoint(WASM_CLUSTER_NAME), { address: 'control', port_value: apiPort }, `${w.name}: wasm fetches`);
    assert.deepEqual(endpoint(OTEL_CLUSTER_NAME), { address: 'jaeger', port_value: 4317 }, `${w.name}: traces`);
    assert.equal(b.node.cluster, w.service, `${w.name}: node.cluster must be the app's service`);
    assert.equal(b.node.metadata.WEFT_APP_PORT, String(w.appPort), `${w.name}: the app's port`);
    assert.equal(b.node.metadata.WEFT_ADMIN_PORT, undefined, `${w.name}: the admin is on the sidecar's loopback, which the control plane cannot reach`);
    assert.equal(services[w.name]!.environment!.OUTBOUND_PORT, b.node.metadata.WEFT_OUTBOUND_PORT, `${w.name}: the app calls the outbound listener`);
    assert.ok(!ids.has(b.node.id), `node id ${b.node.id} is used twice`);
    ids.add(b.node.id);
    // One network namespace: the app's port and every Envoy port must differ.
    const ports = resolveBootstrapOptions({ service: w.service, xds: { host: 'control', port: xdsPort }, appPort: Number(services[w.name]!.environment!.PORT), inboundPort: Number(b.node.metadata.WEFT_INBOUND_PORT), outboundPort: Number(b.node.metadata.WEFT_OUTBOUND_PORT), adminPort: b.admin.address.socket_address.port_value });
    assert.ok(ports.ok, JSON.stringify(!ports.ok && ports.errors));
  }
  assert.ok(existsSync(join(root, 'Dockerfile')) && control.build, 'control is built from the Dockerfile');
  assert.ok(control.command!.includes('0.0.0.0'), 'the control plane must listen beyond loopback for the sidecars');
  assert.equal(flag(control.command, '--otel-cluster'), OTEL_CLUSTER_NAME, 'the tracer exports to the cluster the bootstraps declare');
});

test('readiness gating: control -> setup -> sidecar ready (/ready) -> app -> register; an app restarts with its sidecar', () => {
  assert.equal(services.setup!.depends_on!.control!.condition, 'service_healthy');
  for (const [name, app] of apps) {
    const sidecar = app.network_mode!.slice('service:'.length);
    assert.ok(services[sidecar], `${name} joins unknown ${sidecar}`);
    assert.equal(app.depends_on?.[sidecar]?.condition, 'service_healthy', `${name} must wait for its sidecar to be ready`);
    // A restarted sidecar gets a new network namespace; the app would keep the old one (no Envoy
    // on its loopback, and Envoy can no longer reach it) unless compose restarts it too.
    assert.equal(app.depends_on?.[sidecar]?.restart, true, `${name} must restart with ${sidecar} (depends_on restart: true)`);
    assert.ok(app.healthcheck, `${name} needs a healthcheck for register to wait on`);
    assert.equal(app.ports, undefined, `${name}: ports are published on the sidecar, which owns the namespace`);
  }
  for (const [name, s] of sidecars) {
    assert.equal(s.depends_on?.setup?.condition, 'service_completed_successfully', `${name} starts after the mesh is applied`);
    const check = s.healthcheck!.test.join(' ');
    const admin = bootstrapOf(s.volumes![0]!).admin.address.socket_address;
    assert.ok(check.includes(`/dev/tcp/${admin.address}/${admin.port_value}`) && check.includes('GET /ready'), `${name}: healthcheck must ask admin /ready, got ${check}`);
  }
  for (const [name] of apps) assert.equal(services.register!.depends_on![name]?.condition, 'service_healthy', `register waits for ${name}`);
  assert.deepEqual(services.register!.command, ['register']);
  assert.deepEqual(services.setup!.command, ['apply']);
});

test('only the ingress and the control API are published, on loopback, without collisions', () => {
  const published: { service: string; host: number; container: number; ip: string; profile: boolean }[] = [];
  for (const [name, s] of Object.entries(services)) {
    for (const spec of s.ports ?? []) {
      const m = /^(\d+\.\d+\.\d+\.\d+):(\d+):(\d+)$/.exec(spec);
      assert.ok(m, `${name}: publish as IP:HOST:CONTAINER, got ${spec}`);
      published.push({ service: name, ip: m[1]!, host: Number(m[2]), container: Number(m[3]), profile: (s.profiles ?? []).length > 0 });
    }
  }
  const hosts = published.map((p) => p.host);
  assert.equal(new Set(hosts).size, hosts.length, `host ports collide: ${hosts}`);
  for (const p of published) assert.equal(p.ip, '127.0.0.1', `${p.service} publishes beyond loopback`);
  const always = published.filter((p) => !p.profile).map((p) => `${p.service}:${p.host}->${p.container}`).sort();
  const ingress = bootstrapOf(services[sidecarName(DEMO_WORKLOADS.find((w) => w.name === INGRESS.workload)!)]!.volumes![0]!).node.metadata.WEFT_INBOUND_PORT;
  assert.deepEqual(always, [`control:8080->${flag(services.control!.command, '--api-port')}`, `${INGRESS.workload}-sidecar:${INGRESS.hostPort}->${ingress}`].sort());
  for (const [name, s] of Object.entries(services)) if (s.profiles) assert.deepEqual(s.profiles, ['observability'], name);
});

test('Prometheus scrapes every sidecar on its stats listener and the control plane', () => {
  const prom = parse(read('deploy/prometheus.yml')) as { scrape_configs: { job_name: string; metrics_path: string; static_configs: { targets: string[] }[] }[] };
  assert.equal(services.prometheus!.volumes![0], './deploy/prometheus.yml:/etc/prometheus/prometheus.yml:ro');
  const targets = (path: string) => prom.scrape_configs.filter((j) => j.metrics_path === path).flatMap((j) => j.static_configs.flatMap((c) => c.targets)).sort();
  const expected = DEMO_WORKLOADS.map((w) => {
    const b = bootstrapOf(services[sidecarName(w)]!.volumes![0]!);
    const listener = b.static_resources.listeners.find((l: any) => l.name === 'weft_prometheus');
    const paths = listener.filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes.map((r: any) => r.match.path);
    assert.ok(paths.includes('/stats/prometheus'), w.name);
    return `${sidecarName(w)}:${listener.address.socket_address.port_value}`;
  }).sort();
  assert.deepEqual(targets('/stats/prometheus'), expected);
  assert.deepEqual(targets('/metrics'), [`control:${flag(services.control!.command, '--api-port')}`]);
  assert.ok(services.jaeger, 'a tracing backend in the observability profile');
  // Jaeger v2 binds OTLP to JAEGER_LISTEN_HOST, localhost when unset: the sidecars' spans would be refused
  assert.equal(services.jaeger!.environment?.JAEGER_LISTEN_HOST, '0.0.0.0', 'Jaeger must listen beyond its loopback');
});

test("the Dockerfile: current Node LTS, non-root, production deps, healthcheck on a path the API serves", async (t) => {
  const dockerfile = read('Dockerfile');
  const froms = [...dockerfile.matchAll(/^FROM\s+(\S+)/gm)].map((m) => m[1]!);
  assert.ok(froms.length >= 2, 'multi-stage');
  assert.match(dockerfile, /^ARG NODE_IMAGE=node:(20|22|24)-bookworm-slim$/m);
  assert.match(dockerfile, /npm ci --omit=dev/);
  const user = [...dockerfile.matchAll(/^USER\s+(\S+)/gm)].at(-1)?.[1];
  assert.ok(user && user !== 'root' && user !== '0', `runs as ${user}`);
  const health = /^HEALTHCHECK(?:[^\n]*\\\n)*[^\n]*/m.exec(dockerfile)?.[0] ?? '';
  const url = /http:\/\/127\.0\.0\.1:(\d+)(\/[a-z]+)/.exec(health);
  assert.ok(url, `no healthcheck URL in ${health}`);
  assert.equal(url[1], flag(services.control!.command, '--api-port'));
  assert.ok(services.control!.healthcheck!.test.join(' ').includes(`127.0.0.1:${url[1]}${url[2]}`), 'compose checks the same path');
  const h = await startApi();
  t.after(() => h.close());
  const res = await h.app.inject({ method: 'GET', url: url[2]! });
  assert.equal(res.statusCode, 200, `${url[2]} must answer 200 without a token`);
  for (const port of ['8080', '18000']) assert.match(dockerfile, new RegExp(`^EXPOSE .*\\b${port}\\b`, 'm'));
  // Everything the runtime imports is copied in.
  for (const dir of ['bin', 'control', 'sidecar', 'proxy-config', 'examples/demo']) assert.match(dockerfile, new RegExp(`^COPY ${dir} `, 'm'), dir);
});

const manifestPath = join(root, 'filters', 'dist', 'manifest.json');
test('every filter the demo binds is built, with the sha256 of the bytes the control plane serves', { skip: existsSync(manifestPath) ? false : 'filters/dist not built: run npm run build:filters (npm test does)' }, () => {
  const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as { filters: { name: string; sha256: string; size: number }[] };
  const bindings = parseAllDocuments(read('examples/demo/filters.yaml')).map((d) => d.toJSON()).filter((d) => d.kind === 'FilterBinding');
  assert.ok(bindings.length > 0);
  for (const binding of bindings) {
    const entry = manifest.filters.find((f) => f.name === binding.spec.filter);
    assert.ok(entry, `${binding.metadata.name} binds ${binding.spec.filter}, which filters/dist/manifest.json does not list`);
    const bytes = readFileSync(join(root, 'filters', 'dist', `${entry.name}.wasm`));
    assert.equal(createHash('sha256').update(bytes).digest('hex'), entry.sha256, `${entry.name}.wasm differs from its manifest sha256`);
    assert.equal(bytes.length, entry.size);
  }
  // The image copies filters/dist from its build stage, and the compose file mounts no module of its own.
  assert.match(read('Dockerfile'), /^COPY --from=\S+ \S*filters\/dist \.\/filters\/dist$/m);
  for (const [name, s] of Object.entries(services)) for (const v of s.volumes ?? []) assert.ok(!v.includes('.wasm'), `${name} mounts ${v}`);
});

/** The repo files `entry` reaches through relative static and dynamic imports (the graph Node loads), entry included. */
function importGraph(entry: string): Set<string> {
  const seen = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    const text = read(file);
    const dir = file.includes('/') ? file.slice(0, file.lastIndexOf('/')) : '.';
    for (const m of text.matchAll(/(?:\bfrom\s+|\bimport\s*\(\s*|^import\s+)['"](\.{1,2}\/[^'"]+)['"]/gm)) {
      const target = join(dir, m[1]!);
      if (existsSync(join(root, target))) visit(target);
    }
  };
  visit(entry);
  return seen;
}

/** Per build stage of the Dockerfile (by its FROM ... AS name, or index), the repo paths its COPY lines bring in. */
function copiedByStage(dockerfile: string): Map<string, string[]> {
  const stages = new Map<string, string[]>();
  let current = '';
  for (const line of dockerfile.split('\n')) {
    const from = /^FROM\s+\S+(?:\s+AS\s+(\S+))?/i.exec(line);
    if (from) stages.set((current = from[1] ?? `stage${stages.size}`), []);
    const copy = /^COPY\s+(?!--from)(.+)\s+\S+$/.exec(line);
    if (copy && current) stages.get(current)!.push(...copy[1]!.split(/\s+/).filter((p) => !p.startsWith('--')));
  }
  return stages;
}

test('each Dockerfile stage copies every file its commands load (the filter build, the weft CLI, the demo apps)', () => {
  const stages = copiedByStage(read('Dockerfile'));
  const covered = (stage: string, file: string) => stages.get(stage)!.some((p) => file === p || file.startsWith(`${p.replace(/\/$/, '')}/`));
  // Stage "filters" runs `npm run build:filters`; until 2026-11-29 it lacked sidecar/, which the filter checker imports,
  // so `docker compose up --build` failed at its first stage.
  const build = /tsx (\S+)/.exec(JSON.parse(read('package.json')).scripts['build:filters'])![1]!;
  for (const file of importGraph(build)) assert.ok(covered('filters', file), `the filters stage runs ${build}, which loads ${file}: not copied`);
  const runtime = [...stages.keys()].at(-1)!;
  for (const entry of ['bin/weft.mjs', 'control/cli/main.ts', 'control/cli/up.ts', 'examples/demo/app.ts', 'proxy-config/compose-setup.ts']) {
    for (const file of importGraph(entry)) assert.ok(covered(runtime, file), `the runtime image runs ${entry}, which loads ${file}: not copied`);
  }
});

test("the sidecars' compose healthcheck passes against a ready sidecar's admin, which refuses HTTP/1.0 as Envoy's does", { timeout: 30_000 }, async (t) => {
  const { TestMesh, service } = await import('../sidecar/harness.ts');
  const mesh = await TestMesh.start();
  t.after(() => mesh.close());
  mesh.model.update({ services: [service('probe', 8000)] });
  const sc = await mesh.sidecar('probe', 8000);
  const [, check] = sidecars[0]!;
  const test = check.healthcheck!.test;
  assert.deepEqual(test.slice(0, 3), ['CMD', 'bash', '-c']);
  const admin = bootstrapOf(check.volumes![0]!).admin.address.socket_address;
  const script = test[3]!.replace(`/dev/tcp/${admin.address}/${admin.port_value}`, `/dev/tcp/127.0.0.1/${sc.adminPort}`);
  const { execFile } = await import('node:child_process');
  // Not execFileSync: the sidecar that answers runs in this process.
  const run = (s: string) => new Promise<number>((resolve) => execFile('bash', ['-c', s], { timeout: 5000 }, (err) => resolve(err ? ((err as { code?: number }).code ?? 1) : 0)));
  assert.equal(await run(script), 0, `the healthcheck failed against a ready sidecar: ${script}`);
  // Until 2026-11-29 the probe spoke HTTP/1.0, which Envoy's admin answers 426: every sidecar unhealthy, the stack stuck.
  assert.notEqual(await run(script.replace(/HTTP\/1\.1\\r\\nHost: [^\\]+\\r\\nConnection: close/, 'HTTP/1.0')), 0, 'an HTTP/1.0 probe must fail, as against Envoy');
});
