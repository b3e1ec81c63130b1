// The real `weft` binary against a running `weft control`: how it fails (bad
// manifests, unknown kinds, tokens, an unreachable API, a control plane that
// cannot start), /metrics, --help and get -n. Split from cli.test.ts, which
// ran past the runner's 180 s per file on a slow machine; filter push and
// delete are in filter-push.test.ts for the same reason.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { api, ROOT, startControl, weft } from './control-process.ts';

test('weft fails clearly (bad manifests, unknown kinds, tokens, unreachable API); /metrics; --help', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'weft-cli-'));
  const control = await startControl(dir);
  t.after(async () => {
    await control.stop();
    await rm(dir, { recursive: true, force: true });
  });
  const bad = 'apiVersion: weft.dev/v1\nkind: Service\nmetadata: {name: x}\nspec:\n  ports: [{port: 99999, protocol: http}]\n';
  const refused = await weft(control, ['apply', '-f', '-'], {}, bad);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /^error: invalid manifests: documents\[0\]\.spec\.ports\[0\]\.port: must be an integer port in 1\.\.65535/m);
  assert.equal(refused.stderr.trim().split('\n').length, 1, 'one problem: said once, not again as a list');
  const twoBad = bad.replace('protocol: http', 'protocol: gopher');
  const refusedTwice = await weft(control, ['apply', '-f', '-'], {}, twoBad);
  assert.equal(refusedTwice.code, 1);
  assert.match(refusedTwice.stderr, /^error: invalid manifests: .* \(and 1 more\)$/m);
  assert.match(refusedTwice.stderr, /^ {2}documents\[0\]\.spec\.ports\[0\]\.port: /m);
  assert.match(refusedTwice.stderr, /^ {2}documents\[0\]\.spec\.ports\[0\]\.protocol: /m);

  const kind = await weft(control, ['get', 'gateways']);
  assert.equal(kind.code, 2);
  assert.match(kind.stderr, /unknown kind "gateways"/);
  // a path the API has, but not for GET (POST /apply): no kind either, not "method GET is not allowed"
  const notAKind = await weft(control, ['get', 'apply']);
  assert.equal(notAKind.code, 2, notAKind.stderr);
  assert.match(notAKind.stderr, /unknown kind "apply"/);
  // Commander's usage errors are usage errors too (2), as docs/api.md says, not 1 like a refused request.
  for (const [args, said] of [[['get'], /missing required argument 'kind'/], [['get', 'services', '--bogus'], /unknown option '--bogus'/], [['frob'], /unknown command 'frob'/], [['apply'], /required option '-f, --filename <file>' not specified/], [['bootstrap'], /required option '--service <name>' not specified/]] as const) {
    const usage = await weft(control, [...args]);
    assert.equal(usage.code, 2, args.join(' '));
    assert.match(usage.stderr, said);
  }

  const noToken = await weft(control, ['get', 'services'], { WEFT_TOKEN: '' });
  assert.equal(noToken.code, 1);
  assert.match(noToken.stderr, /missing bearer token.*no token: pass --token, set WEFT_TOKEN/);
  const fromDataDir = await weft(control, ['get', 'services', '--data-dir', dir], { WEFT_TOKEN: '' });
  assert.equal(fromDataDir.code, 0, 'falls back to <data-dir>/admin.token');
  const wrong = await weft(control, ['get', 'services', '--token', 'weft_wrong']);
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /unknown or revoked token/);

  const viewer = (await weft(control, ['token', 'create', '--role', 'viewer'])).stdout.trim();
  const forbidden = await weft(control, ['apply', '-f', join(ROOT, 'examples', 'manifests', 'services.yaml')], { WEFT_TOKEN: viewer });
  assert.equal(forbidden.code, 1);
  assert.match(forbidden.stderr, /role viewer; apply needs role admin/);

  const down = await weft({ api: 'http://127.0.0.1:9', token: 'x' }, ['history']);
  assert.equal(down.code, 1);
  assert.match(down.stderr, /cannot reach the weft API at http:\/\/127\.0\.0\.1:9/);

  // /metrics needs no token and carries the xDS metrics and process metrics
  const metrics = await (await fetch(`${control.api}/metrics`)).text();
  assert.match(metrics, /^# TYPE weft_xds_connected_proxies gauge$/m);
  assert.match(metrics, /^process_cpu_seconds_total /m);

  for (const args of [['--help'], ['get', '--help'], ['filter', 'push', '--help']]) {
    const help = await weft(control, args);
    assert.equal(help.code, 0, args.join(' '));
    assert.match(help.stdout, /^Usage: weft/m);
  }
});

test('weft control says in one line why it cannot start: a port in use, a data dir another control plane holds', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'weft-cli-'));
  const control = await startControl(dir);
  t.after(async () => {
    await control.stop();
    await rm(dir, { recursive: true, force: true });
  });
  const other = await mkdtemp(join(tmpdir(), 'weft-cli-'));
  t.after(() => rm(other, { recursive: true, force: true }));
  const apiPort = new URL(control.api).port;

  const busyApi = await weft(control, ['control', '--data-dir', other, '--api-port', apiPort, '--xds-port', '0']);
  assert.equal(busyApi.code, 1);
  assert.match(busyApi.stderr, new RegExp(`^error: --api-port ${apiPort}: 127\\.0\\.0\\.1:${apiPort} is already in use`, 'm'));
  const busyXds = await weft(control, ['control', '--data-dir', other, '--api-port', '0', '--xds-port', String(control.xdsPort)]);
  assert.equal(busyXds.code, 1);
  assert.match(busyXds.stderr, new RegExp(`^error: --xds-port ${control.xdsPort}: .* is already in use`, 'm'));
  const locked = await weft(control, ['control', '--data-dir', dir, '--api-port', '0', '--xds-port', '0']);
  assert.equal(locked.code, 1);
  assert.match(locked.stderr, /^error: --data-dir .*: data dir is locked by running process \d+/m);
  for (const r of [busyApi, busyXds, locked]) assert.doesNotMatch(r.stderr, /^\s+at /m, 'no stack trace');
});

test('weft get KIND -n NS lists that namespace only; without -n, every namespace; a bad namespace is a usage error', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'weft-cli-'));
  const control = await startControl(dir);
  t.after(async () => {
    await control.stop();
    await rm(dir, { recursive: true, force: true });
  });
  const svc = (name: string, ns: string) => `apiVersion: weft.dev/v1\nkind: Service\nmetadata: {name: ${name}, namespace: ${ns}}\nspec: {ports: [{port: 80, protocol: http}]}\n`;
  assert.equal((await weft(control, ['apply', '-f', '-'], {}, `${svc('shop', 'default')}---\n${svc('stg', 'staging')}`)).code, 0);
  const staging = await weft(control, ['get', 'services', '-n', 'staging', '-o', 'json']);
  assert.equal(staging.code, 0, staging.stderr);
  assert.deepEqual((JSON.parse(staging.stdout) as { metadata: { name: string } }[]).map((m) => m.metadata.name), ['stg']);
  const all = await weft(control, ['get', 'services', '-o', 'json']);
  assert.deepEqual((JSON.parse(all.stdout) as { metadata: { name: string } }[]).map((m) => m.metadata.name).sort(), ['shop', 'stg']);
  const named = await weft(control, ['get', 'services', 'stg', '-n', 'staging', '-o', 'json']);
  assert.equal(JSON.parse(named.stdout).metadata.namespace, 'staging');
  assert.equal((await weft(control, ['get', 'fb'])).stdout.trim(), 'no filter bindings found', 'the kind, not the alias typed');
  assert.equal((await weft(control, ['get', 'services', '-n', 'empty'])).stdout.trim(), 'no services found in namespace empty');
  const bad = await weft(control, ['get', 'services', '-n', 'Bad_NS']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--namespace must be a DNS label/);

  // with no proxy connected, --wait says so instead of returning silently
  const waited = await weft(control, ['apply', '-f', '-', '--wait', '5'], {}, svc('more', 'default'));
  assert.equal(waited.code, 0, waited.stderr);
  assert.match(waited.stdout, /^no proxies are connected: nothing to wait for$/m);
  const diffYaml = await weft(control, ['diff', '-f', '-', '-o', 'yaml'], {}, svc('shop', 'default'));
  assert.equal(diffYaml.code, 2);
  assert.match(diffYaml.stderr, /-o must be text or json/);

  // delete -f: what exists is deleted; what does not is an error (kubectl's exit 1), unless --ignore-not-found
  const deleted = await weft(control, ['delete', '-f', '-'], {}, `${svc('shop', 'default')}---\n${svc('ghost', 'staging')}`);
  assert.equal(deleted.code, 1, deleted.stdout);
  assert.match(deleted.stdout, /^service\/shop deleted$/m);
  assert.match(deleted.stderr, /not found: service\/ghost \(staging\) \(the other one was deleted; --ignore-not-found/);
  assert.equal((await api(control, 'GET', '/api/v1/services')).items.some((s: { name: string }) => s.name === 'shop'), false, 'the existing one was deleted');
  // One object, not there: no "others" (it said "the others were deleted").
  const alone = await weft(control, ['delete', '-f', '-'], {}, svc('shop', 'default'));
  assert.equal(alone.code, 1);
  assert.match(alone.stderr, /not found: service\/shop \(nothing was deleted; --ignore-not-found to accept this\)/);
  const ignored = await weft(control, ['delete', '-f', '-', '--ignore-not-found'], {}, svc('shop', 'default'));
  assert.equal(ignored.code, 0, ignored.stderr);
  assert.match(ignored.stdout, /^service\/shop absent$/m);
});
