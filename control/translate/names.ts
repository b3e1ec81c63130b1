// Resource names shared with the xDS server, the sidecar, the CLI and docs.
// Cluster names follow Istio's "direction|port|subset|host" shape so an
// operator reading /config_dump sees at a glance what a cluster is for.

export const INBOUND_LISTENER = 'inbound';
export const OUTBOUND_LISTENER = 'outbound';
export const OUTBOUND_ROUTE_CONFIG = 'outbound';
export const INBOUND_ROUTE_CONFIG = 'inbound';

export function serviceHost(service: string, namespace: string): string {
  return `${service}.${namespace}`;
}

export function outboundClusterName(service: string, namespace: string, port: number, subset?: string): string {
  return `outbound|${port}|${subset ?? ''}|${serviceHost(service, namespace)}`;
}

export function inboundClusterName(service: string, namespace: string, appPort: number): string {
  return `inbound|${appPort}||${serviceHost(service, namespace)}`;
}

export function wasmExtensionConfigName(namespace: string, binding: string): string {
  return `weft.wasm.${namespace}.${binding}`;
}

export interface ParsedClusterName {
  direction: 'inbound' | 'outbound';
  port: number;
  subset?: string;
  service: string;
  namespace: string;
}

/** Inverse of outboundClusterName / inboundClusterName; undefined for names weft did not make. */
export function parseClusterName(name: string): ParsedClusterName | undefined {
  const parts = name.split('|');
  if (parts.length !== 4) return undefined;
  const [direction, portText, subset, host] = parts as [string, string, string, string];
  if (direction !== 'inbound' && direction !== 'outbound') return undefined;
  if (!/^[0-9]{1,5}$/.test(portText)) return undefined;
  // Namespaces carry no dots (DNS labels), services may not either; the last dot splits them.
  const dot = host.lastIndexOf('.');
  if (dot <= 0 || dot === host.length - 1) return undefined;
  const parsed: ParsedClusterName = {
    direction,
    port: Number(portText),
    service: host.slice(0, dot),
    namespace: host.slice(dot + 1),
  };
  if (subset !== '') parsed.subset = subset;
  return parsed;
}
