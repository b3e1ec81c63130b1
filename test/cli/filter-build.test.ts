// `weft filter build` for a filter project outside the weft checkout: the
// filter imports the SDK as 'weft/filters/sdk/...', the project has no weft
// installed, and the module it builds loads in the test kit and does its work.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadFilter } from 'weft/testing';
import { weft } from './control-process.ts';

const filterSource = `export * from 'weft/filters/sdk/exports';
import { Action, ConfigErrors, configRoot, HeaderMapType, HttpContext, RootContext, logError, registerRoot, replaceHeader } from 'weft/filters/sdk/index';

class GreetRoot extends RootContext {
  greeting: string = 'hello';
  onConfigure(configuration: string): bool {
    const errors = new ConfigErrors();
    const root = configRoot(configuration, errors);
    if (root !== null) {
      root.allowOnly(['greeting']);
      this.greeting = root.nonEmpty('greeting', this.greeting);
    }
    if (!errors.ok) { logError('greet: ' + errors.toString()); return false; }
    return true;
  }
  createHttpContext(id: u32): HttpContext | null { return new Greet(id, this); }
}

class Greet extends HttpContext {
  onRequestHeaders(numHeaders: u32, endOfStream: bool): Action {
    replaceHeader(HeaderMapType.RequestHeaders, 'x-greeting', (this.root as GreetRoot).greeting);
    return Action.Continue;
  }
}

registerRoot((id: u32): RootContext => new GreetRoot(id));
`;

test('weft filter build compiles a filter project that lives outside the checkout; the module works in the test kit', { timeout: 120_000 }, async (t) => {
  const project = await mkdtemp(join(tmpdir(), 'weft-filter-project-'));
  t.after(() => rm(project, { recursive: true, force: true }));
  await mkdir(join(project, 'greet', 'assembly'), { recursive: true });
  await writeFile(join(project, 'greet', 'assembly', 'index.ts'), filterSource);

  const built = await weft({ api: 'http://127.0.0.1:1' }, ['filter', 'build', join(project, 'greet', 'assembly', 'index.ts')]);
  assert.equal(built.code, 0, built.stderr);
  assert.match(built.stdout, /greet\.wasm: \d+ bytes, sha256 [0-9a-f]{64}, ABI 0\.2\.1/);
  const bytes = await readFile(join(project, 'greet', 'build', 'greet.wasm'));

  const filter = await loadFilter(bytes, { configuration: JSON.stringify({ greeting: 'hi there' }) });
  assert.equal((await filter.request()).forwarded?.header('x-greeting'), 'hi there');
  await assert.rejects(loadFilter(bytes, { configuration: JSON.stringify({ greting: 'typo' }) }), /the module logged: error: greet: .*greting/);

  // A compile error is asc's own diagnostic, with the line, and exit 1.
  await writeFile(join(project, 'broken.ts'), "export * from 'weft/filters/sdk/exports';\nlet x: i32 = 'str';\n");
  const broken = await weft({ api: 'http://127.0.0.1:1' }, ['filter', 'build', join(project, 'broken.ts'), '-o', join(project, 'broken.wasm')]);
  assert.equal(broken.code, 1);
  assert.match(broken.stderr, /TS2322: Type '~lib\/string\/String' is not assignable to type 'i32'/);
  assert.match(broken.stderr, /broken\.ts\(2,14\)/);
});

test("weft filter build also compiles a filter that imports the SDK by relative path, as this checkout's example does", { timeout: 120_000 }, async (t) => {
  const out = await mkdtemp(join(tmpdir(), 'weft-filter-out-'));
  t.after(() => rm(out, { recursive: true, force: true }));
  const entry = new URL('../../examples/filters/api-key/assembly/index.ts', import.meta.url).pathname;
  const built = await weft({ api: 'http://127.0.0.1:1' }, ['filter', 'build', entry, '-o', join(out, 'api-key.wasm')]);
  assert.equal(built.code, 0, built.stderr);
  assert.match(built.stdout, /api-key\.wasm: \d+ bytes, sha256 [0-9a-f]{64}, ABI 0\.2\.1/);
  const filter = await loadFilter(await readFile(join(out, 'api-key.wasm')), { configuration: JSON.stringify({ keys: { 'k-1': 'ci' } }) });
  assert.equal((await filter.request({ path: '/orders' })).localReply?.status, 401);
  assert.equal((await filter.request({ path: '/orders', headers: { 'x-api-key': 'k-1' } })).forwarded?.header('x-weft-client'), 'ci');
});
