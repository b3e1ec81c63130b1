// npm run bench:dataplane — the weft sidecar's cost on loopback, all in one
// run, measured with wrk: direct to the app, through one sidecar (client
// side), through two (client and server sidecars), two with a no-op wasm
// filter on both sides (the proxy-wasm host's own cost), two with the built-in
// telemetry filter on both sides, and nginx as a plain
// reverse proxy for reference. Prints a table (requests/s, p50, p99, ratios
// to direct and to nginx) and writes bench/results/dataplane.json.
//
// Sidecars and the app run as separate processes (as in `weft up`); the
// control plane is the real ADS server in this process.

import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { passThroughWasm } from './pass-through.ts';
import { defaultTranslator } from '../../control/xds/index.ts';
import { TestMesh, freePort, instance, service } from '../../test/sidecar/harness.ts';
import { sidecarNodeFlags } from '../../sidecar/main.ts';
import { children, median, need, ready, root, runBench, signals, start, until, wrkCounts } from './processes.ts';

const DURATION = process.env.BENCH_DURATION ?? '5s';
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 16);
/** Interleaved rounds per scenario; figures are medians. */
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
/** BENCH_PROFILE=dir writes a V8 CPU profile per sidecar there (open in Chrome DevTools). */
const PROFILE_DIR = process.env.BENCH_PROFILE;
/** BENCH_ONLY=substring runs only the scenarios whose name contains it (direct and nginx always run: they are the ratios' bases). */
const ONLY = process.env.BENCH_ONLY;
// BENCH_NODE_FLAGS="--trace-gc ..." replaces the sidecars' V8 flags (sidecar/node-flags.json); BENCH_NODE_FLAGS= runs them with none.

interface Result {
  name: string;
  rps: number;
  requests: number;
  /** CPU time the proxies of this path spent per request (user + system, all hops summed), in microseconds. */
  proxyCpuUsPerRq?: number;
  p50ms: number;
  p90ms?: number;
  p99ms: number;
  p999ms?: number;
  /** The slowest request (paced scenarios only). */
  maxMs?: number;
  /**
   * CPU time the hypervisor gave to others while this machine's vCPUs wanted
   * to run (/proc/stat's steal column, all vCPUs summed), during the run: a
   * round whose tail stalled with steal to match lost the time outside the
   * guest, not in a proxy.
   */
  stealMs?: number;
  /** Major page faults (a page read back from disk) the proxies of this path took during the run. */
  proxyMajorFaults?: number;
  errors: number;
}

function toMs(s: string): number {
  const m = /^([\d.]+)(us|ms|s)$/.exec(s.trim());
  if (!m) return NaN;
  const v = Number(m[1]);
  return m[2] === 'us' ? v / 1000 : m[2] === 's' ? v * 1000 : v;
}

/**
 * The paced scenarios run scripts/bench/pace.c, an open-loop generator built
 * here with the system C compiler: 1,000 requests/s on 10 connections,
 * request k due at start + k ms on connection k % 10, latency counted from
 * when it was due. wrk's delay() (what this bench used before) schedules each
 * request after the previous response, so connections that meet in a slow
 * moment stay together and the load turns into bursts of ten every 10 ms; a
 * single-threaded proxy then shows the queueing behind nine others rather
 * than what a hop adds at 1,000 req/s.
 */
const PACE_RATE = Number(process.env.BENCH_PACED_RATE ?? 1000);
const PACE_SECONDS = Number(process.env.BENCH_PACED_SECONDS ?? 10);
const PACE_BIN = join(tmpdir(), `weft-bench-pace-${process.pid}`);

function pace(name: string, url: string, host: string): Result {
  const u = new URL(url);
  const out = JSON.parse(execFileSync(PACE_BIN, ['-r', String(PACE_RATE), '-c', '10', '-d', String(PACE_SECONDS), '-w', '1', '-H', host, u.port, u.pathname], { encoding: 'utf8' })) as {
    recorded: number;
    errors: number;
    rps: number;
    p50us: number;
    p90us: number;
    p99us: number;
    p999us: number;
    maxUs: number;
  };
  return { name, rps: out.rps, requests: out.recorded, p50ms: out.p50us / 1000, p90ms: out.p90us / 1000, p99ms: out.p99us / 1000, p999ms: out.p999us / 1000, maxMs: out.maxUs / 1000, errors: out.errors };
}

function wrk(name: string, url: string, host: string): Result {
  const out = execFileSync('wrk', ['-t1', `-c${CONNECTIONS}`, `-d${DURATION}`, '--latency', '-H', `Host: ${host}`, url], { encoding: 'utf8' });
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN);
  const p50 = toMs(/\s50%\s+(\S+)/.exec(out)?.[1] ?? '');
  const p99 = toMs(/\s99%\s+(\S+)/.exec(out)?.[1] ?? '');
  const { requests, non2xx, socketErrors } = wrkCounts(out);
  return { name, rps, requests, p50ms: p50, p99ms: p99, errors: non2xx + socketErrors };
}

/** Each figure is the median over the rounds (errors are summed). */
function medianResult(rounds: Result[]): Result {
  const cpu = rounds.map((r) => r.proxyCpuUsPerRq).filter((x): x is number => x !== undefined);
  return {
    name: rounds[0]!.name,
    rps: median(rounds.map((r) => r.rps)),
    requests: rounds.reduce((a, r) => a + r.requests, 0),
    p50ms: median(rounds.map((r) => r.p50ms)),
    p99ms: median(rounds.map((r) => r.p99ms)),
    ...(rounds[0]!.p999ms !== undefined ? { p90ms: median(rounds.map((r) => r.p90ms!)), p999ms: median(rounds.map((r) => r.p999ms!)) } : {}),
    errors: rounds.reduce((a, r) => a + r.errors, 0),
    ...(cpu.length ? { proxyCpuUsPerRq: median(cpu) } : {}),
  };
}

/** Fields of /proc/PID/stat after the command name (index 9 is majflt, 11 utime, 12 stime), summed over these processes and their children (nginx workers). */
function procStat(pids: number[], at: number[]): number {
  let sum = 0;
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      for (const i of at) sum += Number(fields[i]);
      const kids = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
      if (kids) sum += procStat(kids.split(/\s+/).map(Number), at);
    } catch {
      // Not Linux or gone: no column.
      return NaN;
    }
  }
  return sum;
}

/** utime + stime of these processes and their children, in clock ticks (1/100 s on Linux). */
const cpuTicks = (pids: number[]) => procStat(pids, [11, 12]);
const majorFaults = (pids: number[]) => procStat(pids, [9]);

/** The machine's steal time so far, in clock ticks (the 8th figure of /proc/stat's `cpu` line); NaN where there is none. */
function stealTicks(): number {
  try {
    return Number(readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/)[8]);
  } catch {
    return NaN;
  }
}

/** wrk (or pace, for the paced scenarios) against a URL, with the CPU the given proxy processes spent per request meanwhile. */
function measured(name: string, url: string, host: string, proxies: number[], paced = false): Result {
  const before = cpuTicks(proxies);
  const each = proxies.map((p) => cpuTicks([p]));
  const faults = majorFaults(proxies);
  const steal = stealTicks();
  const r = paced ? pace(name, url, host) : wrk(name, url, host);
  const after = cpuTicks(proxies);
  const stealMs = (stealTicks() - steal) * 10;
  const proxyMajorFaults = majorFaults(proxies) - faults;
  if (process.env.BENCH_VERBOSE) console.error(`${name}${paced ? ' (paced)' : ''}: CPU us/req per proxy ${proxies.map((p, i) => (((cpuTicks([p]) - each[i]!) * 10_000) / r.requests).toFixed(0)).join(' + ')}`);
  return {
    ...r,
    ...(Number.isNaN(stealMs) ? {} : { stealMs }),
    ...(proxies.length ? { proxyCpuUsPerRq: ((after - before) * 10_000) / r.requests, ...(Number.isNaN(proxyMajorFaults) ? {} : { proxyMajorFaults }) } : {}),
  };
}

async function main(): Promise<void> {
  need('wrk');
  need('nginx');
  need('cc');
  execFileSync('cc', ['-O2', '-o', PACE_BIN, join(root, 'scripts', 'bench', 'pace.c')]);
  const appPort = await freePort();
  start(['-e', `require('node:http').createServer((q,s)=>{s.setHeader('content-type','text/plain');s.end('hello from the app\\n')}).listen(${appPort},'127.0.0.1')`]);
  await until(async () => (await fetch(`http://127.0.0.1:${appPort}/`)).ok, 'app');

  // Wasm modules served to the sidecars, as the control plane serves them.
  // BENCH_FILTER_WASM=path binds another module in place of telemetry (e.g. a no-op, to separate host from module cost).
  const telemetryWasm = process.env.BENCH_FILTER_WASM ?? join(root, 'filters', 'dist', 'telemetry.wasm');
  const withFilters = existsSync(telemetryWasm);
  const wasm = withFilters ? readFileSync(telemetryWasm) : Buffer.alloc(0);
  const sha = createHash('sha256').update(wasm).digest('hex');
  const noop = Buffer.from(await passThroughWasm());
  const noopSha = createHash('sha256').update(noop).digest('hex');
  // The translator names each module by its sha256 (/wasm/<sha256>.wasm).
  const moduleServer = http.createServer((q, s) => s.end(q.url?.includes(noopSha) ? noop : wasm));
  await new Promise<void>((r) => moduleServer.listen(0, '127.0.0.1', () => r()));
  const wasmBaseUrl = `http://127.0.0.1:${(moduleServer.address() as AddressInfo).port}`;

  const mesh = await TestMesh.start({ translator: defaultTranslator({ wasmBaseUrl, wasmClusterName: 'weft-control' }) });
  const ports = { clientOut: await freePort(), clientAdmin: await freePort(), serverIn: await freePort(), serverAdmin: await freePort(), fServerIn: await freePort(), fServerAdmin: await freePort(), fClientOut: await freePort(), fClientAdmin: await freePort(), nServerIn: await freePort(), nServerAdmin: await freePort(), nClientOut: await freePort(), nClientAdmin: await freePort() };
  mesh.model.update({
    services: [service('client', 9999), service('direct', 8080), service('app', 8080), service('appf', 8080), service('clientf', 9998), service('appn', 8080), service('clientn', 9997)],
    // "direct": the client sidecar straight to the app (one hop); "app": via the server sidecar (two hops).
    instances: [instance('direct', appPort), instance('app', ports.serverIn), instance('appf', ports.fServerIn), instance('appn', ports.nServerIn)],
    filterModules: [{ name: 'noop', sha256: noopSha, size: noop.length, abiVersion: '0.2.1' as const }, ...(withFilters ? [{ name: 'telemetry', sha256: sha, size: wasm.length, abiVersion: '0.2.1' as const }] : [])],
    filterBindings: [
      { name: 'appn-noop', namespace: 'default', service: 'appn', direction: 'inbound' as const, filter: 'noop', order: 0, config: {}, failurePolicy: 'fail_open' as const },
      { name: 'clientn-noop', namespace: 'default', service: 'clientn', direction: 'outbound' as const, filter: 'noop', order: 0, config: {}, failurePolicy: 'fail_open' as const },
      ...(withFilters
      ? [
          { name: 'appf-telemetry', namespace: 'default', service: 'appf', direction: 'inbound' as const, filter: 'telemetry', order: 0, config: JSON.parse(process.env.BENCH_TELEMETRY_CONFIG ?? '{}') as Record<string, unknown>, failurePolicy: 'fail_open' as const },
          { name: 'clientf-telemetry', namespace: 'default', service: 'clientf', direction: 'outbound' as const, filter: 'telemetry', order: 0, config: JSON.parse(process.env.BENCH_TELEMETRY_CONFIG ?? '{}') as Record<string, unknown>, failurePolicy: 'fail_open' as const },
        ]
      : []),
    ],
  });
  // Not bin/weft.mjs: its tsx register() path costs the sidecar most of its throughput (see control/cli/up.ts).
  const weft = join(root, 'control', 'cli', 'main.ts');
  const xds = `127.0.0.1:${mesh.xdsPort}`;
  const sidecar = (svc: string, app: number, inbound: number, outbound: number, admin: number) =>
    start([...(process.env.BENCH_NODE_FLAGS !== undefined ? process.env.BENCH_NODE_FLAGS.split(' ').filter(Boolean) : sidecarNodeFlags()), ...(PROFILE_DIR ? ['--cpu-prof', '--cpu-prof-dir', PROFILE_DIR, '--cpu-prof-name', `${svc}.cpuprofile`] : []), '--import', 'tsx', weft, 'sidecar', '--service', svc, '--xds', xds, '--app-port', String(app), '--inbound-port', String(inbound), '--outbound-port', String(outbound), '--admin-port', String(admin)], { WEFT_ACCESS_LOG: 'off' });
  const pid = (c: ChildProcess) => c.pid!;
  const clientPid = pid(sidecar('client', 9999, await freePort(), ports.clientOut, ports.clientAdmin));
  const appPid = pid(sidecar('app', appPort, ports.serverIn, await freePort(), ports.serverAdmin));
  const appfPid = pid(sidecar('appf', appPort, ports.fServerIn, await freePort(), ports.fServerAdmin));
  const clientfPid = pid(sidecar('clientf', 9998, await freePort(), ports.fClientOut, ports.fClientAdmin));
  const appnPid = pid(sidecar('appn', appPort, ports.nServerIn, await freePort(), ports.nServerAdmin));
  const clientnPid = pid(sidecar('clientn', 9997, await freePort(), ports.nClientOut, ports.nClientAdmin));
  for (const a of [ports.clientAdmin, ports.serverAdmin, ports.fServerAdmin, ports.fClientAdmin, ports.nServerAdmin, ports.nClientAdmin]) await ready(a);

  const nginxPort = await freePort();
  const nginxDir = join(tmpdir(), `weft-bench-nginx-${process.pid}`);
  mkdirSync(join(nginxDir, 'logs'), { recursive: true });
  writeFileSync(
    join(nginxDir, 'nginx.conf'),
    `daemon off; worker_processes 1; error_log ${nginxDir}/logs/error.log warn; pid ${nginxDir}/nginx.pid;
events { worker_connections 1024; }
http { access_log off; upstream app { server 127.0.0.1:${appPort}; keepalive 64; }
  server { listen 127.0.0.1:${nginxPort}; location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
`,
  );
  const nginx = spawn('nginx', ['-p', nginxDir, '-c', join(nginxDir, 'nginx.conf')], { stdio: 'ignore' });
  children.push(nginx);
  await until(async () => (await fetch(`http://127.0.0.1:${nginxPort}/`)).ok, 'nginx');

  // Warm up every path (JIT, wasm tier-up, pools) before measuring, at the measured concurrency: after
  // 1 s at -c4 the first round still ran 10-25% below the next two (held mesh, alternating wrk runs).
  for (const [port, host] of [[appPort, 'app'], [ports.clientOut, 'direct'], [ports.clientOut, 'app'], [ports.nClientOut, 'appn'], [ports.fClientOut, 'appf'], [nginxPort, 'app']] as const) {
    execFileSync('wrk', ['-t1', `-c${CONNECTIONS}`, '-d3s', '-H', `Host: ${host}`, `http://127.0.0.1:${port}/`], { stdio: 'ignore' });
  }

  const scenarios: [string, string, string, number[]][] = [
    ['direct to the app', `http://127.0.0.1:${appPort}/`, 'app', []],
    ['one sidecar (client outbound)', `http://127.0.0.1:${ports.clientOut}/`, 'direct', [clientPid]],
    ['two sidecars (client + server)', `http://127.0.0.1:${ports.clientOut}/`, 'app', [clientPid, appPid]],
    ['two sidecars + no-op filter (both sides)', `http://127.0.0.1:${ports.nClientOut}/`, 'appn', [clientnPid, appnPid]],
    ...(withFilters ? [['two sidecars + telemetry filter (both sides)', `http://127.0.0.1:${ports.fClientOut}/`, 'appf', [clientfPid, appfPid]] as [string, string, string, number[]]] : []),
    ['nginx reverse proxy', `http://127.0.0.1:${nginxPort}/`, 'app', [nginx.pid!]],
  ];
  if (process.env.BENCH_HOLD) {
    // BENCH_HOLD=1 leaves the mesh up for wrk, pace, strace or perf by hand; Ctrl-C ends it.
    for (const [n, u, h, p] of scenarios) console.log(`${n}: wrk -H 'Host: ${h}' ${u} | ${PACE_BIN} -r ${PACE_RATE} -c 10 -d ${PACE_SECONDS} -H ${h} ${new URL(u).port}${p.length ? `  (proxy pids ${p.join(' ')})` : ''}`);
    // SIGINT or SIGTERM (pkill) both end it through main's finally, which stops the app and sidecars too.
    signals.holding = true;
    await new Promise<void>((r) => {
      process.once('SIGINT', () => r());
      process.once('SIGTERM', () => r());
    });
    nginx.kill('SIGTERM');
    // The control plane and the module server are in this process: closed, it can exit.
    await mesh.close();
    moduleServer.close();
    return;
  }
  if (ONLY) scenarios.splice(0, scenarios.length, ...scenarios.filter(([n], i) => i === 0 || i === scenarios.length - 1 || n.includes(ONLY)));
  // Scenarios run interleaved, ROUNDS times, and each figure is the median of
  // its rounds: on a shared machine a slow stretch then hits every scenario
  // once instead of skewing one of them.
  const runs: Result[][] = scenarios.map(() => []);
  const pacedRuns: Result[][] = scenarios.map(() => []);
  for (let round = 0; round < ROUNDS; round++) {
    scenarios.forEach(([n, u, h, p], i) => runs[i]!.push(measured(n, u, h, p)));
    scenarios.forEach(([n, u, h, p], i) => pacedRuns[i]!.push(measured(n, u, h, p, true)));
  }
  const results = runs.map((r) => ({ ...medianResult(r), rounds: r }));
  const paced = pacedRuns.map(medianResult);
  nginx.kill('SIGTERM');
  const direct = results[0]!;
  const ngx = results.at(-1)!;
  const rows = results.map((r) => ({
    ...r,
    rpsVsDirect: r.rps / direct.rps,
    rpsVsNginx: r.rps / ngx.rps,
    p99AddedMs: r.p99ms - direct.p99ms,
  }));
  const flags = process.env.BENCH_NODE_FLAGS !== undefined ? process.env.BENCH_NODE_FLAGS : sidecarNodeFlags().join(' ');
  console.log(`\nweft sidecar data plane, wrk -t1 -c${CONNECTIONS} -d${DURATION}, median of ${ROUNDS} interleaved rounds, loopback, ${new Date().toISOString()}, sidecar node flags: ${flags || '(none)'}, load average ${(await import('node:os')).loadavg()[0]!.toFixed(2)}`);
  console.log('scenario                                      req/s     p50 ms   p99 ms   vs direct  vs nginx  errors  proxy CPU us/req');
  for (const r of rows) {
    console.log(
      `${r.name.padEnd(44)} ${r.rps.toFixed(0).padStart(7)}  ${r.p50ms.toFixed(2).padStart(7)}  ${r.p99ms.toFixed(2).padStart(7)}   ${r.rpsVsDirect.toFixed(2).padStart(7)}  ${r.rpsVsNginx.toFixed(2).padStart(7)}  ${String(r.errors).padStart(6)}  ${r.proxyCpuUsPerRq === undefined ? '' : r.proxyCpuUsPerRq.toFixed(0).padStart(8)}`,
    );
  }
  const two = rows.find((r) => r.name.startsWith('two sidecars ('));
  const twoF = rows.find((r) => r.name.includes('telemetry'));
  const twoN = rows.find((r) => r.name.includes('no-op'));
  const filterCost = two && twoF ? 1 - twoF.rps / two.rps : undefined;
  const hostCost = two && twoN ? 1 - twoN.rps / two.rps : undefined;
  // Each round's own ratio too, against the unfiltered pair's run of the same round (minutes apart, not a
  // whole bench apart): how far the machine's noise moves the figure the median gives.
  const byRound = (filtered: typeof two, plain: typeof two) => (filtered && plain ? filtered.rounds.map((x, k) => 1 - x.rps / plain.rounds[k]!.rps) : undefined);
  const filterCostByRound = byRound(twoF, two);
  const hostCostByRound = byRound(twoN, two);
  const pct = (xs: number[] | undefined) => (xs ?? []).map((x) => `${(x * 100).toFixed(1)}%`).join(' / ');
  if (filterCost !== undefined) console.log(`filter chain throughput cost: ${(filterCost * 100).toFixed(1)}% (target < 10%); each round: ${pct(filterCostByRound)}`);
  if (hostCost !== undefined) console.log(`the proxy-wasm host alone (no-op filter): ${(hostCost * 100).toFixed(1)}%, each round: ${pct(hostCostByRound)}; the rest is the telemetry filter's own work`);
  const filterCpu = two?.proxyCpuUsPerRq !== undefined && twoF?.proxyCpuUsPerRq !== undefined ? twoF.proxyCpuUsPerRq / two.proxyCpuUsPerRq - 1 : undefined;
  if (filterCpu !== undefined) console.log(`filter chain CPU cost per request: +${(filterCpu * 100).toFixed(1)}% proxy CPU (${two!.proxyCpuUsPerRq!.toFixed(0)} -> ${twoF!.proxyCpuUsPerRq!.toFixed(0)} us)`);
  const pd = paced[0]!;
  const hops = (name: string) => (name.startsWith('one') ? 1 : name.startsWith('two') ? 2 : 1);
  // Each round's own figure too (against the direct path's p99 of the same round): whether the target holds
  // steadily or only in the median, which a single figure hides on a shared machine.
  const pacedRows = paced.map((r, i) => ({
    ...r,
    p99AddedPerHopMs: r === pd ? 0 : (r.p99ms - pd.p99ms) / hops(r.name),
    p99AddedPerHopMsByRound: i === 0 ? undefined : pacedRuns[i]!.map((x, round) => (x.p99ms - pacedRuns[0]![round]!.p99ms) / hops(r.name)),
    rounds: pacedRuns[i],
  }));
  console.log(`\npaced (scripts/bench/pace.c): ${PACE_RATE} req/s open loop on 10 connections for ${PACE_SECONDS} s after 1 s of warm-up, latency from when each request was due`);
  console.log('scenario                                      req/s     p50 ms   p90 ms   p99 ms  p99.9 ms   p99 added per hop ms (target < 1)  proxy CPU us/req  each round: p99 added per hop ms (max ms, steal ms, major faults)');
  const roundNote = (x: Result) => `${x.maxMs === undefined ? '' : `max ${x.maxMs.toFixed(0)}`}${x.stealMs === undefined ? '' : `, steal ${x.stealMs.toFixed(0)}`}${x.proxyMajorFaults === undefined ? '' : `, majflt ${x.proxyMajorFaults}`}`;
  for (const r of pacedRows) {
    const each = r.rounds.map((x, k) => `${r.p99AddedPerHopMsByRound ? r.p99AddedPerHopMsByRound[k]!.toFixed(2) : 'p99 ' + x.p99ms.toFixed(2)} (${roundNote(x)})`).join(' / ');
    console.log(`${r.name.padEnd(44)} ${r.rps.toFixed(0).padStart(7)}  ${r.p50ms.toFixed(2).padStart(7)}  ${r.p90ms!.toFixed(2).padStart(7)}  ${r.p99ms.toFixed(2).padStart(7)}  ${r.p999ms!.toFixed(2).padStart(7)}   ${r.p99AddedPerHopMs.toFixed(2).padStart(7)}                      ${r.proxyCpuUsPerRq === undefined ? '        ' : r.proxyCpuUsPerRq.toFixed(0).padStart(8)}  ${each}`);
  }
  const sidecarRounds = pacedRows.filter((r) => r.p99AddedPerHopMsByRound && !r.name.startsWith('nginx')).flatMap((r) => r.p99AddedPerHopMsByRound!);
  console.log(`p99 added per hop under 1 ms in ${sidecarRounds.filter((x) => x < 1).length} of ${sidecarRounds.length} sidecar scenario-rounds`);
  // Whether the rounds that missed lost their time to the hypervisor: steal and major faults of the rounds
  // over the target against those under it. A 100 ms stall with no steal and no fault is the proxy's own.
  const sidecarPaced = pacedRows.filter((r) => r.p99AddedPerHopMsByRound && !r.name.startsWith('nginx')).flatMap((r) => r.rounds.map((x, k) => ({ x, added: r.p99AddedPerHopMsByRound![k]! })));
  const side = (over: boolean) => sidecarPaced.filter((s) => s.added >= 1 === over).map((s) => s.x);
  const med = (xs: (number | undefined)[]) => {
    const v = xs.filter((x): x is number => x !== undefined);
    return v.length ? median(v).toFixed(0) : '-';
  };
  if (sidecarPaced.some((s) => s.x.stealMs !== undefined)) {
    for (const over of [true, false]) {
      const xs = side(over);
      if (xs.length) console.log(`  rounds ${over ? 'over' : 'under'} the target: ${xs.length}, median steal ${med(xs.map((x) => x.stealMs))} ms, median max latency ${med(xs.map((x) => x.maxMs))} ms, proxies' major faults ${xs.reduce((a, x) => a + (x.proxyMajorFaults ?? 0), 0)}`);
    }
  }
  mkdirSync(join(root, 'bench', 'results'), { recursive: true });
  writeFileSync(
    join(root, 'bench', 'results', 'dataplane.json'),
    JSON.stringify({ tool: 'wrk', pacedTool: 'scripts/bench/pace.c', pacedRate: PACE_RATE, pacedSeconds: PACE_SECONDS, rounds: ROUNDS, sidecarNodeFlags: flags, connections: CONNECTIONS, duration: DURATION, node: process.version, loadAverage: (await import('node:os')).loadavg(), at: new Date().toISOString(), results: rows, paced: pacedRows, filterThroughputCost: filterCost, filterThroughputCostByRound: filterCostByRound, wasmHostThroughputCost: hostCost, wasmHostThroughputCostByRound: hostCostByRound, filterCpuCost: filterCpu }, null, 2) + '\n',
  );
  console.log('wrote bench/results/dataplane.json');
  await mesh.close();
  moduleServer.close();
}

runBench(main, () => rmSync(PACE_BIN, { force: true }));
