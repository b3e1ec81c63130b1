// regex_rewrite's substitution as RE2 (and so Envoy) reads it: \N groups,
// \\ a backslash, $ literal; what RE2 refuses is NACKed naming the field.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { RouteActionConfig, RouteConfig } from '../../sidecar/config.ts';
import { accept } from '../../sidecar/fidelity.ts';

function routeWith(pattern: string, substitution: string) {
  return {
    name: 'outbound',
    virtual_hosts: [{ name: 'v', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'c', regex_rewrite: { pattern: { regex: pattern }, substitution } } }] }],
  };
}

function rewrite(pattern: string, substitution: string, path: string): string {
  const r = accept('route', routeWith(pattern, substitution));
  assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
  const action = (r.value as RouteConfig).virtualHosts[0]!.routes[0]!.action as RouteActionConfig;
  return path.replace(action.regexRewrite!.regex, action.regexRewrite!.replace);
}

test('groups, the whole match, escaped backslashes and literal dollars, as RE2::GlobalReplace', () => {
  assert.equal(rewrite('^/service/([^/]+)(/.*)$', '\\2/instance/\\1', '/service/foo/v1/api'), '/v1/api/instance/foo');
  assert.equal(rewrite('one', 'two', '/xxx/one/yyy/one/zzz'), '/xxx/two/yyy/two/zzz', 'every match');
  assert.equal(rewrite('^/price/(\\d+)$', '/cost/$1/\\1$$', '/price/42'), '/cost/$1/42$$', '$ is literal');
  assert.equal(rewrite('^/a(.*)$', '/b\\\\\\1', '/a/x'), '/b\\/x', 'two backslashes are one');
  assert.equal(rewrite('^/a/(.*)$', '/[\\0]', '/a/x'), '/[/a/x]', '\\0 is the whole match');
  assert.equal(rewrite('^/v(\\d)$', '/\\12', '/v7'), '/72', '\\1 then a literal 2, not group 12');
});

test('a substitution RE2 refuses is NACKed at the field', () => {
  for (const [pattern, sub, why] of [['^/a(.*)$', '/\\2', /refers to group \\2, but the pattern has 1 capture group/], ['^/a$', '/\\x', /backslash must be followed by a digit or a backslash/]] as const) {
    const r = accept('route', routeWith(pattern, sub));
    assert.equal(r.ok, false, sub);
    const e = !r.ok ? r.errors.find((x) => x.path.endsWith('regex_rewrite.substitution')) : undefined;
    assert.ok(e, JSON.stringify(!r.ok && r.errors));
    assert.match(e.message, why);
  }
});
