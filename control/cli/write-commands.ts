// Commands that change state outside manifests: rollback, filter build and push, token create and revoke.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import type { Command } from 'commander';
import { ApiClient, CliError, type ConnectionOptions } from './client.ts';
import { parseTtl } from '../ca/ttl.ts';
import { DNS_LABEL } from '../model/fields.ts';
import { formatObjects, type ApplyReply } from './manifest-commands.ts';

function readBytes(file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new CliError(`error: cannot read ${what} ${file}: ${(err as Error).message}`);
  }
}

export function registerWriteCommands(program: Command, conn: () => ConnectionOptions): void {
  program
    .command('rollback')
    .description('return every operator object (services, routes, policies, bindings) to its state at a revision; makes a new revision')
    .argument('<revision>', 'revision number (see weft history)')
    .action(async (revision: string) => {
      if (!/^\d+$/.test(revision)) throw new CliError(`error: revision must be a non-negative integer (got "${revision}")`, 2);
      const reply = await new ApiClient(conn()).request<ApplyReply>('POST', `/api/v1/revisions/${revision}/rollback`);
      for (const line of formatObjects(reply.objects)) console.log(line);
      console.log(reply.changed ? `rolled back to revision ${revision}: now revision ${reply.revision}` : `already at revision ${revision}'s state (revision ${reply.revision})`);
    });

  const filter = program.command('filter').description('build wasm filters, and manage them in the catalog');
  filter
    .command('build')
    .description("compile an AssemblyScript filter with the flags every weft filter needs, from any directory (import the SDK as 'weft/filters/sdk/...'), and check the module as the control plane checks an upload")
    .argument('<entry>', 'the filter entry file (AssemblyScript), e.g. assembly/index.ts')
    .option('-o, --out <file>', 'where to write the module (default: build/<entry name>.wasm beside the entry directory)')
    .action(async (entry: string, opts: { out?: string }) => {
      const source = resolve(entry);
      if (!existsSync(source)) throw new CliError(`error: ${entry}: no such file`, 2);
      const out = resolve(opts.out ?? join(dirname(dirname(source)), 'build', `${basename(dirname(source)) === 'assembly' ? basename(dirname(dirname(source))) : basename(source, '.ts')}.wasm`));
      const { compileFilter } = await import('../filters/compile.ts');
      const { checkModule } = await import('../filters/check.ts');
      let bytes: Uint8Array;
      try {
        bytes = await compileFilter(relative(process.cwd(), source));
      } catch (err) {
        throw new CliError(`error: ${(err as Error).message.trimEnd()}`);
      }
      const check = checkModule(bytes, { strict: true, maxBytes: Number.MAX_SAFE_INTEGER });
      if (!check.ok) throw new CliError(`error: ${entry} compiled, but the module would be refused:\n${check.reasons.map((r) => `  ${r}`).join('\n')}`);
      mkdirSync(dirname(out), { recursive: true });
      writeFileSync(out, bytes);
      console.log(`${relative(process.cwd(), out) || out}: ${bytes.length} bytes, sha256 ${createHash('sha256').update(bytes).digest('hex')}, ABI ${check.abiVersion}`);
    });
  filter
    .command('push')
    .description('upload a proxy-wasm module to the filter catalog (checked by the control plane before it is accepted)')
    .argument('<file>', 'the .wasm module')
    .option('--name <name>', 'catalog name (default: the file name without .wasm)')
    .option('--schema <file>', 'JSON Schema the filter config of every binding must satisfy')
    .action(async (file: string, opts: { name?: string; schema?: string }) => {
      const wasm = readBytes(file, 'module').toString('base64');
      let configSchema: unknown;
      if (opts.schema) {
        try {
          configSchema = JSON.parse(readBytes(opts.schema, 'schema').toString('utf8'));
        } catch (err) {
          if (err instanceof CliError) throw err;
          throw new CliError(`error: ${opts.schema} is not JSON: ${(err as Error).message}`);
        }
      }
      const name = opts.name ?? basename(file).replace(/\.wasm$/, '');
      // A name taken from the file: say where it came from, or the API's "name: must be a DNS-1123 label" leaves the user to guess.
      if (opts.name === undefined && (name.length > 63 || !new RegExp(DNS_LABEL).test(name))) {
        throw new CliError(`error: the catalog name ${JSON.stringify(name)}, taken from the file name, must be a DNS-1123 label (1-63 lowercase letters, digits or '-'): give one with --name`, 2);
      }
      const client = new ApiClient(conn());
      // A push replaces the catalog entry, schema included: one the name had goes unless --schema gives it again.
      const before = configSchema === undefined ? (await client.get<{ items: { name: string; configSchema?: unknown }[] }>('/api/v1/filters')).items.find((f) => f.name === name) : undefined;
      const reply = await client.request<{ name: string; sha256: string; size: number; abiVersion: string }>('POST', '/api/v1/filters', {
        json: { name, wasm, ...(configSchema === undefined ? {} : { configSchema }) },
      });
      console.log(`filter/${reply.name} pushed: sha256 ${reply.sha256}, ${reply.size} bytes, ABI ${reply.abiVersion}`);
      if (before?.configSchema !== undefined) console.error(`note: filter/${reply.name} had a config schema and this push gave none: its bindings' configs are no longer checked against one (push again with --schema FILE to keep it)`);
    });

  filter
    .command('delete')
    .description('remove a pushed filter from the catalog (refused while a binding uses it; built-ins stay)')
    .argument('<name>', 'the catalog name')
    .action(async (name: string) => {
      const reply = await new ApiClient(conn()).request<{ revision: number }>('DELETE', `/api/v1/filters/${encodeURIComponent(name)}`);
      console.log(`filter/${name} deleted (revision ${reply.revision})`);
    });

  const token = program.command('token').description('manage operator tokens, and (--join) proxies\' xDS join tokens');
  token
    .command('create')
    .description('create an operator token (admin only), or with --join a proxy\'s join token for one service identity; the token is printed once')
    .option('--role <role>', 'admin or viewer (operator tokens)', 'viewer')
    .option('--name <name>', 'a name for the audit log (operator tokens; default: <role>-<time>)')
    .option('--join', 'a join token a proxy presents on xDS (control plane with --identity): needs --service')
    .option('--service <name>', 'with --join: the service identity the token admits')
    .option('--namespace <ns>', 'with --join: its namespace', 'default')
    .option('--ttl <duration>', 'with --join: its lifetime, e.g. 24h, 30m, 7d (default: until revoked)')
    .action(async (opts: { role: string; name?: string; join?: boolean; service?: string; namespace: string; ttl?: string }, command: Command) => {
      if (opts.join) {
        const misplaced = ['role', 'name'].filter((o) => command.getOptionValueSource(o) === 'cli');
        if (misplaced.length) throw new CliError(`error: --${misplaced.join(', --')} is for operator tokens, not with --join`, 2);
        if (!opts.service) throw new CliError('error: --join needs --service NAME (the identity the token admits)', 2);
        if (opts.ttl !== undefined) {
          const ttl = parseTtl(opts.ttl);
          if (typeof ttl === 'string') throw new CliError(`error: --ttl: ${ttl}`, 2);
        }
        const reply = await new ApiClient(conn()).request<{ token: string; id: string; service: string; namespace: string; expiresAt: string | null }>('POST', '/api/v1/tokens/join', {
          json: { service: opts.service, namespace: opts.namespace, ...(opts.ttl !== undefined ? { ttl: opts.ttl } : {}) },
        });
        console.log(reply.token);
        console.error(`created join token ${reply.id} for ${reply.service}.${reply.namespace}, ${reply.expiresAt ? `expires ${reply.expiresAt}` : 'valid until revoked'}`);
        return;
      }
      const joinOnly = ['service', 'namespace', 'ttl'].filter((o) => command.getOptionValueSource(o) === 'cli');
      if (joinOnly.length) throw new CliError(`error: --${joinOnly.join(', --')} needs --join (join tokens)`, 2);
      if (opts.role !== 'admin' && opts.role !== 'viewer') throw new CliError(`error: --role must be admin or viewer (got "${opts.role}")`, 2);
      const reply = await new ApiClient(conn()).request<{ token: string; name: string; role: string }>('POST', '/api/v1/tokens', {
        json: { role: opts.role, ...(opts.name ? { name: opts.name } : {}) },
      });
      console.log(reply.token);
      console.error(`created ${reply.role} token "${reply.name}"`);
    });
  token
    .command('revoke')
    .description('revoke an operator token by name (admin only): it is refused (401) from then on; the last admin token cannot be revoked. With --join, a join token by id: its open xDS streams end')
    .argument('<name>', 'the token name (weft get tokens lists them), or with --join the join token id (weft get join-tokens)')
    .option('--join', 'revoke a join token by id')
    .action(async (name: string, opts: { join?: boolean }) => {
      if (opts.join) {
        await new ApiClient(conn()).request('DELETE', `/api/v1/tokens/join/${encodeURIComponent(name)}`);
        console.log(`revoked join token ${name}`);
        return;
      }
      await new ApiClient(conn()).request('DELETE', `/api/v1/tokens/${encodeURIComponent(name)}`);
      console.log(`revoked token "${name}"`);
    });
}
