// `weft apply|delete|diff -f FILE`: the file is sent as YAML text so the
// server parses and validates it once, with paths like
// `documents[2].spec.rules[0].destinations[0].weight`.
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { ApiClient, CliError, type ConnectionOptions } from './client.ts';
import { lineDiff } from './diff-text.ts';

export interface ObjectChange {
  op: 'put' | 'delete';
  kind: string;
  namespace: string;
  name: string;
  /** created | configured | unchanged | deleted | absent */
  action: string;
}

export interface ApplyReply {
  revision: number;
  changed: boolean;
  dryRun?: boolean;
  objects: ObjectChange[];
  diff?: DiffReply;
}

export interface ResourceDiff {
  type: string;
  name: string;
  action: 'added' | 'removed' | 'changed';
  before?: unknown;
  after?: unknown;
}

export interface DiffReply {
  objects: ObjectChange[];
  proxies: { proxy: string; service: string; connected: boolean; resources: ResourceDiff[]; errors?: { path: string; message: string }[] }[];
}

function readManifestFile(file: string): string {
  try {
    return readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (err) {
    throw new CliError(`error: cannot read ${file}: ${(err as Error).message}`);
  }
}

function yamlBody(file: string) {
  return { text: readManifestFile(file), contentType: 'application/yaml' };
}

export function formatObjects(objects: ObjectChange[]): string[] {
  return objects.map((o) => `${o.kind.toLowerCase()}/${o.name}${o.namespace === 'default' ? '' : ` (${o.namespace})`} ${o.action}`);
}

export function formatDiff(diff: DiffReply): string[] {
  const out: string[] = [];
  for (const p of diff.proxies) {
    if (p.resources.length === 0 && !p.errors?.length) continue;
    out.push(p.connected ? `proxy ${p.proxy} (service ${p.service})` : `service ${p.service}: no proxy connected; a new sidecar would get`);
    for (const e of p.errors ?? []) out.push(`  ! ${e.path}: ${e.message}`);
    for (const r of p.resources) {
      const mark = r.action === 'added' ? '+' : r.action === 'removed' ? '-' : '~';
      out.push(`  ${mark} ${r.type}/${r.name} ${r.action}`);
      const before = r.before === undefined ? '' : JSON.stringify(r.before, null, 2);
      const after = r.after === undefined ? '' : JSON.stringify(r.after, null, 2);
      for (const line of lineDiff(before, after)) out.push(`      ${line}`);
    }
  }
  if (out.length === 0) out.push('no proxy configuration would change');
  return out;
}

export function registerManifestCommands(program: Command, conn: () => ConnectionOptions): void {
  program
    .command('apply')
    .description('create or update the objects in a manifest file (multi-document YAML); one revision per apply, none if nothing changes')
    .requiredOption('-f, --filename <file>', 'manifest file, or - for stdin')
    .option('--dry-run', 'validate and show what would change without storing anything')
    .action(async (opts: { filename: string; dryRun?: boolean }) => {
      const client = new ApiClient(conn());
      const reply = await client.request<ApplyReply>('POST', `/api/v1/apply${opts.dryRun ? '?dryRun=true' : ''}`, yamlBody(opts.filename));
      for (const line of formatObjects(reply.objects)) console.log(line);
      if (reply.dryRun) {
        if (reply.diff) for (const line of formatDiff(reply.diff)) console.log(line);
        console.log(`dry run: nothing stored (revision ${reply.revision})`);
      } else {
        console.log(reply.changed ? `revision ${reply.revision}` : `no changes (revision ${reply.revision})`);
      }
    });

  program
    .command('delete')
    .description('delete the objects named in a manifest file (only kind and metadata are read); one revision')
    .requiredOption('-f, --filename <file>', 'manifest file, or - for stdin')
    .action(async (opts: { filename: string }) => {
      const client = new ApiClient(conn());
      const reply = await client.request<ApplyReply>('POST', '/api/v1/delete', yamlBody(opts.filename));
      for (const line of formatObjects(reply.objects)) console.log(line);
      console.log(reply.changed ? `revision ${reply.revision}` : `no changes (revision ${reply.revision})`);
    });

  program
    .command('diff')
    .description("show which proxies' resources would change if the file were applied, resource by resource")
    .requiredOption('-f, --filename <file>', 'manifest file, or - for stdin')
    .option('-o, --output <format>', 'text or json', 'text')
    .action(async (opts: { filename: string; output: string }) => {
      const client = new ApiClient(conn());
      const reply = await client.request<DiffReply>('POST', '/api/v1/diff', yamlBody(opts.filename));
      if (opts.output === 'json') {
        console.log(JSON.stringify(reply, null, 2));
        return;
      }
      for (const line of formatObjects(reply.objects)) console.log(line);
      for (const line of formatDiff(reply)) console.log(line);
    });
}
