// Loads Envoy's API protos from @grpc/grpc-js-xds's deps/ at runtime (never vendored)
// into one protobufjs Root, built lazily on first use and shared by the process.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import protobuf from 'protobufjs';

const require = createRequire(import.meta.url);
const depsDir = join(dirname(require.resolve('@grpc/grpc-js-xds/package.json')), 'deps');

// Search order for imports. protobufjs ships google/protobuf/descriptor.proto, which
// the validate and udpa annotation protos import; the well-known types it bundles.
const includeDirs = [
  join(depsDir, 'envoy-api'),
  join(depsDir, 'xds'),
  join(depsDir, 'googleapis'),
  join(depsDir, 'protoc-gen-validate'),
  dirname(require.resolve('protobufjs/package.json')),
];

// Every message weft emits, validates or decodes is reachable from these files
// (imports are followed). Adding a file here is how a new extension becomes
// encodable; an @type whose file is not listed is refused, as Envoy would refuse a
// type it was not built with.
export const PROTO_FILES: readonly string[] = [
  // xDS resources and transport
  'envoy/config/listener/v3/listener.proto',
  'envoy/config/route/v3/route.proto',
  'envoy/config/route/v3/scoped_route.proto',
  'envoy/config/cluster/v3/cluster.proto',
  'envoy/config/endpoint/v3/endpoint.proto',
  'envoy/config/core/v3/extension.proto',
  'envoy/config/core/v3/health_check.proto',
  'envoy/extensions/transport_sockets/tls/v3/secret.proto',
  'envoy/extensions/transport_sockets/tls/v3/tls.proto',
  'envoy/extensions/transport_sockets/raw_buffer/v3/raw_buffer.proto',
  'envoy/service/discovery/v3/discovery.proto',
  'envoy/service/discovery/v3/ads.proto',
  'envoy/service/runtime/v3/rtds.proto',
  'envoy/service/secret/v3/sds.proto',
  'envoy/config/bootstrap/v3/bootstrap.proto',
  // the overload manager's resource monitors (weft bootstrap --max-heap-mb, --max-downstream-connections)
  'envoy/extensions/resource_monitors/fixed_heap/v3/fixed_heap.proto',
  'envoy/extensions/resource_monitors/downstream_connections/v3/downstream_connections.proto',
  // network and listener filters
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.proto',
  'envoy/extensions/filters/network/rbac/v3/rbac.proto',
  'envoy/extensions/filters/listener/tls_inspector/v3/tls_inspector.proto',
  'envoy/extensions/filters/listener/http_inspector/v3/http_inspector.proto',
  'envoy/extensions/filters/listener/original_dst/v3/original_dst.proto',
  // HTTP filters
  'envoy/extensions/filters/http/router/v3/router.proto',
  // a route's retry_host_predicate (the default retry avoids the host that failed)
  'envoy/extensions/retry/host/previous_hosts/v3/previous_hosts.proto',
  'envoy/extensions/filters/http/wasm/v3/wasm.proto',
  'envoy/extensions/wasm/v3/wasm.proto',
  'envoy/extensions/filters/http/rbac/v3/rbac.proto',
  'envoy/config/rbac/v3/rbac.proto',
  'envoy/extensions/filters/http/fault/v3/fault.proto',
  'envoy/extensions/filters/http/cors/v3/cors.proto',
  'envoy/extensions/filters/http/local_ratelimit/v3/local_rate_limit.proto',
  'envoy/extensions/filters/http/health_check/v3/health_check.proto',
  'envoy/extensions/filters/http/header_mutation/v3/header_mutation.proto',
  'envoy/extensions/filters/http/ext_authz/v3/ext_authz.proto',
  'envoy/extensions/filters/http/jwt_authn/v3/config.proto',
  // upstream options, load balancing
  'envoy/extensions/upstreams/http/v3/http_protocol_options.proto',
  'envoy/extensions/load_balancing_policies/round_robin/v3/round_robin.proto',
  'envoy/extensions/load_balancing_policies/least_request/v3/least_request.proto',
  'envoy/extensions/load_balancing_policies/ring_hash/v3/ring_hash.proto',
  'envoy/extensions/load_balancing_policies/wrr_locality/v3/wrr_locality.proto',
  'envoy/extensions/load_balancing_policies/client_side_weighted_round_robin/v3/client_side_weighted_round_robin.proto',
  'envoy/extensions/load_balancing_policies/pick_first/v3/pick_first.proto',
  'envoy/extensions/clusters/aggregate/v3/cluster.proto',
  // observability
  'envoy/extensions/access_loggers/file/v3/file.proto',
  'envoy/extensions/access_loggers/stream/v3/stream.proto',
  'envoy/extensions/access_loggers/grpc/v3/als.proto',
  'envoy/config/trace/v3/opentelemetry.proto',
  'envoy/config/trace/v3/zipkin.proto',
  'envoy/config/trace/v3/http_tracer.proto',
  'envoy/extensions/stat_sinks/wasm/v3/wasm.proto',
  'envoy/config/metrics/v3/stats.proto',
  // matchers and helpers referenced through Any
  'envoy/type/matcher/v3/string.proto',
  'envoy/type/matcher/v3/regex.proto',
  'envoy/type/matcher/v3/metadata.proto',
  'envoy/type/matcher/v3/path.proto',
  'envoy/type/matcher/v3/http_inputs.proto',
  'envoy/type/v3/percent.proto',
  'envoy/extensions/regex_engines/v3/google_re2.proto',
  'envoy/extensions/network/socket_interface/v3/default_socket_interface.proto',
  'xds/type/v3/typed_struct.proto',
  'udpa/type/v1/typed_struct.proto',
  'google/protobuf/empty.proto',
  'google/protobuf/wrappers.proto',
  'google/protobuf/struct.proto',
];

function resolveImport(origin: string, target: string): string | null {
  for (const dir of includeDirs) {
    const candidate = join(dir, target);
    if (existsSync(candidate)) return candidate;
  }
  if (existsSync(target)) return target;
  // protobufjs bundles the well-known types (any, duration, struct, wrappers, ...).
  if (target.startsWith('google/protobuf/')) return target;
  // A missing import is a packaging bug, not bad input: fail loudly with what and where.
  throw new Error(`envoy protos: cannot find import "${target}" (from ${origin || 'the file list'}) in ${includeDirs.join(', ')}`);
}

let cached: { root: protobuf.Root; loadMs: number } | undefined;

function load(): { root: protobuf.Root; loadMs: number } {
  const started = performance.now();
  const root = new protobuf.Root();
  root.resolvePath = resolveImport;
  root.loadSync([...PROTO_FILES], { keepCase: true });
  root.resolveAll();
  return { root, loadMs: performance.now() - started };
}

/** The protobufjs Root holding every proto in PROTO_FILES; loaded once, then cached. */
export function envoyRoot(): protobuf.Root {
  cached ??= load();
  return cached.root;
}

/** How long the one-time proto load took, in milliseconds (loads if needed). */
export function protoLoadMillis(): number {
  envoyRoot();
  return cached!.loadMs;
}
