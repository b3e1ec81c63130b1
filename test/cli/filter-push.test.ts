// `weft filter push` and `weft filter delete`, the real binary against a
// running `weft control`: the module is checked, listed and served; a push
// without a schema drops the old one and says so; a bad module or name is
// refused before anything is stored. Split from cli-failures.test.ts, which
// came near the runner's 180 s per file on a loaded machine.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from '@bytecodealliance/jco';
import { startControl, weft } from './control-process.ts';

test('weft filter push: checked, listed, served without a token; push again and delete', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'weft-cli-'));
  const control = await startControl(dir);
  t.after(async () => {
    await control.stop();
    await rm(dir, { recursive: true, force: true });
  });
  const wasm = await parse(`(module (memory (export "memory") 1) (func (export "malloc") (param i32) (result i32) (i32.const 8)) (func (export "proxy_abi_version_0_2_1")))`);
  await writeFile(join(dir, 'tag.wasm'), wasm);
  await writeFile(join(dir, 'tag.schema.json'), JSON.stringify({ type: 'object', properties: { header: { type: 'string' } } }));
  const pushed = await weft(control, ['filter', 'push', join(dir, 'tag.wasm'), '--name', 'tag', '--schema', join(dir, 'tag.schema.json')]);
  assert.equal(pushed.code, 0, pushed.stderr);
  const sha = /sha256 ([0-9a-f]{64})/.exec(pushed.stdout)![1];
  assert.match((await weft(control, ['get', 'filters'])).stdout, /^tag\s+[0-9a-f]{12}\s+\d+\s+0\.2\.1\s+yes$/m);
  const served = await fetch(`${control.api}/wasm/${sha}.wasm`);
  assert.equal(served.status, 200);
  assert.deepEqual(new Uint8Array(await served.arrayBuffer()), wasm);
  // Pushed again without --schema: the schema goes, and the CLI says so (it went silently).
  const again = await weft(control, ['filter', 'push', join(dir, 'tag.wasm'), '--name', 'tag']);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stderr, /^note: filter\/tag had a config schema and this push gave none/m);
  assert.match((await weft(control, ['get', 'filters'])).stdout, /^tag\s+[0-9a-f]{12}\s+\d+\s+0\.2\.1\s+no$/m);
  const third = await weft(control, ['filter', 'push', join(dir, 'tag.wasm'), '--name', 'tag']);
  assert.equal(third.stderr, '', 'nothing to say when there was no schema');
  await writeFile(join(dir, 'junk.wasm'), 'not wasm');
  const junk = await weft(control, ['filter', 'push', join(dir, 'junk.wasm')]);
  assert.equal(junk.code, 1);
  assert.match(junk.stderr, /module refused: not a WebAssembly module/);
  // A name taken from the file that the catalog would refuse: said so, with where it came from, before any upload.
  await writeFile(join(dir, 'My Filter.wasm'), wasm);
  const badName = await weft(control, ['filter', 'push', join(dir, 'My Filter.wasm')]);
  assert.equal(badName.code, 2);
  assert.match(badName.stderr, /the catalog name "My Filter", taken from the file name, must be a DNS-1123 label .*--name/);
  assert.doesNotMatch((await weft(control, ['get', 'filters'])).stdout, /My Filter/);
  // filter delete: out of the catalog; a second time, the API's 404.
  const deleted = await weft(control, ['filter', 'delete', 'tag']);
  assert.equal(deleted.code, 0, deleted.stderr);
  assert.match(deleted.stdout, /^filter\/tag deleted \(revision \d+\)$/m);
  assert.doesNotMatch((await weft(control, ['get', 'filters'])).stdout, /^tag\s/m);
  const gone = await weft(control, ['filter', 'delete', 'tag']);
  assert.equal(gone.code, 1);
  assert.match(gone.stderr, /filter tag/);

});
