// `weft apply|delete|diff -f FILE`: the file is sent as YAML text so the
// server parses and validates it once, with paths like
// `documents[2].spec.rules[0].destinations[0].weight`.
import type { Command } from 'commander';
import { ApiClient, CliError, type ConnectionOptions } from './client.ts';
import { lineDiff } from './diff-text.ts';
import { parseAllDocuments } from 'yaml';
import { readInputFile, terminalSafe, toJson, waitMs } from './output.ts';
import type { ResourceDiff } from '../api/proxy-diff.ts';

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
  warnings?: { path: string; message: string }[];
}

export interface DiffReply {
  objects: ObjectChange[];
  warnings?: { path: string; message: string }[];
  proxies: { proxy: string; service: string; connected: boolean; resources: ResourceDiff[]; errors?: { path: string; message: string }[] }[];
}

/** Repeated `-f` collects every file, as kubectl takes several (commander kept only the last one, silently). */
function collectFile(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

interface ManifestBody {
  text: string;
  contentType: 'application/yaml';
  /** `documents[i]` of the body as the user wrote it: `FILE documents[j]` when several files were sent. */
  locate(text: string): string;
}

const startsWithDocumentMarker = (text: string) => /^(?:\s*(?:#[^\n]*)?\n)*---(?:\s|$)/.test(text);

/**
 * Every -f file as one multi-document YAML body, so several files are one apply (one revision, all or
 * nothing) like the documents of one file; the server's `documents[i]` are mapped back to each file.
 */
export function manifestBody(files: string[]): ManifestBody {
  if (files.filter((f) => f === '-').length > 1) throw new CliError('error: -f - (stdin) may be given once', 2);
  const texts = files.map((f) => readInputFile(f));
  if (texts.length === 1) return { text: texts[0]!, contentType: 'application/yaml', locate: (t) => t };
  let text = '';
  const starts: { file: string; first: number }[] = [];
  let documents = 0;
  texts.forEach((t, i) => {
    const body = t.endsWith('\n') || t === '' ? t : `${t}\n`;
    if (i > 0 && !startsWithDocumentMarker(body)) text += '---\n';
    text += body;
    starts.push({ file: files[i] === '-' ? 'stdin' : files[i]!, first: documents });
    documents += parseAllDocuments(t).length;
  });
  // Were the documents counted file by file the ones the joined text holds? Otherwise say the indices as they are.
  if (parseAllDocuments(text).length !== documents) return { text, contentType: 'application/yaml', locate: (t) => t };
  const locate = (t: string) =>
    t.replace(/documents\[(\d+)\]/g, (whole, n: string) => {
      const at = [...starts].reverse().find((s) => s.first <= Number(n));
      return at ? `${at.file} documents[${Number(n) - at.first}]` : whole;
    });
  return { text, contentType: 'application/yaml', locate };
}

/**
 * Sends the manifests; a refusal's documents[i] name the file they came from. The answer's warnings (valid
 * configuration that will still hurt: control/api/warnings.ts) go to stderr, as kubectl prints "Warning:".
 */
async function sendManifests<T extends { warnings?: { path: string; message: string }[] }>(client: ApiClient, path: string, files: string[]): Promise<T> {
  const body = manifestBody(files);
  try {
    const reply = await client.request<T>('POST', path, body);
    for (const w of reply.warnings ?? []) console.error(`warning: ${terminalSafe(body.locate(w.path))}: ${terminalSafe(w.message)}`);
    return reply;
  } catch (err) {
    if (!(err instanceof CliError)) throw err;
    throw new CliError(body.locate(err.message), err.exitCode, err.details.map((d) => ({ path: body.locate(d.path), message: body.locate(d.message) })), err.status);
  }
}

/** One line per object; `wouldBe` for what a diff or dry run would do ("would be created"), since nothing was done. */
export function formatObjects(objects: ObjectChange[], wouldBe = false): string[] {
  const said = (action: string) => (wouldBe && action !== 'unchanged' && action !== 'absent' ? `would be ${action}` : action);
  return objects.map((o) => `${o.kind.toLowerCase()}/${o.name}${o.namespace === 'default' ? '' : ` (${o.namespace})`} ${said(o.action)}`);
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
  // a connected proxy's id and a resource's name are the proxy's and the translator's words, not the operator's
  return out.map(terminalSafe);
}

/**
 * Waits until every connected proxy runs what the control plane means it to:
 * by its own config dump (GET /proxies/{id}/sync) where its admin can be read,
 * else by its ACKs (status SYNCED). Prints each proxy as it gets there; at the
 * deadline, the ones that did not and why, exit 1.
 */
async function waitForProxies(client: ApiClient, waitMs: number): Promise<void> {
  const started = Date.now();
  const deadline = started + waitMs;
  const { items } = await client.get<{ items: { id: string; status: string }[] }>('/api/v1/proxies');
  const waiting = new Map(items.filter((p) => p.status !== 'DISCONNECTED').map((p) => [p.id, 'not checked yet']));
  const connected = waiting.size;
  if (connected === 0) {
    console.log('no proxies are connected: nothing to wait for');
    return;
  }
  for (;;) {
    for (const id of [...waiting.keys()]) {
      const path = `/api/v1/proxies/${encodeURIComponent(id)}`;
      let done = false;
      try {
        const sync = await client.get<{ inSync: boolean; resources: { type: string; name: string; state: string }[] }>(`${path}/sync`);
        done = sync.inSync;
        if (!done) waiting.set(id, sync.resources.filter((r) => r.state !== 'SYNCED').map((r) => `${r.type}/${r.name} ${r.state}`).join(', '));
      } catch (err) {
        if (!(err instanceof CliError) || err.status !== 502) throw err;
        // its admin cannot be read (an Envoy in a container): its ACKs say it took the last push
        const view = await client.get<{ status: string }>(path);
        done = view.status === 'SYNCED';
        if (!done) waiting.set(id, `status ${view.status}`);
      }
      if (done) {
        waiting.delete(id);
        console.log(terminalSafe(`proxy ${id} runs it (${((Date.now() - started) / 1000).toFixed(1)} s)`));
      }
    }
    if (waiting.size === 0) return;
    if (Date.now() >= deadline) {
      for (const [id, why] of waiting) console.log(terminalSafe(`proxy ${id} does not yet: ${why}`));
      throw new CliError(`error: ${waiting.size} of ${connected} proxies do not run the new configuration after ${waitMs / 1000} s (weft proxy-status PROXY says why)`, 1);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

export function registerManifestCommands(program: Command, conn: () => ConnectionOptions): void {
  program
    .command('apply')
    .description('create or update the objects in a manifest file (multi-document YAML); one revision per apply, none if nothing changes')
    .requiredOption('-f, --filename <file>', 'manifest file, or - for stdin; repeat for several (one request, all or nothing)', collectFile)
    .option('--dry-run', 'validate and show what would change without storing anything')
    .option('--wait <seconds>', 'then wait, up to this long, until every connected proxy runs the new configuration (by its own config dump; by its ACKs where its admin cannot be read)', waitMs)
    .action(async (opts: { filename: string[]; dryRun?: boolean; wait?: number }) => {
      if (opts.wait !== undefined && opts.dryRun) throw new CliError('error: --wait and --dry-run: a dry run changes nothing to wait for', 2);
      const client = new ApiClient(conn());
      const reply = await sendManifests<ApplyReply>(client, `/api/v1/apply${opts.dryRun ? '?dryRun=true' : ''}`, opts.filename);
      for (const line of formatObjects(reply.objects, reply.dryRun === true)) console.log(line);
      if (reply.dryRun) {
        if (reply.diff) for (const line of formatDiff(reply.diff)) console.log(line);
        console.log(`dry run: nothing stored (revision ${reply.revision})`);
      } else {
        console.log(reply.changed ? `revision ${reply.revision}` : `no changes (revision ${reply.revision})`);
      }
      if (opts.wait !== undefined) await waitForProxies(client, opts.wait);
    });

  program
    .command('delete')
    .description('delete the objects named in a manifest file (only kind and metadata are read); one revision')
    .requiredOption('-f, --filename <file>', 'manifest file, or - for stdin; repeat for several (one request, all or nothing)', collectFile)
    .option('--ignore-not-found', 'exit 0 when some of the objects do not exist')
    .action(async (opts: { filename: string[]; ignoreNotFound?: boolean }) => {
      const client = new ApiClient(conn());
      const reply = await sendManifests<ApplyReply>(client, '/api/v1/delete', opts.filename);
      const absent = reply.objects.filter((o) => o.action === 'absent');
      for (const line of formatObjects(reply.objects.filter((o) => opts.ignoreNotFound || o.action !== 'absent'))) console.log(line);
      console.log(reply.changed ? `revision ${reply.revision}` : `no changes (revision ${reply.revision})`);
      // As kubectl: the objects that exist are deleted, and the ones that do
      // not are an error (a misspelt name or namespace must not look done).
      if (absent.length > 0 && !opts.ignoreNotFound) {
        const names = absent.map((o) => `${o.kind.toLowerCase()}/${o.name}${o.namespace === 'default' ? '' : ` (${o.namespace})`}`);
        // "the others were deleted" only when there were others (it was said of a file naming one object too).
        const deleted = reply.objects.filter((o) => o.action === 'deleted').length;
        const others = deleted > 0 ? `the other ${deleted === 1 ? 'one was' : `${deleted} were`} deleted; ` : absent.length === reply.objects.length ? 'nothing was deleted; ' : '';
        throw new CliError(`error: not found: ${names.join(', ')} (${others}--ignore-not-found to accept this)`);
      }
    });

  program
    .command('diff')
    .description("show which proxies' resources would change if the file were applied, resource by resource")
    .requiredOption('-f, --filename <file>', 'manifest file, or - for stdin; repeat for several (one request, all or nothing)', collectFile)
    .option('-o, --output <format>', 'text or json', 'text')
    .action(async (opts: { filename: string[]; output: string }) => {
      if (opts.output !== 'text' && opts.output !== 'json') throw new CliError(`error: -o must be text or json (got "${opts.output}")`, 2);
      const client = new ApiClient(conn());
      const reply = await sendManifests<DiffReply>(client, '/api/v1/diff', opts.filename);
      if (opts.output === 'json') {
        console.log(toJson(reply));
        return;
      }
      // "would be created": a diff stores nothing (it printed "created", which read as done).
      for (const line of formatObjects(reply.objects, true)) console.log(line);
      for (const line of formatDiff(reply)) console.log(line);
    });
}
