// CA files weft control cannot use (an operator key that is not its
// certificate's, an unreadable file, a data-dir root whose key is gone) are
// refused at start in one line naming the files, exit 1, as a port in use
// is; they came with a stack trace, as for a bug.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRoot, loadOrCreateCa, ROOT_CERT_FILE, ROOT_KEY_FILE } from '../../control/ca/root.ts';
import { weft } from './control-process.ts';

const start = (dataDir: string, extra: string[] = []) => weft({ api: 'http://127.0.0.1:9' }, ['control', '--identity', '--data-dir', dataDir, '--api-port', '0', '--xds-port', '0', ...extra]);

test('unusable CA files are one line naming them, without a stack, exit 1', { timeout: 120_000 }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'weft-ca-files-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const [a, b] = await Promise.all([createRoot('weft.local'), createRoot('weft.local')]);
  await writeFile(join(dir, 'a.pem'), a.certPem);
  await writeFile(join(dir, 'b.key'), b.keyPem);

  const mismatch = await start(join(dir, 'data1'), ['--ca-cert', join(dir, 'a.pem'), '--ca-key', join(dir, 'b.key')]);
  assert.equal(mismatch.code, 1);
  assert.equal(mismatch.stderr.trim(), `error: --ca-cert ${join(dir, 'a.pem')} --ca-key ${join(dir, 'b.key')}: the CA key does not belong to the CA certificate (their public keys differ)`);

  const missing = await start(join(dir, 'data2'), ['--ca-cert', join(dir, 'a.pem'), '--ca-key', join(dir, 'nope.key')]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr.trim(), /^error: --ca-cert \S+ --ca-key \S+nope\.key: ENOENT: no such file or directory, open '[^']+nope\.key'$/);

  const data = join(dir, 'data3');
  await loadOrCreateCa(data, 'weft.local'); // the root a first start creates in the data dir
  await unlink(join(data, ROOT_KEY_FILE));
  const lost = await start(data);
  assert.equal(lost.code, 1);
  assert.equal(lost.stderr.trim(), `error: ${join(data, ROOT_CERT_FILE)} exists but its key ${join(data, ROOT_KEY_FILE)} does not: restore the key, or remove the certificate too to create a new root (every workload certificate is then reissued under it)`);
});
