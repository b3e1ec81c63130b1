// The compose file's one-shot setup steps, run from the weft image:
//   apply      the demo mesh (examples/demo/mesh.yaml) and, when the control
//              plane has the built-in telemetry filter, its bindings (filters.yaml)
//   register   every demo sidecar as an instance of its service, at the
//              sidecar container's address (Docker DNS: <workload>-sidecar)
//              and its inbound port; idempotent, so after
//              `docker compose up --scale` or a restart, running it again
//              adds new addresses and removes ones no container has any more.
// The operator token comes from the control plane's data volume (mounted
// read-only): WEFT_TOKEN_FILE, default /control-data/admin.token.

import { lookup } from 'node:dns/promises';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_PORTS } from './options.ts';
import { DEMO_WORKLOADS, sidecarName, type DemoWorkload } from './compose-demo.ts';

export interface RegisteredInstance {
  id: string;
  address: string;
  port: number;
  labels?: Record<string, string>;
}

export interface DesiredInstance {
  address: string;
  port: number;
  labels: Record<string, string>;
}

/**
 * What to add and remove so one workload's instances are exactly `desired`.
 * Only instances carrying the workload's labels are touched, so two versions
 * of one service reconcile independently.
 */
export function planRegistrations(desired: DesiredInstance[], existing: RegisteredInstance[], labels: Record<string, string>): { add: DesiredInstance[]; remove: RegisteredInstance[] } {
  const key = (i: { address: string; port: number }) => `${i.address}:${i.port}`;
  const mine = existing.filter((i) => Object.entries(labels).every(([k, v]) => i.labels?.[k] === v));
  const have = new Set(mine.map(key));
  const want = new Set(desired.map(key));
  return {
    add: desired.filter((d) => !have.has(key(d))),
    remove: mine.filter((i) => !want.has(key(i))),
  };
}

const root = fileURLToPath(new URL('../', import.meta.url));

/** Where the control plane's API is and the operator token to use. */
export interface SetupTarget {
  api: string;
  token: string;
}

/** Sidecar addresses by compose name (Docker DNS in compose; injectable for tests). */
export type ResolveSidecar = (host: string) => Promise<string[]>;

const dnsResolve: ResolveSidecar = async (host) => (await lookup(host, { all: true, family: 4 })).map((a) => a.address);

async function call(target: SetupTarget, method: string, path: string, body?: string, contentType = 'application/json'): Promise<any> {
  const res = await fetch(`${target.api}/api/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${target.token}`, ...(body === undefined ? {} : { 'content-type': contentType }) },
    body,
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: HTTP ${res.status}: ${text}`);
  return text ? JSON.parse(text) : undefined;
}

async function retry<T>(what: string, attempts: number, fn: () => Promise<T>): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await fn();
    } catch (err) {
      if (i >= attempts) throw new Error(`${what}: ${(err as Error).message}`);
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

/** Applies the demo mesh, and the telemetry bindings when the control plane has that built-in filter. */
export async function applyDemo(target: SetupTarget): Promise<void> {
  const demo = join(root, 'examples', 'demo');
  await call(target, 'POST', '/apply', await readFile(join(demo, 'mesh.yaml'), 'utf8'), 'application/yaml');
  console.log('applied examples/demo/mesh.yaml');
  const filters = (await call(target, 'GET', '/filters')) as { items: { name: string }[] };
  if (filters.items.some((f) => f.name === 'telemetry')) {
    await call(target, 'POST', '/apply', await readFile(join(demo, 'filters.yaml'), 'utf8'), 'application/yaml');
    console.log('applied examples/demo/filters.yaml (telemetry filter, inbound, on every service)');
  }
}

/** Makes the workload's registered instances exactly its sidecars' current addresses. */
export async function registerWorkload(target: SetupTarget, w: DemoWorkload, resolve: ResolveSidecar = dnsResolve): Promise<void> {
  // Every replica of the sidecar service answers to its compose name.
  const addresses = await retry(`resolve ${sidecarName(w)}`, 30, () => resolve(sidecarName(w)));
  const labels = { version: w.version };
  const desired = addresses.sort().map((address) => ({ address, port: DEFAULT_PORTS.inbound, labels }));
  const existing = ((await call(target, 'GET', `/services/${w.service}/instances`)) as { items: RegisteredInstance[] }).items;
  const plan = planRegistrations(desired, existing, labels);
  for (const stale of plan.remove) await call(target, 'DELETE', `/services/${w.service}/instances/${stale.id}`);
  for (const add of plan.add) await call(target, 'POST', `/services/${w.service}/instances`, JSON.stringify(add));
  console.log(`${w.name}: ${addresses.join(', ')} (+${plan.add.length} -${plan.remove.length})`);
}

async function main(step: string | undefined): Promise<void> {
  const api = (process.env.WEFT_API ?? `http://control:${DEFAULT_PORTS.api}`).replace(/\/+$/, '');
  const tokenFile = process.env.WEFT_TOKEN_FILE ?? '/control-data/admin.token';
  const target: SetupTarget = { api, token: process.env.WEFT_TOKEN ?? (await retry(`read ${tokenFile}`, 30, () => readFile(tokenFile, 'utf8'))).trim() };
  await retry(`reach ${api}`, 60, async () => {
    const res = await fetch(`${api}/readyz`);
    if (!res.ok) throw new Error(`readyz HTTP ${res.status}`);
  });
  if (step === 'apply') return applyDemo(target);
  if (step === 'register') {
    for (const w of DEMO_WORKLOADS) await registerWorkload(target, w);
    return;
  }
  throw new Error(`usage: compose-setup.ts apply|register (got ${JSON.stringify(step)})`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main(process.argv[2]).catch((err: Error) => {
    console.error(`error: ${err.message}`);
    process.exit(1);
  });
}
