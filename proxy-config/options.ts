// What a sidecar's Envoy bootstrap is made from, and the checks on it. Every
// problem comes back as a field error naming the option, so `weft bootstrap`
// and the compose generator report all of them at once.

import type { FieldError } from '../control/model/result.ts';

/** The bootstrap cluster that reaches the control plane's HTTP API (wasm module fetches). Must equal control/main.ts WASM_CLUSTER. */
export const WASM_CLUSTER_NAME = 'weft-control';
/** The bootstrap cluster for the ADS stream. */
export const XDS_CLUSTER_NAME = 'xds_cluster';
/** The bootstrap cluster the OpenTelemetry tracer exports to (translator option `tracing.collectorCluster`). */
export const OTEL_CLUSTER_NAME = 'weft_otel';

export const DEFAULT_PORTS = { inbound: 15006, outbound: 15001, admin: 15000, prometheus: 15090, xds: 18000, api: 8080 } as const;

export interface HostPort {
  host: string;
  port: number;
}

export interface BootstrapOptions {
  /** The service this proxy fronts: node.cluster. */
  service: string;
  namespace?: string;
  /** Unique per proxy; default `<service>.<namespace>`. */
  nodeId?: string;
  xds: HostPort;
  /** The control plane's REST API (serves /wasm/<sha256>.wasm); default the xDS host on 8080. */
  api?: HostPort;
  /** The join credential; travels in node.metadata.WEFT_TOKEN. */
  token?: string;
  /**
   * xDS over TLS (weft control --xds-tls): the path, as Envoy sees it, of the
   * PEM roots the control plane's certificate must verify against (the mesh
   * root, <data-dir>/ca-root.pem). Plaintext when absent.
   */
  xdsCa?: string;
  /** With xdsCa: the SNI sent to the control plane; default the xDS host when it is a name (none for an IP). */
  xdsServerName?: string;
  inboundPort?: number;
  outboundPort?: number;
  /** The app's port; absent = the service's first port (the xDS server fills it). */
  appPort?: number;
  appAddress?: string;
  /** Address the inbound listener binds (0.0.0.0 in a container). */
  bindAddress?: string;
  adminPort?: number;
  /** Port of the listener that exposes only /stats/prometheus off loopback (0 = none). */
  prometheusPort?: number;
  /** OTLP/gRPC collector the OpenTelemetry tracer reports to (cluster weft_otel). */
  otelCollector?: HostPort;
  /** The overload manager's fixed_heap monitor, MiB (weft sidecar --max-heap-mb); none when absent. */
  maxHeapMb?: number;
  /** The overload manager's global_downstream_max_connections (weft sidecar --max-downstream-connections). */
  maxDownstreamConnections?: number;
}

type Optional = 'token' | 'xdsCa' | 'xdsServerName' | 'appPort' | 'otelCollector' | 'maxHeapMb' | 'maxDownstreamConnections';
export type ResolvedBootstrapOptions = Required<Omit<BootstrapOptions, Optional>> & Pick<BootstrapOptions, Optional>;

// DNS-1123 labels: the same names the model accepts for services and namespaces.
const NAME = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const HOST = /^[A-Za-z0-9]([-A-Za-z0-9.]{0,251}[A-Za-z0-9])?$|^\[?[0-9a-fA-F:]+\]?$/;

function checkPort(errors: FieldError[], path: string, value: number | undefined, allowZero = false): void {
  if (value === undefined) return;
  if (!Number.isInteger(value) || value < (allowZero ? 0 : 1) || value > 65535) {
    errors.push({ path, message: `must be a port ${allowZero ? 0 : 1}..65535, got ${value}` });
  }
}

function checkHost(errors: FieldError[], path: string, value: string | undefined): void {
  if (value === undefined) return;
  if (!HOST.test(value)) errors.push({ path, message: `must be a host name or IP address, got ${JSON.stringify(value)}` });
}

/** Fills defaults and checks every option; all errors, not just the first. */
export function resolveBootstrapOptions(opts: BootstrapOptions): { ok: true; value: ResolvedBootstrapOptions } | { ok: false; errors: FieldError[] } {
  const errors: FieldError[] = [];
  const namespace = opts.namespace ?? 'default';
  if (!NAME.test(opts.service ?? '')) errors.push({ path: 'service', message: `must be a DNS-1123 label (lowercase letters, digits, '-'), got ${JSON.stringify(opts.service)}` });
  if (!NAME.test(namespace)) errors.push({ path: 'namespace', message: `must be a DNS-1123 label, got ${JSON.stringify(namespace)}` });
  if (opts.nodeId !== undefined && !/^[\w.:-]{1,253}$/.test(opts.nodeId)) errors.push({ path: 'nodeId', message: 'must be 1..253 characters of letters, digits, . _ : -' });
  if (opts.token !== undefined && (opts.token.length === 0 || /\s/.test(opts.token))) errors.push({ path: 'token', message: 'must be non-empty without whitespace' });
  if (opts.xdsCa !== undefined && (opts.xdsCa.length === 0 || /[\0\n]/.test(opts.xdsCa))) errors.push({ path: 'xdsCa', message: 'must be a file path' });
  if (opts.xdsServerName !== undefined) {
    if (opts.xdsCa === undefined) errors.push({ path: 'xdsServerName', message: 'needs xdsCa (--xds-ca): it is the SNI of the TLS connection to the control plane' });
    else if (!/^[A-Za-z0-9]([-A-Za-z0-9.]{0,251}[A-Za-z0-9])?$/.test(opts.xdsServerName)) errors.push({ path: 'xdsServerName', message: `must be a DNS name, got ${JSON.stringify(opts.xdsServerName)}` });
  }
  checkHost(errors, 'xds.host', opts.xds?.host);
  if (!opts.xds?.host) errors.push({ path: 'xds.host', message: 'required' });
  checkPort(errors, 'xds.port', opts.xds?.port);
  checkHost(errors, 'api.host', opts.api?.host);
  checkPort(errors, 'api.port', opts.api?.port);
  checkHost(errors, 'otelCollector.host', opts.otelCollector?.host);
  checkPort(errors, 'otelCollector.port', opts.otelCollector?.port);
  checkHost(errors, 'appAddress', opts.appAddress);
  checkHost(errors, 'bindAddress', opts.bindAddress);
  checkPort(errors, 'inboundPort', opts.inboundPort);
  checkPort(errors, 'outboundPort', opts.outboundPort);
  checkPort(errors, 'appPort', opts.appPort);
  checkPort(errors, 'adminPort', opts.adminPort);
  checkPort(errors, 'prometheusPort', opts.prometheusPort, true);
  for (const key of ['maxHeapMb', 'maxDownstreamConnections'] as const) {
    const n = opts[key];
    if (n !== undefined && !(Number.isInteger(n) && n >= 1)) errors.push({ path: key, message: `must be a whole number, 1 or more, got ${n}` });
  }

  const value: ResolvedBootstrapOptions = {
    service: opts.service,
    namespace,
    nodeId: opts.nodeId ?? `${opts.service}.${namespace}`,
    xds: opts.xds,
    api: opts.api ?? { host: opts.xds?.host, port: DEFAULT_PORTS.api },
    token: opts.token,
    xdsCa: opts.xdsCa,
    xdsServerName: opts.xdsServerName,
    inboundPort: opts.inboundPort ?? DEFAULT_PORTS.inbound,
    outboundPort: opts.outboundPort ?? DEFAULT_PORTS.outbound,
    appPort: opts.appPort,
    appAddress: opts.appAddress ?? '127.0.0.1',
    bindAddress: opts.bindAddress ?? '0.0.0.0',
    adminPort: opts.adminPort ?? DEFAULT_PORTS.admin,
    prometheusPort: opts.prometheusPort ?? DEFAULT_PORTS.prometheus,
    otelCollector: opts.otelCollector,
    maxHeapMb: opts.maxHeapMb,
    maxDownstreamConnections: opts.maxDownstreamConnections,
  };
  // One network namespace: two listeners on one port would fail at Envoy start.
  const ports: [string, number][] = [
    ['inboundPort', value.inboundPort], ['outboundPort', value.outboundPort], ['adminPort', value.adminPort],
    ...(value.prometheusPort > 0 ? [['prometheusPort', value.prometheusPort] as [string, number]] : []),
    ...(value.appPort !== undefined ? [['appPort', value.appPort] as [string, number]] : []),
  ];
  for (let i = 0; i < ports.length; i++) {
    for (let j = 0; j < i; j++) {
      if (ports[i]![1] === ports[j]![1]) errors.push({ path: ports[i]![0], message: `port ${ports[i]![1]} is already ${ports[j]![0]}` });
    }
  }
  return errors.length > 0 ? { ok: false, errors } : { ok: true, value };
}
