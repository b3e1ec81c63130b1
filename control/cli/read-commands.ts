// Read-only commands: get, proxy-status, proxy-config, history.
import type { Command } from 'commander';
import { ApiClient, CliError, type ConnectionOptions } from './client.ts';
import { genericKind, KIND_NAMES, lookupKind, toManifest } from './kinds.ts';
import { parseFormat, table, toJson, toYaml, toYamlDocuments } from './output.ts';

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
    .option('-n, --namespace <ns>', 'namespace of a named object', 'default')
    .action(async (kindName: string, name: string | undefined, opts: { output: string; namespace: string }) => {
      const format = parseFormat(opts.output);
      const known = lookupKind(kindName);
      const kind = known ?? genericKind(kindName);
      const unknownKind = () => new CliError(`error: unknown kind "${kindName}"; known kinds: ${KIND_NAMES}`, 2);
      if (!kind) throw unknownKind();
      const client = new ApiClient(conn());
      const ns = `namespace=${encodeURIComponent(opts.namespace)}`;
      if (!known) {
        // a kind newer than this CLI's tables: the API is the judge of whether it exists
        await client.get(`/api/v1${kind.path}`).catch((err: unknown) => {
          throw err instanceof CliError && err.status === 404 ? unknownKind() : err;
        });
      }
      let items: Row[];
      if (name && kind.namedGet) {
        items = [await client.get<Row>(`/api/v1${kind.path}/${encodeURIComponent(name)}?${ns}`)];
      } else if (name && kind.path === '/instances') {
        items = (await client.get<{ items: Row[] }>(`/api/v1/services/${encodeURIComponent(name)}/instances?${ns}`)).items;
      } else {
        items = (await client.get<{ items: Row[] }>(`/api/v1${kind.path}`)).items;
      }
      const shaped = kind.manifestKind ? items.map((i) => toManifest(kind.manifestKind!, i)) : items;
      if (format === 'json') console.log(toJson(name && kind.namedGet ? shaped[0] : shaped));
      else if (format === 'yaml') console.log(toYamlDocuments(shaped).trimEnd());
      else if (items.length === 0) console.log(`no ${kindName} found`);
      else console.log(table(kind.headers, items.map(kind.row)));
    });

  program
    .command('proxy-status')
    .description('every proxy the control plane knows: SYNCED, STALE, NACKED (with the error) or DISCONNECTED')
    .option('-o, --output <format>', 'table, yaml or json', 'table')
    .action(async (opts: { output: string }) => {
      const format = parseFormat(opts.output);
      const { items } = await new ApiClient(conn()).get<{ items: ProxyView[] }>('/api/v1/proxies');
      if (format === 'json') return console.log(toJson(items));
      if (format === 'yaml') return console.log(toYaml(items).trimEnd());
      if (items.length === 0) return console.log('no proxies connected');
      console.log(
        table(
          ['ID', 'SERVICE', 'KIND', 'STREAM', 'STATUS', 'CDS', 'EDS', 'LDS', 'RDS'],
          items.map((p) => [p.id, `${p.service}.${p.namespace}`, p.kind, p.stream, p.status, ...['clusters', 'endpoints', 'listeners', 'routes'].map((t) => p.versions?.[t])]),
        ),
      );
      for (const p of items) for (const n of p.nacks ?? []) console.log(`${p.id}: NACK ${n.type}${n.version ? ` version ${n.version}` : ''}: ${n.message}`);
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
