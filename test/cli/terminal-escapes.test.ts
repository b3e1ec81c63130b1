// What a proxy says about itself (its node.id, its NACK messages) is printed
// by `weft proxy-status` and `weft get proxies`; any xDS client chooses those
// strings. Raw escape sequences in them could clear or retitle the operator's
// terminal or hide lines; they are printed escaped (\u001b), as kubectl
// escapes them in its tables. JSON output escapes them by itself.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TypeUrl } from '../../control/envoy/type-urls.ts';
import { SotwClient, testNode } from '../xds/ads-client.ts';
import { api, eventually, startControl, weft, type ControlProcess } from './control-process.ts';

const ID = 'web-1\u001b[2J\u001b]0;owned\u0007';
const NACK = 'bad listener\r\u001b[1Aall good\u009b';

describe('proxy-provided text in weft proxy-status and weft get proxies', () => {
  let dir: string;
  let control: ControlProcess;
  let proxy: SotwClient;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'weft-escapes-'));
    control = await startControl(join(dir, 'data'));
    await api(control, 'POST', '/api/v1/services', { name: 'web', ports: [{ port: 8080, protocol: 'http' }] });
    proxy = new SotwClient(control.xdsPort, testNode(ID, 'web'));
    proxy.request(TypeUrl.Listener);
    proxy.nack(await proxy.next(), NACK);
    await eventually(async () => ((await api(control, 'GET', '/api/v1/proxies')).items as { nacks?: unknown[] }[]).some((p) => p.nacks?.length) || undefined, 'the NACK to be recorded');
  });
  after(async () => {
    proxy?.close();
    await control?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  for (const args of [['proxy-status'], ['get', 'proxies']]) {
    it(`weft ${args.join(' ')} prints control characters escaped`, async () => {
      const result = await weft(control, args);
      assert.equal(result.code, 0, result.stderr);
      assert.doesNotMatch(result.stdout, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/, 'no raw control character but the line ends');
      assert.ok(result.stdout.includes('web-1\\u001b[2J\\u001b]0;owned\\u0007'), result.stdout);
      if (args[0] === 'proxy-status') assert.ok(result.stdout.includes('bad listener\\u000d\\u001b[1Aall good\\u009b'), result.stdout);
    });
  }

  it('-o json keeps the strings exact (escaped by JSON itself)', async () => {
    const result = await weft(control, ['get', 'proxies', '-o', 'json']);
    assert.equal(result.code, 0, result.stderr);
    assert.equal((JSON.parse(result.stdout) as { id: string }[])[0]!.id, ID);
  });
});
