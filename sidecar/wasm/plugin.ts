// A loaded filter: the compiled module, its configuration, the live VM and
// what outlives any one VM (metrics, logs, shared data). Compiles once;
// a VM that traps is replaced by a fresh instance for the next stream.

import { logLevelNames, LogLevel, type AbiVersion, type LogLevelName } from './abi.ts';
import { WasmLoadError } from './abi-version.ts';
import { checkImportTypes } from './import-signatures.ts';
import type { GrpcStreamDispatcher, HttpCallDispatcher } from './context.ts';
import { encodeUtf8 } from './memory.ts';
import { MetricStore } from './metrics.ts';
import type { StreamProperties } from './properties.ts';
import { processSharedState, type SharedState } from './shared.ts';
import { HttpStreamContext, type HttpStream, type StreamOwner } from './stream.ts';
import { WasmVm } from './vm.ts';
import { wasmApi, type WasmBytes, type WasmModule } from './wasm-api.ts';

export interface PluginConfig {
  /** Plugin name (`plugin_name` property, metric label). */
  name: string;
  /** Selects the root context in multi-root modules; `plugin_root_id`. Default "". */
  rootId?: string;
  /** Shared data and queues are shared between plugins with the same vm_id. Default "". */
  vmId?: string;
  /** Plugin configuration, read by the module in proxy_on_configure. */
  configuration?: string | Uint8Array;
  /** VM configuration, read in proxy_on_vm_start. */
  vmConfiguration?: string | Uint8Array;
  /**
   * After the module traps (Envoy's FailurePolicy): `fail_closed` (default),
   * every stream from then on gets a 503; `fail_open`, every stream passes
   * the filter by; either way the failed VM stays until the plugin is
   * configured again, as in Envoy. `fail_reload` (Envoy's FAIL_RELOAD): the
   * stream in progress gets a 503, and the next stream runs on a new VM.
   */
  failurePolicy?: FailurePolicy;
  /** Environment variables the module sees through WASI environ_get. */
  environment?: Record<string, string>;
  /**
   * Where the module's metrics (and the VM counters) are kept: by default the plugin's own. A host passes the
   * store of the plugin this one replaces, so its counters go on rather than start over beside the old ones, as
   * Envoy's stats of the same name are one stat whichever VM writes them.
   */
  metrics?: MetricStore;
}

export interface LogEntry {
  level: LogLevelName;
  message: string;
  plugin: string;
  contextId: number;
}

export interface HostEnv {
  /** Carries proxy_http_call to an upstream. Without it every http_call is BAD_ARGUMENT (unknown cluster). */
  httpCall?: HttpCallDispatcher;
  /** Carries proxy_grpc_stream to an upstream (an HTTP/2 stream). Without it every gRPC stream is refused as to an unknown cluster. */
  grpcStream?: GrpcStreamDispatcher;
  /** Known cluster names; an http_call to any other is BAD_ARGUMENT, as in Envoy. Default: any. */
  hasCluster?: (name: string) => boolean;
  /** Scope of shared data and queues. Default: one per process. */
  shared?: SharedState;
  /** Messages below this level are dropped; also what proxy_get_log_level reports ("off" drops all, and reports critical). Default "info". */
  logLevel?: LogLevelName | 'off';
  /** Sees every log entry as it is written. */
  onLog?: (entry: LogEntry) => void;
  /** Newest entries kept in `plugin.logs` (older ones dropped in batches, so it may briefly hold a quarter more). Default 1000; 0 keeps none (onLog still sees every entry). */
  maxLogEntries?: number;
  /** Wall clock in nanoseconds since the epoch. Default: Date.now(). */
  now?: () => bigint;
  /** Timers the host runs (http_call timeouts) on the same clock as `now`; returns a cancel. Default: real timers. */
  setTimer?: (ms: number, fn: () => void) => () => void;
  /** Plugin-level attributes (xds.*, node, listener_direction, ...), visible to every context. */
  properties?: StreamProperties;
  foreignFunctions?: Record<string, (args: Uint8Array) => Uint8Array | undefined>;
  /** Run proxy_on_tick on a timer at the period the module asks for (the sidecar does; tests tick by hand). */
  autoTick?: boolean;
  /**
   * Header names and values are byte strings, one character per byte, as
   * node's HTTP parser hands them over: they reach the module and come back
   * byte for byte, as Envoy passes header bytes (a UTF-8 value a client sent
   * is the same UTF-8 in the filter, and a filter's UTF-8 value is sent as
   * it wrote it). The sidecar sets it. Default false: headers are Unicode
   * strings, UTF-8 in the module (the test kit, whose callers pass text).
   */
  headerBytes?: boolean;
}

export type FailurePolicy = 'fail_closed' | 'fail_open' | 'fail_reload';
const FAILURE_POLICIES: readonly FailurePolicy[] = ['fail_closed', 'fail_open', 'fail_reload'];

/** Date.now() in nanoseconds; the BigInt is made once per millisecond (filters read the clock several times a request). */
let clockMs = -1;
let clockNs = 0n;
function wallClockNs(): bigint {
  const ms = Date.now();
  if (ms !== clockMs) {
    clockMs = ms;
    clockNs = BigInt(ms) * 1_000_000n;
  }
  return clockNs;
}

/** A log threshold above critical: nothing is written. */
const LOG_OFF = 6;

const isBytes = (value: WasmBytes | WasmModule): value is WasmBytes => value instanceof ArrayBuffer || ArrayBuffer.isView(value);

const toBytes = (value: string | Uint8Array | undefined): Uint8Array =>
  value === undefined ? new Uint8Array(0) : typeof value === 'string' ? encodeUtf8(value) : value;

export class WasmPlugin {
  readonly metrics: MetricStore;
  readonly logs: LogEntry[] = [];
  private vm: WasmVm;
  private tickMs = 0;
  private ticker: NodeJS.Timeout | undefined;
  private readonly failurePolicy: FailurePolicy;
  private readonly pluginIds: { name: string; rootId: string; vmId: string };
  /** What every VM of this plugin drops below (setLogLevel changes the running one too). */
  private readonly logThreshold: { level: number };
  private readonly owner: StreamOwner;

  /**
   * Compiles the module, instantiates a VM and runs its root lifecycle
   * (_initialize, context create, on_vm_start, on_configure). Throws
   * WasmLoadError naming what is wrong (ABI version, an import, a refused
   * configuration).
   */
  static async load(wasm: WasmBytes | WasmModule, config: PluginConfig, env: HostEnv = {}): Promise<WasmPlugin> {
    if (typeof config?.name !== 'string' || config.name.length === 0) throw new WasmLoadError('config.name', 'is required');
    if (config.failurePolicy !== undefined && !FAILURE_POLICIES.includes(config.failurePolicy)) {
      throw new WasmLoadError('config.failurePolicy', `must be one of ${FAILURE_POLICIES.map((p) => `"${p}"`).join(', ')}, got ${JSON.stringify(config.failurePolicy)}`);
    }
    if (env.logLevel !== undefined && env.logLevel !== 'off' && !logLevelNames.includes(env.logLevel)) throw new WasmLoadError('env.logLevel', `must be one of ${logLevelNames.join(', ')}, off`);
    let module: WasmModule;
    if (isBytes(wasm)) checkImportTypes(wasm instanceof ArrayBuffer ? new Uint8Array(wasm) : new Uint8Array(wasm.buffer, wasm.byteOffset, wasm.byteLength));
    try {
      module = isBytes(wasm) ? await wasmApi.compile(wasm) : wasm;
    } catch (error) {
      throw new WasmLoadError('module', `not a valid WebAssembly module: ${(error as Error).message}`);
    }
    return new WasmPlugin(module, config, env);
  }

  private constructor(
    readonly module: WasmModule,
    readonly config: PluginConfig,
    private readonly env: HostEnv,
  ) {
    this.metrics = config.metrics ?? new MetricStore();
    this.failurePolicy = config.failurePolicy ?? 'fail_closed';
    this.pluginIds = { name: config.name, rootId: config.rootId ?? '', vmId: config.vmId ?? '' };
    const warned = new Set<string>();
    this.owner = {
      failurePolicy: this.failurePolicy,
      plugin: this.pluginIds,
      warnOnce: (key, message) => {
        if (warned.has(key)) return;
        warned.add(key);
        this.record(LogLevel.warn, message, 0);
      },
      // proxy_on_tick may continue any stream the module holds (the SDKs set the effective context first),
      // and so may a gRPC stream's callbacks (delivered to the root context) while one is open.
      canResume: () => this.tickMs > 0 || this.vm.openGrpcStreams > 0,
    };
    this.logThreshold = { level: env.logLevel === 'off' ? LOG_OFF : LogLevel[env.logLevel ?? 'info'] };
    this.vm = this.createVm();
  }

  private createVm(): WasmVm {
    const vm = WasmVm.create(this.module, {
      plugin: this.pluginIds,
      vmConfiguration: toBytes(this.config.vmConfiguration),
      pluginConfiguration: toBytes(this.config.configuration),
      environment: Object.entries(this.config.environment ?? {}),
      metrics: this.metrics,
      shared: this.env.shared ?? processSharedState,
      logThreshold: this.logThreshold,
      log: (level, message, contextId) => this.record(level, message, contextId),
      nowNs: this.env.now ?? wallClockNs,
      setTimer: this.env.setTimer,
      httpCall: this.env.httpCall,
      grpcStream: this.env.grpcStream,
      hasCluster: this.env.hasCluster,
      foreignFunctions: this.env.foreignFunctions,
      headerBytes: this.env.headerBytes === true,
      rootProperties: this.env.properties ?? {},
      onTickPeriod: (ms) => this.setTickPeriod(ms),
      onFailure: () => {
        this.metrics.vmFailures++;
      },
    });
    this.metrics.vmsCreated++;
    return vm;
  }

  /** VMs created (1 after load) and VMs that failed, in its metric store; exported as Prometheus counters too. */
  get vmsCreated(): number {
    return this.metrics.vmsCreated;
  }

  get vmFailures(): number {
    return this.metrics.vmFailures;
  }

  /** Stream contexts open on its current VM (a host closes a replaced plugin once none is). */
  get openStreams(): number {
    return this.vm.streamContexts;
  }

  private record(level: number, message: string, contextId: number): void {
    const entry: LogEntry = { level: logLevelNames[level] ?? 'critical', message, plugin: this.config.name, contextId };
    const max = this.env.maxLogEntries ?? 1000;
    if (max > 0) {
      this.logs.push(entry);
      // Trimmed in batches: a splice per entry moved the whole array on every log line.
      if (this.logs.length >= max + Math.max(16, max >> 2)) this.logs.splice(0, this.logs.length - max);
    }
    this.env.onLog?.(entry);
  }

  /**
   * Messages below `level` (0 trace .. 5 critical; 6 drops them all) are
   * dropped from now on, in the running VM and any that replaces it, and
   * proxy_get_log_level reports it (critical for 6). The sidecar's POST /logging?wasm=.
   */
  setLogLevel(level: number): void {
    if (!Number.isInteger(level) || level < 0 || level > LOG_OFF) throw new RangeError(`log level must be 0..${LOG_OFF}, got ${level}`);
    this.logThreshold.level = level;
  }

  get logLevel(): number {
    return this.logThreshold.level;
  }

  get abiVersion(): AbiVersion {
    return this.vm.abiVersion;
  }

  /** The tick period the module last asked for (0 = no ticks). */
  get tickPeriodMs(): number {
    return this.tickMs;
  }

  /** Http calls dispatched and not yet delivered. */
  get pendingHttpCalls(): number {
    return this.vm.pendingHttpCalls;
  }

  /** True when the current VM has trapped and no stream has replaced it yet. */
  get failed(): boolean {
    return this.vm.failure !== undefined;
  }

  /**
   * A new stream context (proxy_on_context_create). On a failed VM the stream
   * gets the failure policy, except under fail_reload, where the VM is
   * replaced first (if the replacement cannot start, the policy applies).
   */
  newHttpStream(properties: StreamProperties = {}): HttpStream {
    if (this.vm.failure !== undefined && !this.vm.closed && this.failurePolicy === 'fail_reload') {
      try {
        // Before the new VM starts: its proxy_on_configure may ask for ticks again.
        this.setTickPeriod(0);
        this.vm = this.createVm();
      } catch (error) {
        this.record(LogLevel.critical, `wasm VM could not be recreated: ${(error as Error).message}`, 0);
      }
    }
    // The stream's own properties first, then the plugin's, then request.time: looked up in that order, not merged per stream.
    const startMs = this.env.now !== undefined ? Number(this.env.now() / 1_000_000n) : Date.now();
    return new HttpStreamContext(this.vm, this.owner, properties, this.env.properties, startMs);
  }

  /** Runs proxy_on_tick on the root context once. */
  tick(): void {
    this.vm.call('proxy_on_tick', this.vm.root, this.vm.root.id);
  }

  private setTickPeriod(ms: number): void {
    this.tickMs = ms;
    if (this.ticker !== undefined) clearInterval(this.ticker);
    this.ticker = undefined;
    if (this.env.autoTick && ms > 0) {
      this.ticker = setInterval(() => this.tick(), ms);
      this.ticker.unref();
    }
  }

  /** Size of the current VM's linear memory in 64 KiB pages. */
  memoryPages(): number {
    return this.vm.memory.pages;
  }

  /** The module's metrics plus host counters, as Prometheus text; `keep` as the sidecar's SeriesFilter (spelled out: the host imports nothing from the sidecar). */
  prometheus(keep?: (name: string, used: boolean) => boolean): string {
    const label = `plugin="${this.config.name.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
    const host = (name: string, value: number) => (!keep || keep(name, value !== 0) ? `# TYPE ${name} counter\n${name}{${label}} ${value}\n` : '');
    return this.metrics.prometheus({ plugin: this.config.name }, keep) + host('weft_wasm_vm_created_total', this.vmsCreated) + host('weft_wasm_vm_failed_total', this.vmFailures);
  }

  /** Root proxy_on_done (waiting for proxy_done if the module asks), then proxy_on_delete. */
  async close(timeoutMs = 1000): Promise<void> {
    this.setTickPeriod(0);
    await this.vm.shutdown(timeoutMs);
  }
}
