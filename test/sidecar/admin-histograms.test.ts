// Envoy's ?histogram_buckets on the admin stats endpoints: /stats prints each
// histogram's bucket counts in place of its quantiles (cumulative or
// disjoint, `B<bound>(interval,total)` as Envoy's bucketSummary, or Envoy's
// JSON buckets), and /stats/prometheus takes the parameter as Envoy does;
// what the sidecar cannot serve is a 400 that says why.

import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { collectStats, statsJson, statsText } from '../../sidecar/admin-stats.ts';
import { Histogram } from '../../sidecar/metrics.ts';
import { admin, callerToApi, get } from './harness.ts';

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

function histogram(): Histogram {
  const h = new Histogram('envoy_cluster_upstream_rq_time', 'time', ['envoy_cluster_name'], [0.5, 5, 1_800_000, 3_600_000]);
  h.envoyName = (l) => `cluster.${l.envoy_cluster_name}.upstream_rq_time`;
  for (const v of [0.2, 3, 3, 4, 2_000_000, 9_000_000]) h.observe({ envoy_cluster_name: 'c' }, v);
  h.series({ envoy_cluster_name: 'empty' });
  return h;
}

test('histogram_buckets=cumulative and disjoint: each bound with its count, bounds printed as %g (3.6e+06), the +Inf bucket left out, as Envoy', () => {
  const stats = collectStats([histogram()], []);
  assert.equal(statsText(stats, 'cumulative'), 'cluster.c.upstream_rq_time: B0.5(0,1) B5(0,4) B1.8e+06(0,4) B3.6e+06(0,5)\ncluster.empty.upstream_rq_time: No recorded values\n');
  assert.equal(statsText(stats, 'disjoint'), 'cluster.c.upstream_rq_time: B0.5(0,1) B5(0,3) B1.8e+06(0,0) B3.6e+06(0,1)\ncluster.empty.upstream_rq_time: No recorded values\n');
  assert.match(statsText(stats, 'summary'), /^cluster\.c\.upstream_rq_time: P0\(nan,/m);
  assert.deepEqual(statsJson(stats, 'cumulative'), {
    stats: [
      {
        histograms: [
          {
            name: 'cluster.c.upstream_rq_time',
            buckets: [
              { upper_bound: 0.5, interval: 0, cumulative: 1 },
              { upper_bound: 5, interval: 0, cumulative: 4 },
              { upper_bound: 1_800_000, interval: 0, cumulative: 4 },
              { upper_bound: 3_600_000, interval: 0, cumulative: 5 },
            ],
          },
          { name: 'cluster.empty.upstream_rq_time', buckets: [0.5, 5, 1_800_000, 3_600_000].map((b) => ({ upper_bound: b, interval: 0, cumulative: 0 })) },
        ],
      },
    ],
  });
  assert.deepEqual((statsJson(stats, 'disjoint') as any).stats[0].histograms[0].buckets.map((b: { cumulative: number }) => b.cumulative), [1, 3, 0, 1]);
});

test('through a running sidecar: /stats?histogram_buckets prints buckets; bad values and modes the sidecar cannot serve are 400s saying why, on /stats and /stats/prometheus', { timeout: 30_000 }, async () => {
  const { sc } = await callerToApi(closers);
  for (let i = 0; i < 3; i++) assert.equal((await get(sc.outboundPort, 'api', '/')).status, 200);

  const name = 'cluster.outbound|7000||api.default.upstream_rq_time';
  const line = (await admin(sc.adminPort, `/stats?filter=${encodeURIComponent('api\\.default\\.upstream_rq_time$')}&histogram_buckets=cumulative`)).body.trimEnd();
  assert.match(line, new RegExp(`^${name.replace(/[.|]/g, '\\$&')}: B0\\.5\\(0,\\d\\) B1\\(0,\\d\\) B5\\(0,\\d\\) .* B300000\\(0,3\\) B600000\\(0,3\\) B1\\.8e\\+06\\(0,3\\) B3\\.6e\\+06\\(0,3\\)$`));
  const json = JSON.parse((await admin(sc.adminPort, `/stats?format=json&type=Histograms&histogram_buckets=disjoint&filter=${encodeURIComponent('api\\.default')}`)).body);
  const buckets = json.stats[0].histograms.find((h: { name: string }) => h.name === name).buckets as { upper_bound: number; cumulative: number }[];
  assert.equal(buckets.length, 19);
  assert.equal(buckets.reduce((n, b) => n + b.cumulative, 0), 3, 'disjoint counts add up to the three requests');
  // summary and none are the default quantiles
  assert.match((await admin(sc.adminPort, '/stats?histogram_buckets=none&type=Histograms')).body, /upstream_rq_time: P0\(nan,/);

  const bad = await admin(sc.adminPort, '/stats?histogram_buckets=bogus');
  assert.deepEqual(bad, { status: 400, body: 'usage: /stats?histogram_buckets=(cumulative|disjoint|detailed|summary)\n' });
  const detailed = await admin(sc.adminPort, '/stats?histogram_buckets=detailed');
  assert.equal(detailed.status, 400);
  assert.match(detailed.body, /^histogram_buckets: detailed is not served by the weft sidecar/);

  // /stats/prometheus takes Envoy's parameter: cumulative is what it writes anyway
  const cumulative = await admin(sc.adminPort, '/stats/prometheus?histogram_buckets=cumulative');
  assert.equal(cumulative.status, 200);
  assert.match(cumulative.body, /^envoy_cluster_upstream_rq_time_bucket\{le="\+Inf",envoy_cluster_name="outbound\|7000\|\|api\.default"\} 3$/m);
  assert.deepEqual(await admin(sc.adminPort, '/stats/prometheus?histogram_buckets=disjoint'), { status: 400, body: 'unsupported prometheus histogram bucket mode\n' });
  assert.deepEqual(await admin(sc.adminPort, '/stats?format=prometheus&histogram_buckets=detailed'), { status: 400, body: 'unsupported prometheus histogram bucket mode\n' });
  const summary = await admin(sc.adminPort, '/stats/prometheus?histogram_buckets=summary');
  assert.equal(summary.status, 400);
  assert.match(summary.body, /^histogram_buckets: summary is not served by the weft sidecar \(Envoy's summaries are per stats-flush interval/);
});
