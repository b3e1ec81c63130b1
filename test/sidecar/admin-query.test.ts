// The admin port's query strings as Envoy's admin decodes them: %XX decoded,
// `+` kept a plus (Envoy's PercentEncoding::decode has no form decoding), so
// the regexes an operator types (`?filter=upstream_rq_\d+$`,
// `?name_regex=outbound.+reviews.*`) mean what they say.

import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { adminQuery } from '../../sidecar/admin.ts';
import { callerToApi, get } from './harness.ts';

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

test('adminQuery: %XX decoded (UTF-8 too), + kept, a lone or bad % left as it is, keys without a value, the first of a repeated key', () => {
  const q = adminQuery('/stats?filter=upstream_rq_\\d+$&usedonly&format=json&format=text&x=%2B%7c%e2%9c%93&bad=100%&odd=%zz1');
  assert.equal(q.get('filter'), 'upstream_rq_\\d+$');
  assert.equal(q.get('usedonly'), '');
  assert.equal(q.get('format'), 'json');
  assert.equal(q.get('x'), '+|✓');
  assert.equal(q.get('bad'), '100%');
  assert.equal(q.get('odd'), '%zz1');
  assert.deepEqual([...adminQuery('/stats').keys()], []);
});

test("through a running sidecar: ?filter=...\\d+$ on /stats and /stats/prometheus and ?name_regex=...+... on /config_dump keep their +, as in Envoy", { timeout: 30_000 }, async () => {
  const { sc } = await callerToApi(closers);
  assert.equal((await get(sc.outboundPort, 'api', '/')).status, 200);
  const admin = async (path: string) => (await fetch(`http://127.0.0.1:${sc.adminPort}${path}`)).text();

  const stats = (await admin('/stats?filter=api.default.upstream_rq_\\d+$')).trimEnd().split('\n');
  assert.deepEqual(stats, ['cluster.outbound|7000||api.default.upstream_rq_200: 1']);
  const prom = (await admin('/stats/prometheus?filter=api.default.upstream_rq_\\d+$')).split('\n').filter((l) => l && !l.startsWith('#'));
  assert.deepEqual(prom, ['envoy_cluster_upstream_rq{envoy_cluster_name="outbound|7000||api.default",envoy_response_code="200"} 1']);
  const dump = JSON.parse(await admin('/config_dump?resource=dynamic_active_clusters&name_regex=outbound.+api.default&mask=cluster.name')) as { configs: { cluster: { name: string } }[] };
  assert.deepEqual(dump.configs.map((c) => c.cluster.name), ['outbound|7000||api.default']);
});
