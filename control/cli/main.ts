// The `weft` command (bin/weft.mjs imports this file). Process commands
// (control, sidecar, up) start long-running processes; every other command is
// a thin client of the REST API and never touches the store.
import { readFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { bootstrapCommand } from '../../proxy-config/command.ts';
import { parseDuration } from '../ca/ttl.ts';
import { CliError, DEFAULT_TIMEOUT_MS, formatTimeout, type ConnectionOptions } from './client.ts';
import { registerManifestCommands } from './manifest-commands.ts';
import { terminalSafe } from './output.ts';
import { registerReadCommands } from './read-commands.ts';
import { registerWriteCommands } from './write-commands.ts';

function port(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n > 65535) throw new CliError(`error: port must be an integer 0..65535 (got "${value}")`, 2);
  return n;
}

/** A commander parser for a flag that takes seconds (0 or more); the error names the flag. */
function seconds(flag: string): (value: string) => number {
  return (value) => {
    if (!/^\d+(\.\d+)?$/.test(value)) throw new CliError(`error: ${flag} must be a number of seconds, 0 or more (got "${value}")`, 2);
    return Number(value);
  };
}

/** A commander parser for a flag that takes a whole number, 1 or more; the error names the flag. */
function positive(flag: string): (value: string) => number {
  return (value) => {
    if (!/^[1-9]\d*$/.test(value)) throw new CliError(`error: ${flag} must be a whole number, 1 or more (got "${value}")`, 2);
    return Number(value);
  };
}

/** A commander parser for a whole number of milliseconds, 0 or more, at most a minute; the error names the flag. */
function millis(flag: string): (value: string) => number {
  return (value) => {
    if (!/^\d+$/.test(value) || Number(value) > 60_000) throw new CliError(`error: ${flag} must be a whole number of milliseconds, 0..60000 (got "${value}")`, 2);
    return Number(value);
  };
}

/** --timeout / WEFT_TIMEOUT: a duration (30s, 2m, 1500ms), or 0 for none; the error names both. */
function requestTimeout(value: string): number {
  const ms = value.trim() === '0' ? 0 : parseDuration(value);
  if (ms === undefined) throw new CliError(`error: --timeout (or WEFT_TIMEOUT) must be a duration like 30s, 2m or 1500ms, or 0 for none (got "${value}")`, 2);
  return ms;
}

/** Loads a module by a computed specifier, so commands whose implementation lives elsewhere load only when run. */
async function lazy<T>(specifier: string, exportName: string): Promise<T> {
  const mod = (await import(new URL(specifier, import.meta.url).href)) as Record<string, unknown>;
  const fn = mod[exportName];
  if (typeof fn !== 'function') throw new CliError(`error: ${specifier} does not export ${exportName}`);
  return fn as T;
}

/** Resolves with the first SIGINT or SIGTERM (long-running commands stop cleanly on either). */
function untilSignal(): Promise<'SIGINT' | 'SIGTERM'> {
  return new Promise((resolve) => {
    const on = (signal: 'SIGINT' | 'SIGTERM') => {
      process.off('SIGINT', on);
      process.off('SIGTERM', on);
      resolve(signal);
    };
    process.on('SIGINT', on);
    process.on('SIGTERM', on);
  });
}

export function buildProgram(): Command {
  const program = new Command('weft')
    .description('weft service mesh: control plane, local sidecar, and the operator CLI')
    .showHelpAfterError()
    .configureOutput({ outputError: (str, write) => write(str) });

  program
    .command('control')
    .description('run the control plane: REST API and xDS server')
    .option('--data-dir <dir>', 'where the store, tokens and wasm modules live', 'data')
    .option('--api-port <port>', 'REST API port (0 = ephemeral)', port, 8080)
    .option('--xds-port <port>', 'xDS (ADS gRPC) port (0 = ephemeral)', port, 18000)
    .option('--host <host>', 'address both servers bind', '127.0.0.1')
    .option('--access-log', 'Envoy sidecars write a JSON access log line per request to stdout')
    .option('--access-log-health-checks', "with --access-log: log callers' active health checks too (by default left out, by their user-agent Envoy/HC)")
    .option('--otel-cluster <name>', "Envoy sidecars trace with OpenTelemetry to this bootstrap cluster (weft bootstrap --otel-collector declares weft_otel)")
    .option('--trace-sampling <percent>', 'share of requests that start a trace, 0..100', Number, 100)
    .option('--identity', 'mesh identity: a CA, SPIFFE certificates over SDS, mTLS per PeerAuthentication, join tokens required on xDS')
    .option('--trust-domain <domain>', 'SPIFFE trust domain (with --identity)', 'weft.local')
    .option('--cert-ttl <duration>', 'workload certificate lifetime, e.g. 24h, 30m, 5s (with --identity)', '24h')
    .option('--ca-cert <file>', 'operator CA certificate PEM (root or intermediate) instead of the data dir root')
    .option('--ca-key <file>', 'private key PEM of --ca-cert (ECDSA P-256)')
    .option('--ca-root <file>', 'root PEM (trust bundle) when --ca-cert is an intermediate')
    .option('--xds-tls', "serve xDS over TLS with a server certificate from the mesh CA (with --identity); proxies verify it against the mesh root (<data-dir>/ca-root.pem): weft sidecar / weft bootstrap --xds-ca")
    .option('--xds-tls-name <name>', 'a DNS name for the xDS server certificate, repeatable (default: localhost and this host\'s name; loopback IPs and an IP --host are always in it)', (value: string, prev: string[] | undefined) => [...(prev ?? []), value])
    .option('--push-debounce-ms <ms>', 'changes that follow a push within this long are batched until none has come for this long (0: push every change at once; as Istio PILOT_DEBOUNCE_AFTER)', millis('--push-debounce-ms'), 100)
    .option('--push-max-delay-ms <ms>', 'but a batched change waits at most this long (as Istio PILOT_DEBOUNCE_MAX)', millis('--push-max-delay-ms'), 1000)
    .action(async (opts: { dataDir: string; apiPort: number; xdsPort: number; host: string; accessLog?: boolean; accessLogHealthChecks?: boolean; otelCluster?: string; traceSampling: number; identity?: boolean; trustDomain: string; certTtl: string; caCert?: string; caKey?: string; caRoot?: string; xdsTls?: boolean; xdsTlsName?: string[]; pushDebounceMs: number; pushMaxDelayMs: number }) => {
      const { runControl } = await import('../main.ts');
      const { parseTtl } = await import('../ca/ttl.ts');
      const { MAX_CERT_TTL_MS } = await import('../ca/authority.ts');
      const { accessLog, accessLogHealthChecks, otelCluster, traceSampling, identity: identityOn, trustDomain, certTtl, caCert, caKey, caRoot, xdsTls, xdsTlsName, pushDebounceMs, pushMaxDelayMs, ...rest } = opts;
      if (xdsTls && !identityOn) throw new CliError('error: --xds-tls needs --identity (the xDS server certificate is issued by the mesh CA)', 2);
      if (xdsTlsName && !xdsTls) throw new CliError('error: --xds-tls-name needs --xds-tls', 2);
      for (const name of xdsTlsName ?? []) {
        if (!/^(\*\.)?[A-Za-z0-9]([-A-Za-z0-9.]{0,251}[A-Za-z0-9])?$/.test(name)) throw new CliError(`error: --xds-tls-name must be a DNS name (got "${name}")`, 2);
      }
      if (accessLogHealthChecks && !accessLog) throw new CliError('error: --access-log-health-checks needs --access-log', 2);
      if (pushMaxDelayMs < pushDebounceMs) throw new CliError(`error: --push-max-delay-ms (${pushMaxDelayMs}) must be at least --push-debounce-ms (${pushDebounceMs})`, 2);
      const ttl = parseTtl(certTtl);
      if (typeof ttl === 'string') throw new CliError(`error: --cert-ttl: ${ttl}`, 2);
      if (ttl > MAX_CERT_TTL_MS) throw new CliError(`error: --cert-ttl: must be at most 90d (Istio's default maximum workload certificate lifetime), got ${certTtl}`, 2);
      const identity = identityOn ? { trustDomain, certTtlMs: ttl, files: { certFile: caCert, keyFile: caKey, rootFile: caRoot } } : undefined;
      const observability = {
        ...(accessLog ? { accessLog: accessLogHealthChecks ? { healthChecks: true } : {} } : {}),
        ...(otelCluster ? { tracing: { collectorCluster: otelCluster, samplingPercent: traceSampling } } : {}),
      };
      await runControl({ ...rest, observability, push: { debounceMs: pushDebounceMs, debounceMaxMs: pushMaxDelayMs }, ...(identity ? { identity } : {}), ...(xdsTls ? { xdsTls: xdsTlsName ? { dnsNames: xdsTlsName } : {} } : {}) });
    });

  program
    .command('sidecar')
    .description('run the weft sidecar (local data plane) for one service instance')
    .requiredOption('--service <name>', 'the service this sidecar fronts')
    .requiredOption('--xds <host:port>', 'the control plane xDS address')
    .requiredOption('--app-port <port>', "the local app's port", port)
    .option('--inbound-port <port>', 'inbound listener port', port)
    .option('--outbound-port <port>', 'outbound listener port', port)
    .option('--admin-port <port>', 'admin port (/ready, /stats/prometheus, /config_dump)', port)
    .option('--namespace <ns>', 'namespace of the service', 'default')
    .option('--sotw', 'use state-of-the-world ADS instead of Delta')
    .option('--app-address <addr>', "the local app's address", '127.0.0.1')
    .option('--bind-address <addr>', 'address the inbound listener binds', '127.0.0.1')
    .option('--token <token>', 'join token from POST /api/v1/tokens/join (control planes with --identity; default $WEFT_PROXY_TOKEN); on a shared host prefer --token-file, since arguments show in ps')
    .option('--token-file <file>', 'read the join token from this file (e.g. a mounted secret), so it shows in no process list')
    .addOption(new Option('--xds-ca <file>', "xDS over TLS: verify the control plane's certificate against this PEM (the mesh root, <data-dir>/ca-root.pem of weft control --identity --xds-tls)").env('WEFT_XDS_CA'))
    .option('--xds-server-name <name>', "with --xds-ca: the name the control plane's certificate must carry, when the --xds host is not in it (e.g. an IP)")
    .option('--otel-collector <host:port>', 'OTLP/gRPC collector: declares the cluster weft_otel, which tracing from weft control --otel-cluster exports spans to')
    .option('--drain-time-s <seconds>', 'how long POST /drain_listeners?graceful on the admin port drains before the listeners stop (as Envoy: 600)', seconds('--drain-time-s'))
    .option('--termination-drain-s <seconds>', "on SIGTERM, drain the inbound listeners for up to this long before exiting, or until they are quiet for a second (as Istio's terminationDrainDuration; 0: exit at once). SIGINT and a second SIGTERM exit at once", seconds('--termination-drain-s'), 0)
    .option('-l, --log-level <level>', 'every logger\'s level: trace, debug, info, warning, error, critical, off (as Envoy; change it later with POST /logging on the admin port)', 'info')
    .option('--component-log-level <name:level,...>', 'per-logger levels on top of --log-level, as Envoy: wasm (filters\' proxy_log), config (xDS: NACKs at warning, every update at debug)')
    .option('--profile-path <dir>', 'where POST /cpuprofiler and /heapprofiler on the admin port write their profiles (default: the system temp dir)')
    .option('--max-heap-mb <mib>', "Envoy's overload manager on the heap: at 95% of this, connections close after their response; at 98%, new requests get 503 'envoy overloaded' (default: off)", positive('--max-heap-mb'))
    .option('--layered-runtime <file>', "the runtime's layers, as an Envoy bootstrap's layered_runtime (YAML or JSON: layers of static_layer, disk_layer, admin_layer); default: a static layer and an admin layer for POST /runtime_modify, as weft's Envoy bootstrap")
    .option('--max-downstream-connections <n>', "Envoy's global_downstream_max_connections: connections over this many, across the listeners, are closed at accept (default: no limit)", positive('--max-downstream-connections'))
    // Hidden: a test's short wait before the warning that the control plane is out of reach (default 30 s, as Envoy).
    .addOption(new Option('--xds-outage-warn-ms <ms>').argParser(positive('--xds-outage-warn-ms')).hideHelp())
    .action(async ({ terminationDrainS, tokenFile, ...opts }: Record<string, unknown> & { terminationDrainS: number; tokenFile?: string }) => {
      if (tokenFile !== undefined) {
        if (opts.token !== undefined) throw new CliError('error: --token and --token-file are alternatives: give one', 2);
        let text: string;
        try {
          text = readFileSync(tokenFile, 'utf8');
        } catch (err) {
          throw new CliError(`error: --token-file ${tokenFile}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`, 2);
        }
        const token = text.trim();
        if (!token) throw new CliError(`error: --token-file ${tokenFile}: the file is empty`, 2);
        opts.token = token;
      }
      type Running = { close(): Promise<void>; quit: Promise<void>; drainBeforeExit(maxMs: number): Promise<void> };
      const runSidecar = await lazy<(o: Record<string, unknown>) => Promise<Running>>('../../sidecar/main.ts', 'runSidecar');
      let sidecar: Running;
      try {
        sidecar = await runSidecar(opts);
      } catch (err) {
        throw new CliError(`error: ${(err as Error).message}`, 2);
      }
      // Ctrl-C, SIGTERM, or POST /quitquitquit on the admin port (as Envoy's, for jobs whose app has finished).
      const how = await Promise.race([untilSignal(), sidecar.quit.then(() => 'quit' as const)]);
      // SIGTERM is how a supervisor stops a workload: in-flight inbound requests finish first (Ctrl-C does not wait).
      if (how === 'SIGTERM' && terminationDrainS > 0) await Promise.race([sidecar.drainBeforeExit(terminationDrainS * 1000), untilSignal()]);
      await sidecar.close();
    });

  program
    .command('up')
    .description('run the local demo mesh: control plane and demo services behind weft sidecars')
    .option('--otel-collector <host:port>', 'trace every request to this OTLP/gRPC collector (e.g. Jaeger on :4317)')
    .action(async (opts: { otelCollector?: string }) => {
      const runUp = await lazy<(o: { otelCollector?: string }) => Promise<unknown>>('./up.ts', 'runUp');
      await runUp(opts);
    });

  program.addCommand(bootstrapCommand());

  let connection: ConnectionOptions = {};
  const conn = () => connection;
  registerManifestCommands(program, conn);
  registerReadCommands(program, conn);
  registerWriteCommands(program, conn);

  const processCommands = new Set(['control', 'sidecar', 'up', 'bootstrap']);
  const addConnectionOptions = (cmd: Command): void => {
    if (cmd.commands.length > 0) return cmd.commands.forEach(addConnectionOptions);
    cmd
      .addOption(new Option('--api <url>', 'REST API base URL').env('WEFT_API').default('http://127.0.0.1:8080'))
      .addOption(new Option('--token <token>', 'bearer token').env('WEFT_TOKEN'))
      .addOption(new Option('--timeout <duration>', 'give up on a request the API has not answered within this long, e.g. 10s, 2m (0: never); each request of --wait separately; weft tap streams without one').env('WEFT_TIMEOUT').default(formatTimeout(DEFAULT_TIMEOUT_MS)))
      .option('--data-dir <dir>', 'read the admin token from <dir>/admin.token when no token is given');
  };
  program.commands.filter((c) => !processCommands.has(c.name())).forEach(addConnectionOptions);
  program.hook('preAction', (_root, action) => {
    const o = action.opts<{ api?: string; token?: string; dataDir?: string; timeout?: string }>();
    connection = { api: o.api, token: o.token, dataDir: o.dataDir, ...(o.timeout !== undefined ? { timeoutMs: requestTimeout(o.timeout) } : {}) };
  });
  // Commander's own usage errors (an unknown command or option, a missing argument) are thrown to main(), which
  // exits 2 as for every other usage error, instead of commander's process.exit(1). Every command, also the ones
  // added whole (bootstrap), which do not inherit the setting.
  const throwOnExit = (cmd: Command): void => {
    cmd.exitOverride();
    cmd.commands.forEach(throwOnExit);
  };
  throwOnExit(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv);
    return 0;
  } catch (err) {
    // Commander has printed its message (and the usage) already; --help and --version are not errors.
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    if (err instanceof CliError) {
      // The server's message may quote what a proxy said (its id, its admin's answer): escaped as in tables, line by line.
      const safe = (text: string) => text.split('\n').map(terminalSafe).join('\n');
      console.error(safe(err.message));
      // One problem is said in full by the message already; more are listed one per line.
      const [only] = err.details;
      const said = err.details.length === 1 && only !== undefined && err.message.includes(`${only.path ? `${only.path}: ` : ''}${only.message}`);
      if (!said) for (const d of err.details) console.error(safe(`  ${d.path || '(body)'}: ${d.message}`));
      return err.exitCode;
    }
    // What the operator must fix (a port in use, a locked data dir) is one line; anything else is a bug, with its stack.
    if ((err as Error).name === 'StartupError') console.error(`error: ${(err as Error).message}`);
    else console.error(`error: ${(err as Error).stack ?? String(err)}`);
    return 1;
  }
}

// `weft diff -f x | head`: a closed pipe ends the command quietly.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

const code = await main(process.argv);
if (code !== 0) process.exitCode = code;
