// Read-only commands: get, proxy-status, proxy-config, history.
import type { Command } from 'commander';
import type { ProxySync, ResourceSync } from '../api/proxy-sync.ts';
import { ApiClient, CliError, type ConnectionOptions } from './client.ts';
import { lineDiff } from './diff-text.ts';
import { genericKind, KIND_NAMES, lookupKind, toManifest } from './kinds.ts';
import { jsonTerminalSafe, parseFormat, readInputFile, table, terminalSafe, toJson, toYaml, toYamlDocuments, waitMs } from './output.ts';

type Row = Record<string, unknown>;

export const CONFIG_TYPES = ['listeners', 'routes', 'clusters', 'endpoints', 'extension-configs'] as const;

export interface ProxyView {
  id: string;
  service: string;
  namespace: string;
  kind: string;
  status: string;
  stream?: string;
  connectedSince?: string;
  versions?: Record<string, string>;
  nacks?: { type: string; message: string; version?: string; time?: string }[];
  refused?: { path: string; message: string; revision: number }[];
}

export interface RevisionView {
  revision: number;
  time: string;
  actor: string;
  summary: string;
  changes: { op: string; kind: string; namespace: string; name: string }[];
}

export function registerReadCommands(program: Command, conn: () => ConnectionOptions): void {
  program
    .command('get')
    .description(`list objects of a kind, or show one by name. Kinds: ${KIND_NAMES}`)
    .argument('<kind>', 'object kind')
    .argument('[name]', 'object name (for instances: the service whose instances to list)')
    .option('-o, --output <format>', 'table, yaml or json', 'table')
    .option('-n, --namespace <ns>', 'namespace: of a named object (default "default"); when listing, list only this namespace (default: every namespace)')
    .action(async (kindName: string, name: string | undefined, opts: { output: string; namespace?: string }) => {
      const format = parseFormat(opts.output);
      const known = lookupKind(kindName);
      const kind = known ?? genericKind(kindName);
      const unknownKind = () => new CliError(`error: unknown kind "${kindName}"; known kinds: ${KIND_NAMES}`, 2);
      if (!kind) throw unknownKind();
      if (opts.namespace !== undefined && !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(opts.namespace)) {
        throw new CliError(`error: --namespace must be a DNS label (lowercase letters, digits, '-'), got "${opts.namespace}"`, 2);
      }
      const client = new ApiClient(conn());
      const ns = `namespace=${encodeURIComponent(opts.namespace ?? 'default')}`;
      if (!known) {
        // a kind newer than this CLI's tables: the API is the judge of whether it exists (405: a path, such as /apply, that lists nothing)
        await client.get(`/api/v1${kind.path}`).catch((err: unknown) => {
          throw err instanceof CliError && (err.status === 404 || err.status === 405) ? unknownKind() : err;
        });
      }
      let items: Row[];
      if (name && kind.namedGet) {
        items = [await client.get<Row>(`/api/v1${kind.path}/${encodeURIComponent(name)}?${ns}`)];
      } else if (name && kind.path === '/instances') {
        items = (await client.get<{ items: Row[] }>(`/api/v1/services/${encodeURIComponent(name)}/instances?${ns}`)).items;
      } else {
        items = (await client.get<{ items: Row[] }>(`/api/v1${kind.path}`)).items;
        // -n lists one namespace, as kubectl does (kinds without namespaces, like tokens, are not filtered)
        if (opts.namespace !== undefined) items = items.filter((i) => !('namespace' in i) || i.namespace === opts.namespace);
      }
      const shaped = kind.manifestKind ? items.map((i) => toManifest(kind.manifestKind!, i)) : items;
      if (format === 'json') console.log(toJson(name && kind.namedGet ? shaped[0] : shaped));
      else if (format === 'yaml') console.log(toYamlDocuments(shaped).trimEnd());
      else if (items.length === 0) console.log(`no ${kind.plural ?? kind.path.slice(1).replace(/-/g, ' ')} found${opts.namespace !== undefined ? ` in namespace ${opts.namespace}` : ''}`);
      else console.log(table(kind.headers, items.map(kind.row)));
    });

  program
    .command('proxy-status')
    .description(
      'every proxy the control plane knows: SYNCED, STALE, NACKED (with the error), NOT_SENT (the control plane refuses to build its config, and says why) or DISCONNECTED; ' +
        "with a proxy id, compares that proxy's running config (its admin config dump) with what the control plane means it to run, resource by resource (exit 1 when they differ)",
    )
    .argument('[proxy]', 'proxy id (see weft proxy-status)')
    .option('-o, --output <format>', 'table, yaml or json', 'table')
    .option('-f, --file <file>', "with a proxy id: compare this config dump of it (its admin /config_dump?include_eds; - for stdin) instead of reading the proxy's admin port")
    .option('--wait <seconds>', 'with a proxy id: check again every half second until it is in sync, for up to this long (after an apply, before traffic that needs the change)', waitMs)
    .action(async (proxy: string | undefined, opts: { output: string; file?: string; wait?: number }) => {
      const format = parseFormat(opts.output);
      const client = new ApiClient(conn());
      if (opts.file !== undefined && proxy === undefined) throw new CliError('error: --file needs a proxy id: weft proxy-status PROXY --file DUMP', 2);
      if (opts.wait !== undefined && (proxy === undefined || opts.file !== undefined)) throw new CliError('error: --wait needs a proxy id and no --file: weft proxy-status PROXY --wait SECONDS', 2);
      if (proxy !== undefined) {
        const path = `/api/v1/proxies/${encodeURIComponent(proxy)}/sync`;
        let sync = opts.file === undefined ? await client.get<ProxySync>(path) : await client.request<ProxySync>('POST', path, dumpBody(opts.file));
        // The last report is the one printed: in sync, or what still differs when the time is up.
        for (const deadline = Date.now() + (opts.wait ?? 0); !sync.inSync && Date.now() < deadline; ) {
          await new Promise((r) => setTimeout(r, 500));
          sync = await client.get<ProxySync>(path);
        }
        if (format === 'json') console.log(toJson(sync));
        else if (format === 'yaml') console.log(toYaml(sync).trimEnd());
        else for (const line of formatSync(sync)) console.log(terminalSafe(line));
        if (!sync.inSync) throw new CliError(`proxy ${sync.proxy} is not in sync: ${sync.refused?.length ? "the control plane refuses to build its config" : countStates(sync.resources)}`, 1);
        return;
      }
      const { items } = await client.get<{ items: ProxyView[] }>('/api/v1/proxies');
      if (format === 'json') return console.log(toJson(items));
      if (format === 'yaml') return console.log(toYaml(items).trimEnd());
      if (items.length === 0) return console.log('no proxies connected');
      console.log(
        table(
          ['ID', 'SERVICE', 'KIND', 'STREAM', 'STATUS', 'CDS', 'EDS', 'LDS', 'RDS', 'ECDS'],
          items.map((p) => [p.id, `${p.service}.${p.namespace}`, p.kind, p.stream, p.status, ...['clusters', 'endpoints', 'listeners', 'routes', 'extension-configs'].map((t) => p.versions?.[t])]),
        ),
      );
      for (const p of items) {
        for (const e of p.refused ?? []) console.log(terminalSafe(`${p.id}: NOT SENT (revision ${e.revision}): the control plane refuses this proxy's config: ${e.path}: ${e.message}`));
        for (const n of p.nacks ?? []) console.log(terminalSafe(`${p.id}: NACK ${n.type}${n.version ? ` version ${n.version}` : ''}: ${n.message}`));
      }
    });

  program
    .command('tap')
    .description("the requests going through a proxy now, one line each as they complete (a weft sidecar's live tap; credentials redacted); admin token")
    .argument('<proxy>', 'proxy id (see weft proxy-status)')
    .option('--listener <name>', 'inbound or outbound')
    .option('--method <method>', 'only this method')
    .option('--authority <host>', 'only requests for this authority (the service called, on outbound)')
    .option('--path-prefix <prefix>', 'only paths starting with this')
    .option('--status <code>', 'only this status (503) or class (5xx)')
    .option('--max <n>', 'stop after n requests')
    .option('-o, --output <format>', 'text, or json (one JSON object per line, headers included)', 'text')
    .action(async (proxy: string, opts: { listener?: string; method?: string; authority?: string; pathPrefix?: string; status?: string; max?: string; output: string }) => {
      if (opts.output !== 'text' && opts.output !== 'json') throw new CliError(`error: --output must be text or json (got "${opts.output}")`, 2);
      const query = new URLSearchParams();
      for (const [flag, param] of [['listener', 'listener'], ['method', 'method'], ['authority', 'authority'], ['pathPrefix', 'path_prefix'], ['status', 'status'], ['max', 'max']] as const) {
        if (opts[flag] !== undefined) query.set(param, opts[flag]!);
      }
      const abort = new AbortController();
      process.once('SIGINT', () => abort.abort());
      try {
        for await (const line of new ApiClient(conn()).lines(`/api/v1/proxies/${encodeURIComponent(proxy)}/tap?${query}`, abort.signal)) {
          if (line === '') continue;
          // Written again, not passed on: the line's bytes are the proxy's, and a JSON string may hold a raw C1 (or, from a proxy that is no weft sidecar, raw C0).
          console.log(opts.output === 'json' ? jsonTerminalSafe(JSON.stringify(JSON.parse(line))) : terminalSafe(tapLine(JSON.parse(line) as TapLine)));
        }
      } catch (err) {
        if (abort.signal.aborted) return; // Ctrl-C ends a tap: not an error
        if (err instanceof CliError) throw err;
        // The stream was cut after it began: the proxy (or the control plane) stopped.
        throw new CliError(`error: the tap of proxy ${terminalSafe(proxy)} ended: the stream was cut off (${(err as Error).message}); the proxy or the control plane stopped`, 1);
      }
    });

  program
    .command('proxy-config')
    .description("a proxy's current resources, as Envoy JSON")
    .argument('<proxy>', 'proxy id (see weft proxy-status)')
    .argument('<type>', CONFIG_TYPES.join('|'))
    .option('-o, --output <format>', 'json or yaml', 'json')
    .action(async (proxy: string, type: string, opts: { output: string }) => {
      if (!(CONFIG_TYPES as readonly string[]).includes(type)) {
        throw new CliError(`error: type must be one of ${CONFIG_TYPES.join(', ')} (got "${type}")`, 2);
      }
      const format = parseFormat(opts.output);
      const reply = await new ApiClient(conn()).get<Row>(`/api/v1/proxies/${encodeURIComponent(proxy)}/config?type=${type}`);
      console.log(format === 'yaml' ? toYaml(reply).trimEnd() : toJson(reply));
    });

  program
    .command('history')
    .description('the revision history: number, time, actor and summary of every change')
    .option('-o, --output <format>', 'table, yaml or json', 'table')
    .option('--limit <n>', 'newest N revisions', '50')
    .action(async (opts: { output: string; limit: string }) => {
      const format = parseFormat(opts.output);
      const limit = Number(opts.limit);
      if (!Number.isInteger(limit) || limit < 1) throw new CliError(`error: --limit must be a positive integer (got "${opts.limit}")`, 2);
      const { items } = await new ApiClient(conn()).get<{ items: RevisionView[] }>(`/api/v1/revisions?limit=${limit}`);
      if (format === 'json') return console.log(toJson(items));
      if (format === 'yaml') return console.log(toYaml(items).trimEnd());
      if (items.length === 0) return console.log('no revisions yet');
      console.log(table(['REVISION', 'TIME', 'ACTOR', 'CHANGES', 'SUMMARY'], items.map((r) => [r.revision, r.time, r.actor, r.changes.length, r.summary])));
    });
}

/** A config dump file as a request body (JSON checked here, so a wrong file is named before any request). */
function dumpBody(file: string): { text: string; contentType: string } {
  const text = readInputFile(file);
  try {
    JSON.parse(text);
  } catch (err) {
    throw new CliError(`error: ${file} is not JSON (an Envoy /config_dump?include_eds is): ${(err as Error).message}`);
  }
  return { text, contentType: 'application/json' };
}

/** "2 SYNCED, 1 NACKED": how many resources are in each state, most common first. */
function countStates(resources: { state: string }[]): string {
  const counts = new Map<string, number>();
  for (const r of resources) counts.set(r.state, (counts.get(r.state) ?? 0) + 1);
  return [...counts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).map(([state, n]) => `${n} ${state}`).join(', ') || 'no resources';
}

const EXPLAIN: Record<Exclude<ResourceSync['state'], 'SYNCED' | 'NACKED'>, string> = {
  WARMING: 'held, not active yet (a cluster waiting for endpoints, a listener for its routes)',
  PENDING: 'a newer version is still to be pushed or ACKed',
  MISSING: 'the proxy does not hold it (not pushed yet, or never requested: a listener or cluster naming it was refused)',
  EXTRA: 'the proxy holds it; the control plane no longer sends it',
  DIFFERS: 'the proxy runs something the control plane never sent it',
};

/** `weft proxy-status PROXY`: one line per type, then each resource not SYNCED with why (and a diff where both sides exist). */
export function formatSync(sync: ProxySync): string[] {
  const out = [`proxy ${sync.proxy} (${sync.service}), running config from ${sync.source}`];
  // First what no resource line can say: the control plane builds this proxy nothing (the rest follows from it).
  for (const e of sync.refused ?? []) out.push(`NOT SENT: the control plane refuses to build this proxy's config (revision ${e.revision}): ${e.path}: ${e.message}`);
  const types = Object.keys(sync.summary);
  out.push(
    ...table(
      ['TYPE', 'RESOURCES', 'STATUS'],
      types.map((t) => {
        const of = sync.resources.filter((r) => r.type === t);
        return [t, of.length, of.length === 0 ? '-' : of.every((r) => r.state === 'SYNCED') ? 'SYNCED' : countStates(of)];
      }),
    ).split('\n'),
  );
  for (const r of sync.resources) {
    if (r.state === 'SYNCED') continue;
    const serving = r.runningVersion ? `serving version "${r.runningVersion}"` : 'serving nothing for it';
    if (r.state === 'NACKED') {
      const e = r.error!;
      out.push(`${r.state} ${r.type}/${r.name}: refused${e.version ? ` version "${e.version}"` : ''}${e.time ? ` at ${e.time}` : ''}: ${e.details}; ${serving}`);
    } else {
      out.push(`${r.state} ${r.type}/${r.name}: ${EXPLAIN[r.state]}`);
    }
    if (r.desired !== undefined && r.running !== undefined) {
      out.push('    --- control plane', '    +++ proxy');
      for (const line of lineDiff(JSON.stringify(r.desired, null, 2), JSON.stringify(r.running, null, 2))) out.push(`    ${line}`);
    }
  }
  if (sync.inSync) out.push('in sync: the proxy runs what the control plane means it to run');
  return out;
}

interface TapLine {
  start_time: string;
  listener: string;
  method: string;
  authority: string;
  path: string;
  response_code: number;
  response_flags: string;
  duration_ms: number;
  upstream_host: string;
  response_code_details?: string;
  dropped_before?: number;
}

/** `weft tap`: one line per request, as an access log reads. */
export function tapLine(e: TapLine): string {
  const dropped = e.dropped_before ? ` (${e.dropped_before} not shown: the reader fell behind)` : '';
  // Why the sidecar answered itself (wasm_fail_stream, direct_response, no_healthy_upstream); an upstream's answer says nothing more.
  const why = e.response_code_details && e.response_code_details !== 'via_upstream' ? ` (${e.response_code_details})` : '';
  return `${e.start_time} ${e.listener} ${e.method} ${e.authority}${e.path} -> ${e.response_code} ${e.response_flags}${why} ${e.duration_ms} ms${e.upstream_host ? ` ${e.upstream_host}` : ''}${dropped}`;
}
