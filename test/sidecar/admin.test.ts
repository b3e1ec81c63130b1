// The admin endpoints an Envoy operator reaches for beyond stats and config:
// /help lists them, and POST /quitquitquit stops a real `weft sidecar`
// process (as Envoy's does, for a job whose app has finished).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { eventually, freePort, spawnWeft } from './harness.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));

test('POST /quitquitquit stops weft sidecar (exit 0); GET is refused; /help and unknown paths list the endpoints; /memory and the server.* stats', { timeout: 60_000 }, async () => {
  const adminPort = await freePort();
  // No control plane: the sidecar never gets ready, and its admin port answers all the same.
  const sidecar = spawnWeft(['sidecar', '--service', 'job', '--xds', '127.0.0.1:9', '--app-port', '9', '--admin-port', String(adminPort)]);
  const { child, exited } = sidecar;
  try {
    await eventually(async () => (await fetch(`http://127.0.0.1:${adminPort}/ready`).catch(() => undefined))?.status === 503, 30_000, `the admin port\n${sidecar.output()}`);
    const help = await (await fetch(`http://127.0.0.1:${adminPort}/help`)).text();
    for (const p of ['/certs', '/clusters', '/config_dump', '/listeners', '/memory', '/ready', '/server_info', '/stats', '/stats/prometheus']) assert.match(help, new RegExp(`^  ${p.replace(/\//g, '\\/')}: `, 'm'));
    // As Envoy's, those that change the server's state are marked as needing a POST.
    for (const p of ['/drain_listeners', '/healthcheck/fail', '/healthcheck/ok', '/logging', '/quitquitquit', '/reset_counters']) assert.match(help, new RegExp(`^  ${p.replace(/\//g, '\\/')} \\(POST\\): `, 'm'));
    const unknown = await fetch(`http://127.0.0.1:${adminPort}/nope`);
    assert.equal(unknown.status, 404);
    assert.match(await unknown.text(), /^invalid path\. admin commands are:\n(.*\n)*  \/quitquitquit \(POST\): exit the server$/m);

    // /memory as Envoy's (uint64 as strings), and the server.* stats beside it; not ready yet: PRE_INITIALIZING, not live.
    const memory = (await (await fetch(`http://127.0.0.1:${adminPort}/memory`)).json()) as Record<string, string>;
    assert.deepEqual(Object.keys(memory), ['allocated', 'heap_size', 'total_physical_bytes']);
    const [allocated, heapSize, physical] = [memory.allocated, memory.heap_size, memory.total_physical_bytes].map(Number);
    assert.ok(allocated! > 1024 * 1024 && heapSize! >= allocated! && physical! > 10 * 1024 * 1024, JSON.stringify(memory));
    const stats = await (await fetch(`http://127.0.0.1:${adminPort}/stats?filter=^server\\.`)).text();
    assert.match(stats, /^server\.live: 0$/m);
    assert.match(stats, /^server\.state: 2$/m);
    assert.match(stats, /^server\.memory_allocated: [1-9]\d{6,}$/m);
    assert.match(stats, /^server\.memory_physical_size: [1-9]\d{7,}$/m);
    assert.match(stats, /^server\.uptime: \d+$/m);
    assert.match(await (await fetch(`http://127.0.0.1:${adminPort}/stats/prometheus`)).text(), /^envoy_server_memory_heap_size [1-9]\d{6,}$/m);

    const get = await fetch(`http://127.0.0.1:${adminPort}/quitquitquit`);
    assert.equal(get.status, 405);
    assert.equal(await get.text(), 'Method GET not allowed, POST required.', "Envoy's words");
    const put = await fetch(`http://127.0.0.1:${adminPort}/healthcheck/fail`, { method: 'PUT' });
    assert.deepEqual([put.status, await put.text()], [405, 'Method PUT not allowed, POST required.']);
    assert.equal(child.exitCode, null, 'a GET stops nothing');
    const post = await fetch(`http://127.0.0.1:${adminPort}/quitquitquit`, { method: 'POST' });
    assert.equal(post.status, 200);
    assert.equal(await post.text(), 'OK\n');
    const code = await Promise.race([exited, new Promise<string>((r) => setTimeout(() => r('still running'), 15_000))]);
    assert.equal(code, 0, sidecar.output());
  } finally {
    sidecar.kill();
  }
});

test('weft sidecar refuses a --drain-time-s or --termination-drain-s that is not a number of seconds, naming the flag, and starts nothing', { timeout: 60_000 }, () => {
  for (const flag of ['--drain-time-s', '--termination-drain-s']) {
    const r = spawnSync(process.execPath, ['bin/weft.mjs', 'sidecar', '--service', 'job', '--xds', '127.0.0.1:9', '--app-port', '9', flag, 'soon'], { cwd: root, encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`${flag} must be a number of seconds, 0 or more \\(got "soon"\\)`));
  }
});
