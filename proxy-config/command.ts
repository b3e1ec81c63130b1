// `weft bootstrap`: prints a sidecar's Envoy bootstrap (YAML or JSON) for
// `envoy -c`. The generator loads Envoy's protos, so it is imported only when
// the command runs.

import { Command, Option } from 'commander';
import { stringify } from 'yaml';
import { CliError } from '../control/cli/client.ts';
import type { BootstrapOptions, HostPort } from './options.ts';

function port(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n > 65535) throw new CliError(`error: port must be an integer 0..65535 (got "${value}")`, 2);
  return n;
}

/** Any whole number: resolveBootstrapOptions says, naming the option, when it is out of range. */
function wholeNumber(value: string): number {
  if (!/^\d+$/.test(value)) throw new CliError(`error: expected a whole number (got "${value}")`, 2);
  return Number(value);
}

function hostPort(value: string): HostPort {
  const m = /^(.+):(\d+)$/.exec(value);
  if (!m) throw new CliError(`error: expected HOST:PORT (got "${value}")`, 2);
  return { host: m[1]!, port: port(m[2]!) };
}

interface Flags {
  service: string;
  namespace: string;
  nodeId?: string;
  xdsHost: string;
  xdsPort: number;
  apiHost?: string;
  apiPort: number;
  token?: string;
  xdsCa?: string;
  xdsServerName?: string;
  inboundPort: number;
  outboundPort: number;
  appPort?: number;
  appAddress: string;
  bindAddress: string;
  adminPort: number;
  prometheusPort: number;
  otelCollector?: HostPort;
  maxHeapMb?: number;
  maxDownstreamConnections?: number;
  output: 'yaml' | 'json';
}

export function toBootstrapOptions(f: Flags): BootstrapOptions {
  return {
    service: f.service,
    namespace: f.namespace,
    nodeId: f.nodeId,
    xds: { host: f.xdsHost, port: f.xdsPort },
    api: { host: f.apiHost ?? f.xdsHost, port: f.apiPort },
    token: f.token,
    xdsCa: f.xdsCa,
    xdsServerName: f.xdsServerName,
    inboundPort: f.inboundPort,
    outboundPort: f.outboundPort,
    appPort: f.appPort,
    appAddress: f.appAddress,
    bindAddress: f.bindAddress,
    adminPort: f.adminPort,
    prometheusPort: f.prometheusPort,
    otelCollector: f.otelCollector,
    maxHeapMb: f.maxHeapMb,
    maxDownstreamConnections: f.maxDownstreamConnections,
  };
}

export function bootstrapCommand(): Command {
  return new Command('bootstrap')
    .description("print an Envoy sidecar's bootstrap: node identity, ADS (Delta gRPC) to the control plane, admin on loopback")
    .requiredOption('--service <name>', 'the service this proxy fronts (node.cluster)')
    .option('--namespace <ns>', 'namespace of the service', 'default')
    .option('--node-id <id>', 'unique proxy id (default <service>.<namespace>)')
    .option('--xds-host <host>', 'control plane xDS host', '127.0.0.1')
    .option('--xds-port <port>', 'control plane xDS port', port, 18000)
    .option('--api-host <host>', 'control plane REST API host, for wasm module fetches (default: the xDS host)')
    .option('--api-port <port>', 'control plane REST API port', port, 8080)
    .addOption(new Option('--token <token>', 'join credential, sent in node.metadata.WEFT_TOKEN').env('WEFT_PROXY_TOKEN'))
    .addOption(new Option('--xds-ca <file>', "xDS over TLS (weft control --xds-tls): the PEM file, as Envoy sees it, the control plane's certificate must verify against (the mesh root, <data-dir>/ca-root.pem)").env('WEFT_XDS_CA'))
    .option('--xds-server-name <name>', 'with --xds-ca: the SNI sent to the control plane (default: --xds-host when it is a name)')
    .option('--inbound-port <port>', 'inbound listener port', port, 15006)
    .option('--outbound-port <port>', 'outbound listener port', port, 15001)
    .option('--app-port <port>', "the app's port (default: the service's first port)", port)
    .option('--app-address <addr>', "the app's address", '127.0.0.1')
    .option('--bind-address <addr>', 'address the inbound and Prometheus listeners bind', '0.0.0.0')
    .option('--admin-port <port>', 'admin port (bound to 127.0.0.1)', port, 15000)
    .option('--prometheus-port <port>', 'listener serving /stats/prometheus and /ready off loopback (0 = none)', port, 15090)
    .option('--otel-collector <host:port>', 'OTLP/gRPC collector for the OpenTelemetry tracer (cluster weft_otel)', hostPort)
    .option('--max-heap-mb <mib>', "the overload manager's fixed_heap monitor: keep-alive off at 95%, new requests refused (503) at 98% (default: none)", wholeNumber)
    .option('--max-downstream-connections <n>', "the overload manager's global_downstream_max_connections (default: none)", wholeNumber)
    .addOption(new Option('-o, --output <format>', 'output format').choices(['yaml', 'json']).default('yaml'))
    .action(async (flags: Flags) => {
      const { generateBootstrap } = await import('./bootstrap.ts');
      const result = generateBootstrap(toBootstrapOptions(flags));
      if (!result.ok) throw new CliError('error: invalid bootstrap options', 2, result.errors);
      process.stdout.write(flags.output === 'json' ? JSON.stringify(result.bootstrap, null, 2) + '\n' : stringify(result.bootstrap, { aliasDuplicateObjects: false }));
    });
}
