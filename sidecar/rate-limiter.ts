// The fault filter's response_rate_limit, as Envoy's StreamRateLimiter
// (source/extensions/filters/http/common/stream_rate_limiter.cc) paces a
// response body: a token bucket of bytes holding one second's worth
// (limit_kbps x 1024) that refills at that rate, reset to hold one fill
// interval's worth (50 ms) when the limiter is made. Body bytes are buffered
// and written on a timer: at once (the next turn of the loop) when the first
// bytes come, then every fill interval while bytes wait, each time as many
// as there are tokens. The buffer has the stream's buffer limit as its high
// watermark: above it the upstream is no longer read, below half of it again
// (Envoy's WatermarkBuffer, whose callbacks are the encoder's watermarks).
// The end of the response (and its trailers) waits until the buffer is out.

/** Envoy's StreamRateLimiter fill interval for the fault filter (the default of its constructor). */
export const FILL_INTERVAL_MS = 50;

export class StreamRateLimiter {
  #chunks: Buffer[] = [];
  #size = 0;
  #tokens: number;
  readonly #max: number;
  #last: number;
  #timer: NodeJS.Timeout | undefined;
  #above = false;
  #drained: (() => void) | undefined;
  #destroyed = false;

  /**
   * @param kbps the limit in KiB/s (at least 1)
   * @param highWatermark the buffer's high watermark (the stream's buffer limit)
   * @param out writes paced bytes downstream
   * @param resume called when the buffer falls below half the watermark after it went above it
   * @param now a monotonic clock in ms
   */
  constructor(
    kbps: number,
    readonly highWatermark: number,
    readonly out: (c: Buffer) => void,
    readonly resume: () => void,
    readonly now: () => number = performance.now.bind(performance),
  ) {
    this.#max = kbps * 1024;
    // maybeReset(initial_tokens): one fill interval's worth, whole bytes.
    this.#tokens = Math.floor((this.#max * FILL_INTERVAL_MS) / 1000);
    this.#last = now();
  }

  /** Bytes waiting to be written. */
  get buffered(): number {
    return this.#size;
  }

  /** Buffers `c`; false while the buffer is above its high watermark (the caller stops reading until resume). */
  write(c: Buffer): boolean {
    if (this.#destroyed) return false;
    if (c.length > 0) {
      this.#chunks.push(c);
      this.#size += c.length;
    }
    // As writeData: the token timer runs right after the stack unwinds unless it is already scheduled.
    if (this.#timer === undefined) this.#timer = setTimeout(() => this.#tick(), 0);
    if (this.#size > this.highWatermark) this.#above = true;
    return !this.#above;
  }

  /** Calls `done` once every buffered byte is written (at once when none waits). */
  whenDrained(done: () => void): void {
    if (this.#size === 0 || this.#destroyed) {
      done();
      return;
    }
    this.#drained = done;
  }

  /** The stream ended otherwise (reset, client gone): nothing more is written. */
  destroy(): void {
    this.#destroyed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#chunks = [];
    this.#size = 0;
    this.#drained = undefined;
  }

  /** TokenBucketImpl::consume(n, allow_partial): refill for the time passed (capped at the bucket), take what there is. */
  #consume(wanted: number): number {
    const now = this.now();
    this.#tokens = Math.min(this.#max, this.#tokens + ((now - this.#last) * this.#max) / 1000);
    this.#last = now;
    if (this.#tokens < 1) return 0;
    const got = Math.min(wanted, Math.floor(this.#tokens));
    this.#tokens -= got;
    return got;
  }

  /** onTokenTimer: write as many bytes as there are tokens; wait a fill interval if some are left. */
  #tick(): void {
    this.#timer = undefined;
    if (this.#destroyed) return;
    let n = this.#consume(this.#size);
    if (this.#size - n > 0) this.#timer = setTimeout(() => this.#tick(), FILL_INTERVAL_MS);
    while (n > 0 && !this.#destroyed) {
      const head = this.#chunks[0]!;
      if (head.length <= n) {
        this.#chunks.shift();
        this.#size -= head.length;
        n -= head.length;
        this.out(head);
      } else {
        this.#chunks[0] = head.subarray(n);
        this.#size -= n;
        this.out(head.subarray(0, n));
        n = 0;
      }
    }
    if (this.#above && this.#size < this.highWatermark / 2) {
      this.#above = false;
      this.resume();
    }
    if (this.#size === 0 && this.#drained !== undefined) {
      const done = this.#drained;
      this.#drained = undefined;
      done();
    }
  }
}
