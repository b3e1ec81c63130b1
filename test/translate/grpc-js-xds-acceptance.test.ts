// What we emit for proxyless gRPC must be accepted by grpc-js-xds, a client
// nobody here wrote: each resource is encoded with weft's Envoy codec and
// decoded by grpc-js-xds's own resource types, which NACK anything they
// cannot use (wrong lb_policy, router not last, unsupported route action,
// locality without weight is silently dropped, so that is checked too).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { ListenerResourceType } from '@grpc/grpc-js-xds/build/src/xds-resource-type/listener-resource-type.js';
import { ClusterResourceType } from '@grpc/grpc-js-xds/build/src/xds-resource-type/cluster-resource-type.js';
import { EndpointResourceType } from '@grpc/grpc-js-xds/build/src/xds-resource-type/endpoint-resource-type.js';
import { register } from '@grpc/grpc-js-xds';
import { translateEndpoints, translateProxy, type EnvoyResource } from '../../control/translate/index.ts';
import { buildCase } from '../golden/load-case.ts';

const codecPath = new URL('../../control/envoy/index.ts', import.meta.url);
type Encode = (typeUrl: string, json: unknown) => { bytes: Uint8Array } | { errors: { path: string; message: string }[] };

const LDS = 'type.googleapis.com/envoy.config.listener.v3.Listener';
const CDS = 'type.googleapis.com/envoy.config.cluster.v3.Cluster';
const EDS = 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment';

// The decoders read only the bootstrap's certificate providers and the server (for LRS).
const context = { server: {}, bootstrap: { certificateProviders: {} } } as never;
// Registers grpc-js-xds's HTTP filters (router, fault) and LB policies, as an app using xds:/// does.
register();

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
        loadBalancer: { policy: 'ring_hash', hashOn: { header: 'x-user' } },
        circuitBreakers: { maxRequests: 100 },
        outlierDetection: { consecutive5xx: 3, intervalMs: 1000, baseEjectionTimeMs: 5000, maxEjectionPercent: 50 },
        subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2' } }],
      }],
      routes: [{
        name: 'greeter', service: 'greeter',
        rules: [
          {
            match: [{ path: { prefix: '/helloworld.Greeter/' }, headers: [{ name: 'x-canary', match: { present: true } }] }],
            destinations: [{ service: 'greeter', subset: 'v2', weight: 1 }],
            retries: { attempts: 2, retryOn: ['unavailable'] },
            fault: { abort: { httpStatus: 503, percentage: 1 } },
          },
          { destinations: [{ service: 'greeter', subset: 'v1', weight: 90 }, { service: 'greeter', subset: 'v2', weight: 10 }] },
        ],
      }],
    },
    proxy: { service: 'client', kind: 'proxyless-grpc' },
  });
}

function encodeAll(encode: Encode, typeUrl: string, resources: EnvoyResource[]): { type_url: string; value: Buffer }[] {
  return resources.map((r) => {
    const encoded = encode(typeUrl, r.value);
    assert.ok('bytes' in encoded, `${r.name}: ${JSON.stringify('errors' in encoded ? encoded.errors : '')}`);
    return { type_url: typeUrl, value: Buffer.from(encoded.bytes) };
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
  const endpoints = translateEndpoints(model, resources.endpointNames);

  for (const any of encodeAll(encodeResource, LDS, resources.listeners)) {
    const decoded = ListenerResourceType.get().decode(context, any as never);
    assert.equal(decoded.error, undefined, `grpc-js-xds NACKs listener ${decoded.name}: ${decoded.error}`);
  }
  for (const any of encodeAll(encodeResource, CDS, resources.clusters)) {
    const decoded = ClusterResourceType.get().decode(context, any as never);
    assert.equal(decoded.error, undefined, `grpc-js-xds NACKs cluster ${decoded.name}: ${decoded.error}`);
  }
  for (const any of encodeAll(encodeResource, EDS, endpoints.endpoints)) {
    const decoded = EndpointResourceType.get().decode(context, any as never);
    assert.equal(decoded.error, undefined, `grpc-js-xds NACKs endpoints ${decoded.name}: ${decoded.error}`);
    const value = decoded.value as { endpoints: { load_balancing_weight: { value: number } | null }[] };
    for (const locality of value.endpoints) assert.ok((locality.load_balancing_weight?.value ?? 0) > 0, 'gRPC drops localities without weight');
  }
  assert.ok(resources.listeners.some((l) => l.name === 'greeter'), 'xds:///greeter needs a listener named greeter');
});
