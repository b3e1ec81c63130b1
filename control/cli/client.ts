// The CLI's only way into the control plane: the REST API. Resolves where the
// API is and which token to send, and turns error replies into CliError so
// every command fails with the server's message and field paths.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { streamingFetch } from '../streaming-fetch.ts';

export interface ConnectionOptions {
  api?: string;
  token?: string;
  dataDir?: string;
  /** How long one request may take, answer read in full (--timeout, WEFT_TIMEOUT); 0: no limit; default 30 s. */
  timeoutMs?: number;
}

/** A failure the CLI reports to the user (message on stderr, non-zero exit). */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
    readonly details: { path: string; message: string }[] = [],
    /** The API's HTTP status, when the failure is an API answer. */
    readonly status?: number,
  ) {
    super(message);
  }
}

export const DEFAULT_API = 'http://127.0.0.1:8080';
export const DEFAULT_TIMEOUT_MS = 30_000;

/** A timeout as the operator would write it: `30s`, `1500ms`. */
export function formatTimeout(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

/** --token, then WEFT_TOKEN, then <data-dir>/admin.token, then ./data/admin.token. */
export function resolveToken(opts: ConnectionOptions): string | undefined {
  if (opts.token) return opts.token;
  if (process.env.WEFT_TOKEN) return process.env.WEFT_TOKEN;
  for (const dir of [opts.dataDir, 'data']) {
    if (!dir) continue;
    try {
      const text = readFileSync(join(dir, 'admin.token'), 'utf8').trim();
      if (text) return text;
    } catch {
      // not readable: try the next place
    }
  }
  return undefined;
}

/** A response body: JSON when it is, else the text (undefined when empty). */
function parseBody(text: string): unknown {
  if (!text) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

export class ApiClient {
  readonly base: string;
  private readonly token: string | undefined;
  private readonly timeoutMs: number;

  constructor(opts: ConnectionOptions) {
    this.base = (opts.api || process.env.WEFT_API || DEFAULT_API).replace(/\/+$/, '');
    // "127.0.0.1:8080" or "localhost:8080" without a scheme was reported as the API being down.
    let url: URL | undefined;
    try {
      url = new URL(this.base);
    } catch {
      // said below
    }
    if (url?.protocol !== 'http:' && url?.protocol !== 'https:') {
      throw new CliError(`error: the API address (--api or WEFT_API) must be an http:// or https:// URL such as ${DEFAULT_API} (got "${this.base}")`, 2);
    }
    this.token = resolveToken(opts);
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  async request<T = unknown>(
    method: string,
    path: string,
    body?: { json: unknown } | { text: string; contentType: string },
  ): Promise<T> {
    const headers: Record<string, string> = {};
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    let payload: string | undefined;
    if (body && 'json' in body) {
      headers['content-type'] = 'application/json';
      payload = JSON.stringify(body.json);
    } else if (body) {
      headers['content-type'] = body.contentType;
      payload = body.text;
    }
    return this.#withTimeout(async (signal) => {
      const res = await this.#fetch(path, { method, headers, body: payload, signal });
      const parsed = parseBody(await res.text());
      if (!res.ok) throw apiFailure(res.status, parsed, this.token !== undefined);
      return parsed as T;
    });
  }

  /**
   * Runs one request, its answer read in full, under the timeout. Without one, a control plane that accepts
   * connections and never answers (stopped with SIGSTOP, or wedged) left every command waiting (undici's own limit
   * is 300 s without headers). Per request: apply --wait and proxy-status --wait make many, each under it.
   */
  async #withTimeout<T>(run: (signal: AbortSignal | undefined) => Promise<T>): Promise<T> {
    if (this.timeoutMs === 0) return run(undefined);
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), this.timeoutMs);
    try {
      return await run(abort.signal);
    } catch (err) {
      if (!abort.signal.aborted) throw err;
      throw new CliError(
        `error: the weft API at ${this.base} did not answer within ${formatTimeout(this.timeoutMs)} (--timeout or WEFT_TIMEOUT); ` +
          'is `weft control` running, and not stopped or overloaded?',
      );
    } finally {
      clearTimeout(timer);
    }
  }

  /** `streaming`: no idle limit on the answer (streaming-fetch.ts), for streams that last as long as their reader wants. */
  async #fetch(path: string, init: { method?: string; headers: Record<string, string>; body?: string; signal?: AbortSignal }, streaming = false): Promise<Response> {
    try {
      if (streaming) return (await streamingFetch(`${this.base}${path}`, init)) as unknown as Response;
      return await fetch(`${this.base}${path}`, init);
    } catch (err) {
      if (init.signal?.aborted) throw err;
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw new CliError(
        `error: cannot reach the weft API at ${this.base} (${cause?.code ?? cause?.message ?? (err as Error).message}); ` +
          'is `weft control` running? Set WEFT_API to its address.',
      );
    }
  }

  get<T = unknown>(path: string): Promise<T> {
    return this.request<T>('GET', path);
  }

  /**
   * GET of a streamed response (JSON lines): each line as it arrives; errors as request() reports them. Not under
   * the timeout: the stream lasts as long as the caller wants (weft tap, until Ctrl-C), and the API sends its
   * headers only with the first line, which a proxy without traffic may not have for minutes.
   */
  async *lines(path: string, signal?: AbortSignal): AsyncGenerator<string> {
    const headers: Record<string, string> = {};
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    const res = await this.#fetch(path, { headers, signal }, true);
    if (!res.ok) throw apiFailure(res.status, parseBody(await res.text()), this.token !== undefined);
    const decoder = new TextDecoder();
    let buf = '';
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buf += decoder.decode(chunk, { stream: true });
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        yield buf.slice(0, nl);
        buf = buf.slice(nl + 1);
      }
    }
    if (buf) yield buf;
  }
}

function apiFailure(status: number, body: unknown, hadToken: boolean): CliError {
  const error = (body as { error?: { code?: string; message?: string; details?: { path: string; message: string }[] } })?.error;
  let message = error?.message ?? (typeof body === 'string' && body ? body : `HTTP ${status}`);
  if (status === 401) {
    message += hadToken
      ? ' (the token was refused)'
      : ' (no token: pass --token, set WEFT_TOKEN, or run where ./data/admin.token is readable)';
  }
  return new CliError(`error: ${message}`, 1, error?.details ?? [], status);
}
