// Shared data (key/value with compare-and-swap) and shared queues, scoped by
// vm_id as in proxy-wasm-cpp-host: plugins with the same vm_id see the same
// keys and can resolve each other's queues. One SharedState per process by
// default; tests pass their own to stay isolated.

import { WasmResult, type WasmResultCode } from './abi.ts';

interface Entry {
  value: Uint8Array;
  cas: number;
}

interface Queue {
  vmId: string;
  name: string;
  items: Uint8Array[];
  /** Called (asynchronously) when an item arrives: delivers proxy_on_queue_ready to the owner. */
  notify: (token: number) => void;
}

export class SharedState {
  private readonly data = new Map<string, Map<string, Entry>>();
  private readonly queues = new Map<number, Queue>();
  private nextCas = 1;
  private nextToken = 1;

  private scope(vmId: string): Map<string, Entry> {
    let scope = this.data.get(vmId);
    if (scope === undefined) {
      scope = new Map();
      this.data.set(vmId, scope);
    }
    return scope;
  }

  getData(vmId: string, key: string): Entry | undefined {
    return this.data.get(vmId)?.get(key);
  }

  /** cas 0 writes unconditionally; otherwise it must match the stored entry's cas. */
  setData(vmId: string, key: string, value: Uint8Array, cas: number): WasmResultCode {
    const scope = this.scope(vmId);
    const existing = scope.get(key);
    if (existing !== undefined && cas !== 0 && cas !== existing.cas) return WasmResult.CasMismatch;
    scope.set(key, { value: value.slice(), cas: this.takeCas() });
    return WasmResult.Ok;
  }

  private takeCas(): number {
    const cas = this.nextCas;
    this.nextCas = (this.nextCas + 1) >>> 0 || 1;
    return cas;
  }

  /** Registering an existing (vm_id, name) returns its token and moves notifications to the new owner. */
  registerQueue(vmId: string, name: string, notify: (token: number) => void): number {
    for (const [token, queue] of this.queues) {
      if (queue.vmId === vmId && queue.name === name) {
        queue.notify = notify;
        return token;
      }
    }
    const token = this.nextToken++;
    this.queues.set(token, { vmId, name, items: [], notify });
    return token;
  }

  resolveQueue(vmId: string, name: string): number | undefined {
    for (const [token, queue] of this.queues) if (queue.vmId === vmId && queue.name === name) return token;
    return undefined;
  }

  dequeue(token: number): { result: WasmResultCode; value?: Uint8Array } {
    const queue = this.queues.get(token);
    if (queue === undefined) return { result: WasmResult.NotFound };
    const value = queue.items.shift();
    if (value === undefined) return { result: WasmResult.Empty };
    return { result: WasmResult.Ok, value };
  }

  enqueue(token: number, value: Uint8Array): WasmResultCode {
    const queue = this.queues.get(token);
    if (queue === undefined) return WasmResult.NotFound;
    queue.items.push(value.slice());
    const notify = queue.notify;
    // The owner hears about it on a later turn, never inside the enqueuing call.
    setImmediate(() => notify(token));
    return WasmResult.Ok;
  }
}

export const processSharedState = new SharedState();
