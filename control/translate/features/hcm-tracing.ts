// OpenTelemetry tracing in every sidecar HTTP connection manager, exported
// over OTLP/gRPC to the cluster the bootstrap declares for the collector
// (weft bootstrap --otel-collector adds weft_otel). Off by default; Envoy
// continues traces whose context arrives in traceparent headers and starts
// new ones for the sampled share of requests.

import { registerHcmFeature } from '../registry.ts';

const OTEL_TYPE = 'type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig';

registerHcmFeature('tracing', (hcm, target, ctx) => {
  const options = ctx.options.tracing;
  // gRPC libraries configure their own tracing, not through the HCM.
  if (!options || target.kind === 'proxyless') return;
  const sampling = options.samplingPercent ?? 100;
  let valid = true;
  if (typeof options.collectorCluster !== 'string' || options.collectorCluster.length === 0) {
    ctx.errors.push({ path: 'options.tracing.collectorCluster', message: 'must name the bootstrap cluster of the OTLP collector' });
    valid = false;
  }
  if (typeof sampling !== 'number' || !Number.isFinite(sampling) || sampling < 0 || sampling > 100) {
    ctx.errors.push({ path: 'options.tracing.samplingPercent', message: `must be 0..100, got ${String(sampling)}` });
    valid = false;
  }
  if (options.serviceName !== undefined && options.serviceName.length === 0) {
    ctx.errors.push({ path: 'options.tracing.serviceName', message: 'must be non-empty when set' });
    valid = false;
  }
  if (!valid) return;
  hcm.tracing = {
    random_sampling: { value: sampling },
    provider: {
      name: 'envoy.tracers.opentelemetry',
      typed_config: {
        '@type': OTEL_TYPE,
        grpc_service: { envoy_grpc: { cluster_name: options.collectorCluster }, timeout: '0.250s' },
        service_name: options.serviceName ?? `${ctx.proxy.service}.${ctx.proxy.namespace}`,
      },
    },
  };
});
