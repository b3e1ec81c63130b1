// /stats/prometheus read as Prometheus reads it: the whole scrape through a
// strict parser of the text exposition format (version 0.0.4), with traffic
// through two wasm filters that define the same metrics, so that a scrape
// that Prometheus would refuse (a second # TYPE for a family, a family split
// in two, a duplicate series or label, a bad escape, a histogram whose buckets
// are not cumulative or lack +Inf, _sum or _count) fails here first.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { defaultTranslator } from '../../control/xds/index.ts';
import { TestMesh, freePort, get, instance, load, service, startApp } from './harness.ts';

const telemetryWasm = fileURLToPath(new URL('../../filters/dist/telemetry.wasm', import.meta.url));

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

interface Family {
  type: string;
  help?: string;
  samples: { name: string; labels: Map<string, string>; value: number }[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** The sample's family: its name less the histogram (or summary) suffix, when that family is one. */
function familyOf(name: string, families: Map<string, Family>): string {
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (!name.endsWith(suffix)) continue;
    const base = name.slice(0, -suffix.length);
    const f = families.get(base);
    if (f && (f.type === 'histogram' || (f.type === 'summary' && suffix !== '_bucket'))) return base;
  }
  return name;
}

/** Labels of `{...}` from `at`: every value a quoted string with only \\, \" and \n escapes. Returns the map and where it ended. */
function parseLabels(line: string, at: number): { labels: Map<string, string>; end: number } {
  const labels = new Map<string, string>();
  let i = at + 1;
  while (line[i] !== '}') {
    const eq = line.indexOf('=', i);
    assert.ok(eq > i, `a label name in ${JSON.stringify(line)}`);
    const name = line.slice(i, eq);
    assert.match(name, LABEL_NAME, `label name ${JSON.stringify(name)} in ${JSON.stringify(line)}`);
    assert.ok(!labels.has(name), `label ${name} twice in ${JSON.stringify(line)}`);
    assert.equal(line[eq + 1], '"', `label ${name}'s value is quoted in ${JSON.stringify(line)}`);
    let value = '';
    let j = eq + 2;
    for (;;) {
      const c = line[j];
      assert.ok(c !== undefined, `label ${name}'s value ends in ${JSON.stringify(line)}`);
      if (c === '"') break;
      if (c === '\\') {
        const next = line[j + 1];
        assert.ok(next === '\\' || next === '"' || next === 'n', `escape \\${next} in ${JSON.stringify(line)}`);
        value += next === 'n' ? '\n' : next;
        j += 2;
        continue;
      }
      value += c;
      j++;
    }
    labels.set(name, value);
    i = j + 1;
    if (line[i] === ',') i++;
    else assert.equal(line[i], '}', `labels end with } in ${JSON.stringify(line)}`);
  }
  return { labels, end: i + 1 };
}

function parseValue(text: string, line: string): number {
  if (text === '+Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  if (text === 'NaN') return NaN;
  assert.match(text, /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/, `value ${JSON.stringify(text)} in ${JSON.stringify(line)}`);
  return Number(text);
}

/** A strict reading of the text format; throws (assert) at the first line Prometheus would refuse. */
export function parseExposition(text: string): Map<string, Family> {
  assert.ok(text === '' || text.endsWith('\n'), 'the scrape ends with a newline');
  const families = new Map<string, Family>();
  const finished = new Set<string>();
  let current: string | undefined;
  const open = (name: string) => {
    if (current !== name) {
      assert.ok(!finished.has(name), `family ${name} comes back after another one began (its lines must be one group)`);
      if (current) finished.add(current);
      current = name;
    }
  };
  for (const line of text.split('\n')) {
    if (line === '') continue;
    if (line.startsWith('#')) {
      const meta = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (!meta) continue; // a plain comment
      const [, kind, name, rest] = meta as unknown as [string, string, string, string];
      assert.match(name, METRIC_NAME, `metric name in ${JSON.stringify(line)}`);
      open(name);
      const f = families.get(name) ?? { type: 'untyped', samples: [] };
      families.set(name, f);
      if (kind === 'TYPE') {
        assert.ok(['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(rest), `type in ${JSON.stringify(line)}`);
        assert.equal(f.samples.length, 0, `# TYPE ${name} after its samples`);
        assert.ok(!(f as { typed?: boolean }).typed, `a second # TYPE for ${name}`);
        (f as { typed?: boolean }).typed = true;
        f.type = rest;
      } else {
        assert.equal(f.help, undefined, `a second # HELP for ${name}`);
        f.help = rest;
      }
      continue;
    }
    const brace = line.indexOf('{');
    const space = line.indexOf(' ');
    const nameEnd = brace >= 0 && brace < space ? brace : space;
    const name = line.slice(0, nameEnd);
    assert.match(name, METRIC_NAME, `metric name in ${JSON.stringify(line)}`);
    let labels = new Map<string, string>();
    let rest = line.slice(nameEnd);
    if (line[nameEnd] === '{') {
      const parsed = parseLabels(line, nameEnd);
      labels = parsed.labels;
      rest = line.slice(parsed.end);
    }
    const parts = rest.trim().split(/ +/);
    assert.ok(rest.startsWith(' ') && (parts.length === 1 || parts.length === 2), `value (and timestamp) in ${JSON.stringify(line)}`);
    const value = parseValue(parts[0]!, line);
    const family = familyOf(name, families);
    open(family);
    const f = families.get(family) ?? { type: 'untyped', samples: [] };
    families.set(family, f);
    f.samples.push({ name, labels, value });
  }
  // Per family: no series twice, counters not negative, histograms whole.
  for (const [name, f] of families) {
    const seen = new Set<string>();
    for (const s of f.samples) {
      const key = `${s.name}{${[...s.labels].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(',')}}`;
      assert.ok(!seen.has(key), `series ${key} twice`);
      seen.add(key);
      if (f.type === 'counter') assert.ok(s.value >= 0, `counter ${key} is ${s.value}`);
    }
    if (f.type !== 'histogram') continue;
    const groups = new Map<string, { buckets: [number, number][]; sum?: number; count?: number }>();
    for (const s of f.samples) {
      const others = [...s.labels].filter(([k]) => k !== 'le').sort(([a], [b]) => (a < b ? -1 : 1));
      const key = JSON.stringify(others);
      const g = groups.get(key) ?? { buckets: [] };
      groups.set(key, g);
      if (s.name === `${name}_bucket`) {
        assert.ok(s.labels.has('le'), `${name}_bucket without le`);
        g.buckets.push([parseValue(s.labels.get('le')!, s.labels.get('le')!), s.value]);
      } else if (s.name === `${name}_sum`) g.sum = s.value;
      else if (s.name === `${name}_count`) g.count = s.value;
      else assert.fail(`${s.name} in histogram ${name}`);
    }
    for (const [key, g] of groups) {
      assert.ok(g.sum !== undefined && g.count !== undefined, `${name}${key}: _sum and _count`);
      const les = g.buckets.map(([le]) => le);
      assert.deepEqual(les, [...les].sort((a, b) => a - b), `${name}${key}: buckets by le`);
      assert.equal(les.at(-1), Infinity, `${name}${key}: ends with le="+Inf"`);
      for (let i = 1; i < g.buckets.length; i++) assert.ok(g.buckets[i]![1] >= g.buckets[i - 1]![1], `${name}${key}: cumulative buckets`);
      assert.equal(g.buckets.at(-1)![1], g.count, `${name}${key}: +Inf equals _count`);
    }
  }
  return families;
}

test('the parser refuses what Prometheus refuses', () => {
  assert.throws(() => parseExposition('# TYPE a counter\n# TYPE a gauge\na 1\n'), /a second # TYPE/);
  assert.throws(() => parseExposition('# TYPE a counter\na 1\n# TYPE a counter\n'), /after its samples/);
  assert.throws(() => parseExposition('# TYPE a counter\na 1\n# TYPE b counter\nb 1\na{x="1"} 2\n'), /comes back/);
  assert.throws(() => parseExposition('a{x="1",x="2"} 1\n'), /label x twice/);
  assert.throws(() => parseExposition('a{x="1"} 1\na{x="1"} 2\n'), /twice/);
  assert.throws(() => parseExposition('a{x="\\t"} 1\n'), /escape/);
  assert.throws(() => parseExposition('# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n'), /cumulative/);
  assert.throws(() => parseExposition('# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1\n'), /\+Inf/);
  assert.ok(parseExposition('# HELP a the \\\\ help\n# TYPE a counter\na{x="q\\"\\n\\\\"} 1\n\n# TYPE b gauge\nb -1.5e+3\n').get('a')!.samples[0]!.labels.get('x') === 'q"\n\\');
});

test('a whole /stats/prometheus scrape, with two wasm filters defining the same metrics, is valid text exposition; so are ?usedonly and ?filter', { timeout: 60_000, skip: !existsSync(telemetryWasm) && 'filters/dist/telemetry.wasm not built' }, async () => {
  const bytes = new Uint8Array(readFileSync(telemetryWasm));
  const modules = http.createServer((_req, res) => res.end(bytes));
  await new Promise<void>((r) => modules.listen(0, '127.0.0.1', () => r()));
  closers.push(() => new Promise((r) => modules.close(() => r())));
  const mesh = await TestMesh.start({ translator: defaultTranslator({ wasmBaseUrl: `http://127.0.0.1:${(modules.address() as AddressInfo).port}`, wasmClusterName: 'weft-control' }) });
  closers.push(() => mesh.close());
  const app = await startApp('web', (req, res) => {
    res.statusCode = req.url === '/fail' ? 503 : 200;
    res.end('ok');
  });
  closers.push(() => app.close());
  const inbound = await freePort();
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  mesh.model.update({
    services: [service('web', 7800), service('api', 7900)],
    instances: [instance('web', inbound), instance('api', app.port)],
    filterModules: [{ name: 'telemetry', sha256, size: bytes.length, abiVersion: '0.2.1' }],
    filterBindings: [
      { name: 'web-in', namespace: 'default', service: 'web', direction: 'inbound', filter: 'telemetry', order: 0, config: {}, failurePolicy: 'fail_closed' },
      { name: 'web-out', namespace: 'default', service: 'web', direction: 'outbound', filter: 'telemetry', order: 0, config: {}, failurePolicy: 'fail_closed' },
    ],
  });
  const sc = await mesh.sidecar('web', app.port, { inboundPort: inbound });
  await load(4, 2, () => get(inbound, 'web'));
  await get(inbound, 'web', '/fail');
  await get(sc.outboundPort, 'api', '/');
  await get(sc.outboundPort, 'api', '/fail');
  await get(sc.outboundPort, 'nowhere', '/');

  const scrape = async (query = '') => {
    const res = await fetch(`http://127.0.0.1:${sc.adminPort}/stats/prometheus${query}`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    return res.text();
  };
  const families = parseExposition(await scrape());
  // What is in it: Envoy's families and both filters' series under one family each.
  assert.equal(families.get('envoy_cluster_upstream_rq_total')?.type, 'counter');
  assert.equal(families.get('envoy_cluster_upstream_rq_time')?.type, 'histogram');
  const requests = families.get('weft_requests_total');
  assert.equal(requests?.type, 'counter');
  assert.equal(new Set(requests!.samples.map((s) => s.labels.get('plugin'))).size, 2, 'one family, the series of each filter apart by their plugin label');
  assert.equal(families.get('weft_request_duration_ms')?.type, 'histogram');

  parseExposition(await scrape('?usedonly'));
  const filtered = parseExposition(await scrape(`?filter=${encodeURIComponent('upstream_rq|wasmcustom')}`));
  assert.ok(filtered.has('weft_requests_total') && filtered.has('envoy_cluster_upstream_rq_total') && !filtered.has('envoy_server_uptime'));
  parseExposition((await (await fetch(`http://127.0.0.1:${sc.adminPort}/stats?format=prometheus&usedonly`)).text()));
});
