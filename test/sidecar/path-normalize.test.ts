// normalize_path and merge_slashes as Envoy's path utility does them, checked
// against the cases Envoy's own path_utility_test.cc holds to.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { normalizeRequestPath } from '../../sidecar/path-normalize.ts';

const normalize = (p: string) => normalizeRequestPath(p, true, false);
const merge = (p: string) => normalizeRequestPath(p, false, true);

test('normalize_path resolves dot segments, backslashes and escaped dots, keeps reserved escapes as sent', () => {
  const cases: [string, string][] = [
    ['/xyz', '/xyz'], ['/x/y/z', '/x/y/z'],
    ['/a/b/../c', '/a/c'], ['/a/b/./c', '/a/b/c'], ['a/b/../c', '/a/c'], ['/a/b/../../../../c', '/c'],
    ['/a/..\\c', '/c'], ['/%c0%af', '/%c0%af'], ['/%5c%25', '/%5c%25'],
    ['/a/b/%2E%2E/c', '/a/c'], ['/a/b/%2E./c', '/a/c'], ['/a/b/%2E/c', '/a/b/c'], ['..', '/'],
    ['/../a/b', '/a/b'], ['/./a/b', '/a/b'], ['/A/B/C', '/A/B/C'], ['/a/b/%2e%2e/c', '/a/c'], ['/a/%2F%2f/c', '/a/%2F%2f/c'],
    ['/%61dmin', '/admin'], ['/a/b/..', '/a/'], ['/a/./b/?x=/../y', '/a/b/?x=/../y'],
  ];
  for (const [input, want] of cases) assert.equal(normalize(input), want, input);
});

test('normalize_path refuses an escaped NUL (the request gets 400)', () => {
  for (const p of ['/xyz/.%00../abc', '/xyz/%00.%00./abc', '/xyz/AAAAA%%0000/abc']) assert.equal(normalize(p), undefined, p);
});

test('merge_slashes collapses runs of slashes in the path, never in the query', () => {
  const cases: [string, string][] = [
    ['', ''], ['a//b/c', 'a/b/c'], ['/a//b/c/', '/a/b/c/'], ['a//b/c/', 'a/b/c/'], ['/a', '/a'], ['//a/b/c', '/a/b/c'],
    ['/a//b/c', '/a/b/c'], ['/a/b/c//', '/a/b/c/'], ['/a///b/c', '/a/b/c'], ['/a////b/c', '/a/b/c'],
    ['/a//b?a=///c', '/a/b?a=///c'], ['/a//b?', '/a/b?'], ['//a/?b', '/a/?b'],
  ];
  for (const [input, want] of cases) assert.equal(merge(input), want, input);
});

test('an already normal path is returned as the same string', () => {
  for (const p of ['/orders/1?x=1', '/static/app.v2.min.js', '/a/b.c/d?next=//x/../y', '/']) assert.equal(normalizeRequestPath(p, true, true), p, p);
});
