// `weft sidecar`: wiring only. Picks the listener ports (the control plane
// needs real ones in node metadata), starts the data plane, the admin port
// and the ADS client, prints `ready` once the first full config is applied.

import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import net from 'node:net';
import { OTEL_CLUSTER_NAME } from '../proxy-config/options.ts';
import { createAdminServer } from './admin.ts';
import { Profilers } from './admin-profiler.ts';
import { bufferedLines } from './access-log.ts';
import { DataPlane } from './dataplane.ts';
import { Level, Loggers, parseComponentLevels, parseLevel } from './logging.ts';
import type { LogEntry } from './wasm/index.ts';
import { SidecarStats } from './stats.ts';
import { Runtime, defaultLayers, layeredRuntimeJson, parseLayeredRuntime } from './runtime.ts';
import { parse as parseYaml } from 'yaml';
import { XdsClient, speaksTls } from './xds-client.ts';

export interface SidecarOptions {
  service: string;
  /** host:port of the control plane's ADS. */
  xds: string;
  appPort: number;
  appAddress?: string;
  /** 0 or absent: a free port is chosen. */
  inboundPort?: number;
  outboundPort?: number;
  adminPort?: number;
  namespace?: string;
  bindAddress?: string;
  sotw?: boolean;
  /**
   * Access log lines of the connection managers whose access_log names the stdout logger: to stdout (default
   * true; WEFT_ACCESS_LOG=off turns them off for `weft sidecar`), off (false), or to a function (tests, embedding).
   */
  accessLog?: boolean | ((line: string) => void);
  /** Where `ready` and other lifecycle lines go (default stdout). */
  log?: (line: string) => void;
  /** Join token for a control plane with mesh identity on (node.metadata WEFT_TOKEN; default $WEFT_PROXY_TOKEN). */
  token?: string;
  /**
   * A PEM file of the roots the xDS server's certificate must verify against (the mesh root, <data-dir>/ca-root.pem
   * of a `weft control --identity --xds-tls`): xDS over TLS. Plaintext when absent.
   */
  xdsCa?: string;
  /** With xdsCa: the name the server's certificate must carry, when it is not the host of `xds` (an IP not in it). */
  xdsServerName?: string;
  /** HOST:PORT of an OTLP/gRPC collector: the bootstrap cluster weft_otel, which the OpenTelemetry tracer exports to (weft bootstrap's flag of the same name). */
  otelCollector?: string;
  /** Seconds /drain_listeners?graceful drains before the listeners stop (Envoy's --drain-time-s; default 600). */
  drainTimeS?: number;
  /** Every logger's level (Envoy's --log-level): trace, debug, info (default), warning, error, critical, off. */
  logLevel?: string;
  /** Per-logger levels on top, Envoy's --component-log-level: `wasm:debug,config:warning`. */
  componentLogLevel?: string;
  /** Where /cpuprofiler and /heapprofiler write their profiles (Envoy's admin profile_path); default the system temp dir. */
  profilePath?: string;
  /** The overload manager's fixed_heap monitor, in MiB (sidecar/overload.ts); off when absent. */
  maxHeapMb?: number;
  /** The overload manager's global_downstream_max_connections; no limit when absent. */
  maxDownstreamConnections?: number;
  /**
   * A YAML or JSON file holding the bootstrap's layered_runtime (envoy.config.bootstrap.v3.LayeredRuntime: `layers:
   * [...]`), in place of the default layers (a `weft` static layer and `admin`, as weft's Envoy bootstrap has).
   */
  layeredRuntime?: string;
  /**
   * How long the xDS stream may stay down (connecting and failing) before the sidecar warns that the control plane
   * is out of reach, and then how often it says so again while it stays down; default 30 s, Envoy's threshold.
   * For tests (`weft sidecar`'s hidden --xds-outage-warn-ms).
   */
  xdsOutageWarnMs?: number;
}

export interface RunningSidecar {
  nodeId: string;
  inboundPort: number;
  outboundPort: number;
  adminPort: number;
  dataPlane: DataPlane;
  /** Resolves once /ready would answer 200. */
  ready: Promise<void>;
  /** Resolves when POST /quitquitquit asks the sidecar to shut down (weft sidecar then closes and exits). */
  quit: Promise<void>;
  /** Drains the inbound listeners for up to maxMs, or until they have been quiet for a second (DataPlane.drainBeforeExit), saying so on the log. */
  drainBeforeExit(maxMs: number): Promise<void>;
  close(): Promise<void>;
}

/**
 * A wasm filter's proxy_log entry as the sidecar's stdout line:
 * {"level","source":"wasm","plugin","msg"}. Built by hand: the level is one
 * of a fixed set of names, and only the message needs escaping
 * (JSON.stringify of an object cost a third more).
 */
export function wasmLogLine(e: LogEntry): string {
  return `{"level":"${e.level}","source":"wasm","plugin":${JSON.stringify(e.plugin)},"msg":${JSON.stringify(e.message)}}`;
}

let ephemeral: [number, number] | undefined;

/** The ports the kernel gives outgoing connections (Linux reads it from /proc, once; elsewhere IANA's dynamic range). */
function ephemeralRange(): [number, number] {
  return (ephemeral ??= readEphemeralRange());
}

function readEphemeralRange(): [number, number] {
  try {
    const [lo, hi] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (Number.isInteger(lo) && Number.isInteger(hi)) return [lo!, hi!];
  } catch {
    // not Linux
  }
  return [49152, 65535];
}

/** Where freePort looks: from 10000 up to the ephemeral range. */
const PICK_FROM = 10_000;
/** Ports this process handed out lately: not handed out again while they may still be about to be bound. */
const handedOut: number[] = [];

function listenable(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, host, () => s.close(() => resolve(true)));
  });
}

/**
 * A port to listen on later, for `weft up` and tests. It is chosen below the
 * kernel's ephemeral range: a port from inside it (what listening on port 0
 * gives) can be taken by any outgoing connection before its listener binds
 * it, and `weft up` opens many (a sidecar then NACKed its listener with
 * EADDRINUSE). Falls back to the kernel's choice when no such range is left.
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const [lo] = ephemeralRange();
  const span = lo - PICK_FROM;
  for (let i = 0; span > 1000 && i < 100; i++) {
    const port = PICK_FROM + Math.floor(Math.random() * span);
    if (handedOut.includes(port) || !(await listenable(port, host))) continue;
    handedOut.push(port);
    if (handedOut.length > 512) handedOut.shift();
    return port;
  }
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

function checkPort(name: string, v: number | undefined): void {
  if (v !== undefined && (!Number.isInteger(v) || v < 0 || v > 65535)) throw new Error(`${name}: must be a port 0..65535, got ${v}`);
}

/** V8 flags for a sidecar process (sidecar/node-flags.json): whoever spawns one puts these before its script. */
export function sidecarNodeFlags(): string[] {
  return (JSON.parse(readFileSync(new URL('./node-flags.json', import.meta.url), 'utf8')) as { flags: string[] }).flags;
}

export async function runSidecar(opts: SidecarOptions): Promise<RunningSidecar> {
  if (!opts.service) throw new Error('service: required');
  if (!/^[^:]+:\d+$/.test(opts.xds)) throw new Error(`xds: must be HOST:PORT, got ${JSON.stringify(opts.xds)}`);
  checkPort('app-port', opts.appPort);
  if (!opts.appPort) throw new Error('app-port: required');
  checkPort('inbound-port', opts.inboundPort);
  checkPort('outbound-port', opts.outboundPort);
  checkPort('admin-port', opts.adminPort);
  if (opts.drainTimeS !== undefined && !(Number.isFinite(opts.drainTimeS) && opts.drainTimeS >= 0)) throw new Error(`drain-time-s: must be a number of seconds, 0 or more, got ${JSON.stringify(opts.drainTimeS)}`);
  for (const [flag, n] of [['max-heap-mb', opts.maxHeapMb], ['max-downstream-connections', opts.maxDownstreamConnections]] as const) {
    if (n !== undefined && !(Number.isInteger(n) && n >= 1)) throw new Error(`${flag}: must be a whole number, 1 or more, got ${JSON.stringify(n)}`);
  }
  const outageWarnMs = opts.xdsOutageWarnMs ?? 30_000;
  if (!(Number.isInteger(outageWarnMs) && outageWarnMs >= 1)) throw new Error(`xds-outage-warn-ms: must be a whole number, 1 or more, got ${JSON.stringify(opts.xdsOutageWarnMs)}`);
  const level = parseLevel(opts.logLevel ?? 'info');
  if (level === undefined) throw new Error(`log-level: ${JSON.stringify(opts.logLevel)} is not a log level (trace, debug, info, warning, error, critical, off)`);
  const components = opts.componentLogLevel === undefined ? [] : parseComponentLevels(opts.componentLogLevel);
  if (typeof components === 'string') throw new Error(components);
  const loggers = new Loggers(level, components);
  const profileDir = opts.profilePath ?? tmpdir();
  if (!existsSync(profileDir) || !statSync(profileDir).isDirectory()) throw new Error(`profile-path: ${JSON.stringify(profileDir)} is not a directory`);
  const collectors = new Map<string, { host: string; port: number }>();
  if (opts.otelCollector !== undefined) {
    const m = /^(.+):(\d+)$/.exec(opts.otelCollector);
    if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) throw new Error(`otel-collector: must be HOST:PORT, got ${JSON.stringify(opts.otelCollector)}`);
    collectors.set(OTEL_CLUSTER_NAME, { host: m[1]!.replace(/^\[(.*)\]$/, '$1'), port: Number(m[2]) });
  }
  let layers = defaultLayers();
  if (opts.layeredRuntime !== undefined) {
    let text: string;
    try {
      text = readFileSync(opts.layeredRuntime, 'utf8');
    } catch (e) {
      throw new Error(`layered-runtime: ${opts.layeredRuntime}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
    }
    let json: unknown;
    try {
      json = parseYaml(text);
    } catch (e) {
      throw new Error(`layered-runtime: ${opts.layeredRuntime}: not YAML or JSON: ${(e as Error).message}`);
    }
    const parsed = parseLayeredRuntime(json);
    if (typeof parsed === 'string') throw new Error(`layered-runtime: ${opts.layeredRuntime}: ${parsed}`);
    layers = parsed;
  }
  let xdsTls: { rootsPem: Buffer; serverName?: string } | undefined;
  if (opts.xdsServerName !== undefined && opts.xdsCa === undefined) throw new Error('xds-server-name: needs --xds-ca (it names the server a TLS connection verifies)');
  if (opts.xdsCa !== undefined) {
    let rootsPem: Buffer;
    try {
      rootsPem = readFileSync(opts.xdsCa);
    } catch (e) {
      throw new Error(`xds-ca: ${opts.xdsCa}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
    }
    if (!rootsPem.toString('latin1').includes('-----BEGIN CERTIFICATE-----')) throw new Error(`xds-ca: ${opts.xdsCa}: holds no PEM certificate (give the mesh root, <data-dir>/ca-root.pem of weft control)`);
    if (opts.xdsServerName !== undefined && !/^[A-Za-z0-9]([-A-Za-z0-9.]{0,251}[A-Za-z0-9])?$|^[0-9a-fA-F:.]+$/.test(opts.xdsServerName)) throw new Error(`xds-server-name: must be a host name or IP address, got ${JSON.stringify(opts.xdsServerName)}`);
    xdsTls = { rootsPem, ...(opts.xdsServerName !== undefined ? { serverName: opts.xdsServerName } : {}) };
  }
  const log = opts.log ?? ((line: string) => process.stdout.write(line + '\n'));
  const bindAddress = opts.bindAddress ?? '127.0.0.1';
  const inboundPort = opts.inboundPort || (await freePort(bindAddress));
  const outboundPort = opts.outboundPort || (await freePort());
  const nodeId = `${opts.service}-${process.pid}-${randomBytes(3).toString('hex')}`;
  const stats = new SidecarStats();
  const runtime = new Runtime(layers, opts.service, stats.runtime);
  const accessLogOn = opts.accessLog ?? process.env.WEFT_ACCESS_LOG !== 'off';
  // Everything the sidecar logs to stdout leaves through one batch: one write per event-loop turn for both logs.
  const stdoutLines = bufferedLines((chunk) => process.stdout.write(chunk));
  const accessLog = !accessLogOn ? undefined : typeof opts.accessLog === 'function' ? opts.accessLog : (line: string) => stdoutLines.line(line);
  // Wasm filters' proxy_log lines (e.g. the telemetry filter's access log), one JSON line each:
  // {"level","source":"wasm","plugin","msg"}. With a `log` hook (tests, embedding) the lines go there instead.
  const wasmLines = opts.log ? { line: opts.log, close: () => undefined } : stdoutLines;
  const wasmLog = (e: LogEntry) => wasmLines.line(wasmLogLine(e));
  const overload = { maxHeapBytes: opts.maxHeapMb === undefined ? undefined : opts.maxHeapMb * 1024 * 1024, maxDownstreamConnections: opts.maxDownstreamConnections };
  const dataPlane = new DataPlane(stats, { accessLog, wasmLog, node: { id: nodeId, cluster: opts.service }, collectors, log, loggers, overload, runtime });

  let connected = false;
  let lastError: string | undefined;
  let requestQuit: () => void = () => undefined;
  const quit = new Promise<void>((r) => (requestQuit = r));
  // The service name goes into file names: anything but letters, digits, '.', '_' and '-' becomes '_'.
  const profilers = new Profilers(profileDir, `weft-sidecar-${opts.service.replace(/[^\w.-]/g, '_')}-${process.pid}`);
  const metadata: Record<string, string> = {};
  const startedAt = new Date();
  const bootstrap = () => ({ node: { id: nodeId, cluster: opts.service, metadata }, xds: opts.xds, sotw: opts.sotw === true, adminPort, collectors, startedAt, layeredRuntime: layeredRuntimeJson(layers) });
  const admin = createAdminServer(dataPlane, { node: { id: nodeId, cluster: opts.service }, xds: () => ({ connected, lastError }), quit: () => requestQuit(), profilers, bootstrap, ...(opts.drainTimeS !== undefined ? { drainTimeMs: opts.drainTimeS * 1000 } : {}) });
  await new Promise<void>((resolve, reject) => {
    admin.once('error', reject);
    admin.listen(opts.adminPort ?? 0, '127.0.0.1', () => resolve());
  });
  const adminPort = (admin.address() as net.AddressInfo).port;

  let markReady: () => void = () => undefined;
  const ready = new Promise<void>((r) => (markReady = r));
  let isReady = false;
  const client = new XdsClient({
    server: opts.xds,
    sotw: opts.sotw,
    ...(xdsTls ? { tls: xdsTls } : {}),
    dataPlane,
    node: {
      id: nodeId,
      cluster: opts.service,
      // the same object /config_dump's bootstrap and /server_info show
      metadata: Object.assign(metadata, {
        WEFT_NAMESPACE: opts.namespace ?? 'default',
        WEFT_INBOUND_PORT: String(inboundPort),
        WEFT_OUTBOUND_PORT: String(outboundPort),
        WEFT_APP_PORT: String(opts.appPort),
        WEFT_APP_ADDRESS: opts.appAddress ?? '127.0.0.1',
        WEFT_BIND_ADDRESS: bindAddress,
        WEFT_KIND: 'sidecar',
        WEFT_ADMIN_PORT: String(adminPort),
        ...((opts.token ?? process.env.WEFT_PROXY_TOKEN) ? { WEFT_TOKEN: (opts.token ?? process.env.WEFT_PROXY_TOKEN)! } : {}),
      }),
    },
    onConnection: (up, rawError, code) => {
      connected = up;
      const error = rawError === undefined ? undefined : explainXdsError(rawError, code);
      if (error) lastError = error;
      // A stream is up, so whatever it speaks works: no TLS advice until it fails again.
      if (up) serverSpeaksTls = false;
      if (up) outageEnds();
      else outageBegins(error, code);
      // As Envoy's "gRPC config stream closed: <status>, <message>": a warning unless the status is one a
      // reconnect cures (OK, UNAVAILABLE, DEADLINE_EXCEEDED), so an expired or revoked join token is in the log.
      if (!up && code !== undefined) {
        const level = code === 0 || code === 14 || code === 4 ? Level.debug : Level.warning;
        if (loggers.enabled('config', level)) log(JSON.stringify({ level: level === Level.debug ? 'debug' : 'warn', source: 'config', msg: 'xds stream closed', code, error }));
      }
    },
    onResponse: (e) => {
      // The config logger: a NACK at warning, every accepted update at debug (what changed, by name).
      if (e.nack) {
        if (loggers.enabled('config', Level.warning)) log(JSON.stringify({ level: 'warn', source: 'config', msg: 'xds NACK', type: e.kind, error: e.nack }));
      } else if (loggers.enabled('config', Level.debug)) {
        log(JSON.stringify({ level: 'debug', source: 'config', msg: 'xds ACK', type: e.kind, version: e.version, updated: e.updated, removed: e.removed }));
      }
      if (dataPlane.ready()) announceReady();
    },
  });
  // Why a stream failed, when TLS is the reason: grpc-js's message names the certificate check that failed; a plaintext
  // sidecar facing a TLS control plane (weft control --xds-tls) only sees the connection close, so it asks once
  // whether the server speaks TLS, and then says so in /xds lastError and the outage warnings.
  let serverSpeaksTls = false;
  /** When it last asked (at most every 10 s while the stream fails, so a control plane restarted with --xds-tls is noticed too). */
  let probedAt = -Infinity;
  function explainXdsError(error: string, code: number | undefined): string {
    if (xdsTls) {
      return code === 14 && /certificate|altnames|self[- ]signed|verify|SSL|TLS|handshake|ERR_TLS/i.test(error)
        ? `${error} [xDS over TLS: the control plane's certificate did not verify against --xds-ca ${opts.xdsCa}${xdsTls.serverName ? ` for the name ${xdsTls.serverName}` : ''}]`
        : error;
    }
    if (code === 14 && !serverSpeaksTls && Date.now() - probedAt >= 10_000) {
      probedAt = Date.now();
      void speaksTls(opts.xds).then((yes) => {
        if (!yes || closing || connected || serverSpeaksTls) return;
        serverSpeaksTls = true;
        if (lastError && !connected) lastError = explainXdsError(lastError, code);
        if (outage && lastError) outage.error = lastError;
        if (loggers.enabled('config', Level.warning)) log(JSON.stringify({ level: 'warn', source: 'config', msg: 'xds: the control plane serves xDS over TLS and this sidecar connects in plaintext: give --xds-ca with the mesh root (<data-dir>/ca-root.pem)', xds: opts.xds }));
      });
    }
    return serverSpeaksTls && code === 14 && !error.includes('[xDS') ? `${error} [xDS over TLS: the control plane serves TLS and this sidecar connects in plaintext: give --xds-ca with the mesh root]` : error;
  }
  let closing = false;
  // A control plane out of reach is said at warning once the stream has been down for outageWarnMs, then again every
  // outageWarnMs while it stays down, as Envoy's GrpcStream says "gRPC config stream to xds_cluster closed since 31s
  // ago: 14, ..." (its retriable closes are debug lines until then, as here). Before, every close was a debug line, so
  // a sidecar whose control plane had stopped said nothing at the default level, however long it lasted. A timer,
  // not the next close, says it: closes come with the backoff (up to 5 s apart), or later still from a control plane
  // that accepts connections and never answers, and a warning per close would be one every few seconds.
  let outage: { since: number; code?: number; error?: string; warned: boolean; timer?: NodeJS.Timeout } | undefined;
  let everUp = false;
  const downS = (o: { since: number }) => Math.round((Date.now() - o.since) / 100) / 10;
  function outageBegins(error: string | undefined, code: number | undefined): void {
    outage ??= { since: Date.now(), warned: false };
    if (code !== undefined) outage.code = code;
    if (error !== undefined) outage.error = error;
    outage.timer ??= setTimeout(warnOutage, outageWarnMs).unref();
  }
  function warnOutage(): void {
    if (!outage) return;
    outage.warned = true;
    outage.timer = setTimeout(warnOutage, outageWarnMs).unref();
    if (loggers.enabled('config', Level.warning)) log(JSON.stringify({ level: 'warn', source: 'config', msg: 'xds stream down: the control plane is out of reach', xds: opts.xds, down_s: downS(outage), code: outage.code, error: outage.error }));
  }
  function outageEnds(): void {
    const o = outage;
    outage = undefined;
    // The first connection after a start is no reconnect, unless the wait for it was warned about.
    if (o && (everUp || o.warned) && loggers.enabled('config', Level.info)) log(JSON.stringify({ level: 'info', source: 'config', msg: 'xds stream up again', xds: opts.xds, down_s: downS(o) }));
    clearTimeout(o?.timer);
    everUp = true;
  }
  // Once ready, whatever made it so: an xDS response, or a cluster's first health-check round completing after it.
  function announceReady(): void {
    if (isReady) return;
    isReady = true;
    const boundIn = dataPlane.listenerPort('inbound');
    const boundOut = dataPlane.listenerPort('outbound');
    if ((boundIn !== undefined && boundIn !== inboundPort) || (boundOut !== undefined && boundOut !== outboundPort)) {
      // The control plane chose other ports than the node metadata asked for: say so, callers registered the asked-for ones.
      log(JSON.stringify({ level: 'warn', msg: 'listener ports differ from node metadata', asked: { inbound: inboundPort, outbound: outboundPort }, bound: { inbound: boundIn, outbound: boundOut } }));
    }
    log(`ready: proxy=${nodeId} service=${opts.service} inbound=${bindAddress}:${boundIn ?? inboundPort} outbound=127.0.0.1:${boundOut ?? outboundPort} admin=http://127.0.0.1:${adminPort}`);
    markReady();
  }
  void dataPlane.initialized.then(announceReady);
  // Its proxy id from the start (weft proxy-status PROXY, weft tap PROXY), also while it waits for a config that may
  // never come (a --service nobody registered: weft proxy-status then says NOT_SENT, and why).
  log(JSON.stringify({ level: 'info', msg: 'starting', proxy: nodeId, service: opts.service, xds: opts.xds, admin: `http://127.0.0.1:${adminPort}` }));
  // Down until the first connection: a control plane that never answers is warned about as one that went away.
  outageBegins(undefined, undefined);
  client.start();
  return {
    nodeId,
    inboundPort,
    outboundPort,
    adminPort,
    dataPlane,
    ready,
    quit,
    async drainBeforeExit(maxMs: number) {
      log(JSON.stringify({ level: 'info', msg: 'draining inbound listeners before exit', max_s: maxMs / 1000 }));
      const started = Date.now();
      const reason = await dataPlane.drainBeforeExit(maxMs);
      log(JSON.stringify({ level: 'info', msg: 'drained', reason, ms: Date.now() - started }));
    },
    async close() {
      closing = true;
      client.close();
      clearTimeout(outage?.timer);
      await new Promise<void>((r) => {
        admin.close(() => r());
        admin.closeAllConnections();
      });
      profilers.close();
      await dataPlane.close();
      wasmLines.close();
      stdoutLines.close();
    },
  };
}
