// A crash between writing a temp file and renaming (or removing) it leaves
// the temp file behind. The control plane removes its own such leftovers when
// it starts, once it holds the data dir's lock, and nothing else: not a file
// it did not write, not the temp file of a live process trying the lock, not
// one it is writing itself. A lock attempt whose temp file write fails
// removes that file at once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs, { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { join } from 'node:path';
import { openFileStore } from '../../control/store/file-store.ts';
import { removeLeftoverTemps, writeFileAtomic } from '../../control/store/atomic-file.ts';
import { acquireLock } from '../../control/store/lock.ts';
import { openTokenStore } from '../../control/api/tokens.ts';
import { JoinTokens } from '../../control/ca/join-tokens.ts';
import { tempDir } from './fixtures/temp.ts';

const put = (name: string) => ({ op: 'put' as const, kind: 'Service', namespace: 'default', name, spec: { name } });

/** The pid of a process that has exited. */
const deadPid = () => Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout);

test("starting the store removes its own crash leftovers, and only those", async (t) => {
  const dir = tempDir(t, 'weft-leftovers-');
  let store = await openFileStore(dir, { compactEvery: 2 });
  for (const name of ['a', 'b', 'c']) await store.commit([put(name)], { actor: 'test', summary: name });
  await store.close();

  const dead = deadPid();
  const live = process.ppid; // alive, and not this process: another control plane trying the lock now
  const storeDir = join(dir, 'store');
  const leftovers = [
    `.snapshot-000000000004.json.${dead}.7.tmp`, // a compaction that crashed before its rename
    `.snapshot-000000000002.json.${dead}.tmp`, // as builds before 2026-11 named it
    `.snapshot-000000000006.json.${process.pid}.9.tmp`, // an earlier life of this pid (a restarted container)
    `LOCK.${dead}.k2j4x9.tmp`, // a lock attempt that crashed before removing its temp file
    `LOCK.takeover.${dead}.q8w7.tmp`,
  ];
  const kept = [
    `LOCK.${live}.a1b2c3.tmp`, // a live process's lock attempt in flight
    `LOCK.takeover.${live}.z9.tmp`,
    `.catalog.json.${dead}.1.tmp`, // not a file the store writes
    'notes.tmp',
    '.snapshot-000000000004.json.swp',
  ];
  for (const f of [...leftovers, ...kept]) writeFileSync(join(storeDir, f), 'partial');

  store = await openFileStore(dir, { compactEvery: 2 });
  const files = readdirSync(storeDir);
  for (const f of leftovers) assert.ok(!files.includes(f), `${f} removed`);
  for (const f of kept) assert.ok(files.includes(f), `${f} kept`);
  assert.deepEqual(store.list('Service').map((o) => o.name), ['a', 'b', 'c'], 'the store itself is as it was');
  assert.ok(files.includes('snapshot-000000000002.json'), 'the real snapshot stays');
  await store.close();
});

test('the leftovers are removed only by the process that holds the lock: a second control plane refused it removes nothing', async (t) => {
  const dir = tempDir(t, 'weft-leftovers-');
  const first = await openFileStore(dir);
  const dead = deadPid();
  const leftover = join(dir, 'store', `.snapshot-000000000001.json.${dead}.1.tmp`);
  const lockTemp = join(dir, 'store', `LOCK.${dead}.x.tmp`);
  writeFileSync(leftover, 'partial');
  writeFileSync(lockTemp, '');
  await assert.rejects(openFileStore(dir), /locked by running process/);
  assert.ok(existsSync(leftover) && existsSync(lockTemp), 'the refused open touched nothing');
  await first.close();
  const next = await openFileStore(dir);
  t.after(() => next.close());
  assert.ok(!existsSync(leftover) && !existsSync(lockTemp), 'the next holder removed them');
});

test("a temp file this process is writing now is not removed, and its write completes", async (t) => {
  const dir = tempDir(t, 'weft-leftovers-');
  const target = join(dir, 'big.json');
  const data = Buffer.alloc(32 * 1024 * 1024, 0x61);
  let seen = false;
  // the write is on the thread pool: look for its temp file until it shows (or, rarely, the write was quicker: try again)
  for (let attempt = 0; attempt < 5 && !seen; attempt++) {
    let done = false;
    const writing = writeFileAtomic(target, data).then(() => (done = true));
    while (!done && !seen) {
      seen = readdirSync(dir).some((f) => f.startsWith('.big.json.') && f.endsWith('.tmp'));
      if (seen) assert.deepEqual(removeLeftoverTemps(dir, (name) => name === 'big.json'), [], 'the in-flight temp file is kept');
      else await new Promise((r) => setImmediate(r));
    }
    await writing;
  }
  assert.ok(seen, 'the temp file was seen while the write was in flight');
  assert.equal(readFileSync(target).length, data.length);
  assert.deepEqual(readdirSync(dir), ['big.json']);
});

test('opening the token store removes the temp files a crash left of tokens.json and admin.token (a plaintext token), and only those', async (t) => {
  const dir = tempDir(t, 'weft-leftovers-');
  mkdirSync(dir, { recursive: true });
  const dead = deadPid();
  const leftovers = [`.tokens.json.${dead}.2.tmp`, `.admin.token.${dead}.1.tmp`];
  const kept = [`.join-tokens.json.${dead}.1.tmp`, `.filters.json.${dead}.4.tmp`, 'tokens.json.bak'];
  for (const f of [...leftovers, ...kept]) writeFileSync(join(dir, f), 'weft_secret\n');
  const { store, adminTokenPath } = await openTokenStore(dir);
  assert.ok(adminTokenPath);
  assert.equal(store.list().length, 1);
  const files = readdirSync(dir);
  for (const f of leftovers) assert.ok(!files.includes(f), `${f} removed`);
  for (const f of kept) assert.ok(files.includes(f), `${f} kept`);
});

test('opening the join tokens removes the temp files a crash left of join-tokens.json, and only those', (t) => {
  const dir = tempDir(t, 'weft-leftovers-');
  const dead = deadPid();
  const leftover = `.join-tokens.json.${dead}.5.tmp`;
  const kept = [`.tokens.json.${dead}.1.tmp`, 'join-tokens.json.orig'];
  for (const f of [leftover, ...kept]) writeFileSync(join(dir, f), '{}');
  const tokens = new JoinTokens(dir);
  assert.deepEqual(tokens.list(), []);
  assert.deepEqual(readdirSync(dir).sort(), [...kept].sort());
});

test('the filter catalog and the CA root remove their own crash leftovers when opened (a module up to 16 MiB, a private key in the clear), and only those', async (t) => {
  const dir = tempDir(t, 'weft-leftovers-');
  const wasmDir = join(dir, 'wasm');
  mkdirSync(wasmDir, { recursive: true });
  const dead = deadPid();
  const digest = 'ab'.repeat(32);
  const moduleLeftovers = [`.catalog.json.${dead}.3.tmp`, `.${digest}.wasm.${dead}.4.tmp`];
  const moduleKept = [`.notes.txt.${dead}.1.tmp`, `${digest}.wasm`];
  for (const f of [...moduleLeftovers, ...moduleKept]) writeFileSync(join(wasmDir, f), 'partial');
  const { FilterCatalog } = await import('../../control/filters/catalog.ts');
  const catalog = new FilterCatalog({ dataDir: dir });
  t.after(() => catalog.close());
  const inWasm = readdirSync(wasmDir);
  for (const f of moduleLeftovers) assert.ok(!inWasm.includes(f), `${f} removed`);
  for (const f of moduleKept) assert.ok(inWasm.includes(f), `${f} kept`);

  const { loadOrCreateCa } = await import('../../control/ca/root.ts');
  const caLeftovers = [`.ca-root.key.${dead}.1.tmp`, `.ca-root.pem.${dead}.2.tmp`];
  for (const f of caLeftovers) writeFileSync(join(dir, f), 'partial');
  await loadOrCreateCa(dir, 'weft.local');
  const inDir = readdirSync(dir);
  for (const f of caLeftovers) assert.ok(!inDir.includes(f), `${f} removed`);
});

test('a lock attempt whose temp file write fails (a full disk) removes that temp file and fails with the write error', (t) => {
  const dir = tempDir(t, 'weft-leftovers-');
  const lock = join(dir, 'LOCK');
  const real = fs.writeFileSync;
  fs.writeFileSync = ((file: fs.PathOrFileDescriptor, data: string, options?: fs.WriteFileOptions) => {
    if (!String(file).startsWith(`${lock}.`)) return real(file, data, options);
    real(file, data.slice(0, 2), options);
    throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
  }) as typeof fs.writeFileSync;
  syncBuiltinESMExports();
  try {
    assert.throws(() => acquireLock(lock), /ENOSPC/);
  } finally {
    fs.writeFileSync = real;
    syncBuiltinESMExports();
  }
  assert.deepEqual(readdirSync(dir), [], 'no LOCK.<pid>.<random>.tmp left behind');
});
