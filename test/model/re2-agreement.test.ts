// A regex the API accepts runs the same on both data planes: Envoy matches
// with RE2, the weft sidecar with JavaScript's RegExp. Checked against RE2
// itself (re2-wasm: Google's RE2 compiled to WebAssembly, the build
// @grpc/grpc-js-xds matches routes with), over every pattern of up to three
// characters from the characters regex syntax turns on, and some longer ones.
// re2-wasm rewrites a few JavaScript forms before RE2 sees them (\u0041 to
// \x{0041}, (?<name> to (?P<name>): Envoy's RE2 gets them as written, so the
// API refuses \u and \c escapes whatever re2-wasm says (fields.test.ts).
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import { regexError } from '../../control/model/fields.ts';
import { accept } from '../../sidecar/fidelity.ts';

const { RE2 } = createRequire(import.meta.url)('re2-wasm') as { RE2: new (pattern: string, flags: string) => unknown };

function re2Compiles(pattern: string): boolean {
  try {
    new RE2(pattern, 'u');
    return true;
  } catch {
    return false;
  }
}

const ALPHABET = ['[', ']', '^', '(', ')', '?', '*', '+', '{', '}', '\\', '.', 'a', '1', ',', '|', '<', '=', '!', 'u', '-', '$'];

function* patterns(): Generator<string> {
  for (const a of ALPHABET) {
    yield a;
    for (const b of ALPHABET) {
      yield a + b;
      for (const c of ALPHABET) yield a + b + c;
    }
  }
  yield* ['/api/[^]*', '[^]', '[]', 'a[]b', '(?=a)b', '(?<!a)b', '(a)\\1', 'a{1001}', 'a{2,1001}', '\\u0041', '\\cA', '[\\s\\S]*', '/v[0-9]+/.*', '(?<name>a)', '[a-z]{1000}'];
}

test('every pattern the API accepts as a regex, RE2 (Envoy) compiles too', () => {
  const misses: string[] = [];
  let accepted = 0;
  for (const p of patterns()) {
    if (regexError(p, 'regex') !== undefined) continue;
    accepted++;
    if (!re2Compiles(p)) misses.push(p);
  }
  assert.deepEqual(misses, [], 'accepted by the API, refused by RE2');
  assert.ok(accepted > 1000, `a corpus worth the name (${accepted} accepted)`);
});

test('what RE2 refuses that JavaScript reads, the API refuses naming the field, and the weft sidecar NACKs as Envoy does', () => {
  for (const p of ['/api/[^]*', '[]', '(?=a)b', '(a)\\1', 'a{1001}']) {
    assert.equal(re2Compiles(p), false, `RE2 refuses ${p}`);
    assert.doesNotThrow(() => new RegExp(p, 'u'), `JavaScript reads ${p}`);
    assert.match(regexError(p, 'rules[0].match[0].path.regex')?.path ?? '', /^rules\[0\]\.match\[0\]\.path\.regex$/, p);
    const route = { name: 'r', virtual_hosts: [{ name: 'vh', domains: ['*'], routes: [{ match: { safe_regex: { regex: p } }, route: { cluster: 'c' } }] }] };
    const r = accept('route', route);
    assert.ok(!r.ok, `the sidecar NACKs ${p}`);
    assert.match(r.errors.map((e) => e.path).join(), /virtual_hosts\[0\]\.routes\[0\]\.match\.safe_regex\.regex/);
  }
  // What both read alike goes through both.
  const fine = { name: 'r', virtual_hosts: [{ name: 'vh', domains: ['*'], routes: [{ match: { safe_regex: { regex: '/v[0-9]+/[\\s\\S]*' } }, route: { cluster: 'c' } }] }] };
  assert.ok(accept('route', fine).ok);
});
