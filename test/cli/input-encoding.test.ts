// weft apply/delete/diff -f read the manifest as UTF-8 and refuse a file that
// is not, naming the line and byte; read leniently, a Latin-1 "café" became
// "caf\ufffd" and was applied as if the operator had written it. The file is
// refused before any request, so no control plane is needed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { weft } from './control-process.ts';

test('a manifest that is not UTF-8 is refused naming the file, line and byte, for apply, delete and diff', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-encoding-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'latin1.yaml');
  const text = 'apiVersion: weft.dev/v1\nkind: Route\nmetadata: {name: r1}\nspec:\n  service: orders\n  rules:\n    - match: [{headers: [{name: x-who, match: {exact: caf\u00e9}}]}]\n      destinations: [{service: orders}]\n';
  writeFileSync(file, Buffer.from(text, 'latin1'));
  const offset = Buffer.from(text, 'latin1').indexOf(0xe9);
  const nowhere = { api: 'http://127.0.0.1:9', token: 'unused' };
  for (const command of ['apply', 'delete', 'diff']) {
    const result = await weft(nowhere, [command, '-f', file]);
    assert.equal(result.code, 1, `${command}: ${result.stderr}`);
    assert.equal(result.stderr.trim(), `error: ${file} is not UTF-8: line 7, byte offset ${offset} (save it as UTF-8)`);
  }
});
