// Envoy's overload manager, for the sidecar: without it a proxy under
// pressure goes from "fine" to killed for memory, taking every connection of
// its workload with it. Envoy configures it in the bootstrap; the sidecar's
// bootstrap is its flags (`--max-heap-mb`, `--max-downstream-connections`).
//
// Resource monitors, with Envoy's names:
//   envoy.resource_monitors.fixed_heap: the process's heap (V8's heap in use
//     plus the memory outside it that buffers hold) against --max-heap-mb,
//     sampled every 250 ms (Envoy's refresh_interval in its own example);
//   envoy.resource_monitors.global_downstream_max_connections: downstream
//     connections open across the listeners against
//     --max-downstream-connections, checked at each accept.
// Actions, at the thresholds Envoy's edge best practices give:
//   envoy.overload_actions.disable_http_keepalive at 95% heap: each HTTP/1
//     connection closes after its next response, each HTTP/2 one gets GOAWAY
//     (as a graceful drain, the listeners still accept);
//   envoy.overload_actions.stop_accepting_requests at 98% heap: each new
//     request is answered 503 `envoy overloaded` (response flag OM), counted
//     in http.<prefix>.downstream_rq_overload_close.
// A connection over the limit is closed at accept, counted in
// listener.<address>.downstream_global_cx_overflow.
// Both lift as soon as pressure falls back under their threshold (Envoy's
// threshold triggers have no hysteresis either).

import type { CounterSeries } from './metrics.ts';
import type { OverloadStats, SidecarStats } from './stats.ts';

export const KEEPALIVE_THRESHOLD = 0.95;
export const STOP_REQUESTS_THRESHOLD = 0.98;
const REFRESH_MS = 250;

export interface OverloadOptions {
  /** fixed_heap's max_heap_size_bytes. */
  maxHeapBytes?: number;
  /** global_downstream_max_connections's max_active_downstream_connections. */
  maxDownstreamConnections?: number;
}

/** The heap figure fixed_heap compares: V8's heap in use plus memory held outside it (buffers). */
export function heapInUse(): number {
  const m = process.memoryUsage();
  return m.heapUsed + m.external;
}

export class OverloadManager {
  /** envoy.overload_actions.stop_accepting_requests is active. */
  stopAcceptingRequests = false;
  /** envoy.overload_actions.disable_http_keepalive is active. */
  keepaliveDisabled = false;
  #connections = 0;
  #timer: NodeJS.Timeout | undefined;
  readonly #options: OverloadOptions;
  readonly #stats: OverloadStats;
  readonly #onKeepalive: (disabled: boolean) => void;
  readonly #connectionPressure: CounterSeries | undefined;

  constructor(options: OverloadOptions, stats: SidecarStats, onKeepalive: (disabled: boolean) => void, heap: () => number = heapInUse) {
    this.#options = options;
    this.#stats = stats.overload();
    this.#onKeepalive = onKeepalive;
    if (options.maxDownstreamConnections !== undefined) this.#connectionPressure = this.#stats.connectionsPressure.series();
    if (options.maxHeapBytes !== undefined) {
      const max = options.maxHeapBytes;
      const sample = () => this.#heapPressure(heap() / max);
      sample();
      this.#timer = setInterval(sample, REFRESH_MS);
      this.#timer.unref();
    }
  }

  #heapPressure(pressure: number): void {
    const s = this.#stats;
    s.heapPressure.set(Math.round(Math.min(pressure, 1) * 100));
    const stop = pressure >= STOP_REQUESTS_THRESHOLD;
    const noKeepalive = pressure >= KEEPALIVE_THRESHOLD;
    if (stop !== this.stopAcceptingRequests) {
      this.stopAcceptingRequests = stop;
      s.stopRequestsActive.set(stop ? 1 : 0);
      s.stopRequestsScale.set(stop ? 100 : 0);
    }
    if (noKeepalive !== this.keepaliveDisabled) {
      this.keepaliveDisabled = noKeepalive;
      s.keepaliveActive.set(noKeepalive ? 1 : 0);
      s.keepaliveScale.set(noKeepalive ? 100 : 0);
      this.#onKeepalive(noKeepalive);
    }
  }

  /** A downstream connection was accepted: false when it is over the limit (close it; nothing to release). */
  admitConnection(): boolean {
    const max = this.#options.maxDownstreamConnections;
    if (max === undefined) return true;
    if (this.#connections >= max) return false;
    this.#connections++;
    this.#connectionPressure!.value = Math.round((this.#connections / max) * 100);
    return true;
  }

  /** An admitted connection closed. */
  releaseConnection(): void {
    const max = this.#options.maxDownstreamConnections;
    if (max === undefined) return;
    this.#connections--;
    this.#connectionPressure!.value = Math.round((this.#connections / max) * 100);
  }

  close(): void {
    clearInterval(this.#timer);
  }
}
