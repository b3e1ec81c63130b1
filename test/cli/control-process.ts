// Runs the real `weft` binary: a `weft control` process on ephemeral ports,
// and CLI commands against it as child processes.
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stopWithTestProcess } from '../weft-processes.ts';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const WEFT = join(ROOT, 'bin', 'weft.mjs');

export interface ControlProcess {
  /** The `weft` launcher's pid (bin/weft.mjs; the control plane runs in its child). */
  launcherPid: number;
  api: string;
  xdsPort: number;
  token: string;
  output: () => string;
  /** SIGINT, then waits for a clean exit; resolves with the exit code. */
  stop(): Promise<number | null>;
  /**
   * SIGKILL of the control plane itself (a crash: nothing gets to flush or
   * clean up), then waits for `weft` to exit. bin/weft.mjs re-executes itself
   * under tsx in a child, so the process holding the data dir is the child,
   * whose pid the store's LOCK file names.
   */
  crash(): Promise<void>;
}

export async function startControl(dataDir: string, timeoutMs = 60_000, extraArgs: string[] = []): Promise<ControlProcess> {
  const child: ChildProcess = spawn(process.execPath, [WEFT, 'control', '--data-dir', dataDir, '--api-port', '0', '--xds-port', '0', ...extraArgs], {
    cwd: tmpdir(), // as an installed `weft` runs: from anywhere but the checkout
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  stopWithTestProcess(child);
  let out = '';
  child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`weft control did not start within ${timeoutMs} ms:\n${out}`)), timeoutMs);
    const check = () => {
      if (/^xds: /m.test(out)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on('data', check);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`weft control exited with ${code}:\n${out}`));
    });
  });
  const api = /^api: (\S+)$/m.exec(out)![1]!;
  const xdsPort = Number(/^xds: \S+:(\d+)$/m.exec(out)![1]);
  let token: string;
  try {
    token = readFileSync(join(dataDir, 'admin.token'), 'utf8').trim();
  } catch (err) {
    // No admin token to drive it with: stop the process rather than leave it running without a handle.
    child.kill('SIGINT');
    await exited;
    throw err;
  }
  return {
    launcherPid: child.pid!,
    api,
    xdsPort,
    token,
    output: () => out,
    async stop() {
      if (child.exitCode !== null) return child.exitCode;
      child.kill('SIGINT');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
    async crash() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const holder = Number.parseInt(readFileSync(join(dataDir, 'store', 'LOCK'), 'utf8'), 10);
      process.kill(holder, 'SIGKILL');
      await exited;
    },
  };
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `weft ...args` with WEFT_API (and WEFT_TOKEN unless env overrides it), from outside the checkout as a user's shell would. */
export function weft(control: { api: string; token?: string }, args: string[], env: Record<string, string | undefined> = {}, input?: string): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [WEFT, ...args],
      { cwd: tmpdir(), timeout: 60_000, env: { ...process.env, WEFT_API: control.api, WEFT_TOKEN: control.token ?? '', ...env } },
      (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    );
    if (input !== undefined) child.stdin!.end(input);
  });
}

export async function api<T = any>(control: { api: string; token: string }, method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(`${control.api}${path}`, {
    method,
    headers: { authorization: `Bearer ${control.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return JSON.parse(text) as T;
}

/** Polls until `probe` returns a value (bounded; never a speed assertion). */
export async function eventually<T>(probe: () => Promise<T | undefined>, what: string, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
