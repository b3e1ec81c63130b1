// `weft up` / `npm start`: the local demo mesh. Starts `weft control` as a
// child process on ephemeral ports with a fresh data dir, applies
// examples/demo/mesh.yaml (and the built-in filters when filters/dist holds
// them), then for each demo workload: its weft sidecar, and only once the
// sidecar's /ready answers 200, the app; then registers the instance. Ctrl-C
// stops every process it started.

import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, rmSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, sidecarNodeFlags } from '../../sidecar/main.ts';
import { OTEL_CLUSTER_NAME } from '../../proxy-config/options.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
/**
 * The `weft` CLI entry run under `node --import tsx`. bin/weft.mjs loads tsx
 * through its register() API instead, which makes a long-running sidecar
 * 10-30x slower per request (measured with wrk); children avoid that path.
 */
const weftCli = ['--import', 'tsx', join(root, 'control', 'cli', 'main.ts')];

interface Workload {
  service: string;
  version: string;
  upstream?: string;
  failPercent?: number;
}

const WORKLOADS: Workload[] = [
  { service: 'inventory', version: 'v1', failPercent: 20 },
  { service: 'orders', version: 'v1', upstream: 'inventory' },
  { service: 'orders', version: 'v2', upstream: 'inventory' },
  { service: 'frontend', version: 'v1', upstream: 'orders' },
];

export interface UpOptions {
  /** Default: a fresh temporary directory, removed on stop. */
  dataDir?: string;
  /** Where progress lines go (default stdout). */
  log?: (line: string) => void;
  /** Apply filters.yaml when filters/dist exists (default true). */
  filters?: boolean;
  /** HOST:PORT of an OTLP/gRPC collector (e.g. Jaeger's 4317): every sidecar traces every request to it. */
  otelCollector?: string;
}

export interface RunningMesh {
  ingress: string;
  api: string;
  token: string;
  dataDir: string;
  workloads: { name: string; appPort: number; inboundPort: number; outboundPort: number; adminPort: number }[];
  stop(): Promise<void>;
  /**
   * Resolves, with what happened and where its log is, when a process weft up started exits while
   * nothing is stopping it (a crash, an app's exit, a sidecar's /quitquitquit); never after stop().
   */
  exited: Promise<string>;
  /** stop(), but the data dir (and the logs an exit message names) stays. */
  stopKeepingLogs(): Promise<void>;
  /** SIGKILL every process still running, now (a second Ctrl-C), and remove the temporary data dir as stop() does. */
  kill(): void;
}

class Children {
  readonly #procs: { name: string; child: ChildProcess }[] = [];
  /** Set once weft up itself stops them: an exit after that is no news. */
  #stopping = false;

  constructor(readonly logDir: string) {}

  spawn(name: string, args: string[], env: Record<string, string> = {}): ChildProcess {
    const child = spawn(process.execPath, args, { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const log = createWriteStream(join(this.logDir, `${name}.log`), { flags: 'a' });
    child.stdout!.pipe(log);
    child.stderr!.pipe(log);
    const keep = (c: Buffer) => tails.set(child, ((tails.get(child) ?? '') + c.toString()).slice(-TAIL_CHARS));
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    this.#procs.push({ name, child });
    return child;
  }

  /** SIGKILL to every child still running; synchronous, so it also works from an 'exit' handler. */
  killAll(): void {
    this.#stopping = true;
    for (const { child } of this.#procs) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }

  async stopAll(): Promise<void> {
    this.#stopping = true;
    // Apps first, then sidecars, then the control plane: the reverse of start.
    for (const { child } of [...this.#procs].reverse()) {
      if (child.exitCode !== null || child.signalCode !== null) continue;
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
  }

  /** The first of the processes started so far that exits while weft up is not stopping them. */
  firstExit(): Promise<{ name: string; child: ChildProcess }> {
    return new Promise((resolve) => {
      for (const p of this.#procs) {
        const exited = () => {
          if (!this.#stopping) resolve(p);
        };
        if (p.child.exitCode !== null || p.child.signalCode !== null) exited();
        else p.child.once('exit', exited);
      }
    });
  }
}

function waitForLine(child: ChildProcess, pattern: RegExp, what: string, ms = 60_000): Promise<RegExpMatchArray> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new UpError(`timed out after ${ms} ms waiting for ${what}`)), ms);
    const onData = (c: Buffer) => {
      buf += c.toString();
      const m = buf.match(pattern);
      if (m) {
        clearTimeout(timer);
        child.stdout!.off('data', onData);
        resolve(m);
      }
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new UpError(`${what}: process exited with code ${code} (see its log)`));
    });
  });
}

/** Why the demo could not start: said in one line by the CLI (named as the control plane's StartupError), no stack. */
class UpError extends Error {
  override name = 'StartupError';
}

/** A process that exited while weft up waited for it: said at once, with how it ended and its last output. */
class ExitedEarly extends UpError {}

async function until(check: () => Promise<boolean>, ms: number, what: string, child?: ChildProcess): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    if (child && (child.exitCode !== null || child.signalCode !== null)) {
      // Its last words are on its stdout/stderr, which may still be draining: wait for them (briefly).
      if (child.stdout && !child.stdout.readableEnded) await Promise.race([new Promise((r) => child.once('close', r)), new Promise((r) => setTimeout(r, 1000))]);
      const how = child.exitCode !== null ? `exit code ${child.exitCode}` : `signal ${child.signalCode}`;
      const said = tails.get(child)?.trim();
      throw new ExitedEarly(`${what}: the process exited (${how})${said ? `; its last output:\n${said}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new UpError(`timed out after ${ms} ms waiting for ${what}`);
}

/** The last output of each child (stdout and stderr), for an error that says why it exited. */
const tails = new WeakMap<ChildProcess, string>();
const TAIL_CHARS = 2000;

/** A sidecar's /init_dump target names (what it waits for before it is ready); none if the admin port does not answer. */
async function unreadyTargets(adminPort: number): Promise<string[]> {
  try {
    const dump = (await (await fetch(`http://127.0.0.1:${adminPort}/init_dump`)).json()) as { unready_targets_dumps?: { target_names: string[] }[] };
    return (dump.unready_targets_dumps ?? []).flatMap((d) => d.target_names);
  } catch {
    return [];
  }
}

async function api(base: string, token: string, method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<unknown> {
  const res = await fetch(`${base}/api/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': contentType }) },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: HTTP ${res.status}: ${text}`);
  return text ? JSON.parse(text) : undefined;
}

export async function startMesh(opts: UpOptions = {}): Promise<RunningMesh> {
  const log = opts.log ?? ((line: string) => console.log(line));
  const tempDir = opts.dataDir === undefined;
  const dataDir = opts.dataDir ?? (await mkdtemp(join(tmpdir(), 'weft-up-')));
  const logDir = join(dataDir, 'logs');
  await mkdir(logDir, { recursive: true });
  const children = new Children(logDir);
  // However this process ends (a crash, process.exit, a second Ctrl-C), nothing it started outlives it.
  const orphanGuard = () => children.killAll();
  process.once('exit', orphanGuard);
  const stopProcesses = async () => {
    await children.stopAll();
    process.off('exit', orphanGuard);
  };
  const stop = async () => {
    await stopProcesses();
    if (tempDir) await rm(dataDir, { recursive: true, force: true });
  };
  try {
    const tracing = opts.otelCollector ? ['--otel-cluster', OTEL_CLUSTER_NAME, '--trace-sampling', '100'] : [];
    // Access logs on, as `weft control --access-log`: each sidecar's log (logs/) has a JSON line per request.
    const control = children.spawn('control', [...weftCli, 'control', '--data-dir', join(dataDir, 'control'), '--api-port', '0', '--xds-port', '0', '--access-log', ...tracing]);
    const apiLine = waitForLine(control, /api: (http:\/\/\S+)/, 'control plane api');
    const xdsLine = waitForLine(control, /xds: (\S+):(\d+)/, 'control plane xds');
    const apiUrl = (await apiLine)[1]!;
    const xdsAddress = `127.0.0.1:${(await xdsLine)[2]}`;
    const token = (await readFile(join(dataDir, 'control', 'admin.token'), 'utf8')).trim();
    log(`control plane up (api ${apiUrl}, xds ${xdsAddress})`);

    const demoDir = join(root, 'examples', 'demo');
    await api(apiUrl, token, 'POST', '/apply', await readFile(join(demoDir, 'mesh.yaml'), 'utf8'), 'application/yaml');
    if (opts.filters !== false && existsSync(join(root, 'filters', 'dist', 'telemetry.wasm'))) {
      // The control plane ships the built-in filters from filters/dist; bind them only when it lists them.
      const catalog = (await api(apiUrl, token, 'GET', '/filters')) as { items: { name: string }[] };
      if (catalog.items.some((f) => f.name === 'telemetry')) {
        await api(apiUrl, token, 'POST', '/apply', await readFile(join(demoDir, 'filters.yaml'), 'utf8'), 'application/yaml');
        log('built-in filters: telemetry bound to every service (inbound)');
      }
    }
    log('applied examples/demo/mesh.yaml (orders canary 90/10, retries on inventory, health checks)');

    const workloads: RunningMesh['workloads'] = [];
    for (const w of WORKLOADS) {
      const name = `${w.service}-${w.version}`;
      const [appPort, inboundPort, outboundPort, adminPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
      const sidecar = children.spawn(`${name}-sidecar`, [...sidecarNodeFlags(), ...weftCli, 'sidecar', '--service', w.service, '--xds', xdsAddress, '--app-port', String(appPort), '--inbound-port', String(inboundPort), '--outbound-port', String(outboundPort), '--admin-port', String(adminPort), ...(opts.otelCollector ? ['--otel-collector', opts.otelCollector] : [])]);
      // The app starts only once its sidecar holds a full config: no app-before-proxy race.
      await until(async () => (await fetch(`http://127.0.0.1:${adminPort}/ready`)).status === 200, 60_000, `${name} sidecar ready`, sidecar).catch(async (err: Error) => {
        if (err instanceof ExitedEarly) throw new UpError(`${err.message}\n(log: ${join(children.logDir, `${name}-sidecar.log`)})`);
        // Say what it still waits for, and why when an update was NACKed (its /init_dump), not just that it timed out.
        const waiting = await unreadyTargets(adminPort);
        throw new UpError(`${err.message}${waiting.length ? `; it still waits for: ${waiting.join('; ')}` : ''} (log: ${join(children.logDir, `${name}-sidecar.log`)})`);
      });
      const app = children.spawn(name, ['--import', 'tsx', join(demoDir, 'app.ts')], {
        SERVICE: w.service,
        VERSION: w.version,
        PORT: String(appPort),
        UPSTREAM: w.upstream ?? '',
        OUTBOUND_PORT: String(outboundPort),
        FAIL_PERCENT: String(w.failPercent ?? 0),
      });
      await until(async () => (await fetch(`http://127.0.0.1:${appPort}/healthz`)).ok, 30_000, `${name} app`, app).catch((err: Error) => {
        throw new UpError(`${err.message} (log: ${join(children.logDir, `${name}.log`)})`);
      });
      await api(apiUrl, token, 'POST', `/services/${w.service}/instances`, { address: '127.0.0.1', port: inboundPort, labels: { version: w.version } });
      workloads.push({ name, appPort, inboundPort, outboundPort, adminPort });
      log(`${name}: app 127.0.0.1:${appPort}, sidecar inbound :${inboundPort} outbound :${outboundPort} admin :${adminPort}`);
    }
    const frontend = workloads.find((w) => w.name.startsWith('frontend'))!;
    // A second Ctrl-C skips the clean stop, not the cleanup: the temporary data dir (the store, the admin token, the
    // logs) goes as after one, or every impatient stop would leave a weft-up-* directory behind in the temp dir.
    const kill = () => {
      children.killAll();
      if (tempDir) rmSync(dataDir, { recursive: true, force: true, maxRetries: 3 });
    };
    const exited = children.firstExit().then(async ({ name, child }) => {
      // Its last words are on its stdout/stderr, which may still be draining: wait for them (briefly).
      if (child.stdout && !child.stdout.readableEnded) await Promise.race([new Promise((r) => child.once('close', r)), new Promise((r) => setTimeout(r, 1000))]);
      const how = child.exitCode !== null ? `exit code ${child.exitCode}` : `signal ${child.signalCode}`;
      const said = tails.get(child)?.trim();
      return `${name}: the process exited (${how})${said ? `; its last output:\n${said}` : ''}\n(log: ${join(children.logDir, `${name}.log`)})`;
    });
    return { ingress: `http://127.0.0.1:${frontend.inboundPort}`, api: apiUrl, token, dataDir, workloads, stop, kill, exited, stopKeepingLogs: stopProcesses };
  } catch (err) {
    // Everything it started stops; the logs the error points at stay (a temporary data dir is kept for them).
    await stopProcesses();
    throw err;
  }
}

/** `weft up`: start, print what to curl, run until SIGINT/SIGTERM. */
export async function runUp(opts: { otelCollector?: string } = {}): Promise<void> {
  const mesh = await startMesh(opts);
  const frontend = mesh.workloads.find((w) => w.name.startsWith('frontend'))!;
  console.log('');
  console.log(`ingress: ${mesh.ingress}`);
  console.log(`api: ${mesh.api}`);
  console.log(`ui: ${mesh.api}/ui/ (log in with the token)`);
  console.log(`token: ${mesh.token}`);
  console.log(`metrics: http://127.0.0.1:${frontend.adminPort}/stats/prometheus (frontend sidecar; each sidecar has one, see above), ${mesh.api}/metrics (control plane)`);
  console.log(`logs: ${join(mesh.dataDir, 'logs')}`);
  if (opts.otelCollector) console.log(`traces: every sidecar exports its spans to ${opts.otelCollector} (OTLP/gRPC)`);
  console.log('');
  console.log('try:');
  console.log(`  curl ${mesh.ingress}/                        # frontend -> orders (v1 90%, v2 10%) -> inventory (retried)`);
  console.log(`  curl -H 'x-canary: always' ${mesh.ingress}/  # frontend -> orders v2 (header route)`);
  console.log(`  WEFT_API=${mesh.api} WEFT_TOKEN=${mesh.token} npx weft proxy-status       # every proxy; add a proxy id to compare what it runs with what weft means it to`);
  // The frontend sidecar's proxy id (node.id), from its own admin, for the commands that take one.
  const frontendId = await fetch(`http://127.0.0.1:${frontend.adminPort}/server_info`)
    .then(async (r) => ((await r.json()) as { node: { id: string } }).node.id)
    .catch(() => '<proxy id>');
  console.log(`  WEFT_API=${mesh.api} WEFT_TOKEN=${mesh.token} npx weft tap ${frontendId}   # the frontend sidecar's requests, live`);
  console.log(`  curl http://127.0.0.1:${frontend.adminPort}/config_dump             # the frontend sidecar's config, as Envoy dumps it`);
  console.log(`  curl http://127.0.0.1:${frontend.adminPort}/clusters | grep health   # its upstream hosts and their health flags`);
  console.log(`  curl -X POST 'http://127.0.0.1:${frontend.adminPort}/logging?config=debug'  # log each xDS update it takes (logs/${frontend.name}-sidecar.log); ?wasm=debug for filters`);
  console.log('Ctrl-C stops everything.');
  // Ctrl-C (or SIGTERM) ends it; so does any of its processes exiting, said with why, as at start.
  const exitedAlone = await new Promise<string | undefined>((done) => {
    let stopping = false;
    void mesh.exited.then((what) => {
      if (stopping) return;
      stopping = true;
      done(what);
    });
    const stop = (signal: string) => {
      if (stopping) {
        // Ctrl-C pressed again while the clean stop runs: no more waiting, but nothing left behind either.
        console.log(`${signal} again: killing every process weft up started`);
        mesh.kill();
        process.exit(130);
      }
      stopping = true;
      console.log(`\n${signal}: stopping every process weft up started (again to kill them at once)`);
      mesh.stop().then(
        () => done(undefined),
        (e: Error) => {
          console.error(e.message);
          done(undefined);
        },
      );
    };
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGTERM', () => stop('SIGTERM'));
  });
  if (exitedAlone === undefined) return;
  // The demo is broken without it: stop the others, keep the logs, and say which one and why.
  await mesh.stopKeepingLogs();
  throw new UpError(`${exitedAlone}\nweft up stopped every other process it started`);
}
