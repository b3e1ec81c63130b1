// Listener-side refusals Envoy makes at config load, beyond PGV.
import { isDeepStrictEqual } from 'node:util';
import { indexPath, joinPath } from './errors.ts';
import type { FieldError } from './errors.ts';
import type { Loaded } from './semantic-types.ts';
import { messageNameOf } from './type-urls.ts';

// The terminal filters among the loaded protos (Envoy's isTerminalFilter): a chain
// must end with exactly one of these, and nothing may follow it.
export const TERMINAL_HTTP: ReadonlySet<string> = new Set(['envoy.extensions.filters.http.router.v3.Router']);
export const TERMINAL_NETWORK: ReadonlySet<string> = new Set([
  'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
  'envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy',
]);

function typeOf(filter: unknown): string | undefined {
  const typed = (filter as { typed_config?: { '@type'?: unknown } } | null)?.typed_config;
  return typeof typed?.['@type'] === 'string' ? messageNameOf(typed['@type']) : undefined;
}

/** Envoy's Config::Utility::validateTerminalFilters, for filters whose type is known here. */
export function terminalOrder(filters: unknown, path: string, chain: string, terminal: ReadonlySet<string>, errors: FieldError[], loaded: Loaded): void {
  if (!Array.isArray(filters)) return;
  filters.forEach((filter, i) => {
    const type = typeOf(filter);
    // An ECDS filter's type arrives later; an unloaded type is already an error.
    if (type === undefined || !loaded(type)) return;
    const name = String((filter as { name?: unknown }).name ?? '');
    const last = i === filters.length - 1;
    if (terminal.has(type) && !last) {
      errors.push({ path: indexPath(path, i), message: `terminal filter "${name}" (${type}) must be the last filter in the ${chain} filter chain` });
    } else if (!terminal.has(type) && last) {
      errors.push({ path: indexPath(path, i), message: `non-terminal filter "${name}" (${type}) is the last filter in the ${chain} filter chain` });
    }
  });
}

/**
 * Envoy refuses a listener with two filter chains matching the same connections
 * ("multiple filter chains with the same matching rules are defined"). Only exact
 * duplicates are caught here, not every overlap Envoy computes.
 */
export function uniqueFilterChainMatches(json: Record<string, unknown>, path: string, errors: FieldError[]): void {
  const chains = json.filter_chains;
  if (!Array.isArray(chains)) return;
  const seen: unknown[] = [];
  chains.forEach((chain, i) => {
    const match = (chain as { filter_chain_match?: unknown } | null)?.filter_chain_match ?? {};
    const first = seen.findIndex((m) => isDeepStrictEqual(m, match));
    if (first >= 0) {
      errors.push({ path: joinPath(indexPath(joinPath(path, 'filter_chains'), i), 'filter_chain_match'), message: `filter_chains[${first}] already matches the same connections (Envoy refuses duplicate filter chain matches)` });
    }
    seen.push(match);
  });
}
