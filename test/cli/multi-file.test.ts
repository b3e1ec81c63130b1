// `weft apply|delete|diff` take -f more than once, as kubectl does: every
// file's documents go in one request (one revision, all or nothing), and a
// refusal names the file and its own document index. Before, commander kept
// only the last -f and the others were silently not applied.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { api, startControl, weft, type ControlProcess } from './control-process.ts';

const service = (name: string, port = 8080) => `apiVersion: weft.dev/v1\nkind: Service\nmetadata: {name: ${name}}\nspec: {ports: [{port: ${port}, protocol: http}]}\n`;

describe('weft apply/delete with several -f files against a running control plane', () => {
  let dir: string;
  let control: ControlProcess;
  const names = async () => ((await api(control, 'GET', '/api/v1/services')).items as { name: string }[]).map((s) => s.name).sort();

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'weft-multi-file-'));
    control = await startControl(join(dir, 'data'));
    await writeFile(join(dir, 'a.yaml'), service('cart'));
    // a leading comment and document marker, and no newline at the end
    await writeFile(join(dir, 'b.yaml'), `# more\n---\n${service('orders')}---\n${service('payments').trimEnd()}`);
    await writeFile(join(dir, 'bad.yaml'), `${service('shipping')}---\n${service('billing', 0)}`);
  });
  after(async () => {
    await control?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('apply -f a -f b applies both files as one revision', async () => {
    const before = (await api(control, 'GET', '/api/v1/revisions')).current as number;
    const result = await weft(control, ['apply', '-f', join(dir, 'a.yaml'), '-f', join(dir, 'b.yaml')]);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(await names(), ['cart', 'orders', 'payments']);
    assert.equal((await api(control, 'GET', '/api/v1/revisions')).current, before + 1);
  });

  it('a bad document in the second file: nothing from either file is stored, and the error names that file and its document', async () => {
    const result = await weft(control, ['apply', '-f', join(dir, 'a.yaml'), '-f', join(dir, 'bad.yaml')]);
    assert.equal(result.code, 1);
    assert.equal(result.stderr.trim(), `error: invalid manifests: ${join(dir, 'bad.yaml')} documents[1].spec.ports[0].port: must be an integer port in 1..65535`);
    assert.deepEqual(await names(), ['cart', 'orders', 'payments'], 'shipping was not stored either');
  });

  it('delete -f a -f b deletes the objects of both files', async () => {
    const result = await weft(control, ['delete', '-f', join(dir, 'a.yaml'), '-f', join(dir, 'b.yaml')]);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(await names(), []);
  });
});
