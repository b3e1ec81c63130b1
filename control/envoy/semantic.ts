// Refusals Envoy makes beyond the schema and PGV, for mistakes a translator can
// actually make. Each check is registered for one message type and runs after that
// message's fields were read (only where rules apply).
import { indexPath, joinPath } from './errors.ts';
import type { FieldError } from './errors.ts';
import { messageNameOf } from './type-urls.ts';

/** `loaded` tells whether a message type is one of the loaded protos. */
export type SemanticCheck = (json: Record<string, unknown>, path: string, errors: FieldError[], loaded: (fullName: string) => boolean) => void;

// The terminal filters among the loaded protos (Envoy's isTerminalFilter): a chain
// must end with exactly one of these, and nothing may follow it.
const TERMINAL_HTTP = new Set(['envoy.extensions.filters.http.router.v3.Router']);
const TERMINAL_NETWORK = new Set([
  'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
  'envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy',
]);

function typeOf(filter: unknown): string | undefined {
  const typed = (filter as { typed_config?: { '@type'?: unknown } } | null)?.typed_config;
  return typeof typed?.['@type'] === 'string' ? messageNameOf(typed['@type']) : undefined;
}

/** Envoy's Config::Utility::validateTerminalFilters, for filters whose type is known here. */
function terminalOrder(filters: unknown, path: string, chain: string, terminal: ReadonlySet<string>, errors: FieldError[], loaded: (fullName: string) => boolean): void {
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

export const semanticChecks: ReadonlyMap<string, SemanticCheck> = new Map<string, SemanticCheck>([
  [
    'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
    (json, path, errors, loaded) => terminalOrder(json.http_filters, joinPath(path, 'http_filters'), 'http', TERMINAL_HTTP, errors, loaded),
  ],
  [
    'envoy.config.listener.v3.FilterChain',
    (json, path, errors, loaded) => terminalOrder(json.filters, joinPath(path, 'filters'), 'network', TERMINAL_NETWORK, errors, loaded),
  ],
]);
