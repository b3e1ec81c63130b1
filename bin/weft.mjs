#!/usr/bin/env node
// The `weft` command. The sources are TypeScript run through tsx, so the
// package needs no build step before `npm start` or `npx weft`.
//
// tsx is loaded with `node --import tsx`, not tsx's register() API: under
// register() a long-running sidecar was measured 10-30x slower per request.
// So this script re-executes itself once with the loader, unless the loader is
// already there (WEFT_TSX_LOADED), and passes signals and the exit code on.
// The loader is named by its resolved URL, not the bare "tsx": node resolves a
// bare --import from the working directory, so `weft` run from anywhere but
// the checkout (an absolute path, npm link, a global install) could not find it.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import os from 'node:os';

/** A sidecar runs with the V8 flags its data-plane benchmark was tuned with (sidecar/node-flags.json). */
function nodeFlags(command) {
  if (command !== 'sidecar') return [];
  return JSON.parse(readFileSync(new URL('../sidecar/node-flags.json', import.meta.url), 'utf8')).flags;
}

if (process.env.WEFT_TSX_LOADED === '1') {
  // A launcher killed with SIGKILL cannot pass the signal on: this process
  // would run on unseen, holding the data dir's lock and its ports. So it
  // watches for being orphaned and then stops as on SIGTERM.
  const launcher = Number(process.env.WEFT_LAUNCHER_PID);
  if (launcher === process.ppid) {
    setInterval(() => {
      if (process.ppid !== launcher) process.kill(process.pid, 'SIGTERM');
    }, 500).unref();
  }
  await import('../control/cli/main.ts');
} else {
  // The child gets its own process group, so a terminal's Ctrl-C reaches only
  // this process, which passes each signal on exactly once (a second SIGINT
  // would make some commands skip their clean shutdown).
  const child = spawn(
    process.execPath,
    [...nodeFlags(process.argv[2]), '--import', import.meta.resolve('tsx'), fileURLToPath(import.meta.url), ...process.argv.slice(2)],
    { stdio: 'inherit', detached: true, env: { ...process.env, WEFT_TSX_LOADED: '1', WEFT_LAUNCHER_PID: String(process.pid) } },
  );
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(signal, () => child.kill(signal));
  }
  child.on('exit', (code, signal) => {
    process.exit(code ?? (signal ? 128 + (os.constants.signals[signal] ?? 1) : 1));
  });
}
