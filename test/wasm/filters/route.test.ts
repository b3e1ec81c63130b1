import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { exchange, header, loadFilter } from './kit.ts';

const TESTER = 'spiffe://weft.local/ns/default/sa/qa-bot';
const canary = { canary: { hashOn: { header: 'x-user-id' }, salt: 'orders-v2', splits: [{ subset: 'v2', percent: 10 }], defaultSubset: 'v1' } };

describe('route filter', () => {
  it('puts the same user in the same bucket every time and splits 10,000 users close to 10/90', async () => {
    const plugin = await loadFilter('route', canary);
    const subsetOf = async (user: string): Promise<string | undefined> =>
      header((await exchange(plugin, { 'x-user-id': user })).stream.requestHeaders, 'x-weft-subset');
    const first = await subsetOf('user-42');
    for (let i = 0; i < 5; i++) assert.equal(await subsetOf('user-42'), first);

    let v2 = 0;
    const users = 10_000;
    for (let i = 0; i < users; i++) {
      const subset = await subsetOf(`user-${i}`);
      if (subset === 'v2') v2++;
      else assert.equal(subset, 'v1');
    }
    const share = v2 / users;
    assert.ok(share > 0.08 && share < 0.12, `v2 share ${share}`);
    const counted = plugin.metrics.find('weft_route_decisions_total_source=.=canary;.;subset=.=v2;.;')?.value ?? 0n;
    assert.ok(counted >= BigInt(v2), 'decisions counted');
    await plugin.close();
  });

  it('hashes a cookie when configured, and sends users without a key to the default subset', async () => {
    const plugin = await loadFilter('route', { canary: { hashOn: { cookie: 'uid' }, splits: [{ subset: 'v2', percent: 100 }], defaultSubset: 'v1' } });
    const withCookie = await exchange(plugin, { cookie: 'theme=dark; uid=alice' });
    assert.equal(header(withCookie.stream.requestHeaders, 'x-weft-subset'), 'v2');
    const without = await exchange(plugin, { cookie: 'theme=dark' });
    assert.equal(header(without.stream.requestHeaders, 'x-weft-subset'), 'v1');
    await plugin.close();
  });

  it('never trusts a subset header sent by the client', async () => {
    const plugin = await loadFilter('route', { canary: { hashOn: { header: 'x-user-id' }, splits: [{ subset: 'v2', percent: 0 }] } });
    const { stream } = await exchange(plugin, { 'x-weft-subset': 'v2', 'x-user-id': 'u1' });
    assert.equal(header(stream.requestHeaders, 'x-weft-subset'), undefined);
    await plugin.close();
  });

  it('honours a tester override only from an allowed SPIFFE identity', async () => {
    const plugin = await loadFilter('route', { ...canary, override: { allowedIdentities: [TESTER] } });
    const allowed = await exchange(plugin, { 'x-weft-subset-override': 'v3', 'x-user-id': 'u1' }, { properties: { 'connection.uri_san_peer_certificate': TESTER } });
    assert.equal(header(allowed.stream.requestHeaders, 'x-weft-subset'), 'v3');
    assert.equal(header(allowed.stream.requestHeaders, 'x-weft-subset-override'), undefined, 'override header not forwarded');

    const stranger = await exchange(plugin, { 'x-weft-subset-override': 'v3', 'x-user-id': 'user-42' }, {
      properties: { 'connection.uri_san_peer_certificate': 'spiffe://weft.local/ns/default/sa/frontend' },
    });
    const plain = await exchange(plugin, { 'x-user-id': 'user-42' });
    assert.equal(header(stranger.stream.requestHeaders, 'x-weft-subset'), header(plain.stream.requestHeaders, 'x-weft-subset'));
    const noTls = await exchange(plugin, { 'x-weft-subset-override': 'v3' });
    assert.equal(header(noTls.stream.requestHeaders, 'x-weft-subset'), 'v1');
    assert.equal(plugin.metrics.find('weft_route_override_denied_total')?.value, 2n);
    await plugin.close();
  });

  it('routes a tenant from the claim header, ahead of the canary split', async () => {
    const plugin = await loadFilter('route', { ...canary, tenant: { header: 'x-weft-tenant', subsets: { acme: 'dedicated' } } });
    const acme = await exchange(plugin, { 'x-weft-tenant': 'acme', 'x-user-id': 'u1' });
    assert.equal(header(acme.stream.requestHeaders, 'x-weft-subset'), 'dedicated');
    const other = await exchange(plugin, { 'x-weft-tenant': 'globex', 'x-user-id': 'user-42' });
    assert.match(header(other.stream.requestHeaders, 'x-weft-subset') ?? '', /^v[12]$/);
    await plugin.close();
  });

  it('refuses invalid configurations at configure time, naming each field', async () => {
    const logs: string[] = [];
    const onLog = (e: { message: string }): void => void logs.push(e.message);
    await assert.rejects(
      loadFilter('route', { canary: { hashOn: { header: 'a', cookie: 'b' }, splits: [{ subset: 'v 2', percent: 80 }, { subset: 'v3', percent: 30 }] } }, { onLog }),
      /proxy_on_configure/,
    );
    const text = logs.join('\n');
    assert.match(text, /canary\.hashOn: set exactly one of header, cookie/);
    assert.match(text, /canary\.splits\[0\]\.subset: must be 1-63 characters/);
    assert.match(text, /canary\.splits: percentages add up to 110/);
    logs.length = 0;
    await assert.rejects(loadFilter('route', { override: { allowedIdentities: ['frontend'] }, canary: { hashOn: {} } }, { onLog }), /proxy_on_configure/);
    assert.match(logs.join('\n'), /override\.allowedIdentities\[0\]: must be a spiffe:\/\/ ID/);
    assert.match(logs.join('\n'), /canary\.splits: required/);
  });
});
