// What a proxy says about itself (its node.id, its NACK messages) is printed
// by `weft proxy-status` and `weft get proxies`; any xDS client chooses those
// strings. Raw escape sequences in them could clear or retitle the operator's
// terminal or hide lines; they are printed escaped (\u001b), as kubectl
// escapes them in its tables. -o json and -o yaml escape them by their own
// rules (C1 too: U+009B is CSI to a terminal that takes 8-bit controls).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { TypeUrl } from '../../control/envoy/type-urls.ts';
import { SotwClient, testNode } from '../xds/ads-client.ts';
import { api, eventually, startControl, weft, type ControlProcess } from './control-process.ts';

const ID = 'web-1\u001b[2J\u001b]0;owned\u0007\u009b2J';
const NACK = 'bad listener\r\u001b[1Aall good\u009b\u0085\u007f';
/** Raw control characters but the line feed. */
const RAW = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/;

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

  // get -o yaml prints one document per object, proxy-status -o yaml one list
  const yamlItems = (text: string): unknown[] => parseAllDocuments(text).flatMap((d) => d.toJS() as unknown);
  for (const [format, read] of [['json', JSON.parse], ['yaml', yamlItems]] as const) {
    for (const args of [['get', 'proxies'], ['proxy-status']]) {
      it(`weft ${args.join(' ')} -o ${format} prints no raw control character (C1 included) and keeps the strings exact`, async () => {
        const result = await weft(control, [...args, '-o', format]);
        assert.equal(result.code, 0, result.stderr);
        assert.doesNotMatch(result.stdout, RAW, result.stdout);
        const [proxyView] = read(result.stdout) as { id: string; nacks: { message: string }[] }[];
        assert.equal(proxyView!.id, ID);
        assert.equal(proxyView!.nacks[0]!.message, NACK);
      });
    }
  }

  it('weft diff names the connected proxy escaped; -o json escapes it by JSON\'s rules', async () => {
    const file = join(dir, 'api.yaml');
    await writeFile(file, 'apiVersion: weft.dev/v1\nkind: Service\nmetadata: {name: api}\nspec: {ports: [{port: 9090, protocol: http}]}\n');
    const text = await weft(control, ['diff', '-f', file]);
    assert.equal(text.code, 0, text.stderr);
    assert.doesNotMatch(text.stdout, RAW, text.stdout);
    assert.ok(text.stdout.includes('proxy web-1\\u001b[2J\\u001b]0;owned\\u0007\\u009b2J (service web'), text.stdout);
    const json = await weft(control, ['diff', '-f', file, '-o', 'json']);
    assert.equal(json.code, 0, json.stderr);
    assert.doesNotMatch(json.stdout, RAW, json.stdout);
    assert.ok((JSON.parse(json.stdout) as { proxies: { proxy: string }[] }).proxies.some((p) => p.proxy === ID));
  });

  it("an error quoting the proxy (weft proxy-status ID: it declared no admin port) is printed escaped on stderr", async () => {
    const result = await weft(control, ['proxy-status', ID]);
    assert.equal(result.code, 1);
    assert.doesNotMatch(result.stderr, RAW, result.stderr);
    assert.ok(result.stderr.includes('proxy web-1\\u001b[2J\\u001b]0;owned\\u0007\\u009b2J declared no admin port'), result.stderr);
  });

  it('weft apply --wait names a proxy that does not get there escaped', async () => {
    const file = join(dir, 'api.yaml');
    const waited = await weft(control, ['apply', '-f', file, '--wait', '1']);
    assert.equal(waited.code, 1, waited.stderr);
    assert.doesNotMatch(waited.stdout, RAW, waited.stdout);
    assert.ok(waited.stdout.includes('proxy web-1\\u001b[2J\\u001b]0;owned\\u0007\\u009b2J does not yet'), waited.stdout);
  });
});
