// The CLI's pure formatting: the line diff `weft diff` prints, tables,
// manifests from API objects, kind lookup and token resolution.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { lineDiff } from '../../control/cli/diff-text.ts';
import { lookupKind, toManifest } from '../../control/cli/kinds.ts';
import { formatDiff, formatObjects } from '../../control/cli/manifest-commands.ts';
import { parseFormat, table } from '../../control/cli/output.ts';
import { CliError, resolveToken } from '../../control/cli/client.ts';
import { pointerToPath, ajvToFieldErrors } from '../../control/api/ajv-errors.ts';

test('lineDiff: removals before additions, unchanged runs folded beyond the context', () => {
  const a = ['{', '  "a": 1,', '  "b": 2,', '  "c": 3,', '  "d": 4,', '  "e": 5,', '  "f": 6', '}'].join('\n');
  const b = a.replace('"f": 6', '"f": 7');
  assert.deepEqual(lineDiff(a, b, 1), ['  ...', '    "e": 5,', '-   "f": 6', '+   "f": 7', '  }']);
  assert.deepEqual(lineDiff('', 'x\ny'), ['+ x', '+ y'], 'an added resource is all additions');
  assert.deepEqual(lineDiff('x', 'x'), [], 'identical text: no lines');
});

test('formatDiff names the proxy and each resource; nothing to change is said so', () => {
  const out = formatDiff({
    objects: [],
    proxies: [
      { proxy: 'web-1', service: 'web.default', connected: true, resources: [{ type: 'clusters', name: 'c1', action: 'removed', before: { a: 1 } }] },
      { proxy: 'api.default (any sidecar)', service: 'api.default', connected: false, resources: [{ type: 'routes', name: 'outbound', action: 'added', after: { b: 2 } }] },
      { proxy: 'idle', service: 'idle.default', connected: true, resources: [] },
    ],
  });
  assert.deepEqual(out, [
    'proxy web-1 (service web.default)',
    '  - clusters/c1 removed',
    '      - {',
    '      -   "a": 1',
    '      - }',
    'service api.default: no proxy connected; a new sidecar would get',
    '  + routes/outbound added',
    '      + {',
    '      +   "b": 2',
    '      + }',
  ]);
  assert.deepEqual(formatDiff({ objects: [], proxies: [] }), ['no proxy configuration would change']);
  assert.deepEqual(formatObjects([{ op: 'put', kind: 'Route', namespace: 'shop', name: 'r', action: 'created' }]), ['route/r (shop) created']);
});

test('tables align columns and show "-" for empty cells', () => {
  assert.equal(table(['NAME', 'PORTS'], [['orders', '8080/http'], ['x', undefined]]), 'NAME    PORTS\norders  8080/http\nx       -');
  assert.throws(() => parseFormat('xml'), (e: unknown) => e instanceof CliError && e.exitCode === 2);
});

test('kinds: aliases resolve; API objects become re-appliable manifests', () => {
  assert.equal(lookupKind('dp'), lookupKind('DestinationPolicies'));
  assert.equal(lookupKind('gateway'), undefined);
  assert.deepEqual(toManifest('Service', { name: 'a', namespace: 'default', ports: [] }), {
    apiVersion: 'weft.dev/v1',
    kind: 'Service',
    metadata: { name: 'a', namespace: 'default' },
    spec: { ports: [] },
  });
});

test('token resolution: --token, then WEFT_TOKEN, then <data-dir>/admin.token', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'weft-token-'));
  const saved = process.env.WEFT_TOKEN;
  t.after(async () => {
    if (saved === undefined) delete process.env.WEFT_TOKEN;
    else process.env.WEFT_TOKEN = saved;
    await rm(dir, { recursive: true, force: true });
  });
  await writeFile(join(dir, 'admin.token'), 'weft_fromfile\n');
  delete process.env.WEFT_TOKEN;
  assert.equal(resolveToken({ dataDir: dir }), 'weft_fromfile');
  process.env.WEFT_TOKEN = 'weft_env';
  assert.equal(resolveToken({ dataDir: dir }), 'weft_env');
  assert.equal(resolveToken({ token: 'weft_flag', dataDir: dir }), 'weft_flag');
});

test('ajv errors become field paths: pointers, unknown and missing fields, the model\'s messages', () => {
  assert.equal(pointerToPath('/ports/0/port'), 'ports[0].port');
  assert.equal(pointerToPath('/labels/a~1b'), 'labels["a/b"]');
  assert.deepEqual(
    ajvToFieldErrors([
      { instancePath: '/ports/0', keyword: 'additionalProperties', params: { additionalProperty: 'tls' }, message: 'must NOT have additional properties' },
      { instancePath: '', keyword: 'required', params: { missingProperty: 'name' }, message: "must have required property 'name'" },
      { instancePath: '/ports/0/protocol', keyword: 'const', params: {}, message: 'must be equal to constant' },
      { instancePath: '/ports/0/protocol', keyword: 'anyOf', params: {}, message: 'must match a schema in anyOf', parentSchema: { errorMessage: 'must be one of: http, tcp' } },
    ]),
    [
      { path: 'ports[0].tls', message: 'unknown field' },
      { path: 'name', message: 'is required' },
      { path: 'ports[0].protocol', message: 'must be one of: http, tcp' },
    ],
  );
});
