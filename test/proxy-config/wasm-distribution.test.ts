// Wasm distribution as Envoy sees it: a bound filter reaches the proxy as an
// ECDS TypedExtensionConfig whose vm_config.code.remote passes Envoy's proto
// and PGV rules, fetches from the bootstrap's wasm cluster, and names a URL
// that the control plane answers with exactly the bytes of the advertised
// sha256, cacheable forever; anything else is a 404.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { parse as wat } from '@bytecodealliance/jco';
import { TypeUrl, validateResource } from '../../control/envoy/index.ts';
import { representativeProxy } from '../../control/api/proxy-diff.ts';
import { generateBootstrap } from '../../proxy-config/bootstrap.ts';
import { startApi } from '../api/harness.ts';

/** The smallest module the catalog's checks accept; `marker` varies the bytes (and so the sha256). */
async function module(marker: number): Promise<Uint8Array> {
  return wat(`(module
    (memory (export "memory") 1)
    (global (export "weft_marker") i32 (i32.const ${marker}))
    (func (export "malloc") (param i32) (result i32) (i32.const 1024))
    (func (export "proxy_on_memory_allocate") (param i32) (result i32) (i32.const 1024))
    (func (export "proxy_abi_version_0_2_1")))`);
}

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

async function meshWithBindings() {
  const h = await startApi();
  const uploaded: Record<string, Uint8Array> = {};
  for (const [name, marker] of [['tagger', 1], ['counter', 2]] as const) {
    const bytes = await module(marker);
    const up = await h.call('POST', '/api/v1/filters', { name, wasm: Buffer.from(bytes).toString('base64'), configSchema: { type: 'object' } });
    assert.equal(up.status, 201, up.body);
    uploaded[name] = bytes;
  }
  const manifest = `apiVersion: weft.dev/v1
kind: Service
metadata: { name: orders }
spec: { ports: [{ port: 8081, protocol: http }] }
---
apiVersion: weft.dev/v1
kind: FilterBinding
metadata: { name: orders-tagger }
spec: { service: orders, direction: inbound, filter: tagger, config: { tag: a }, failurePolicy: fail_closed, order: 1 }
---
apiVersion: weft.dev/v1
kind: FilterBinding
metadata: { name: orders-counter }
spec: { service: orders, direction: outbound, filter: counter, config: {}, failurePolicy: fail_open, order: 2 }
`;
  const applied = await h.call('POST', '/api/v1/apply', manifest);
  assert.ok(applied.status < 300, applied.body);
  const resources = h.deps.translate(h.deps.buildModel(), representativeProxy({ name: 'orders', namespace: 'default', ports: [{ port: 8081 }] }));
  return { h, uploaded, resources };
}

test('every ECDS wasm config passes the codec, fetches from the bootstrap wasm cluster and keeps the failure policy', async (t) => {
  const { h, uploaded, resources } = await meshWithBindings();
  t.after(() => h.close());
  assert.deepEqual(resources.errors, []);
  const configs = resources['extension-configs'] as { name: string; value: any }[];
  assert.deepEqual(configs.map((c) => c.name), ['weft.wasm.default.orders-counter', 'weft.wasm.default.orders-tagger']);
  const bootstrap = generateBootstrap({ service: 'orders', xds: { host: 'control', port: 18000 } });
  assert.ok(bootstrap.ok);
  const bootstrapClusters = (bootstrap.bootstrap.static_resources as { clusters: { name: string }[] }).clusters.map((c) => c.name);
  for (const config of configs) {
    assert.deepEqual(validateResource(TypeUrl.ExtensionConfig, config.value), [], config.name);
    const wasm = config.value.typed_config.config;
    const remote = wasm.vm_config.code.remote;
    const filter = config.name.endsWith('tagger') ? 'tagger' : 'counter';
    assert.equal(remote.sha256, sha256(uploaded[filter]!));
    assert.ok(bootstrapClusters.includes(remote.http_uri.cluster), `${remote.http_uri.cluster} is not a bootstrap cluster`);
    assert.equal(wasm.fail_open, filter === 'counter');
  }
  // The listener names the ECDS resources; it never embeds the module, so a filter change never drains it.
  const listeners = JSON.stringify(resources.listeners);
  assert.ok(listeners.includes('"config_discovery"') && !listeners.includes('vm_config'));
});

test("the codec enforces Envoy's PGV rules on remote code: sha256 and http_uri.timeout are required", async (t) => {
  const { h, resources } = await meshWithBindings();
  t.after(() => h.close());
  const config = (resources['extension-configs'] as { value: any }[])[0]!.value;
  const typeUrl = TypeUrl.ExtensionConfig;
  const noSha = structuredClone(config);
  delete noSha.typed_config.config.vm_config.code.remote.sha256;
  assert.ok(validateResource(typeUrl, noSha).some((e) => e.path.endsWith('remote.sha256')), JSON.stringify(validateResource(typeUrl, noSha)));
  const noTimeout = structuredClone(config);
  delete noTimeout.typed_config.config.vm_config.code.remote.http_uri.timeout;
  assert.ok(validateResource(typeUrl, noTimeout).some((e) => e.path.endsWith('http_uri.timeout')), JSON.stringify(validateResource(typeUrl, noTimeout)));
});

test('the advertised URL serves exactly the bytes of its sha256, immutable; anything else is 404', async (t) => {
  const { h, uploaded, resources } = await meshWithBindings();
  t.after(() => h.close());
  for (const config of resources['extension-configs'] as { value: any }[]) {
    const remote = config.value.typed_config.config.vm_config.code.remote;
    const url = new URL(remote.http_uri.uri);
    const res = await h.app.inject({ method: 'GET', url: url.pathname });
    assert.equal(res.statusCode, 200, `${url.pathname}: no token, as Envoy's fetch sends none`);
    assert.equal(sha256(res.rawPayload), remote.sha256, 'bytes differ from the advertised sha256: Envoy would refuse the module');
    assert.equal(res.headers['content-type'], 'application/wasm');
    const cache = String(res.headers['cache-control']);
    assert.match(cache, /\bimmutable\b/);
    assert.match(cache, /\bpublic\b/);
    assert.ok(Number(/max-age=(\d+)/.exec(cache)?.[1]) >= 31_536_000, cache);
  }
  const known = sha256(uploaded.tagger!);
  for (const path of [
    `/wasm/${'0'.repeat(64)}.wasm`, // well-formed, not stored
    `/wasm/${known.toUpperCase()}.wasm`, // content addresses are lowercase hex only
    `/wasm/${known}`, `/wasm/${known}.wat`, `/wasm/${known.slice(0, 63)}.wasm`,
    '/wasm/..%2F..%2Fadmin.token', '/wasm/',
  ]) {
    const res = await h.app.inject({ method: 'GET', url: path });
    assert.equal(res.statusCode, 404, path);
    assert.notEqual(res.headers['content-type'], 'application/wasm', path);
  }
});
