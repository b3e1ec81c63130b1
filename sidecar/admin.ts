// The local admin port, as Envoy's, in Envoy's formats: /ready (200 once the
// first full config is applied), /stats, /stats/prometheus, /config_dump, /clusters
// (hosts, their health flags and counters), /listeners, /memory, /server_info, /certs,
// /init_dump, /help, POST /drain_listeners, /healthcheck/fail and /ok, /logging,
// /reset_counters, /cpuprofiler, /heapprofiler, /quitquitquit; and
// the weft sidecar's own /xds (the ADS stream's state).

import http from 'node:http';
import { readFileSync } from 'node:fs';
import { bootstrapConfigDump, nodeJson, type SidecarBootstrap } from './admin-bootstrap.ts';
import { certsJson } from './admin-certs.ts';
import { parseConfigDumpQuery, shapeConfigDump } from './admin-config-dump.ts';
import { ProfilerError, type Profilers } from './admin-profiler.ts';
import { clustersJson, clustersText } from './admin-clusters.ts';
import { collectStats, parseHistogramBuckets, statsJson, statsText, type StatKind } from './admin-stats.ts';
import type { DataPlane } from './dataplane.ts';
import type { SeriesFilter } from './metrics.ts';
import { MAX_TAP_SESSIONS, parseTapQuery } from './tap.ts';

/** As Envoy's version string names its build: weft's package version, then the runtime. */
const VERSION = `weft-sidecar/${(JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version}/node-${process.version}`;

export interface AdminInfo {
  node: { id: string; cluster: string };
  xds: () => { connected: boolean; lastError?: string };
  /** POST /quitquitquit: the sidecar shuts down (weft sidecar exits). */
  quit?: () => void;
  /** How long /drain_listeners?graceful drains before the listeners stop (--drain-time-s; Envoy's default 600 s). */
  drainTimeMs?: number;
  /** /cpuprofiler and /heapprofiler; without it they answer 501. */
  profilers?: Profilers;
  /** The sidecar's bootstrap (node metadata, xDS address, admin address): /config_dump's BootstrapConfigDump and /server_info's node. */
  bootstrap?: () => SidecarBootstrap;
}

/** Envoy's /help lines for the endpoints the sidecar serves. */
const HELP: [string, string][] = [
  ['/certs', 'print certs on machine'],
  ['/clusters', 'upstream cluster status'],
  ['/cpuprofiler', 'enable/disable the CPU profiler (?enable=y starts, ?enable=n stops and writes a .cpuprofile to --profile-path)'],
  ['/config_dump', 'dump current Envoy configs (?resource=FIELD: that field\'s items; ?mask=PATHS: a FieldMask; ?name_regex=RE: only matching names; ?include_eds)'],
  ['/drain_listeners', 'drain listeners (?inboundonly: only INBOUND ones; ?graceful: discourage requests for --drain-time-s first; ?skip_exit: accepted, the sidecar never exits after a drain)'],
  ['/healthcheck/fail', 'cause the server to fail health checks'],
  ['/healthcheck/ok', 'cause the server to pass health checks'],
  ['/heapprofiler', 'enable/disable the heap profiler (?enable=y starts sampling, ?enable=n stops and writes a .heapprofile to --profile-path)'],
  ['/help', 'print out list of admin commands'],
  ['/init_dump', 'dump current Envoy init manager information (experimental)'],
  ['/listeners', 'print listener info'],
  ['/logging', 'query/change logging levels (?level=L for every logger, ?NAME=L for one, ?paths=NAME:L,NAME:L; loggers: config, wasm)'],
  ['/memory', 'print current allocation/heap usage'],
  ['/quitquitquit', 'exit the server'],
  ['/ready', 'print server state, return 200 if LIVE, otherwise return 503'],
  ['/reset_counters', 'reset all counters to zero'],
  ['/runtime', 'print runtime values: the layers, and each key\'s value in each layer and the final one'],
  ['/runtime_modify', 'set runtime values in the admin layer (?key1=value1&key2=value2, or as form values); an empty value removes the override'],
  ['/server_info', 'print server version/status information'],
  ['/stats', 'print server stats (?filter=REGEX; ?usedonly; ?type=Counters|Gauges|Histograms; ?format=json|prometheus; ?histogram_buckets=cumulative|disjoint: bucket counts in place of quantiles)'],
  ['/stats/prometheus', 'print server stats in prometheus format (?filter=REGEX on the Envoy stat name; ?usedonly: only stats written at least once; ?histogram_buckets=cumulative, the default)'],
  ['/tap', "the weft sidecar's live requests (GET; not Envoy's POST /tap): one JSON line per completed request, headers included, credentials redacted (?listener= ?method= ?authority= ?path_prefix= ?status=503|5xx ?max=N)"],
  ['/xds', "the weft sidecar's ADS connection: whether it is up, and its last error"],
];
const POST_ONLY = new Set(['/quitquitquit', '/drain_listeners', '/healthcheck/fail', '/healthcheck/ok', '/logging', '/reset_counters', '/cpuprofiler', '/heapprofiler', '/runtime_modify']);
/** Envoy's RuntimeHandler answer to a /runtime_modify without parameters. */
const RUNTIME_MODIFY_USAGE = 'usage: /runtime_modify?key1=value1&key2=value2&keyN=valueN\n       or send the parameters as form values\nuse an empty value to remove a previously added override';
const DRAIN_PARAMS = ['inboundonly', 'graceful', 'skip_exit'];

/** Envoy's /help: `admin commands are:`, then a line per endpoint, those that need a POST marked ` (POST)`. */
function help(): string {
  return `admin commands are:\n${HELP.map(([p, d]) => `  ${p}${POST_ONLY.has(p) ? ' (POST)' : ''}: ${d}\n`).join('')}`;
}
/** Envoy's --drain-time-s default. */
export const DEFAULT_DRAIN_TIME_MS = 600_000;

/** What /stats/prometheus takes (Envoy's; text_readouts is accepted, the sidecar has none). */
const PROMETHEUS_PARAMS = ['filter', 'usedonly', 'text_readouts', 'histogram_buckets'];

/** /stats/prometheus?histogram_buckets: Envoy's cumulative (the default) is what the sidecar writes; anything else is the 400 body. */
function prometheusBuckets(value: string | null): string | undefined {
  if (value === null || value === '' || value === 'cumulative') return undefined;
  // Envoy's own answer for these two (PrometheusStatsFormatter::validateParams).
  if (value === 'disjoint' || value === 'detailed') return 'unsupported prometheus histogram bucket mode\n';
  // Envoy's summary gives each flush interval's quantiles, sum and count; the sidecar keeps no intervals.
  if (value === 'summary' || value === 'none') return `histogram_buckets: ${value} is not served by the weft sidecar (Envoy's summaries are per stats-flush interval, which the sidecar does not keep); use cumulative, the default, and histogram_quantile()\n`;
  return 'usage: /stats?histogram_buckets=(cumulative|disjoint|detailed|summary)\n';
}

/** ?filter=REGEX and ?usedonly, shared by every /stats format; a string is the 400 body. */
function statsFilter(params: URLSearchParams): { filter?: RegExp; usedOnly: boolean } | string {
  const f = params.get('filter');
  let filter: RegExp | undefined;
  if (f) {
    try {
      filter = new RegExp(f);
    } catch (e) {
      return `filter: not a regular expression: ${(e as Error).message}\n`;
    }
  }
  return { filter, usedOnly: params.has('usedonly') };
}

/**
 * The query string as Envoy's admin reads it (Http::Utility::parseAndDecodeQueryString): `&`-separated `key=value`
 * pairs, %XX sequences decoded, and `+` left a plus, not a space as in a form. So `?filter=upstream_rq_\d+` is
 * the regex it says, not `upstream_rq_\d ` (which matches nothing). A % not followed by two hex digits stays as it is.
 */
export function adminQuery(path: string): URLSearchParams {
  const params = new URLSearchParams();
  const at = path.indexOf('?');
  if (at < 0) return params;
  const decode = (text: string) => {
    const bytes: number[] = [];
    const raw = Buffer.from(text, 'utf8');
    for (let i = 0; i < raw.length; i++) {
      const hex = raw[i] === 0x25 && i + 2 < raw.length ? raw.subarray(i + 1, i + 3).toString('latin1') : '';
      if (/^[0-9a-fA-F]{2}$/.test(hex)) {
        bytes.push(parseInt(hex, 16));
        i += 2;
      } else bytes.push(raw[i]!);
    }
    return Buffer.from(bytes).toString('utf8');
  };
  for (const pair of path.slice(at + 1).split('#')[0]!.split('&')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    params.append(decode(eq < 0 ? pair : pair.slice(0, eq)), eq < 0 ? '' : decode(pair.slice(eq + 1)));
  }
  return params;
}

/** The 400 body for the first query parameter an endpoint does not take, naming it and what it takes; undefined if all are known. */
function unknownParameter(params: URLSearchParams, known: readonly string[], takes: string): string | undefined {
  for (const k of params.keys()) if (!known.includes(k)) return `${k}: unknown parameter (${takes})\n`;
  return undefined;
}

export function createAdminServer(dp: DataPlane, info: AdminInfo): http.Server {
  return http.createServer((req, res) => {
    const url = { pathname: new URL(req.url ?? '/', 'http://admin').pathname, searchParams: adminQuery(req.url ?? '/') };
    const send = (status: number, body: string, type = 'text/plain; charset=utf-8') => {
      res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
      res.end(body);
    };
    // Envoy's endpoint carries wasm plugins' custom metrics next to its own. As in Envoy,
    // ?filter matches the Envoy stat name (cluster.outbound|8081||orders.default.upstream_rq_total),
    // not the Prometheus one, and ?usedonly leaves out what was never written; a family with
    // nothing left is left out whole.
    const prometheus = ({ filter, usedOnly }: { filter?: RegExp; usedOnly: boolean }) => {
      const keep: SeriesFilter | undefined = filter || usedOnly ? (name, used) => (!usedOnly || used) && (!filter || filter.test(name)) : undefined;
      return send(200, dp.stats.registry.metrics(keep) + dp.wasmPrometheus(keep), dp.stats.registry.contentType);
    };
    // As Envoy's admin, whose HTTP/1 codec takes no HTTP/1.0 (its http1 settings leave accept_http_10 off): 426.
    // A probe written `GET /ready HTTP/1.0` works against a lenient server and never against Envoy.
    if (req.httpVersionMajor === 1 && req.httpVersionMinor === 0) {
      res.writeHead(426, { 'content-length': 0, connection: 'close' });
      return res.end();
    }
    // As Envoy: what changes the proxy's state needs a POST, and the 405 says so in Envoy's words.
    if (POST_ONLY.has(url.pathname) && req.method !== 'POST') return send(405, `Method ${req.method} not allowed, POST required.`);
    switch (url.pathname) {
      case '/help':
        return send(200, help());
      case '/certs':
        // Envoy's Certificates: per TLS context in use, the trust bundle and the chain presented.
        return send(200, JSON.stringify(certsJson(dp.tlsInUse(), dp.tls), null, 2) + '\n', 'application/json');
      case '/quitquitquit':
        // Answered first, then the shutdown (listeners, then the exports of logs and spans).
        res.once('finish', () => info.quit?.());
        return send(200, 'OK\n');
      case '/drain_listeners': {
        // As Envoy's: stop listening now, or with ?graceful discourage requests (HTTP/1 connection: close,
        // HTTP/2 GOAWAY) for the drain time first. /ready says DRAINING from here on.
        const bad = unknownParameter(url.searchParams, DRAIN_PARAMS, 'drain_listeners takes inboundonly, graceful, skip_exit');
        if (bad) return send(400, bad);
        dp.drainListeners(url.searchParams.has('inboundonly') ? 'inbound' : 'all', url.searchParams.has('graceful'), info.drainTimeMs ?? DEFAULT_DRAIN_TIME_MS);
        return send(200, 'OK\n');
      }
      case '/healthcheck/fail':
      case '/healthcheck/ok':
        // As Envoy's: while failed the server is DRAINING (/ready 503) and every listener asks each connection
        // to close after its next response, still accepting new ones; /healthcheck/ok undoes it.
        dp.failHealthCheck(url.pathname === '/healthcheck/fail');
        return send(200, 'OK\n');
      case '/logging': {
        // As Envoy's: without parameters the active loggers; ?level=, ?NAME=, ?paths= change them first.
        const error = dp.loggers.change(url.searchParams);
        if (error) return send(400, `${error}\n`);
        return send(200, dp.loggers.list());
      }
      case '/init_dump': {
        // Envoy's UnreadyTargetsDumps: what the sidecar still waits for before it is ready (or, later, for
        // resources its listeners and clusters newly name), each with why when its last update was NACKed.
        const bad = unknownParameter(url.searchParams, [], 'init_dump takes none');
        if (bad) return send(400, bad);
        const targets = dp.unready();
        return send(200, JSON.stringify(targets.length ? { unready_targets_dumps: [{ name: 'init manager Server', target_names: targets }] } : {}, null, 2) + '\n', 'application/json');
      }
      case '/runtime': {
        // Envoy's RuntimeHandler: {"entries": {KEY: {"final_value", "layer_values": [one per layer, "" where unset]}}, "layers": [names]}.
        const { layers, entries } = dp.runtime.dump();
        return send(200, JSON.stringify({ entries, layers }, null, 2) + '\n', 'application/json');
      }
      case '/runtime_modify': {
        // As Envoy's: the query's key=value pairs, or without any the form values of an x-www-form-urlencoded body;
        // none is a 400 with Envoy's usage text, and without an admin layer Envoy's 503 "No admin layer specified".
        const apply = (params: URLSearchParams) => {
          if ([...params.keys()].length === 0) return send(400, RUNTIME_MODIFY_USAGE);
          // A key given twice takes its first value, as Envoy's.
          const values = new Map<string, string>();
          for (const [k, v] of params) if (!values.has(k)) values.set(k, v);
          const error = dp.runtime.merge(values);
          if (error) return send(503, error);
          return send(200, 'OK\n');
        };
        if ([...url.searchParams.keys()].length > 0 || !/^application\/x-www-form-urlencoded\b/i.test(req.headers['content-type'] ?? '')) return apply(url.searchParams);
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => apply(adminQuery(`?${Buffer.concat(chunks).toString('utf8')}`)));
        return;
      }
      case '/reset_counters':
        // As Envoy's: counters only (the sidecar's and wasm filters'); gauges and histograms keep their values.
        dp.resetCounters();
        return send(200, 'OK\n');
      case '/cpuprofiler':
      case '/heapprofiler': {
        // As Envoy's: ?enable=y starts, ?enable=n stops; the answer says where the profile was written.
        const kind = url.pathname === '/cpuprofiler' ? 'cpu' : 'heap';
        const bad = unknownParameter(url.searchParams, ['enable'], `${url.pathname.slice(1)} takes enable=y or enable=n`);
        if (bad) return send(400, bad);
        const enable = url.searchParams.get('enable');
        if (enable !== 'y' && enable !== 'n') return send(400, `enable: must be y or n, got ${JSON.stringify(enable)}\n`);
        const profilers = info.profilers;
        if (!profilers) return send(501, 'profiling is not available in this process\n');
        const done = enable === 'y' ? profilers.start(kind).then(() => `OK: the ${kind} profiler is running\n`) : profilers.stop(kind).then((file) => `OK: wrote ${file}\n`);
        done.then(
          (body) => send(200, body),
          (e: Error) => send(e instanceof ProfilerError ? 400 : 500, `${e.message}\n`),
        );
        return;
      }
      case '/ready': {
        const state = dp.state();
        return send(state === 'LIVE' ? 200 : 503, `${state}\n`);
      }
      case '/memory': {
        // Envoy's Memory message (uint64 fields as JSON strings), the fields a Node process has.
        const m = dp.stats.refreshServer();
        return send(200, JSON.stringify({ allocated: String(m.allocated), heap_size: String(m.heapSize), total_physical_bytes: String(m.physical) }, null, 2) + '\n', 'application/json');
      }
      case '/stats': {
        dp.stats.refreshServer();
        // Envoy's own stat names and text (or ?format=json); ?format=prometheus is /stats/prometheus.
        const format = url.searchParams.get('format') ?? 'text';
        const filter = statsFilter(url.searchParams);
        if (typeof filter === 'string') return send(400, filter);
        if (format === 'prometheus') {
          const bad = prometheusBuckets(url.searchParams.get('histogram_buckets'));
          return bad ? send(400, bad) : prometheus(filter);
        }
        if (format !== 'text' && format !== 'json') return send(400, `format: must be text, json or prometheus, got ${JSON.stringify(format)}\n`);
        const type = url.searchParams.get('type') ?? 'All';
        // Envoy's answer to any other value; TextReadouts is Envoy's too (the sidecar has none: nothing is listed).
        if (!['All', 'Counters', 'Gauges', 'Histograms', 'TextReadouts'].includes(type)) return send(400, `invalid &type= param: type must be All, Counters, Gauges, Histograms or TextReadouts, got ${JSON.stringify(type)}\n`);
        const buckets = parseHistogramBuckets(url.searchParams.get('histogram_buckets'));
        if ('error' in buckets) return send(400, buckets.error);
        const stats = collectStats(dp.stats.registry.all(), dp.wasmMetrics(), { filter: filter.filter, usedOnly: filter.usedOnly, type: type === 'All' ? undefined : (type as StatKind) });
        return format === 'json' ? send(200, JSON.stringify(statsJson(stats, buckets.mode), null, 2) + '\n', 'application/json') : send(200, statsText(stats, buckets.mode));
      }
      case '/stats/prometheus': {
        dp.stats.refreshServer();
        const bad = unknownParameter(url.searchParams, PROMETHEUS_PARAMS, `it takes ${PROMETHEUS_PARAMS.join(', ')}`) ?? prometheusBuckets(url.searchParams.get('histogram_buckets'));
        if (bad) return send(400, bad);
        const filter = statsFilter(url.searchParams);
        return typeof filter === 'string' ? send(400, filter) : prometheus(filter);
      }
      case '/tap': {
        if (req.method !== 'GET') return send(405, 'GET /tap streams requests (Envoy\'s POST /tap needs the tap filter, which the sidecar does not run)\n');
        const query = parseTapQuery(url.searchParams);
        if (typeof query === 'string') return send(400, query);
        const sink = {
          get buffered() {
            return res.writableLength;
          },
          write: (line: string) => void res.write(line),
          end: () => res.end(),
        };
        const close = dp.tap.open(query, sink);
        if (!close) return send(503, `tap: ${MAX_TAP_SESSIONS} sessions are open already\n`);
        res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
        res.flushHeaders();
        res.once('close', close);
        return;
      }
      case '/config_dump': {
        // Envoy's ConfigDump, so tools that read Envoy's read this: ?include_eds adds the endpoints, ?resource=
        // dumps one repeated field's items, ?mask= trims with a FieldMask, ?name_regex= keeps the names it matches.
        const q = parseConfigDumpQuery(url.searchParams);
        if ('error' in q) return send(400, `${q.error}\n`);
        const dump = dp.configDump(info.node, q.includeEds);
        if (info.bootstrap) dump.configs[0] = bootstrapConfigDump(info.bootstrap());
        const out = shapeConfigDump(dump, q);
        if ('error' in out) return send(out.status, `${out.error}\n`);
        return send(200, JSON.stringify(out, null, 2) + '\n', 'application/json');
      }
      case '/listeners': {
        // Envoy's: name::address:port lines, or ListenerStatuses with ?format=json.
        const bound = dp.listeners.bound();
        if (url.searchParams.get('format') === 'json') {
          return send(200, JSON.stringify({ listener_statuses: bound.map((l) => ({ name: l.name, local_address: { socket_address: { address: l.address, port_value: l.port } } })) }, null, 2) + '\n', 'application/json');
        }
        return send(200, bound.map((l) => `${l.name}::${l.address}:${l.port}\n`).join(''));
      }
      case '/server_info':
        // Envoy's ServerInfo fields that apply: state (LIVE once the first full config is applied), uptime, the node.
        return send(200, JSON.stringify({ version: VERSION, state: dp.state(), uptime_current_epoch: `${Math.floor(process.uptime())}s`, uptime_all_epochs: `${Math.floor(process.uptime())}s`, node: info.bootstrap ? nodeJson(info.bootstrap()) : info.node }, null, 2) + '\n', 'application/json');
      case '/xds':
        // The weft sidecar's own: whether its ADS stream is up, and the last error.
        return send(200, JSON.stringify({ node: info.node, ready: dp.ready(), ...info.xds() }, null, 2) + '\n', 'application/json');
      case '/clusters':
        // Envoy's text lines (cluster::host::health_flags::...), or its ClusterStatuses with ?format=json.
        if (url.searchParams.get('format') === 'json') return send(200, JSON.stringify(clustersJson(dp.clusters), null, 2) + '\n', 'application/json');
        return send(200, clustersText(dp.clusters));
      default:
        return send(404, `invalid path. ${help()}`);
    }
  });
}
