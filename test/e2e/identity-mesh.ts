// A control plane with mesh identity on (startControl --identity), driven
// through its REST API, and weft sidecars joining with API-issued tokens:
// what an operator does, on 127.0.0.1 with ephemeral ports.

import http from 'node:http';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startControl, type RunningControl } from '../../control/main.ts';
import { runSidecar, type RunningSidecar } from '../../sidecar/main.ts';
import { startApp, withTimeout, type TestApp } from '../sidecar/harness.ts';

export class IdentityMesh {
  control!: RunningControl;
  dataDir = mkdtempSync(join(tmpdir(), 'weft-identity-'));
  adminToken = '';
  readonly #closers: (() => Promise<void>)[] = [];

  static async start(certTtlMs?: number): Promise<IdentityMesh> {
    const mesh = new IdentityMesh();
    mesh.control = await startControl({ dataDir: mesh.dataDir, apiPort: 0, xdsPort: 0, host: '127.0.0.1', identity: { trustDomain: 'weft.local', certTtlMs } });
    mesh.adminToken = readFileSync(join(mesh.dataDir, 'admin.token'), 'utf8').trim();
    return mesh;
  }

  async api(method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
    const res = await fetch(`${this.control.apiUrl}/api/v1${path}`, {
      method,
      headers: { authorization: `Bearer ${this.adminToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, json: text ? JSON.parse(text) : undefined };
  }

  async must(method: string, path: string, body?: unknown): Promise<any> {
    const r = await this.api(method, path, body);
    if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(r.json)}`);
    return r.json;
  }

  async joinToken(service: string): Promise<string> {
    return (await this.must('POST', '/tokens/join', { service })).token as string;
  }

  /** App + sidecar for a registered service, the instance registered at the sidecar's inbound port. */
  async workload(service: string, opts: { token?: string; wait?: boolean; sotw?: boolean; app?: { port: number; close(): Promise<void> } } = {}): Promise<{ app: TestApp; sidecar: RunningSidecar }> {
    const app = (opts.app ?? (await startApp(service))) as TestApp;
    this.#closers.push(() => app.close());
    const token = opts.token ?? (await this.joinToken(service));
    const sidecar = await runSidecar({ service, xds: `127.0.0.1:${this.control.xdsPort}`, appPort: app.port, token, sotw: opts.sotw, accessLog: false, log: () => undefined });
    this.#closers.push(() => sidecar.close());
    if (opts.wait !== false) {
      await withTimeout(sidecar.ready, 10_000, `sidecar ${service} ready`);
      await this.must('POST', `/services/${service}/instances`, { address: '127.0.0.1', port: sidecar.inboundPort });
    }
    return { app, sidecar };
  }

  async close(): Promise<void> {
    for (const c of this.#closers.reverse()) await c().catch(() => undefined);
    await this.control.close();
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

/** A request through a sidecar's outbound listener to `service` (Host routing; fetch cannot set Host). */
export function callVia(sidecar: RunningSidecar, service: string, path = '/', method = 'GET'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: sidecar.outboundPort, path, method, headers: { host: service }, agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('request timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** Polls until `check` holds (each step bounded), for config to propagate. */
export async function eventually(check: () => Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out after ${ms} ms: ${what}`);
}
