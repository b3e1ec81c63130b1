// Runs the configure check (configure-check.ts) in a worker thread with a
// deadline. Wasm cannot be interrupted on the thread that runs it: a module
// whose proxy_on_configure loops, checked on the control plane's own thread,
// would stop the API and every xDS stream with it. In the worker, a check
// that misses its deadline is an error naming the deadline, the worker is
// terminated, and the next check starts a fresh one.
//
// One worker, one check at a time (checks are rare: binding writes and filter
// uploads), started on first use and stopped after a quiet spell; it never
// keeps the process alive.
import { Worker } from 'node:worker_threads';
import type { WasmModule } from '../../sidecar/wasm/wasm-api.ts';
import type { ConfigError } from './config-schema.ts';

export interface ConfigurePlugin {
  name: string;
  rootId: string;
  configuration: string;
}

/** How long a module's start and proxy_on_configure may take before the check gives up on it. */
export const DEFAULT_CONFIGURE_TIMEOUT_MS = 5_000;
/** How long an unused worker is kept. */
const IDLE_MS = 30_000;
/** How long a fresh worker may take to load the wasm host (tsx compiles it on a cold cache). */
const STARTUP_MS = 30_000;

interface Reply {
  id?: number;
  ready?: boolean;
  errors?: ConfigError[];
  failure?: string;
}

export class ConfigureSandbox {
  private worker?: Worker;
  private ready?: Promise<Worker>;
  private queue: Promise<unknown> = Promise.resolve();
  private nextId = 1;
  private idle?: NodeJS.Timeout;

  constructor(private readonly timeoutMs = DEFAULT_CONFIGURE_TIMEOUT_MS) {}

  /** The check's errors ([] when the module accepts the configuration); checks run one at a time. */
  check(module: WasmModule, plugin: ConfigurePlugin): Promise<ConfigError[]> {
    const run = this.queue.then(() => this.run(module, plugin));
    this.queue = run.catch(() => undefined);
    return run;
  }

  async close(): Promise<void> {
    clearTimeout(this.idle);
    const worker = this.worker;
    this.worker = undefined;
    this.ready = undefined;
    await worker?.terminate();
  }

  private async run(module: WasmModule, plugin: ConfigurePlugin): Promise<ConfigError[]> {
    clearTimeout(this.idle);
    const worker = await this.start();
    const id = this.nextId++;
    try {
      const reply = await new Promise<Reply>((resolve, reject) => {
        const timer = setTimeout(() => {
          cleanup();
          resolve({ id, errors: [{ path: '', message: `the filter did not finish starting and proxy_on_configure within ${this.timeoutMs / 1000} s; a proxy loading it would hang the same way` }] });
          void this.close();
        }, this.timeoutMs);
        const onMessage = (m: Reply) => {
          if (m.id !== id) return;
          cleanup();
          resolve(m);
        };
        const onExit = (code: number) => {
          cleanup();
          reject(new Error(`the configure check's worker exited (code ${code})`));
        };
        const cleanup = () => {
          clearTimeout(timer);
          worker.off('message', onMessage);
          worker.off('exit', onExit);
        };
        worker.on('message', onMessage);
        worker.on('exit', onExit);
        worker.postMessage({ id, module, plugin });
      });
      if (reply.failure !== undefined) throw new Error(`configure check failed: ${reply.failure}`);
      return reply.errors ?? [];
    } finally {
      if (this.worker) {
        this.idle = setTimeout(() => void this.close(), IDLE_MS);
        this.idle.unref();
      }
    }
  }

  private start(): Promise<Worker> {
    if (this.ready) return this.ready;
    const worker = new Worker(new URL('./configure-worker.mjs', import.meta.url));
    worker.unref();
    this.worker = worker;
    worker.on('exit', () => {
      if (this.worker === worker) {
        this.worker = undefined;
        this.ready = undefined;
      }
    });
    // A worker that fails after it started is replaced on the next check.
    worker.on('error', () => undefined);
    const ready = new Promise<Worker>((resolve, reject) => {
      const onError = (err: Error) => fail(err);
      const onExit = (code: number) => fail(new Error(`the configure check's worker exited while starting (code ${code})`));
      const onReady = (m: Reply) => {
        if (!m.ready) return;
        done();
        resolve(worker);
      };
      const timer = setTimeout(() => fail(new Error(`the configure check's worker did not start within ${STARTUP_MS / 1000} s`)), STARTUP_MS);
      const done = () => {
        clearTimeout(timer);
        worker.off('error', onError);
        worker.off('exit', onExit);
        worker.off('message', onReady);
      };
      const fail = (err: Error) => {
        done();
        if (this.worker === worker) void this.close();
        reject(err);
      };
      worker.on('error', onError);
      worker.on('exit', onExit);
      worker.on('message', onReady);
    });
    this.ready = ready;
    return ready;
  }
}
