// Route selection as Envoy does it, on in-process config objects decoded
// through the fidelity contract (so the test also covers the decoding).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { RouteConfig } from '../../sidecar/config.ts';
import { accept } from '../../sidecar/fidelity.ts';
import { applyMutation } from '../../sidecar/headers.ts';
import type { HeaderPairs } from '../../sidecar/upstream.ts';
import { pickWeighted, selectRoute, selectVirtualHost } from '../../sidecar/router.ts';
import { Runtime } from '../../sidecar/runtime.ts';

function routes(json: unknown): RouteConfig {
  const r = accept('route', json);
  assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
  return r.value as RouteConfig;
}

const vh = (name: string, domains: string[], rts: unknown[] = [{ name, match: { prefix: '/' }, route: { cluster: name } }]) => ({ name, domains, routes: rts });

test('virtual host precedence: exact, longest suffix wildcard, longest prefix wildcard, then *', () => {
  const rc = routes({ name: 'r', virtual_hosts: [vh('star', ['*']), vh('pre', ['api*']), vh('suf', ['*.example.com']), vh('longsuf', ['*.api.example.com']), vh('exact', ['orders', 'orders:8080'])] });
  const pick = (h: string) => selectVirtualHost(rc, h)?.name;
  assert.equal(pick('orders'), 'exact');
  assert.equal(pick('ORDERS:8080'), 'exact');
  assert.equal(pick('orders:9090'), 'star', 'the port is part of the authority');
  assert.equal(pick('x.api.example.com'), 'longsuf');
  assert.equal(pick('x.example.com'), 'suf');
  assert.equal(pick('api-v2'), 'pre');
  assert.equal(pick('other'), 'star');
});

test('first matching route wins: path exact/prefix/regex, headers (incl. invert and :method), query parameters', () => {
  const rc = routes({
    name: 'r',
    virtual_hosts: [
      vh('v', ['*'], [
        { name: 'exact', match: { path: '/exact' }, route: { cluster: 'c1' } },
        { name: 'regex', match: { safe_regex: { regex: '/items/[0-9]+' } }, route: { cluster: 'c2' } },
        { name: 'hdr', match: { prefix: '/h', headers: [{ name: 'x-user', string_match: { prefix: 'al' } }, { name: ':method', exact_match: 'POST' }] }, route: { cluster: 'c3' } },
        { name: 'notbeta', match: { prefix: '/h', headers: [{ name: 'x-beta', present_match: true, invert_match: true }] }, route: { cluster: 'c4' } },
        { name: 'query', match: { prefix: '/q', query_parameters: [{ name: 'debug', string_match: { exact: '1' } }] }, route: { cluster: 'c5' } },
        { name: 'ci', match: { prefix: '/CI', case_sensitive: false }, route: { cluster: 'c6' } },
        { name: 'rest', match: { prefix: '/' }, route: { cluster: 'c7' } },
      ]),
    ],
  });
  const v = rc.virtualHosts[0]!;
  const pick = (path: string, headers: Record<string, string> = {}, method = 'GET') => selectRoute(v, { authority: 'x', path, method, header: (n) => headers[n] })?.name;
  assert.equal(pick('/exact'), 'exact');
  assert.equal(pick('/exact/more'), 'rest');
  assert.equal(pick('/items/42'), 'regex');
  assert.equal(pick('/items/42x'), 'rest', 'regex is a full match');
  assert.equal(pick('/items/42?x=1'), 'regex', 'the query is not part of the path');
  assert.equal(pick('/h', { 'x-user': 'alice' }, 'POST'), 'hdr');
  assert.equal(pick('/h', { 'x-user': 'alice' }, 'GET'), 'notbeta');
  assert.equal(pick('/h', { 'x-beta': '1' }), 'rest');
  assert.equal(pick('/q?debug=1'), 'query');
  assert.equal(pick('/q?debug=0'), 'rest');
  assert.equal(pick('/ci/x'), 'ci');
});

test('an inverted value matcher does not match a request without the header, as in Envoy', () => {
  const rc = routes({
    name: 'r',
    virtual_hosts: [
      vh('v', ['*'], [
        { name: 'not-beta', match: { prefix: '/', headers: [{ name: 'x-track', string_match: { exact: 'beta' }, invert_match: true }] }, route: { cluster: 'stable' } },
        { name: 'no-debug', match: { prefix: '/', headers: [{ name: 'x-debug', present_match: true, invert_match: true }] }, route: { cluster: 'quiet' } },
        { name: 'absent', match: { prefix: '/', headers: [{ name: 'x-absent', present_match: false }] }, route: { cluster: 'absent' } },
        { name: 'rest', match: { prefix: '/' }, route: { cluster: 'rest' } },
      ]),
    ],
  });
  const v = rc.virtualHosts[0]!;
  const pick = (headers: Record<string, string>) => selectRoute(v, { authority: 'x', path: '/', method: 'GET', header: (n) => headers[n] })?.name;
  assert.equal(pick({ 'x-track': 'alpha' }), 'not-beta');
  assert.equal(pick({ 'x-track': 'beta' }), 'no-debug');
  assert.equal(pick({}), 'no-debug', 'a missing header matches no inverted value matcher (HeaderUtility::matchHeaders)');
  assert.equal(pick({ 'x-debug': '1' }), 'absent', 'present_match: false matches a request without the header');
  assert.equal(pick({ 'x-debug': '1', 'x-absent': '' }), 'rest');
});

test('query parameters are matched as sent, not percent-decoded, as Envoy parses them for a route', () => {
  const rc = routes({
    name: 'r',
    virtual_hosts: [
      vh('v', ['*'], [
        { name: 'spaced', match: { prefix: '/', query_parameters: [{ name: 'q', string_match: { exact: 'a b' } }] }, route: { cluster: 'c1' } },
        { name: 'encoded', match: { prefix: '/', query_parameters: [{ name: 'q', string_match: { exact: 'a%20b' } }] }, route: { cluster: 'c2' } },
        { name: 'flag', match: { prefix: '/', query_parameters: [{ name: 'debug', present_match: true }] }, route: { cluster: 'c3' } },
        { name: 'rest', match: { prefix: '/' }, route: { cluster: 'c4' } },
      ]),
    ],
  });
  const v = rc.virtualHosts[0]!;
  const pick = (path: string) => selectRoute(v, { authority: 'x', path, method: 'GET', header: () => undefined })?.name;
  assert.equal(pick('/?q=a%20b'), 'encoded', 'Envoy compares the raw value');
  assert.equal(pick('/?q=a+b'), 'rest', 'nor is + a space');
  assert.equal(pick('/?x=1&q=a%20b&q=zzz'), 'encoded', 'the first value counts');
  assert.equal(pick('/?debug'), 'flag');
  assert.equal(pick('/?debugger=1'), 'rest');
  assert.equal(pick('/?q%3D=a%20b'), 'rest', 'names are not decoded either');
});

test('weighted choice follows the weights over the unit interval', () => {
  const choices = [{ name: 'a', weight: 90 }, { name: 'b', weight: 10 }];
  assert.equal(pickWeighted(choices, 100, 0)?.name, 'a');
  assert.equal(pickWeighted(choices, 100, 0.899)?.name, 'a');
  assert.equal(pickWeighted(choices, 100, 0.9)?.name, 'b');
  assert.equal(pickWeighted(choices, 100, 0.999)?.name, 'b');
});

test("header mutations as Envoy's HeaderParser: empty values are skipped unless keep_empty_value, every entry is judged before any is applied, overwrites before appends", () => {
  const rc = routes({
    name: 'r',
    virtual_hosts: [
      vh('v', ['*'], [
        {
          name: 'm',
          match: { prefix: '/' },
          route: { cluster: 'c' },
          request_headers_to_add: [
            { header: { key: 'x-empty', value: '' }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' },
            { header: { key: 'x-kept', value: '' }, keep_empty_value: true },
            { header: { key: 'x-once', value: 'a' }, append_action: 'ADD_IF_ABSENT' },
            { header: { key: 'x-once', value: 'b' }, append_action: 'ADD_IF_ABSENT' },
            { header: { key: 'x-v', value: 'appended' } },
            { header: { key: 'x-v', value: 'overwritten' }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' },
          ],
        },
      ]),
    ],
  });
  const headers: HeaderPairs = [['x-empty', 'sent'], ['x-v', 'sent']];
  applyMutation(headers, rc.virtualHosts[0]!.routes[0]!.requestHeaders);
  assert.deepEqual(headers, [
    ['x-empty', 'sent'],
    ['x-v', 'overwritten'],
    ['x-kept', ''],
    ['x-once', 'a'],
    ['x-once', 'b'],
    ['x-v', 'appended'],
  ]);
});

test('ignore_case makes exact/prefix/suffix/contains case-insensitive and, as in Envoy, leaves safe_regex as it is', () => {
  const rc = routes({
    name: 'r',
    virtual_hosts: [
      vh('v', ['*'], [
        { name: 'regex', match: { prefix: '/', headers: [{ name: 'x-env', string_match: { safe_regex: { regex: 'prod-[0-9]+' }, ignore_case: true } }] }, route: { cluster: 'c1' } },
        { name: 'exact', match: { prefix: '/', headers: [{ name: 'x-env', string_match: { exact: 'staging', ignore_case: true } }] }, route: { cluster: 'c2' } },
        { name: 'rest', match: { prefix: '/' }, route: { cluster: 'c3' } },
      ]),
    ],
  });
  const v = rc.virtualHosts[0]!;
  const pick = (env: string) => selectRoute(v, { authority: 'x', path: '/', method: 'GET', header: (n) => (n === 'x-env' ? env : undefined) })?.name;
  assert.equal(pick('prod-1'), 'regex');
  assert.equal(pick('PROD-1'), 'rest', 'ignore_case has no effect for safe_regex');
  assert.equal(pick('STAGING'), 'exact');
});

test("runtime_fraction: the stream's random value under the runtime key's share (percent, FractionalPercent, over 100: all) or default_value; one value for every route tried", () => {
  const rc = routes({
    name: 'r',
    virtual_hosts: [
      vh('v', ['*'], [
        { name: 'ten', match: { prefix: '/', runtime_fraction: { default_value: { numerator: 10 }, runtime_key: 'r.ten' } }, route: { cluster: 'a' } },
        { name: 'thirty', match: { prefix: '/', runtime_fraction: { default_value: { numerator: 3000, denominator: 'TEN_THOUSAND' } } }, route: { cluster: 'b' } },
        { name: 'rest', match: { prefix: '/' }, route: { cluster: 'c' } },
      ]),
    ],
  });
  const v = rc.virtualHosts[0]!;
  const runtime = new Runtime([{ name: 'admin', kind: 'admin' }], '');
  // The stream's value for every route tried: 0.25 is over 'ten' and under 'thirty'.
  const pick = (roll: number) => {
    const random = { routeRandom: () => roll };
    return selectRoute(v, { authority: 'x', path: '/', method: 'GET', header: () => undefined, runtime, random })?.name;
  };
  assert.deepEqual([pick(0.05), pick(0.1), pick(0.25), pick(0.3), pick(0.9)], ['ten', 'thirty', 'thirty', 'rest', 'rest']);
  runtime.merge([['r.ten', '50']]);
  assert.deepEqual([pick(0.05), pick(0.49), pick(0.5)], ['ten', 'ten', 'rest'], 'the runtime key over default_value (the next route, 30%, no longer takes 0.25..0.5)');
  runtime.merge([['r.ten', 'numerator: 25\ndenominator: HUNDRED']]);
  assert.deepEqual([pick(0.24), pick(0.26)], ['ten', 'thirty']);
  runtime.merge([['r.ten', '101']]);
  assert.equal(pick(0.999), 'ten', 'over 100: every request');
  runtime.merge([['r.ten', 'not a number']]);
  assert.deepEqual([pick(0.05), pick(0.15)], ['ten', 'thirty'], 'a value of another kind: default_value');
});
