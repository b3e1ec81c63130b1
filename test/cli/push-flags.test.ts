// weft control's push batching flags, end to end: a real control plane, a
// SotW proxy counting the route configurations it is sent, a burst of ten
// route changes through the API.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TypeUrl } from '../../control/envoy/type-urls.ts';
import { api, eventually, ROOT, startControl, weft, type ControlProcess } from './control-process.ts';
import { SotwProxy } from './sotw-proxy.ts';

const manifest = (name: string) => join(ROOT, 'examples', 'manifests', name);

test('weft control --push-debounce-ms / --push-max-delay-ms decide how a burst of changes reaches a proxy; bad values are usage errors', { timeout: 120_000 }, async (t) => {
  const burst = async (args: string[]) => {
    const dir = await mkdtemp(join(tmpdir(), 'weft-cli-'));
    const control = await startControl(dir, 60_000, args);
    const proxy = new SotwProxy(control.xdsPort, `frontend-${args.join('')}`, 'frontend');
    try {
      assert.equal((await weft(control, ['apply', '-f', manifest('services.yaml')])).code, 0);
      const rds = TypeUrl.RouteConfiguration;
      await eventually(async () => ((proxy.received.get(rds) ?? 0) > 0 ? true : undefined), 'the first routes');
      await new Promise((r) => setTimeout(r, 300));
      const before = proxy.received.get(rds) ?? 0;
      // Ten route changes, one after another, well inside a 3 s quiet period.
      for (let i = 1; i <= 10; i++) await api(control, 'PUT', '/api/v1/routes/orders', { service: 'orders', rules: [{ destinations: [{ service: 'orders', weight: 1 }], timeoutMs: 1000 + i }] });
      // Everything pushed by now: the burst took well under the 8 s max delay's worth of waiting below.
      await new Promise((r) => setTimeout(r, args.includes('8000') ? 8_500 : 500));
      return (proxy.received.get(rds) ?? 0) - before;
    } finally {
      proxy.close();
      await control.stop();
      await rm(dir, { recursive: true, force: true });
    }
  };
  const eager = await burst(['--push-debounce-ms', '0']);
  assert.ok(eager >= 8, `with no debounce each change is pushed (${eager} RDS responses for 10 changes)`);
  const batched = await burst(['--push-debounce-ms', '3000', '--push-max-delay-ms', '8000']);
  assert.ok(batched >= 1 && batched <= 3, `a 3 s debounce batches the burst (${batched} RDS responses for 10 changes)`);

  const dir = await mkdtemp(join(tmpdir(), 'weft-cli-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const fake = { api: 'http://127.0.0.1:1', token: 'x', xdsPort: 1 } as unknown as ControlProcess;
  const bad = await weft(fake, ['control', '--data-dir', dir, '--push-debounce-ms', 'soon']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--push-debounce-ms must be a whole number of milliseconds/);
  const inverted = await weft(fake, ['control', '--data-dir', dir, '--push-debounce-ms', '500', '--push-max-delay-ms', '100']);
  assert.equal(inverted.code, 2);
  assert.match(inverted.stderr, /--push-max-delay-ms \(100\) must be at least --push-debounce-ms \(500\)/);
});
