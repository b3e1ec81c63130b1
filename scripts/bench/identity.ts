// bench:identity — what mesh identity costs: workload certificate issuance
// (P-256 key + signature), and request latency through two weft sidecars
// with mutual TLS (STRICT) versus plaintext (DISABLE), sequential requests on
// keep-alive connections plus fresh mTLS handshakes. Prints a table and
// writes bench/results/identity.json. Not a test: no thresholds.

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadOrCreateCa } from '../../control/ca/root.ts';
import { issueSvid } from '../../control/ca/svid.ts';
import { IdentityMesh, callVia, eventually } from '../../test/e2e/identity-mesh.ts';

const N_ISSUE = 100;
const N_REQUESTS = 1000;
const N_HANDSHAKES = 200;

function stats(samples: number[]): { p50: number; p99: number; mean: number } {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
  return { p50: +at(0.5).toFixed(3), p99: +at(0.99).toFixed(3), mean: +(s.reduce((a, b) => a + b, 0) / s.length).toFixed(3) };
}

async function timeIt(n: number, f: () => Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = process.hrtime.bigint();
    await f();
    out.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  return out;
}

const dir = mkdtempSync(join(tmpdir(), 'weft-bench-ca-'));
const ca = await loadOrCreateCa(dir, 'weft.local');
const issue = stats(await timeIt(N_ISSUE, () => issueSvid(ca, { trustDomain: 'weft.local', namespace: 'default', service: 'web', ttlMs: 86_400_000, now: new Date() })));
rmSync(dir, { recursive: true, force: true });

const mesh = await IdentityMesh.start();
const rows: Record<string, unknown>[] = [{ case: `issue workload certificate (x${N_ISSUE})`, ...issue }];
try {
  for (const name of ['frontend', 'secure', 'plain']) await mesh.must('POST', '/services', { name, ports: [{ port: 8080, protocol: 'http' }] });
  await mesh.must('POST', '/peer-authentications', { name: 'secure', service: 'secure', mode: 'STRICT' });
  await mesh.must('POST', '/peer-authentications', { name: 'plain', service: 'plain', mode: 'DISABLE' });
  const { sidecar: frontend } = await mesh.workload('frontend');
  const { sidecar: secure } = await mesh.workload('secure');
  await mesh.workload('plain');
  for (const s of ['secure', 'plain']) await eventually(async () => (await callVia(frontend, s, '/')).status === 200, `frontend -> ${s}`);
  for (const s of ['plain', 'secure']) {
    await timeIt(100, () => callVia(frontend, s, '/warm'));
    rows.push({ case: `frontend -> ${s} (${s === 'secure' ? 'mTLS' : 'plaintext'}), keep-alive, x${N_REQUESTS}`, ...stats(await timeIt(N_REQUESTS, () => callVia(frontend, s, '/bench'))) });
  }
  const m = frontend.dataPlane.tls.material({ certificate: 'default', validation: 'ROOTCA' })!;
  const handshake = () => new Promise<void>((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port: secure.inboundPort, path: '/', agent: false, ...m, checkServerIdentity: () => undefined }, (res) => { res.resume(); res.on('end', () => resolve()); });
    req.on('error', reject);
    req.end();
  });
  rows.push({ case: `new mTLS connection + request to secure's inbound, x${N_HANDSHAKES}`, ...stats(await timeIt(N_HANDSHAKES, handshake)) });
} finally {
  await mesh.close();
}

console.table(rows);
mkdirSync('bench/results', { recursive: true });
writeFileSync('bench/results/identity.json', JSON.stringify({ date: new Date().toISOString(), node: process.version, cpus: cpus().length, loadavg: loadavg(), unit: 'ms', rows }, null, 2) + '\n');
console.log('wrote bench/results/identity.json');
