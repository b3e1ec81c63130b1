// The real `weft` binary against a running `weft control` (ephemeral ports):
// apply, idempotent re-apply, get, diff, history, rollback — and a connected
// proxy's configuration really returning to the earlier revision's resources.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { api, eventually, ROOT, startControl, weft, type ControlProcess } from './control-process.ts';
import { SotwProxy } from './sotw-proxy.ts';

const manifest = (name: string) => join(ROOT, 'examples', 'manifests', name);

// One control plane for the steps below, which run in order and build on
// each other (each step is its own test so each has its own time bound).
describe('weft apply / get / diff / history / rollback against a running control plane', () => {
  let dir: string;
  let control: ControlProcess;
  let proxy: SotwProxy | undefined;
  let base = 0;
  /** Revision numbers relative to the first start (which may have recorded the built-in filters). */
  const r = (n: number) => base + n;
  let routesBefore: { name: string; value: unknown }[] = [];
  let registered = 0;
  const routesOf = async () => (await api(control, 'GET', '/api/v1/proxies/frontend-cli-1/config?type=routes')).routes as { name: string; value: unknown }[];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'weft-cli-'));
    control = await startControl(dir);
    base = (await api(control, 'GET', '/api/v1/revisions')).current as number;
  });
  after(async () => {
    proxy?.close();
    await control?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('apply, and apply again without a new revision', async () => {
    // apply, then the same file again: no new revision
    const applied = await weft(control, ['apply', '-f', manifest('services.yaml')]);
    assert.equal(applied.code, 0, applied.stderr);
    assert.match(applied.stdout, /service\/orders created/);
    assert.match(applied.stdout, new RegExp(`^revision ${r(1)}$`, 'm'));
    const again = await weft(control, ['apply', '-f', manifest('services.yaml')]);
    assert.equal(again.code, 0);
    assert.match(again.stdout, new RegExp(`no changes \\(revision ${r(1)}\\)`));
    assert.equal((await api(control, 'GET', '/api/v1/revisions')).current, r(1));

    // instances so the proxy's clusters have endpoints
    for (const [version, port] of [['v1', 9101], ['v2', 9102]] as const) {
      await api(control, 'POST', '/api/v1/services/orders/instances', { address: '127.0.0.1', port, labels: { version } });
    }

    // registrations are revisions too (actor "registry")
    registered = (await api(control, 'GET', '/api/v1/revisions')).current as number;
    assert.equal(registered, r(3));

  });

  it('a connected proxy shows in proxy-status; diff shows its route change; apply reaches it', async () => {
    // a frontend sidecar connects and ACKs everything
    proxy = new SotwProxy(control.xdsPort, 'frontend-cli-1', 'frontend');
    routesBefore = await eventually(async () => {
      const r = await routesOf().catch(() => undefined);
      return r && r.length > 0 ? r : undefined;
    }, 'the proxy to ACK its routes');
    const status = await weft(control, ['proxy-status']);
    assert.equal(status.code, 0);
    assert.match(status.stdout, /frontend-cli-1\s+frontend\.default\s+sidecar\s+sotw\s+(SYNCED|STALE)/);
    // one version column per type the control plane serves, the wasm filters' ECDS included (as istioctl's)
    assert.match(status.stdout, /^ID\s+SERVICE\s+KIND\s+STREAM\s+STATUS\s+CDS\s+EDS\s+LDS\s+RDS\s+ECDS$/m);

    // diff before applying the canary: the frontend proxy's outbound route changes
    const diff = await weft(control, ['diff', '-f', manifest('canary.yaml')]);
    assert.equal(diff.code, 0, diff.stderr);
    assert.match(diff.stdout, /^route\/orders would be created$/m);
    assert.match(diff.stdout, /proxy frontend-cli-1 \(service frontend\.default\)\n  ~ routes\/outbound changed/);
    assert.match(diff.stdout, /\+\s+"name": "outbound\|8081\|v2\|orders\.default",\n\s+\+\s+"weight": 10/);
    assert.equal((await api(control, 'GET', '/api/v1/revisions')).current, registered, 'diff stores nothing');

    // Valid configuration that will still hurt is warned of on stderr, naming the file's field; the diff goes on.
    await writeFile(join(dir, 'retry-post.yaml'), 'apiVersion: weft.dev/v1\nkind: Route\nmetadata: {name: orders}\nspec:\n  service: orders\n  rules: [{match: [{method: POST}], retries: {attempts: 2, retryOn: [5xx]}, destinations: [{service: orders}]}]\n');
    const warned = await weft(control, ['diff', '-f', join(dir, 'retry-post.yaml')]);
    assert.equal(warned.code, 0, warned.stderr);
    assert.match(warned.stderr, /^warning: documents\[0\]\.spec\.rules\[0\]\.retries\.retryOn: retries POST requests on 5xx: /m);

    const canary = await weft(control, ['apply', '-f', manifest('canary.yaml')]);
    assert.equal(canary.code, 0, canary.stderr);
    assert.equal(canary.stderr, '', 'both subsets have instances: nothing to warn of');
    assert.match(canary.stdout, new RegExp(`^revision ${r(4)}$`, 'm'));
    const during = await eventually(async () => {
      const r = await routesOf();
      return JSON.stringify(r).includes('weighted_clusters') ? r : undefined;
    }, 'the canary route to reach the proxy');
    assert.notDeepEqual(during, routesBefore);

  });

  it('get in every format; what get -o yaml prints applies back unchanged', async () => {
    // get in every format
    const table = await weft(control, ['get', 'routes']);
    assert.match(table.stdout, /NAMESPACE\s+NAME\s+SERVICE\s+RULES\ndefault\s+orders\s+orders\s+2/);
    const yaml = await weft(control, ['get', 'route', 'orders', '-o', 'yaml']);
    const doc = parseAllDocuments(yaml.stdout)[0]!.toJS();
    assert.deepEqual([doc.apiVersion, doc.kind, doc.metadata.name], ['weft.dev/v1', 'Route', 'orders']);
    const instances = await weft(control, ['get', 'instances', 'orders']);
    assert.match(instances.stdout, /^ID\s+SERVICE\s+ADDRESS\s+HEALTH\s+LIVE\s+ZONE\s+LABELS$/m);
    assert.match(instances.stdout, /^orders-\S+\s+orders\s+127\.0\.0\.1:9102\s+healthy\s+yes\s+-\s+version=v2$/m);
    const json = await weft(control, ['get', 'services', '-o', 'json']);
    assert.deepEqual(JSON.parse(json.stdout).map((m: { metadata: { name: string } }) => m.metadata.name), ['frontend', 'inventory', 'orders', 'payments']);
    // what `get -o yaml` prints applies back unchanged
    await writeFile(join(dir, 'roundtrip.yaml'), yaml.stdout);
    assert.match((await weft(control, ['apply', '-f', join(dir, 'roundtrip.yaml')])).stdout, new RegExp(`no changes \\(revision ${r(4)}\\)`));
    const cfg = await weft(control, ['proxy-config', 'frontend-cli-1', 'clusters']);
    assert.equal(cfg.code, 0);
    assert.ok(JSON.parse(cfg.stdout).clusters.some((c: { name: string }) => c.name === 'outbound|8081|v2|orders.default'));

  });

  it("history; rollback returns the proxy's routes to the earlier revision's", async () => {
    // history, then rollback to revision 1: the proxy's routes return to what they were
    const history = await weft(control, ['history']);
    assert.match(history.stdout, new RegExp(`^${r(4)}\\s+\\S+\\s+token:admin\\s+1\\s+apply route/orders$`, 'm'));
    assert.match(history.stdout, new RegExp(`^${r(3)}\\s+\\S+\\s+registry\\s+1\\s+register instance orders-`, 'm'));
    assert.match(history.stdout, new RegExp(`^${r(1)}\\s+\\S+\\s+token:admin\\s+5\\s+apply service/frontend`, 'm'));
    const rollback = await weft(control, ['rollback', String(r(1))]);
    assert.equal(rollback.code, 0, rollback.stderr);
    assert.match(rollback.stdout, new RegExp(`route/orders deleted\\nrolled back to revision ${r(1)}: now revision ${r(5)}`));
    const after = await eventually(async () => {
      const r = await routesOf();
      return JSON.stringify(r) === JSON.stringify(routesBefore) ? r : undefined;
    }, "the proxy's routes to return to revision 1's");
    assert.deepEqual(after, routesBefore);
    assert.equal((await weft(control, ['get', 'routes'])).stdout.trim(), 'no routes found');
  });
});
