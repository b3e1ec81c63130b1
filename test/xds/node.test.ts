// The xDS node -> ProxyRef contract: defaults, metadata keys, proxyless
// detection, errors with field paths, and proxy grouping.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { groupKey, nodeMetadata, proxyFromNode } from '../../control/xds/node.ts';

const orders = { name: 'orders', namespace: 'default', ports: [{ port: 9090, protocol: 'http' as const }] };

test('defaults: namespace default, sidecar, ports 15006/15001, app port = service first port, 127.0.0.1 / 0.0.0.0', () => {
  const r = proxyFromNode({ id: 'o-1', cluster: 'orders' }, () => orders);
  assert.deepEqual(r, { proxy: { id: 'o-1', service: 'orders', namespace: 'default', kind: 'sidecar', inboundPort: 15006, outboundPort: 15001, appPort: 9090, appAddress: '127.0.0.1', bindAddress: '0.0.0.0' } });
});

test('metadata overrides every default; numbers may be Struct numbers', () => {
  const metadata = nodeMetadata({ WEFT_NAMESPACE: 'shop', WEFT_KIND: 'sidecar', WEFT_INBOUND_PORT: 16006, WEFT_OUTBOUND_PORT: '16001', WEFT_APP_PORT: 8081, WEFT_APP_ADDRESS: '127.0.0.2', WEFT_BIND_ADDRESS: '127.0.0.1' });
  const r = proxyFromNode({ id: 'o-2', cluster: 'orders', metadata });
  assert.ok('proxy' in r);
  assert.deepEqual(r.proxy, { id: 'o-2', service: 'orders', namespace: 'shop', kind: 'sidecar', inboundPort: 16006, outboundPort: 16001, appPort: 8081, appAddress: '127.0.0.2', bindAddress: '127.0.0.1' });
});

test('hand-built snake_case Struct values are read too', () => {
  const r = proxyFromNode({ id: 'o-3', cluster: 'orders', metadata: { fields: { WEFT_APP_PORT: { string_value: '7000' } } } });
  assert.ok('proxy' in r && r.proxy.appPort === 7000);
});

test('a gRPC client (user_agent_name) is proxyless; WEFT_KIND wins when set', () => {
  const grpc = proxyFromNode({ id: 'g', cluster: 'web', user_agent_name: 'gRPC Node Pure JS' });
  assert.ok('proxy' in grpc && grpc.proxy.kind === 'proxyless-grpc');
  const forced = proxyFromNode({ id: 'g', cluster: 'web', metadata: nodeMetadata({ WEFT_KIND: 'proxyless-grpc' }) });
  assert.ok('proxy' in forced && forced.proxy.kind === 'proxyless-grpc');
});

test('bad nodes get every error with its field path', () => {
  const r = proxyFromNode({ metadata: nodeMetadata({ WEFT_KIND: 'gateway', WEFT_INBOUND_PORT: 70000 }) });
  assert.ok('errors' in r);
  assert.deepEqual(r.errors.map((e) => e.path).sort(), ['node.cluster', 'node.id', 'node.metadata.WEFT_INBOUND_PORT', 'node.metadata.WEFT_KIND']);
  assert.ok('errors' in proxyFromNode(undefined));
});

test('proxies of one service with the same ports share a group; other ports or kinds do not', () => {
  const ref = (id: string, meta: Record<string, string | number> = {}) => {
    const r = proxyFromNode({ id, cluster: 'orders', metadata: nodeMetadata(meta) }, () => orders);
    assert.ok('proxy' in r);
    return groupKey(r.proxy);
  };
  assert.equal(ref('a'), ref('b'));
  assert.notEqual(ref('a'), ref('c', { WEFT_OUTBOUND_PORT: 16001 }));
  assert.notEqual(ref('a'), ref('d', { WEFT_KIND: 'proxyless-grpc' }));
  assert.equal(ref('e', { WEFT_KIND: 'proxyless-grpc', WEFT_APP_PORT: 1 }), ref('f', { WEFT_KIND: 'proxyless-grpc' }));
});
