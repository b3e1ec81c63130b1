// xDS over TLS (weft control --identity --xds-tls): real `weft control` and
// `weft sidecar` processes on 127.0.0.1. A sidecar given the mesh root with
// --xds-ca gets its config and its SVID over TLS; one connecting in
// plaintext, or trusting another CA, gets nothing and says why (admin /xds
// lastError, the xDS log); the server certificate is renewed without a
// restart; --xds-tls without --identity is a usage error naming the flag;
// --identity off loopback without --xds-tls warns that secrets travel in clear.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, type PeerCertificate } from 'node:tls';
import { after, test } from 'node:test';
import { api, eventually, startControl, weft, type ControlProcess } from '../cli/control-process.ts';
import { createRoot } from '../../control/ca/root.ts';
import { startControl as startControlInProcess } from '../../control/main.ts';
import { freePort, spawnWeft, type WeftProcess } from '../sidecar/harness.ts';

const dirs: string[] = [];
const procs: WeftProcess[] = [];
let control: ControlProcess | undefined;
after(async () => {
  for (const p of procs) {
    p.kill();
    await p.exited;
  }
  await control?.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
}, { timeout: 30_000 });

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'weft-xds-tls-'));
  dirs.push(d);
  return d;
}

async function adminJson(port: number, path: string): Promise<any> {
  return fetch(`http://127.0.0.1:${port}${path}`).then((r) => r.json(), () => undefined);
}

/** The certificate the xDS port presents to a new TLS connection, verified against `ca` for `servername`. */
function serverCertificate(port: number, ca: string, servername = 'localhost'): Promise<PeerCertificate> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, ca, servername, ALPNProtocols: ['h2'] }, () => {
      const cert = socket.getPeerCertificate();
      socket.destroy();
      resolve(cert);
    });
    socket.once('error', reject);
  });
}

async function sidecar(service: string, tokenFile: string, extra: string[]): Promise<{ proc: WeftProcess; admin: number }> {
  const admin = await freePort();
  const proc = spawnWeft(['sidecar', '--service', service, '--xds', `127.0.0.1:${control!.xdsPort}`, '--app-port', '9', '--admin-port', String(admin), '--token-file', tokenFile, '--xds-outage-warn-ms', '500', ...extra]);
  procs.push(proc);
  return { proc, admin };
}

test('--xds-tls: a sidecar with --xds-ca gets its config and SVID over TLS; plaintext or another CA is refused and says why; the certificate renews in place', { timeout: 150_000 }, async () => {
  const dataDir = tempDir();
  control = await startControl(dataDir, 60_000, ['--identity', '--xds-tls', '--cert-ttl', '4s']);
  const rootFile = join(dataDir, 'ca-root.pem');
  const root = readFileSync(rootFile, 'utf8');
  assert.match(control.output(), /xds-tls: serving xDS over TLS.*DNS:localhost.*IP:127\.0\.0\.1.*URI:spiffe:\/\/weft\.local\/ns\/weft-system\/sa\/weft-control/);

  // The xDS port is TLS, with a certificate from the mesh root for the names proxies dial, and the control plane's SPIFFE ID.
  const first = await serverCertificate(control.xdsPort, root);
  assert.match(first.subjectaltname ?? "", /DNS:localhost/);
  assert.match(first.subjectaltname ?? "", /IP Address:127\.0\.0\.1/);
  assert.match(first.subjectaltname ?? "", /URI:spiffe:\/\/weft\.local\/ns\/weft-system\/sa\/weft-control/);
  assert.ok(new X509Certificate(first.raw).checkIssued(new X509Certificate(root)), 'issued by the mesh root');

  await api(control, 'POST', '/api/v1/services', { name: 'ledger', ports: [{ port: 8080, protocol: 'http' }] });
  const token = (await api(control, 'POST', '/api/v1/tokens/join', { service: 'ledger' })).token as string;
  const tokenFile = join(dataDir, 'ledger.token');
  writeFileSync(tokenFile, token, { mode: 0o600 });

  // With the mesh root: config and the workload certificate (SDS) arrive over TLS.
  const good = await sidecar('ledger', tokenFile, ['--xds-ca', rootFile]);
  await eventually(async () => ((await fetch(`http://127.0.0.1:${good.admin}/ready`).then((r) => r.status, () => 0)) === 200 ? true : undefined), `the TLS sidecar ready\n${good.proc.output()}`, 60_000);
  const certs = JSON.stringify(await adminJson(good.admin, '/certs'));
  assert.match(certs, /spiffe:\/\/weft\.local\/ns\/default\/sa\/ledger/, 'its SVID came over SDS');
  assert.equal((await adminJson(good.admin, '/xds')).connected, true);

  // The same through WEFT_XDS_CA.
  const admin = await freePort();
  const viaEnv = spawnWeft(['sidecar', '--service', 'ledger', '--xds', `127.0.0.1:${control.xdsPort}`, '--app-port', '9', '--admin-port', String(admin), '--token-file', tokenFile], { WEFT_XDS_CA: rootFile });
  procs.push(viaEnv);
  await eventually(async () => ((await fetch(`http://127.0.0.1:${admin}/ready`).then((r) => r.status, () => 0)) === 200 ? true : undefined), `the WEFT_XDS_CA sidecar ready\n${viaEnv.output()}`, 60_000);

  // Plaintext: refused, and it says the control plane serves TLS.
  const plain = await sidecar('ledger', tokenFile, []);
  const plainError = await eventually(async () => {
    const x = await adminJson(plain.admin, '/xds');
    return typeof x?.lastError === 'string' && /serves TLS/.test(x.lastError) ? (x.lastError as string) : undefined;
  }, `the plaintext sidecar's /xds lastError\n${plain.proc.output()}`);
  assert.match(plainError, /--xds-ca/);
  assert.match(plain.proc.output(), /control plane serves xDS over TLS.*give --xds-ca/);

  // Another CA: the certificate does not verify, said with grpc's reason.
  const otherFile = join(dataDir, 'other-root.pem');
  writeFileSync(otherFile, (await createRoot('other.local')).certPem);
  const foreign = await sidecar('ledger', tokenFile, ['--xds-ca', otherFile]);
  const foreignError = await eventually(async () => {
    const x = await adminJson(foreign.admin, '/xds');
    return typeof x?.lastError === 'string' && /did not verify/.test(x.lastError) ? (x.lastError as string) : undefined;
  }, `the foreign-CA sidecar's /xds lastError\n${foreign.proc.output()}`);
  assert.match(foreignError, /unable to verify|certificate/i);
  await eventually(async () => (/"msg":"xds stream down[^\n]*did not verify against --xds-ca/.test(foreign.proc.output()) ? true : undefined), `the xDS warning in the log\n${foreign.proc.output()}`);

  // A server name the certificate does not carry: refused.
  const misnamed = await sidecar('ledger', tokenFile, ['--xds-ca', rootFile, '--xds-server-name', 'not-the-control-plane.example']);
  await eventually(async () => {
    const x = await adminJson(misnamed.admin, '/xds');
    return typeof x?.lastError === 'string' && /altnames/.test(x.lastError) ? true : undefined;
  }, `the misnamed sidecar's /xds lastError\n${misnamed.proc.output()}`);

  // None of the refused ones got any config.
  for (const p of [plain, foreign, misnamed]) {
    assert.equal((await fetch(`http://127.0.0.1:${p.admin}/ready`)).status, 503);
    assert.equal((await adminJson(p.admin, '/xds')).connected, false);
  }

  // Renewed in place at half-life (4 s certificates): a new connection sees a new certificate, the server never restarted.
  const renewed = await eventually(async () => {
    const cert = await serverCertificate(control!.xdsPort, root);
    return cert.serialNumber !== first.serialNumber ? cert : undefined;
  }, 'a renewed xDS server certificate', 20_000);
  assert.ok(Date.parse(renewed.valid_to) > Date.parse(first.valid_to));
  // The TLS sidecar stays connected, and a new one joins over the renewed certificate.
  assert.equal((await adminJson(good.admin, '/xds')).connected, true);
  const later = await sidecar('ledger', tokenFile, ['--xds-ca', rootFile]);
  await eventually(async () => ((await fetch(`http://127.0.0.1:${later.admin}/ready`).then((r) => r.status, () => 0)) === 200 ? true : undefined), `a sidecar ready after the renewal\n${later.proc.output()}`, 60_000);
});

test('--xds-tls without --identity is a usage error naming the flag; bad --xds-ca files are too', { timeout: 60_000 }, async () => {
  const dataDir = tempDir();
  const r = await weft({ api: 'http://127.0.0.1:1' }, ['control', '--data-dir', dataDir, '--api-port', '0', '--xds-port', '0', '--xds-tls']);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /--xds-tls needs --identity/);
  const n = await weft({ api: 'http://127.0.0.1:1' }, ['control', '--data-dir', dataDir, '--api-port', '0', '--xds-port', '0', '--identity', '--xds-tls-name', 'x.example']);
  assert.equal(n.code, 2, n.stderr);
  assert.match(n.stderr, /--xds-tls-name needs --xds-tls/);
  const missing = await weft({ api: 'http://127.0.0.1:1' }, ['sidecar', '--service', 'ledger', '--xds', '127.0.0.1:1', '--app-port', '9', '--xds-ca', join(dataDir, 'nope.pem')]);
  assert.equal(missing.code, 2, missing.stderr);
  assert.match(missing.stderr, /xds-ca: .*nope\.pem: no such file/);
  const notPem = join(dataDir, 'not.pem');
  writeFileSync(notPem, 'hello');
  const bad = await weft({ api: 'http://127.0.0.1:1' }, ['sidecar', '--service', 'ledger', '--xds', '127.0.0.1:1', '--app-port', '9', '--xds-ca', notPem]);
  assert.equal(bad.code, 2, bad.stderr);
  assert.match(bad.stderr, /holds no PEM certificate/);
  // Embedded (startControl) refuses it too.
  await assert.rejects(startControlInProcess({ dataDir, apiPort: 0, xdsPort: 0, host: '127.0.0.1', xdsTls: {}, log: () => undefined }), /--xds-tls needs --identity/);
});

test('--identity on a non-loopback --host without --xds-tls warns once that join tokens and private keys travel in clear', { timeout: 60_000 }, async () => {
  const warnings = async (host: string, xdsTls: boolean): Promise<string[]> => {
    const lines: string[] = [];
    const c = await startControlInProcess({ dataDir: tempDir(), apiPort: 0, xdsPort: 0, host, identity: {}, ...(xdsTls ? { xdsTls: {} } : {}), log: (l) => lines.push(l) });
    await c.close();
    return lines.filter((l) => /travel in clear/.test(l));
  };
  const open = await warnings('0.0.0.0', false);
  assert.equal(open.length, 1, open.join('\n'));
  assert.match(open[0]!, /join tokens.*private keys.*--xds-tls/);
  assert.deepEqual(await warnings('127.0.0.1', false), []);
  assert.deepEqual(await warnings('0.0.0.0', true), []);
});
