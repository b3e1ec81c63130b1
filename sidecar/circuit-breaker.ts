// Envoy's circuit breakers for one cluster, HTTP/1 semantics: a request
// holds one connection while active, so at most min(max_connections,
// max_requests) run at once (max_requests alone for HTTP/2); up to
// max_pending_requests more wait in a queue; anything beyond overflows.

import type { CircuitBreakerConfig } from './config.ts';

export class CircuitBreaker {
  #limits: CircuitBreakerConfig;
  #http2: boolean;
  active = 0;
  activeRetries = 0;
  readonly #waiting: (() => void)[] = [];

  constructor(limits: CircuitBreakerConfig, http2: boolean) {
    this.#limits = limits;
    this.#http2 = http2;
  }

  update(limits: CircuitBreakerConfig, http2: boolean): void {
    this.#limits = limits;
    this.#http2 = http2;
    this.#drain();
  }

  get pending(): number {
    return this.#waiting.length;
  }

  #capacity(): number {
    return this.#http2 ? this.#limits.maxRequests : Math.min(this.#limits.maxConnections, this.#limits.maxRequests);
  }

  /** Resolves to a release function, or to undefined when the request overflows (503 + x-envoy-overloaded). */
  acquire(): Promise<(() => void) | undefined> | (() => void) | undefined {
    if (this.active < this.#capacity() && this.#waiting.length === 0) {
      this.active++;
      return this.#releaser();
    }
    if (this.#waiting.length >= this.#limits.maxPendingRequests) return undefined;
    return new Promise((resolve) => {
      this.#waiting.push(() => {
        this.active++;
        resolve(this.#releaser());
      });
    });
  }

  /** True when one more retry may start (max_retries counts concurrent retries). */
  tryRetry(): (() => void) | undefined {
    if (this.activeRetries >= this.#limits.maxRetries) return undefined;
    this.activeRetries++;
    let done = false;
    return () => {
      if (!done) {
        done = true;
        this.activeRetries--;
      }
    };
  }

  #releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.active--;
      this.#drain();
    };
  }

  #drain(): void {
    while (this.#waiting.length > 0 && this.active < this.#capacity()) this.#waiting.shift()!();
  }
}
