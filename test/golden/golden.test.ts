// Golden tests: every test/golden/<case>/input.yaml is translated and the
// resources compared with the case's *.json files. UPDATE_GOLDEN=1 rewrites
// the outputs and deletes stale ones. Every output resource is also checked
// with the Envoy codec (control/envoy validateResource) so no golden file can
// hold something Envoy would reject, and, for sidecar proxies, with the weft
// sidecar's fidelity contract (sidecar/fidelity.ts) so none holds something
// the local data plane would NACK; proxyless cases go through grpc-js-xds's
// own decoders instead.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { sdsSecrets, translateEndpoints, translateProxy, type EnvoyResource } from '../../control/translate/index.ts';
import { loadCase } from './load-case.ts';
import { grpcXdsRejections, type Encode } from '../translate/grpc-js-xds-decode.ts';

const casesDir = dirname(fileURLToPath(import.meta.url));
const update = process.env.UPDATE_GOLDEN === '1';

const TYPE_URLS = {
  'listeners.json': 'type.googleapis.com/envoy.config.listener.v3.Listener',
  'routes.json': 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration',
  'clusters.json': 'type.googleapis.com/envoy.config.cluster.v3.Cluster',
  'endpoints.json': 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment',
  'extension_configs.json': 'type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig',
  'secrets.json': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret',
} as const;
const OUTPUT_FILES = [...Object.keys(TYPE_URLS), 'errors.json'];

type Validate = (typeUrl: string, json: Record<string, unknown>) => { path: string; message: string }[];
interface Codec { validateResource?: Validate; encodeResource?: Encode }

// The codec is a colleague's module; the runner uses it as soon as it exists.
async function loadCodec(): Promise<Codec> {
  const file = join(casesDir, '..', '..', 'control', 'envoy', 'index.ts');
  if (!existsSync(file)) return {};
  return (await import(pathToFileURL(file).href)) as Codec;
}

/** Cluster names anywhere in a resource: `cluster` fields and weighted_clusters entries. */
function referencedClusters(value: unknown): string[] {
  if (Array.isArray(value)) return value.flatMap(referencedClusters);
  if (value === null || typeof value !== 'object') return [];
  const out: string[] = [];
  for (const [key, child] of Object.entries(value)) {
    if (key === 'cluster' && typeof child === 'string') out.push(child);
    else if (key === 'weighted_clusters') out.push(...((child as { clusters: { name: string }[] }).clusters.map((c) => c.name)));
    else out.push(...referencedClusters(child));
  }
  return out;
}

const cases = readdirSync(casesDir, { withFileTypes: true })
  .filter((d) => d.isDirectory() && existsSync(join(casesDir, d.name, 'input.yaml')))
  .map((d) => d.name)
  .sort();

test('golden cases exist', () => {
  assert.ok(cases.length >= 12, `expected at least 12 golden cases, found ${cases.length}`);
});

type Accept = (kind: string, value: unknown) => { ok: true } | { ok: false; errors: { path: string; message: string }[] };
const FIDELITY_KINDS: Record<string, string> = {
  'listeners.json': 'listener', 'routes.json': 'route', 'clusters.json': 'cluster',
  'endpoints.json': 'endpoint', 'extension_configs.json': 'extension', 'secrets.json': 'secret',
};

async function loadFidelity(): Promise<Accept | undefined> {
  const file = join(casesDir, '..', '..', 'sidecar', 'fidelity.ts');
  if (!existsSync(file)) return undefined;
  return ((await import(pathToFileURL(file).href)) as { accept?: Accept }).accept;
}

const codecPromise = loadCodec();
const fidelityPromise = loadFidelity();

for (const name of cases) {
  test(`golden: ${name}`, async () => {
    const dir = join(casesDir, name);
    const input = loadCase(join(dir, 'input.yaml'));
    const proxy = translateProxy(input.model, input.proxy, input.options);
    const eds = translateEndpoints(input.model, proxy.endpointNames);
    const errors = [...proxy.errors, ...eds.errors];
    const outputs: Record<string, unknown[]> = {
      'listeners.json': proxy.listeners,
      'routes.json': proxy.routes,
      'clusters.json': proxy.clusters,
      'endpoints.json': eds.endpoints,
      'extension_configs.json': proxy.extensionConfigs,
      'secrets.json': input.secrets ? sdsSecrets(input.secrets) : [],
      'errors.json': errors,
    };

    assert.equal(errors.length > 0, input.expectErrors,
      input.expectErrors ? 'case expects translation errors, got none' : `unexpected errors: ${JSON.stringify(errors, null, 2)}`);

    if (update) {
      for (const file of readdirSync(dir)) {
        if (file.endsWith('.json') && !(file in outputs && outputs[file]!.length > 0)) rmSync(join(dir, file));
      }
      for (const [file, resources] of Object.entries(outputs)) {
        if (resources.length > 0) writeFileSync(join(dir, file), JSON.stringify(resources, null, 2) + '\n');
      }
    }

    // Snapshot consistency (go-control-plane's check): every cluster a listener,
    // route or extension config names is served, and every EDS name is one we
    // produce endpoints for.
    const clusterNames = new Set(proxy.clusters.map((c) => c.name));
    clusterNames.add(input.options.wasmClusterName);
    const referenced = [...proxy.listeners, ...proxy.routes, ...proxy.extensionConfigs].flatMap((r) => referencedClusters(r.value));
    assert.deepEqual(referenced.filter((c) => !clusterNames.has(c)), [], 'clusters referenced but not served');
    const edsNames = proxy.clusters.flatMap((c) => {
      const eds = c.value.eds_cluster_config as { service_name?: string } | undefined;
      return eds?.service_name ? [eds.service_name] : [];
    });
    assert.deepEqual(edsNames.sort(), [...proxy.endpointNames].sort(), 'endpointNames must be exactly the EDS names clusters use');

    const stale = readdirSync(dir).filter((f) => f.endsWith('.json') && !OUTPUT_FILES.includes(f));
    assert.deepEqual(stale, [], 'unknown json files in the case; run with UPDATE_GOLDEN=1 to delete them');
    for (const [file, resources] of Object.entries(outputs)) {
      const path = join(dir, file);
      if (resources.length === 0) {
        assert.ok(!existsSync(path), `${name}/${file} exists but translation produced nothing; UPDATE_GOLDEN=1 deletes it`);
        continue;
      }
      assert.ok(existsSync(path), `${name}/${file} missing; run UPDATE_GOLDEN=1 node scripts/run-tests.mjs golden`);
      assert.deepEqual(JSON.parse(JSON.stringify(resources)), JSON.parse(readFileSync(path, 'utf8')), `${name}/${file} differs from translation`);
    }

    const { validateResource: validate, encodeResource: encode } = await codecPromise;
    if (validate) {
      for (const [file, typeUrl] of Object.entries(TYPE_URLS)) {
        for (const resource of outputs[file] as EnvoyResource[]) {
          const fieldErrors = validate(typeUrl, resource.value);
          assert.deepEqual(fieldErrors, [], `${name}/${file} ${resource.name} rejected by the Envoy codec`);
        }
      }
    }

    if (encode && input.proxy.kind === 'proxyless-grpc') {
      for (const [file, typeUrl] of Object.entries(TYPE_URLS)) {
        if (file === 'extension_configs.json' || file === 'secrets.json') continue;
        assert.deepEqual(grpcXdsRejections(encode, typeUrl, outputs[file] as EnvoyResource[]), [], `${name}/${file} NACKed by grpc-js-xds`);
      }
    }

    // Proxyless gRPC clients never talk to the weft sidecar.
    const accept = await fidelityPromise;
    if (accept && input.proxy.kind === 'sidecar') {
      for (const [file, kind] of Object.entries(FIDELITY_KINDS)) {
        for (const resource of outputs[file] as EnvoyResource[]) {
          const verdict = accept(kind, resource.value);
          assert.deepEqual(verdict.ok ? [] : verdict.errors, [], `${name}/${file} ${resource.name} NACKed by the weft sidecar`);
        }
      }
    }
  });
}
