// Live requests through the sidecar, as Linkerd's `tap`: admin `GET /tap`
// streams one JSON line per request that completes while it is open (the
// access log's fields plus the request headers as they came and as sent
// upstream, and the response headers), filtered by
// listener, method, authority, path prefix and status. Credentials are never
// shown: headers that carry them are `[redacted]`.
//
// Not Envoy's admin /tap (a POST of a TapConfig that needs the tap filter in
// every connection manager): this one needs no configuration and costs a
// property check per request while nobody is watching.

import type { AccessLogEntry } from './proxy.ts';
import type { HeaderPairs } from './upstream.ts';

/** Headers whose values are credentials or session state. */
const SECRET = /authorization|cookie|token|secret|api-?key|password/i;

/** Sessions open at once: each costs a JSON line per matching request. */
export const MAX_TAP_SESSIONS = 8;
/** A session whose reader falls this far behind loses events (counted) rather than growing the sidecar's memory. */
const MAX_BUFFERED = 1024 * 1024;

export interface TapQuery {
  listener?: string;
  method?: string;
  authority?: string;
  pathPrefix?: string;
  /** A status (503) or class (5xx). */
  status?: { min: number; max: number };
  /** Stop after this many events. */
  max?: number;
}

export interface TapEvent extends AccessLogEntry {
  /** As the request came. */
  request_headers: [string, string][];
  /** As the sidecar sent it upstream (filters, rewrites, header mutations, router headers applied); absent when it answered itself. */
  upstream_request_headers?: [string, string][];
  /** As the sidecar sent the response, `:status` first. */
  response_headers: [string, string][];
}

const PARAMETERS = ['listener', 'method', 'authority', 'path_prefix', 'status', 'max'];

/** The query of GET /tap; a string is the 400 body, naming the parameter. */
export function parseTapQuery(params: URLSearchParams): TapQuery | string {
  const q: TapQuery = {};
  for (const [key, value] of params) {
    switch (key) {
      case 'listener':
        q.listener = value;
        break;
      case 'method':
        q.method = value.toUpperCase();
        break;
      case 'authority':
        q.authority = value.toLowerCase();
        break;
      case 'path_prefix':
        if (!value.startsWith('/')) return `path_prefix: must start with "/", got ${JSON.stringify(value)}\n`;
        q.pathPrefix = value;
        break;
      case 'status': {
        const exact = /^[1-5]\d\d$/.test(value);
        const cls = /^([1-5])xx$/i.exec(value);
        if (!exact && !cls) return `status: must be a code (503) or a class (5xx), got ${JSON.stringify(value)}\n`;
        q.status = exact ? { min: Number(value), max: Number(value) } : { min: Number(cls![1]) * 100, max: Number(cls![1]) * 100 + 99 };
        break;
      }
      case 'max':
        if (!/^[1-9]\d*$/.test(value)) return `max: must be a whole number, 1 or more, got ${JSON.stringify(value)}\n`;
        q.max = Number(value);
        break;
      default:
        return `${key}: unknown parameter (it takes ${PARAMETERS.join(', ')})\n`;
    }
  }
  return q;
}

function matches(q: TapQuery, e: AccessLogEntry): boolean {
  if (q.listener !== undefined && e.listener !== q.listener) return false;
  if (q.method !== undefined && e.method !== q.method) return false;
  if (q.authority !== undefined && e.authority.toLowerCase() !== q.authority) return false;
  if (q.pathPrefix !== undefined && !e.path.startsWith(q.pathPrefix)) return false;
  if (q.status !== undefined && (e.response_code < q.status.min || e.response_code > q.status.max)) return false;
  return true;
}

/** Header pairs with credentials replaced. */
function shown(pairs: Iterable<[string, string]>): [string, string][] {
  const out: [string, string][] = [];
  for (const [k, v] of pairs) out.push([k, SECRET.test(k) ? '[redacted]' : v]);
  return out;
}

/** node's rawHeaders ([name, value, name, value, ...]) as pairs. */
function* rawPairs(raw: readonly string[]): Generator<[string, string]> {
  for (let i = 0; i + 1 < raw.length; i += 2) yield [raw[i]!.toLowerCase(), raw[i + 1]!];
}

export interface TapSink {
  /** Bytes written and not yet taken by the reader. */
  readonly buffered: number;
  write(line: string): void;
  end(): void;
}

interface Session {
  query: TapQuery;
  sink: TapSink;
  sent: number;
  dropped: number;
}

export class Tap {
  readonly #sessions = new Set<Session>();

  /** Someone is watching: requests keep what an event needs. */
  get active(): boolean {
    return this.#sessions.size > 0;
  }

  /** Opens a session; undefined when MAX_TAP_SESSIONS are open. The function closes it. */
  open(query: TapQuery, sink: TapSink): (() => void) | undefined {
    if (this.#sessions.size >= MAX_TAP_SESSIONS) return undefined;
    const session: Session = { query, sink, sent: 0, dropped: 0 };
    this.#sessions.add(session);
    return () => this.#sessions.delete(session);
  }

  /** A request completed: one line to each session it matches. */
  emit(entry: AccessLogEntry, requestHeaders: readonly string[], upstreamHeaders: HeaderPairs | undefined, responseHeaders: HeaderPairs | undefined): void {
    let line: string | undefined;
    for (const s of this.#sessions) {
      if (!matches(s.query, entry)) continue;
      if (s.sink.buffered > MAX_BUFFERED) {
        s.dropped++;
        continue;
      }
      line ??= JSON.stringify({
        ...entry,
        request_headers: shown(rawPairs(requestHeaders)),
        ...(upstreamHeaders ? { upstream_request_headers: shown(upstreamHeaders) } : {}),
        response_headers: shown(responseHeaders ?? []),
      } satisfies TapEvent);
      s.sink.write(s.dropped > 0 ? `${line.slice(0, -1)},"dropped_before":${s.dropped}}\n` : `${line}\n`);
      s.dropped = 0;
      if (++s.sent === s.query.max) {
        this.#sessions.delete(s);
        s.sink.end();
      }
    }
  }
}
