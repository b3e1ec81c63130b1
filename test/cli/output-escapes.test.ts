// `-o json` and `-o yaml` print what a proxy or a request chose (its id, its
// NACK message, a header) with every control character escaped by the
// format's own rules, C1 included (U+009B is CSI to a terminal that takes
// 8-bit controls), and the output still parses to the very same strings.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parse, parseAllDocuments } from 'yaml';
import { toJson, toYaml, toYamlDocuments } from '../../control/cli/output.ts';

/** Raw control characters but the line feed, which both formats need for their lines. */
const RAW = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/;

const every = Array.from({ length: 0xa0 }, (_, c) => String.fromCharCode(c));
const strings = [
  ...every.map((c) => `a${c}b`),
  '\u009b31mred\u009b0m',
  'web-1\u001b[2J\u001b]0;owned\u0007\u009b2J',
  'line one\u0085line two\u007f',
  'tab\there',
  // long and multi-line: the yaml library folds such double-quoted strings over several lines
  `first line of a long NACK message that goes on\n\u009b1A\u009b2Khidden ${'x'.repeat(60)}\nthird\u0090line`,
  '\u009f',
  'ends in a newline\u009b\n',
];
const value = {
  items: strings.map((s, i) => ({ id: s, nacks: [{ message: s, n: i }] })),
  byKey: Object.fromEntries(strings.map((s, i) => [s, i])),
};

test('toJson escapes C0, DEL and C1 and parses back to the same strings', () => {
  const out = toJson(value);
  assert.doesNotMatch(out, RAW);
  assert.match(out, /\\u009b31mred\\u009b0m/);
  assert.deepEqual(JSON.parse(out), value);
});

test('toYaml escapes every control character inside double quotes and parses back to the same strings', () => {
  const out = toYaml(value);
  assert.doesNotMatch(out, RAW);
  assert.match(out, /"\\x9b31mred\\x9b0m"/);
  assert.deepEqual(parse(out), value);
  for (const s of strings) {
    const alone = toYaml({ [s]: [s] });
    assert.doesNotMatch(alone, RAW, JSON.stringify(s));
    assert.deepEqual(parse(alone), { [s]: [s] }, JSON.stringify(s));
  }
});

test('toYamlDocuments: each document escaped and read back as it was', () => {
  const docs = strings.slice(-6).map((s) => ({ kind: 'Route', metadata: { name: 'r' }, spec: { note: s } }));
  const out = toYamlDocuments(docs);
  assert.doesNotMatch(out, RAW);
  assert.deepEqual(parseAllDocuments(out).map((d) => d.toJS()), docs);
});

test('strings with no control character print as before (plain YAML, no quoting)', () => {
  assert.equal(toYaml({ name: 'orders', ports: [{ port: 80, protocol: 'http' }] }), 'name: orders\nports:\n  - port: 80\n    protocol: http\n');
  assert.equal(toJson({ a: 'é' }), '{\n  "a": "é"\n}');
});
