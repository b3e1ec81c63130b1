// What the multi-process benches (bench:dataplane, bench:soak) share: child
// processes that never outlive the bench, waiting for a port to answer, and
// the tools they need from Debian.

import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { openSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = fileURLToPath(new URL('../../', import.meta.url));

/** Exits with the apt-get line when a tool is missing. */
export function need(cmd: string, pkg = 'wrk nginx'): void {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
  } catch {
    console.error(`${cmd} not found: apt-get install -y ${pkg}`);
    process.exit(2);
  }
}

export const children: ChildProcess[] = [];
// Stopped by a signal mid-run (Ctrl-C, pkill, a CI timeout): no sidecar, app or nginx outlives the bench.
// (A bench that waits for the signal itself, as BENCH_HOLD does, sets holding.)
export const signals = { holding: false };
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (!signals.holding) process.exit(130);
  });
}

/** A node process (args after node itself), its stdout kept in BENCH_STDOUT_DIR/<n>.log when that is set. */
export function start(args: string[], env: Record<string, string> = {}): ChildProcess {
  const out = process.env.BENCH_STDOUT_DIR ? openSync(join(process.env.BENCH_STDOUT_DIR, `${children.length}.log`), 'w') : 'ignore';
  const c = spawn(process.execPath, args, { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', out, 'inherit'] });
  children.push(c);
  return c;
}

export async function until(check: () => Promise<boolean>, what: string, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

export const ready = (adminPort: number) => until(async () => (await fetch(`http://127.0.0.1:${adminPort}/ready`)).status === 200, `sidecar :${adminPort} ready`);

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** What every wrk run reports: requests sent, answers neither 2xx nor 3xx, and socket errors (connect, read, write, timeout). */
export function wrkCounts(out: string): { requests: number; non2xx: number; socketErrors: number } {
  const sockErr = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  return {
    requests: Number(/(\d+) requests in/.exec(out)?.[1] ?? NaN),
    non2xx: Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0),
    socketErrors: sockErr ? sockErr.slice(1).reduce((s, x) => s + Number(x), 0) : 0,
  };
}

/** Runs a bench's main: a failure prints its stack and sets the exit code; either way `cleanup` runs, then every child is stopped. */
export function runBench(main: () => Promise<void>, cleanup: () => void = () => undefined): void {
  main()
    .catch((e: Error) => {
      console.error(e.stack);
      process.exitCode = 1;
    })
    .finally(() => {
      cleanup();
      for (const c of children) c.kill('SIGTERM');
    });
}
