// Who is on the other end of a stream: the xDS node turned into a ProxyRef.
// node.cluster is the service, node.id the proxy; the WEFT_* metadata keys
// carry the listener ports. Defaults are filled here so translation stays pure.
import type { ProxyRef, Service } from '../model/types.ts';
import type { FieldError } from './cache.ts';
import type { StructValue, XdsNode } from './discovery.ts';

export const DEFAULT_INBOUND_PORT = 15006;
export const DEFAULT_OUTBOUND_PORT = 15001;

/** Looks up the node's service, for the app port default. */
export type ServiceLookup = (namespace: string, name: string) => Service | undefined;

export function proxyFromNode(node: XdsNode | undefined, lookup?: ServiceLookup): { proxy: ProxyRef } | { errors: FieldError[] } {
  const errors: FieldError[] = [];
  if (!node) return { errors: [{ path: 'node', message: 'the first request of a stream must carry node' }] };
  const id = node.id ?? '';
  const service = node.cluster ?? '';
  if (!id) errors.push({ path: 'node.id', message: 'must be set and unique per proxy' });
  if (!service) errors.push({ path: 'node.cluster', message: 'must name the service this proxy belongs to' });
  const fields = node.metadata?.fields ?? {};
  const str = (key: string): string | undefined => {
    const v = fields[key];
    if (v === undefined) return undefined;
    const text = v.stringValue ?? v.string_value;
    if (typeof text === 'string') return text;
    const num = v.numberValue ?? v.number_value;
    if (typeof num === 'number') return String(num);
    // an empty Value (no kind set) carries nothing: treat it as absent
    const other = v.boolValue ?? v.bool_value ?? v.structValue ?? v.struct_value ?? v.listValue ?? v.list_value;
    if (other === undefined) return undefined;
    errors.push({ path: `node.metadata.${key}`, message: 'must be a string or number' });
    return undefined;
  };
  const port = (key: string, fallback: number): number => {
    const raw = str(key);
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 1 || n > 65535) {
      errors.push({ path: `node.metadata.${key}`, message: `must be a port 1..65535, got "${raw}"` });
      return fallback;
    }
    return n;
  };
  const namespace = str('WEFT_NAMESPACE') || 'default';
  const kindRaw = str('WEFT_KIND');
  let kind: ProxyRef['kind'] = /grpc/i.test(node.user_agent_name ?? '') ? 'proxyless-grpc' : 'sidecar';
  if (kindRaw !== undefined) {
    if (kindRaw === 'sidecar' || kindRaw === 'proxyless-grpc') kind = kindRaw;
    else errors.push({ path: 'node.metadata.WEFT_KIND', message: `must be "sidecar" or "proxyless-grpc", got "${kindRaw}"` });
  }
  const firstPort = service ? lookup?.(namespace, service)?.ports[0]?.port : undefined;
  const proxy: ProxyRef = {
    id,
    service,
    namespace,
    kind,
    inboundPort: port('WEFT_INBOUND_PORT', DEFAULT_INBOUND_PORT),
    outboundPort: port('WEFT_OUTBOUND_PORT', DEFAULT_OUTBOUND_PORT),
    appPort: port('WEFT_APP_PORT', firstPort ?? 0),
    appAddress: str('WEFT_APP_ADDRESS') || '127.0.0.1',
    bindAddress: str('WEFT_BIND_ADDRESS') || '0.0.0.0',
  };
  if (str('WEFT_ADMIN_PORT') !== undefined) proxy.adminPort = port('WEFT_ADMIN_PORT', 0);
  return errors.length > 0 ? { errors } : { proxy };
}

/**
 * Proxies that would get identical resources share a group (and a snapshot).
 * Proxyless clients have no listeners of their own, so their ports don't matter.
 */
export function groupKey(proxy: ProxyRef): string {
  if (proxy.kind === 'proxyless-grpc') return `${proxy.namespace}/${proxy.service}/proxyless-grpc`;
  return [proxy.namespace, proxy.service, proxy.kind, proxy.inboundPort, proxy.outboundPort, proxy.appPort, proxy.appAddress, proxy.bindAddress].join('/');
}

/** Builds a node metadata Struct in the wire spelling (for clients and tests). */
export function nodeMetadata(values: Record<string, string | number>): { fields: Record<string, StructValue> } {
  const fields: Record<string, StructValue> = {};
  for (const [k, v] of Object.entries(values)) fields[k] = typeof v === 'number' ? { numberValue: v } : { stringValue: v };
  return { fields };
}
