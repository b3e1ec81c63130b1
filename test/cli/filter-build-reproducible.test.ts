// `weft filter build` of one unchanged source gives one module (one sha256) whatever directory it runs from.
// Until 2026-11-29 asc compiled the entry's path relative to the working directory, and the optimiser's output
// depends on those names: a filter built in CI (from the repo root) and on a laptop (from the filter's folder)
// were two modules to the catalog, so a push of "the same" build was a new module for every proxy, and the
// sha256 `weft get filters` shows could not be checked against a local build. It now compiles from the
// filter's project (the nearest directory with a package.json, else the entry's own).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { WEFT } from './control-process.ts';

const run = promisify(execFile);

const filterSource = `// tagger: stamps x-tenant (from config) on every request, rejects requests without
// the configured required header (400 local reply), and counts outcomes.
export * from 'weft/filters/sdk/exports';
import { Action, HttpContext, RootContext, registerRoot, getHeader, HeaderMapType, HeaderPair,
         sendLocalResponse, replaceHeader, incrementCounter, ConfigErrors, configRoot, logWarn } from 'weft/filters/sdk/index';

class TaggerRoot extends RootContext {
  tenant: string = '';
  required: string = 'x-owner';
  status: i64 = 400;
  onConfigure(configuration: string): bool {
    const errors = new ConfigErrors();
    const root = configRoot(configuration, errors);
    if (root !== null) {
      root.allowOnly(['tenant', 'requiredHeader', 'status']);
      this.tenant = root.nonEmpty('tenant', '', true);
      this.required = root.nonEmpty('requiredHeader', this.required);
      this.status = root.int('status', 400, 400, 499);
    }
    if (!errors.ok) { logWarn('tagger: invalid configuration: ' + errors.toString()); return false; }
    return true;
  }
  createHttpContext(id: u32): HttpContext | null { return new TaggerStream(id, this); }
}

class TaggerStream extends HttpContext {
  onRequestHeaders(numHeaders: u32, endOfStream: bool): Action {
    const root = this.root as TaggerRoot;
    const v = getHeader(HeaderMapType.RequestHeaders, root.required);
    if (v === null) {
      incrementCounter('tagger_requests', ['result', 'rejected']);
      sendLocalResponse(<u32>root.status, 'missing_required_header', '{"error":"missing ' + root.required + '"}',
        [new HeaderPair('content-type', 'application/json')]);
      return Action.Pause;
    }
    replaceHeader(HeaderMapType.RequestHeaders, 'x-tenant', root.tenant);
    incrementCounter('tagger_requests', ['result', 'tagged']);
    return Action.Continue;
  }
  onResponseHeaders(numHeaders: u32, endOfStream: bool): Action {
    replaceHeader(HeaderMapType.ResponseHeaders, 'x-tagged-by', 'tagger');
    return Action.Continue;
  }
}

registerRoot((id: u32): RootContext => new TaggerRoot(id));
`;

test('weft filter build gives the same module for the same source whatever directory it runs from', { timeout: 180_000 }, async (t) => {
  const project = await mkdtemp(join(tmpdir(), 'weft-repro-'));
  t.after(() => rm(project, { recursive: true, force: true }));
  await mkdir(join(project, 'tagger', 'assembly'), { recursive: true });
  await writeFile(join(project, 'tagger', 'assembly', 'index.ts'), filterSource);
  const env = { ...process.env, WEFT_API: 'http://127.0.0.1:1' };
  await run(process.execPath, [WEFT, 'filter', 'build', 'tagger/assembly/index.ts', '-o', join(project, 'a.wasm')], { cwd: project, env });
  await run(process.execPath, [WEFT, 'filter', 'build', 'assembly/index.ts', '-o', join(project, 'b.wasm')], { cwd: join(project, 'tagger'), env });
  const sha = async (f: string) => createHash('sha256').update(await readFile(join(project, f))).digest('hex');
  assert.equal(await sha('b.wasm'), await sha('a.wasm'), 'one source, one module');
});
