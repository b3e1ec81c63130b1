// A control plane that dies while it writes the CA root on first start
// (kill -9, power loss, a full disk) must not leave a torn key or certificate
// behind: the next start would refuse to open the CA and never come up. The
// crash is made real: the writer's file size limit (RLIMIT_FSIZE) is lowered
// below a certificate's size, so the kernel cuts the write short (EFBIG; Node
// ignores SIGXFSZ) and the writer dies of it with the file half written.

import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, test } from 'node:test';
import { ROOT_CERT_FILE, ROOT_KEY_FILE, loadOrCreateCa } from '../../control/ca/root.ts';

const dir = mkdtempSync(join(tmpdir(), 'weft-ca-crash-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Runs root-writer.ts with a file size limit of `bytes`; resolves with its exit code and what it said on stderr. */
async function createRootWithFileLimit(dataDir: string, bytes: number): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./root-writer.ts', import.meta.url)), dataDir], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
  const ended = new Promise<{ code: number | null; stderr: string }>((resolve) => child.once('exit', (code) => resolve({ code, stderr })));
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (b: Buffer) => { if (b.toString().includes('ready')) resolve(); });
    void ended.then(() => reject(new Error('the writer exited before it was ready')));
  });
  execFileSync('prlimit', ['--pid', String(child.pid), `--fsize=${bytes}:${bytes}`]);
  child.stdin!.end('go\n');
  return ended;
}

test('a crash in the middle of writing the CA root leaves no torn file: the next start creates a whole root', { skip: existsSync('/usr/bin/prlimit') ? false : 'prlimit (util-linux) is not installed' }, async () => {
  // A P-256 key's PEM is about 240 bytes and the root certificate's about 750: the certificate's write is cut at 512.
  const writer = await createRootWithFileLimit(dir, 512);
  assert.notEqual(writer.code, 0);
  assert.match(writer.stderr, /EFBIG/, 'the writer died in the middle of a write');
  const ca = await loadOrCreateCa(dir, 'weft.local');
  assert.equal(ca.source, 'created', 'nothing whole was there, so a root is created');
  const cert = new X509Certificate(readFileSync(join(dir, ROOT_CERT_FILE)));
  assert.ok(cert.ca);
  assert.ok(cert.checkPrivateKey(createPrivateKey(readFileSync(join(dir, ROOT_KEY_FILE)))), 'the key on disk is the certificate\'s');
  const again = await loadOrCreateCa(dir, 'weft.local');
  assert.equal(again.source, 'data-dir');
  assert.equal(again.trustBundlePem, ca.trustBundlePem);
});

test('a root certificate whose key is gone is refused at start, naming both files, and not replaced', async () => {
  const lost = mkdtempSync(join(tmpdir(), 'weft-ca-lost-key-'));
  try {
    const ca = await loadOrCreateCa(lost, 'weft.local');
    unlinkSync(join(lost, ROOT_KEY_FILE));
    await assert.rejects(loadOrCreateCa(lost, 'weft.local'), new RegExp(`${ROOT_CERT_FILE} exists but its key .*${ROOT_KEY_FILE} does not: restore the key`));
    assert.equal(readFileSync(join(lost, ROOT_CERT_FILE), 'utf8'), ca.trustBundlePem, 'the root workloads trust is left as it was');
  } finally {
    rmSync(lost, { recursive: true, force: true });
  }
});
