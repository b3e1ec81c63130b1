// What we emit for proxyless gRPC must be accepted by grpc-js-xds, a client
// nobody here wrote: each resource is encoded with weft's Envoy codec and
// decoded by grpc-js-xds's own resource types, which NACK anything they
// cannot use (wrong lb_policy, router not last, unsupported route action,
// unset locality). The golden runner applies the same check to every
// proxyless golden case.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { translateEndpoints, translateProxy } from '../../control/translate/index.ts';
import { buildCase } from '../golden/load-case.ts';
import { grpcXdsRejections, type Encode } from './grpc-js-xds-decode.ts';

const codecPath = new URL('../../control/envoy/index.ts', import.meta.url);

function greeterMesh(): ReturnType<typeof buildCase> {
  return buildCase({
    model: {
      services: [{ name: 'greeter', ports: [{ port: 50051, protocol: 'grpc' }] }],
      instances: [
        { service: 'greeter', address: '127.0.0.1', port: 50061, labels: { version: 'v1' }, zone: 'a' },
        { service: 'greeter', address: '127.0.0.1', port: 50062, labels: { version: 'v2' } },
      ],
      destinationPolicies: [{
        name: 'greeter', service: 'greeter',
        loadBalancer: { policy: 'least_request' },
        circuitBreakers: { maxRequests: 100 },
        outlierDetection: { consecutive5xx: 3, intervalMs: 1000, baseEjectionTimeMs: 5000, maxEjectionPercent: 50 },
        healthCheck: { path: '/healthz', intervalMs: 1000, timeoutMs: 500, healthyThreshold: 1, unhealthyThreshold: 2 },
        subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2' } }],
      }],
      routes: [{
        name: 'greeter', service: 'greeter',
        rules: [
          {
            match: [{ path: { prefix: '/helloworld.Greeter/' }, headers: [{ name: 'x-canary', match: { regex: '^(1|yes)$' } }] }],
            destinations: [{ service: 'greeter', subset: 'v2', weight: 1 }],
            retries: { attempts: 2, retryOn: ['unavailable'] },
            fault: { delay: { fixedDelayMs: 10, percentage: 1 } },
          },
          { destinations: [{ service: 'greeter', subset: 'v1', weight: 90 }, { service: 'greeter', subset: 'v2', weight: 10 }] },
        ],
      }],
    },
    proxy: { service: 'client', kind: 'proxyless-grpc' },
  });
}

test('grpc-js-xds accepts the listeners, clusters and endpoints weft emits for a proxyless client', async (t) => {
  if (!existsSync(codecPath)) {
    t.skip('control/envoy/index.ts (the codec) is not in this tree yet');
    return;
  }
  const { encodeResource } = (await import(codecPath.href)) as { encodeResource: Encode };
  const { model, proxy, options } = greeterMesh();
  const resources = translateProxy(model, proxy, options);
  assert.deepEqual(resources.errors, []);
  assert.ok(resources.listeners.some((l) => l.name === 'greeter'), 'xds:///greeter needs a listener named greeter');
  const endpoints = translateEndpoints(model, resources.endpointNames);
  assert.deepEqual(grpcXdsRejections(encodeResource, 'type.googleapis.com/envoy.config.listener.v3.Listener', resources.listeners), []);
  assert.deepEqual(grpcXdsRejections(encodeResource, 'type.googleapis.com/envoy.config.cluster.v3.Cluster', resources.clusters), []);
  assert.deepEqual(grpcXdsRejections(encodeResource, 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment', endpoints.endpoints), []);
});

test('the check has teeth: grpc-js-xds refuses what gRPC cannot use', async (t) => {
  if (!existsSync(codecPath)) {
    t.skip('control/envoy/index.ts (the codec) is not in this tree yet');
    return;
  }
  const { encodeResource } = (await import(codecPath.href)) as { encodeResource: Encode };
  const { model, proxy, options } = greeterMesh();
  const resources = translateProxy(model, proxy, options);
  const cluster = resources.clusters[0]!;
  const leastRequest = { name: cluster.name, value: { ...cluster.value, lb_policy: 'LEAST_REQUEST' } };
  assert.match(grpcXdsRejections(encodeResource, 'type.googleapis.com/envoy.config.cluster.v3.Cluster', [leastRequest])[0] ?? '', /lb_policy/);
  const cla = translateEndpoints(model, [cluster.name]).endpoints[0]!;
  const localities = (cla.value.endpoints as Record<string, unknown>[]).map(({ locality: _l, ...rest }) => rest);
  assert.match(grpcXdsRejections(encodeResource, 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment',
    [{ name: cla.name, value: { ...cla.value, endpoints: localities } }])[0] ?? '', /locality/);
});
