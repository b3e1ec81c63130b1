// `weft control`: wiring only. Opens the store and registry in the data dir,
// starts the REST API and the xDS server, and stops them cleanly on
// SIGINT/SIGTERM. Everything it wires is built and tested elsewhere.
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { collectDefaultMetrics, Registry as PromRegistry } from 'prom-client';
import { createApiDeps, proxyStatusPort, type XdsStatusSource } from './api/adapters.ts';
import { buildApp } from './api/app.ts';
import { FILTER_MODULE_KIND, type ApiDeps } from './api/deps.ts';
import { checkChanges } from './api/desired-state.ts';
import { storedStateProblems } from './api/stored-check.ts';
import { filterCatalogPort, syncBuiltinFilters } from './api/filter-catalog.ts';
import { openAuditJournal } from './api/audit-journal.ts';
import { openTokenStore } from './api/tokens.ts';
import { FilterCatalog } from './filters/catalog.ts';
import { createRegistry } from './registry/registry.ts';
import { openFileStore } from './store/file-store.ts';
import { LockHeldError } from './store/lock.ts';
import { DamagedFileError } from './store/atomic-file.ts';
import { CaFilesError, ROOT_CERT_FILE } from './ca/root.ts';
import { createXdsServer, groupKey, storeModelSource, type XdsServer } from './xds/index.ts';
import type { TranslateOptions } from './translate/index.ts';
import type { FilterModule } from './model/types.ts';
import { MeshCa } from './ca/authority.ts';
import type { CaFiles } from './ca/root.ts';
import { JoinTokens } from './ca/join-tokens.ts';
import { identityHooks, joinTokenCredential } from './ca/xds-identity.ts';
import { servingIpSans } from './ca/serving-cert.ts';
import { RotatingServerCredentials } from './xds/tls.ts';

export interface ControlOptions {
  dataDir: string;
  apiPort: number;
  xdsPort: number;
  host: string;
  /** Log each request (default off; errors are logged regardless). */
  log?: (line: string) => void;
  /** Access logs and tracing in the Envoy config every sidecar gets (both off when absent). */
  observability?: Pick<TranslateOptions, 'accessLog' | 'tracing'>;
  /**
   * Mesh identity (docs/identity.md): a CA in the data dir, SPIFFE
   * certificates over SDS, mTLS per PeerAuthentication, and join tokens
   * required on every xDS stream. Off when absent.
   */
  identity?: { trustDomain?: string; certTtlMs?: number; files?: CaFiles };
  /** How pushes are batched (control/xds/controller.ts); defaults 100 ms quiet, 1 s at most. */
  push?: { debounceMs?: number; debounceMaxMs?: number };
  /**
   * xDS over TLS (needs `identity`): a server certificate from the mesh CA
   * for these DNS names (default localhost and this host's name), loopback
   * and the --host IP, and the control plane's SPIFFE ID; renewed in place.
   */
  xdsTls?: { dnsNames?: string[] };
}

/** A host only reachable from this machine. */
function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return /^127(\.\d{1,3}){3}$/.test(h) || h === '::1' || h === 'localhost';
}

/** The bindings the built-in filters of this build refuse (their config schema or proxy_on_configure), one warning each. */
export async function builtinBindingWarnings(deps: ApiDeps, builtins: FilterModule[]): Promise<string[]> {
  const changes = builtins.map((m) => ({ op: 'put' as const, kind: FILTER_MODULE_KIND, namespace: 'default', name: m.name, spec: m }));
  if (changes.length === 0) return [];
  const { errors } = await checkChanges(deps, changes, () => '');
  return errors.map((e) => `warning: the built-in filters of this weft build refuse a binding: ${e.path}: ${e.message} (proxies will NACK it; fix the binding with weft apply)`);
}

export interface RunningControl {
  apiUrl: string;
  apiPort: number;
  xdsPort: number;
  /** Set on first start: where the admin token was written. */
  adminTokenPath?: string;
  /** With xdsTls: the PEM file proxies verify the xDS server with (weft sidecar / weft bootstrap --xds-ca). */
  xdsCaFile?: string;
  close(): Promise<void>;
}

/** The bootstrap cluster name that reaches the API (for wasm module fetches). */
export const WASM_CLUSTER = 'weft-control';

/**
 * A reason the control plane cannot start that is the operator's to fix (a
 * port in use, a data dir another control plane holds): the CLI says it in one
 * line, naming the flag, without a stack trace.
 */
export class StartupError extends Error {
  override name = 'StartupError';
}

/** A listen error as the flag that chose the port. */
function listenError(flag: string, host: string, port: number, err: unknown): unknown {
  const code = (err as NodeJS.ErrnoException).code;
  const message = (err as Error).message ?? '';
  if (code === 'EADDRINUSE' || /address already in use|No address added/i.test(message)) return new StartupError(`${flag} ${port}: ${host}:${port} is already in use (another weft control?)`);
  if (code === 'EACCES') return new StartupError(`${flag} ${port}: permission denied to listen on ${host}:${port}`);
  if (code === 'EADDRNOTAVAIL') return new StartupError(`--host ${host}: not an address of this machine`);
  return err;
}

export async function startControl(opts: ControlOptions): Promise<RunningControl> {
  if (opts.xdsTls && !opts.identity) throw new StartupError('--xds-tls needs --identity: the xDS server certificate is issued by the mesh CA');
  const dataDir = resolve(opts.dataDir);
  const store = await openFileStore(dataDir).catch((err: unknown) => {
    if (err instanceof LockHeldError) throw new StartupError(`--data-dir ${opts.dataDir}: ${err.message}`);
    throw err instanceof DamagedFileError ? new StartupError(err.message) : err;
  });
  const dropped = store.openReport.droppedTail;
  if (dropped) {
    // Usually a write a crash cut short (never acknowledged); a complete line whose checksum fails may
    // be an acknowledged revision damaged on disk. Either way its number goes to the next write.
    (opts.log ?? console.error)(
      `warning: store log ${dropped.file}: dropped its damaged last line at start (${dropped.reason}, ${dropped.bytes} bytes, revision ${dropped.revision}; the next write takes that number); the bytes are kept in ${dropped.keptIn}`,
    );
  }
  const registry = createRegistry(store);
  const closers: (() => Promise<void> | void)[] = [() => store.close()];
  try {
    registry.start(1000);
    closers.unshift(() => registry.stop());
    const { store: tokens, adminTokenPath } = await openTokenStore(dataDir);
    const catalog = new FilterCatalog({ dataDir, warn: opts.log ?? console.error });
    // Built-in filters become catalog entries in the store, so bindings to
    // them resolve in the model like uploaded ones.
    const synced = await syncBuiltinFilters(store, catalog, 'weft-control');

    const ca = opts.identity ? await MeshCa.open({ dataDir, trustDomain: opts.identity.trustDomain, certTtlMs: opts.identity.certTtlMs, files: opts.identity.files }).catch((e: unknown) => {
      throw e instanceof CaFilesError ? new StartupError(e.message) : e;
    }) : undefined;
    if (ca) closers.unshift(() => ca.close());
    if (ca && ca.caExpiresAt.getTime() - Date.now() < ca.certTtlMs) {
      (opts.log ?? console.error)(`warning: the CA certificate expires at ${ca.caExpiresAt.toISOString()}, within the workload certificate lifetime: certificates issued from now on end with it, and none can be issued after it; replace the CA (--ca-cert, --ca-key) before then`);
    }
    const joinTokens = ca ? new JoinTokens(dataDir) : undefined;
    const identityOption = ca ? { identity: { trustDomain: ca.trustDomain } } : {};

    const processMetrics = new PromRegistry();
    collectDefaultMetrics({ register: processMetrics });
    const metrics = [processMetrics];

    let xds: XdsServer | undefined;
    if (joinTokens) {
      closers.unshift(() => joinTokens.close());
      // An expired token admits no new stream (xds-identity); the streams it opened end at expiry, as on revocation.
      joinTokens.onExpire((record) => {
        const ended = xds?.ads.endStreams(joinTokenCredential(record.id), `join token ${record.id} expired at ${record.expiresAt}`) ?? 0;
        if (ended > 0) (opts.log ?? console.error)(`xds: join token ${record.id} expired: ended ${ended} stream(s)`);
      });
    }
    const status: XdsStatusSource = {
      list: () => xds?.status.list() ?? [],
      get: (id) => xds?.status.get(id),
      ref: (id) => xds?.status.ref(id),
      config: (id) => xds?.status.config(id),
      refused: (id) => {
        const ref = xds?.status.ref(id);
        if (!ref || !xds) return [];
        const group = groupKey(ref);
        return xds.errors().filter((e) => e.group === group);
      },
    };
    const host = opts.host;
    const urlHost = host.includes(':') ? `[${host}]` : host;
    // The API port is known only after listen (port 0), and the translator
    // needs it for wasm module URLs, so the xDS server starts second.
    let apiPort = opts.apiPort;
    const deps = createApiDeps({
      store,
      registry,
      tokens,
      audit: await openAuditJournal(join(dataDir, 'audit.jsonl')),
      filters: filterCatalogPort(store, catalog),
      metrics,
      proxies: proxyStatusPort(status),
      translateOptions: { get wasmBaseUrl() { return `http://${urlHost}:${apiPort}`; }, wasmClusterName: WASM_CLUSTER, ...opts.observability, ...identityOption },
      ready: () => xds !== undefined,
      ...(ca && joinTokens ? {
        joinTokens: {
          issue: (identity: { namespace: string; service: string }, ttlMs?: number) => joinTokens.issue(identity, ttlMs === undefined ? {} : { ttlMs }),
          list: () => joinTokens.list(),
          revoke: (id: string) => {
            if (!joinTokens.revoke(id)) return false;
            // A leaked token stops working at once: the streams it opened end too (no more rotated certificates).
            const ended = xds?.ads.endStreams(joinTokenCredential(id), `join token ${id} was revoked`) ?? 0;
            if (ended > 0) opts.log?.(`xds: join token ${id} revoked: ended ${ended} stream(s)`);
            return true;
          },
          trustDomain: ca.trustDomain,
        },
      } : {}),
    });
    for (const problem of storedStateProblems(deps)) {
      (opts.log ?? console.error)(`warning: stored ${problem} (this weft build refuses it; until it is fixed with weft apply, translation may refuse the mesh's config and proxies keep their last one)`);
    }
    if (synced.changed) {
      // A new weft build brought new built-in filters: a binding its build refuses would be NACKed by every
      // proxy (an upload is checked before it is stored; a built-in arrives with the binary). Say so at start.
      for (const line of await builtinBindingWarnings(deps, catalog.builtins())) (opts.log ?? console.error)(line);
    }
    const app = await buildApp(deps, { log: opts.log ?? console.error });
    await app.listen({ host, port: opts.apiPort }).catch((err: unknown) => {
      throw listenError('--api-port', host, opts.apiPort, err);
    });
    closers.unshift(() => app.close());
    const address = app.server.address();
    apiPort = typeof address === 'object' && address ? address.port : opts.apiPort;

    const identityMetrics = new PromRegistry();
    const identity = ca && joinTokens ? identityHooks({ tokens: joinTokens, ca, registry: identityMetrics, log: (line) => (opts.log ?? console.error)(line) }) : undefined;
    if (identity) metrics.push(identityMetrics);
    const server = createXdsServer({
      source: storeModelSource(store, registry),
      translateOptions: { wasmBaseUrl: `http://${urlHost}:${apiPort}`, wasmClusterName: WASM_CLUSTER, ...opts.observability, ...identityOption },
      ...(identity ? { authenticate: identity.authenticate, secrets: identity.secrets } : {}),
      ...(opts.push?.debounceMs !== undefined ? { debounceMs: opts.push.debounceMs } : {}),
      ...(opts.push?.debounceMaxMs !== undefined ? { debounceMaxMs: opts.push.debounceMaxMs } : {}),
      onErrors: (kind, errors) => {
        for (const e of errors.slice(0, 20)) opts.log?.(`xds: ${kind} snapshot refused: ${JSON.stringify(e)}`);
      },
    });
    let credentials: RotatingServerCredentials | undefined;
    let xdsCaFile: string | undefined;
    if (ca && opts.xdsTls) {
      const given = opts.xdsTls.dnsNames ?? [];
      const dnsNames = [...new Set(given.length > 0 ? given : ['localhost', hostname()])];
      const names = { dnsNames, ipAddresses: servingIpSans(host) };
      // Each renewal (at half-life) goes into the running server: new connections get it, nothing restarts.
      const first = await ca.servingCert(names, (next) => credentials?.update(next));
      credentials = new RotatingServerCredentials(first);
      const files = opts.identity?.files;
      xdsCaFile = ca.source === 'operator' ? resolve(files?.rootFile ?? files?.certFile ?? '') : join(dataDir, ROOT_CERT_FILE);
      (opts.log ?? console.error)(`xds-tls: serving xDS over TLS, certificate from the mesh CA for ${[...dnsNames.map((n) => `DNS:${n}`), ...names.ipAddresses.map((ip) => `IP:${ip}`), `URI:${first.spiffeId}`].join(', ')}, renewed at half-life; proxies verify it with --xds-ca ${xdsCaFile}`);
    } else if (ca && !isLoopbackHost(host)) {
      (opts.log ?? console.error)(`warning: --identity with --host ${host}: xDS is served in plaintext, so join tokens (proxy to control plane) and workload private keys (SDS, control plane to proxy) travel in clear and proxies cannot authenticate the control plane; serve it over TLS with --xds-tls`);
    }
    const xdsPort = await server.listen(host, opts.xdsPort, credentials).catch((err: unknown) => {
      throw listenError('--xds-port', host, opts.xdsPort, err);
    });
    closers.unshift(() => server.close());
    xds = server;
    metrics.push(server.metrics);

    return {
      apiUrl: `http://${urlHost}:${apiPort}`,
      apiPort,
      xdsPort,
      adminTokenPath,
      ...(xdsCaFile !== undefined ? { xdsCaFile } : {}),
      async close() {
        for (const close of closers) await close();
      },
    };
  } catch (err) {
    for (const close of closers) await close();
    // A damaged tokens or join-tokens file: the message names it and what to do, the CLI says it in one line.
    throw err instanceof DamagedFileError ? new StartupError(err.message) : err;
  }
}

/** `weft control`: start, print where everything is, run until SIGINT/SIGTERM. */
export async function runControl(opts: ControlOptions): Promise<void> {
  const control = await startControl({ ...opts, log: (line) => console.error(line) });
  console.log(`api: ${control.apiUrl}`);
  console.log(`xds: ${opts.host}:${control.xdsPort}`);
  console.log(`data: ${resolve(opts.dataDir)}`);
  if (control.adminTokenPath) console.log(`admin token written to ${control.adminTokenPath}`);
  await new Promise<void>((done) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      console.log(`${signal}: stopping`);
      control.close().then(done, (err: unknown) => {
        console.error(`error while stopping: ${(err as Error).message}`);
        done();
      });
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
  console.log('stopped');
}
