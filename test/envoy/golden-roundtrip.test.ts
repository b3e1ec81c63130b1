// Every resource the translator's golden files hold (test/golden/<case>/*.json) must
// validate, encode, and decode back to the same JSON: the widest realistic corpus
// the codec can be checked against.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { decodeResource, encodeResource, formatErrors, TypeUrl } from '../../control/envoy/index.ts';

const goldenDir = fileURLToPath(new URL('../golden', import.meta.url));
const FILES: Record<string, string> = {
  'listeners.json': TypeUrl.Listener,
  'routes.json': TypeUrl.RouteConfiguration,
  'clusters.json': TypeUrl.Cluster,
  'endpoints.json': TypeUrl.ClusterLoadAssignment,
  'extension_configs.json': TypeUrl.ExtensionConfig,
  'secrets.json': TypeUrl.Secret,
};

// proto3 has no empty repeated field on the wire: [] decodes as absent.
const canonical = (x: unknown): unknown => JSON.parse(JSON.stringify(x, (_k, v: unknown) => (Array.isArray(v) && v.length === 0 ? undefined : v)));

function goldenResources(): Array<{ where: string; typeUrl: string; json: unknown }> {
  if (!existsSync(goldenDir)) return [];
  const out: Array<{ where: string; typeUrl: string; json: unknown }> = [];
  for (const c of readdirSync(goldenDir)) {
    for (const [file, typeUrl] of Object.entries(FILES)) {
      const path = join(goldenDir, c, file);
      if (!existsSync(path)) continue;
      const items = JSON.parse(readFileSync(path, 'utf8')) as unknown[];
      items.forEach((item, i) => {
        // Golden files hold {name, value} entries, as the snapshot cache does.
        const json = typeof item === 'object' && item !== null && 'value' in item ? (item as { value: unknown }).value : item;
        out.push({ where: `${c}/${file}[${i}]`, typeUrl, json });
      });
    }
  }
  return out;
}

it('round-trips every golden resource: encode then decode gives the same JSON', (t) => {
  const resources = goldenResources();
  if (resources.length === 0) {
    t.skip('no golden files in test/golden yet');
    return;
  }
  for (const { where, typeUrl, json } of resources) {
    const encoded = encodeResource(typeUrl, json);
    if ('errors' in encoded) assert.fail(formatErrors(where, encoded.errors));
    assert.deepEqual(canonical(decodeResource(typeUrl, encoded.bytes)), canonical(json), where);
  }
});
