// What `weft control` says at start about damaged state it found in the data
// dir: a damaged last store log line it dropped is named (file, line,
// revision, bytes, where the bytes were kept), not dropped without a word; a
// damaged file it cannot start without is named with what to do, not a bare
// JSON SyntaxError.

import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { startControl } from '../../control/main.ts';
import { openFileStore } from '../../control/store/file-store.ts';

async function tempDir(t: { after: (fn: () => Promise<void>) => void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'weft-control-start-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}
const options = (dataDir: string, lines: string[]) => ({ dataDir, apiPort: 0, xdsPort: 0, host: '127.0.0.1', log: (l: string) => void lines.push(l) });

test('a damaged last store log line dropped at start is reported naming the file, line, revision and bytes, and kept aside', async (t) => {
  const dataDir = await tempDir(t);
  let control = await startControl(options(dataDir, []));
  const token = (await readFile(join(dataDir, 'admin.token'), 'utf8')).trim();
  const res = await fetch(`${control.apiUrl}/api/v1/services/orders`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ ports: [{ port: 80, protocol: 'http' }] }),
  });
  assert.equal(res.status, 201);
  await control.close();
  // one changed byte in the last (acknowledged) line
  const storeDir = join(dataDir, 'store');
  const log = join(storeDir, (await readdir(storeDir)).find((f) => f.startsWith('log-'))!);
  const text = await readFile(log, 'utf8');
  const lastLine = text.slice(text.lastIndexOf('\n', text.length - 2) + 1);
  const revision = (JSON.parse(lastLine.slice(17)) as { revision: number }).revision;
  await writeFile(log, text.replace('"port":80', '"port":81'));

  const lines: string[] = [];
  control = await startControl(options(dataDir, lines));
  t.after(() => control.close());
  const warning = lines.find((l) => l.includes(log));
  assert.ok(warning, `nothing said at start about ${log}; log lines: ${JSON.stringify(lines)}`);
  const kept = (await readdir(storeDir)).find((f) => f.includes('.dropped-'));
  assert.ok(kept, 'the dropped bytes are kept beside the log');
  assert.equal(await readFile(join(storeDir, kept), 'utf8'), lastLine.replace('"port":80', '"port":81'));
  assert.ok(warning.includes(`revision ${revision}`) && warning.includes(`${Buffer.byteLength(lastLine)} bytes`) && warning.includes(join(storeDir, kept)), warning);
  assert.match(warning, /bad checksum on line \d+/);
});

test('a damaged tokens.json or store snapshot stops the start with one line naming the file and what to do', async (t) => {
  const dataDir = await tempDir(t);
  const control = await startControl(options(dataDir, []));
  await control.close();
  const tokensFile = join(dataDir, 'tokens.json');
  const tokens = await readFile(tokensFile, 'utf8');
  await writeFile(tokensFile, tokens.slice(0, 20));
  await assert.rejects(startControl(options(dataDir, [])), (e: Error) => e.name === 'StartupError' && e.message.startsWith(`${tokensFile} is damaged (`) && /restore it from a backup/.test(e.message));
  await writeFile(tokensFile, tokens);

  const store = await openFileStore(dataDir);
  await store.compact();
  await store.close();
  const storeDir = join(dataDir, 'store');
  const snapshot = join(storeDir, (await readdir(storeDir)).find((f) => f.startsWith('snapshot-'))!);
  await writeFile(snapshot, '{"format":1,"rev');
  await assert.rejects(startControl(options(dataDir, [])), (e: Error) => e.name === 'StartupError' && e.message.startsWith(`${snapshot} is damaged (`));
});
