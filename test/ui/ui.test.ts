// The web UI in real headless Chromium against a running demo mesh (control
// plane + weft sidecars + demo apps on ephemeral loopback ports): log in,
// the topology with traffic figures, a service page, shifting the orders
// canary 90/10 -> 50/50 and seeing the new split in a running sidecar's
// routes, a NACKing proxy with its message, rollback (confirmed) back to
// 90/10 in the sidecar, and a viewer whose controls are disabled and whom
// the API refuses anyway. Screenshots of each page go to docs/screenshots/.
import { after, before, describe, it, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser, Page } from 'playwright-core';
import { startTestMesh, type TestMesh } from './mesh.ts';
import { TypeUrl } from '../../control/envoy/type-urls.ts';
import { SotwClient, testNode } from '../xds/ads-client.ts';
import { eventually, launch, screenshot, skipReason, weightsInSidecar } from './browser.ts';

const V1 = 'outbound|8081|v1|orders.default';
const V2 = 'outbound|8081|v2|orders.default';
const NACK_MESSAGE = 'listeners[0].filter_chains[0]: demo rejection: this proxy refuses the listener (field path and all)';

async function apiCall(mesh: TestMesh, method: string, path: string, body?: unknown, token = mesh.token): Promise<any> {
  const res = await fetch(`${mesh.api}/api/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await res.json();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

async function traffic(mesh: TestMesh, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await (await fetch(`${mesh.ingress}/`)).text();
}

const skip = skipReason();

// Without chromium, one skipped test carries the reason (a skipped suite would not be counted).
if (skip) test('web UI in headless Chromium against a running mesh', { skip }, () => {});
else describe('web UI in headless Chromium against a running mesh', () => {
  let mesh: TestMesh;
  let browser: Browser;
  let page: Page;
  let viewerToken: string;
  let frontendAdmin: number;
  let revisionBeforeShift: number;
  let nacker: SotwClient | undefined;

  const open = async (hash: string) => {
    await page.goto(`${mesh.api}/ui/${hash}`);
  };
  /** Logs in and waits until the header shows `role` (after a logout the previous role may still be on screen for a moment). */
  const login = async (token: string, role: string) => {
    await open('#/login');
    await page.locator('#token').fill(token);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.locator('#who-role').filter({ hasText: new RegExp(`^${role}$`) }).waitFor({ state: 'visible' });
  };

  before(async () => {
    mesh = await startTestMesh();
    frontendAdmin = mesh.sidecars['frontend-v1']!.adminPort;
    viewerToken = (await apiCall(mesh, 'POST', '/tokens', { role: 'viewer', name: 'ui-viewer' })).token;
    browser = await launch();
    page = await browser.newPage({ viewport: { width: 1360, height: 860 } });
    page.setDefaultTimeout(20_000);
  });

  after(async () => {
    nacker?.close();
    await browser?.close();
    await mesh?.stop();
  });

  it('serves the UI without auth and refuses paths outside it', async () => {
    const index = await fetch(`${mesh.api}/ui/`);
    assert.equal(index.status, 200);
    assert.match(index.headers.get('content-type') ?? '', /text\/html/);
    const escape = await fetch(`${mesh.api}/ui/..%2F..%2Fpackage.json`);
    assert.equal(escape.status, 404);
  });

  it('logs in with the admin token; a bad token is refused with the API\'s message', async () => {
    await open('#/login');
    await page.locator('#token').fill('weft_not-a-real-token');
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.locator('.login .banner.error').filter({ hasText: 'UNAUTHENTICATED' }).waitFor();
    // Logged out, there is nothing to navigate to or log out of (the nav and Log out showed: CSS overrode `hidden`).
    assert.equal(await page.locator('#nav').isVisible(), false);
    assert.equal(await page.locator('#logout').isVisible(), false);
    await page.locator('#token').fill('');
    await screenshot(page, 'login');
    await login(mesh.token, 'admin');
    assert.equal(await page.locator('#who-role').textContent(), 'admin');
    assert.equal(await page.locator('#who-name').textContent(), 'admin');
  });

  it('topology: services, who calls whom, and per-service traffic from the sidecars\' stats', async () => {
    await traffic(mesh, 30);
    await open('#/topology');
    for (const s of ['frontend.default', 'orders.default', 'inventory.default']) await page.locator(`svg.topology [data-service="${s}"]`).waitFor();
    await page.locator('[data-edge="frontend.default>orders.default"]').waitFor({ state: 'attached' });
    await page.locator('[data-edge="orders.default>inventory.default"]').waitFor({ state: 'attached' });
    // Rates are over the interval between refreshes: keep traffic flowing until one shows it.
    const orders = await eventually(async () => {
      await traffic(mesh, 10);
      const cells = await page.locator('#topology-table tr[data-service="orders.default"] td').allTextContents();
      const [rps, p99] = [Number(cells[4]), cells[6] ?? ''];
      return rps > 0 ? { rps, p99 } : undefined;
    }, 'a non-zero request rate for orders');
    // a window with requests has a p99
    assert.match(orders.p99, /^\d+(\.\d+)? ms$/);
    await page.locator('[data-edge="frontend.default>orders.default"].observed').waitFor({ state: 'attached' });
    await screenshot(page, 'topology');
  });

  it('service page: instances with address, labels and health; routes; policy; authorization (dry run marked); bound filters', async () => {
    // A dry-run DENY: evaluated and counted by orders' proxies, never enforced; the page says which it is.
    await apiCall(mesh, 'POST', '/authorization-policies', { name: 'no-debug', service: 'orders', action: 'DENY', dryRun: true, rules: [{ paths: ['/debug*'] }] });
    await open('#/services/orders/default');
    const rows = page.locator('#instances-table tbody tr');
    await rows.first().waitFor();
    assert.equal(await rows.count(), 2);
    const text = await page.locator('#instances-table').textContent();
    assert.match(text ?? '', /version=v1/);
    assert.match(text ?? '', /version=v2/);
    assert.match(text ?? '', /127\.0\.0\.1:\d+/);
    assert.match((await page.locator('main').textContent()) ?? '', /Destination policy \(1\)/);
    await page.locator('#authz-table').waitFor();
    assert.match((await page.locator('main').textContent()) ?? '', /Authorization \(1\)/);
    assert.match((await page.locator('#authz-table tbody tr').first().textContent()) ?? '', /^no-debugDENY1dry run$/);
    assert.match((await page.locator('#instances-table td.heartbeat').first().textContent()) ?? '', /\d+s ago/);
    const main = (await page.locator('main').textContent()) ?? '';
    if (mesh.telemetry) assert.match(main, /Bound filters \(1\).*orders-telemetry.*telemetry.*inbound/s);
    else assert.match(main, /Bound filters \(0\)/);
    await screenshot(page, 'service');
  });

  it('shifts the canary from 90/10 to 50/50: diff first, then a new revision the frontend sidecar routes by', async () => {
    assert.deepEqual(await weightsInSidecar(frontendAdmin, [V1, V2]), { [V1]: 90, [V2]: 10 });
    revisionBeforeShift = (await apiCall(mesh, 'GET', '/revisions')).current;
    await open('#/traffic/orders/default');
    // Nothing to apply until a weight differs from the route's
    await page.locator('#apply').waitFor();
    assert.equal(await page.locator('#apply').isDisabled(), true);
    assert.match((await page.locator('#apply').getAttribute('title')) ?? '', /nothing to apply/);
    // A weight the API would refuse is said so, not shown as a share ("v1 -100% · v2 200%").
    await page.locator('input[name="weight-1-0"]').fill('-5');
    assert.match((await page.locator('.split[data-rule="1"] .shares').textContent()) ?? '', /^weights are whole numbers, 0 to 1000000: fix weight of v1 to preview or apply$/);
    assert.equal(await page.locator('#preview').isDisabled(), true, 'nothing to preview while a weight is invalid');
    assert.equal(await page.locator('#apply').isDisabled(), true, 'nothing to apply while a weight is invalid');
    const slider = page.locator('input[name="slider-1"]');
    await slider.fill('50');
    assert.equal(await page.locator('input[name="weight-1-0"]').inputValue(), '50');
    assert.equal(await page.locator('input[name="weight-1-1"]').inputValue(), '50');
    await page.locator('#preview').click();
    const diff = page.locator('#diff-result');
    await diff.waitFor();
    assert.match((await diff.textContent()) ?? '', /route\/orders \(configured\)/i);
    // the frontend's own sidecar is among the proxies whose routes change
    const frontendDiff = diff.locator('.proxy-diff').filter({ hasText: 'frontend' }).first();
    await frontendDiff.waitFor();
    assert.ok((await frontendDiff.locator('pre.diff .del').count()) > 0, 'the diff shows removed lines');
    assert.ok((await frontendDiff.locator('pre.diff .add').count()) > 0, 'the diff shows added lines');
    await page.locator('#apply').click();
    await page.locator('#applied').waitFor();
    assert.match((await page.locator('#applied').textContent()) ?? '', new RegExp(`revision ${revisionBeforeShift + 1}`));
    // applied, the split on the page is the route's again: nothing more to apply
    assert.equal(await page.locator('#apply').isDisabled(), true);
    // the affected proxies converge, visibly
    await page.locator('#converge h3').filter({ hasText: /(\d+) of \1 affected proxies converged/ }).waitFor({ timeout: 30_000 });
    const reached = await page.locator('#converge li').allTextContents();
    assert.ok(reached.some((t) => t.includes('frontend')), `the frontend sidecar is among the affected proxies: ${reached.join(' | ')}`);
    assert.ok(reached.every((t) => t.startsWith('converged')), reached.join(' | '));
    const weights = await eventually(async () => {
      const w = await weightsInSidecar(frontendAdmin, [V1, V2]);
      return w && w[V1] === 50 ? w : undefined;
    }, 'the frontend sidecar to route 50/50');
    assert.deepEqual(weights, { [V1]: 50, [V2]: 50 });
    await screenshot(page, 'traffic');
  });

  it('shows a proxy that NACKed its configuration, with the full message and the revision', async () => {
    nacker = new SotwClient(mesh.xdsPort, testNode('nack-demo-proxy', 'inventory', { WEFT_KIND: 'sidecar' }));
    nacker.request(TypeUrl.Listener);
    const reply = await nacker.next(20_000);
    nacker.nack(reply, NACK_MESSAGE);
    await open('#/proxies');
    const row = page.locator('#proxies-table tr[data-proxy="nack-demo-proxy"]');
    await row.locator('.badge', { hasText: 'NACKED' }).waitFor();
    const nack = page.locator('.nack-row .nack').first();
    await nack.waitFor();
    assert.equal(await nack.locator('pre.nack-message').textContent(), NACK_MESSAGE);
    // the revision whose push was rejected, as the xDS server recorded it (not inferred from times)
    const current = (await apiCall(mesh, 'GET', '/revisions')).current;
    assert.match((await nack.textContent()) ?? '', new RegExp(`NACK of listeners · revision ${current}`));
    assert.doesNotMatch((await nack.textContent()) ?? '', /in force when/);
    // the NACKed proxy is also counted in the header on every page
    assert.match((await page.locator('#pending').textContent()) ?? '', /1 NACKed/);
    await screenshot(page, 'proxies');
    // a proxy's current resources as JSON
    const frontendProxy = (await apiCall(mesh, 'GET', '/proxies')).items.find((p: { service: string }) => p.service === 'frontend').id as string;
    await open(`#/proxies/${encodeURIComponent(frontendProxy)}`);
    await page.locator('#proxy-config details.json').first().waitFor();
    assert.match((await page.locator('#proxy-config').textContent()) ?? '', /weighted_clusters/);
    // and whether the sidecar runs exactly that: read from its own config dump
    await page.locator('#proxy-sync .badge', { hasText: 'IN SYNC' }).waitFor();
    for (const type of ['listeners', 'routes', 'clusters', 'endpoints']) {
      assert.equal(await page.locator(`#proxy-sync tr[data-type="${type}"] .badge`).textContent(), 'SYNCED', type);
    }
    assert.match((await page.locator('#proxy-sync').textContent()) ?? '', new RegExp(`read from http://127\\.0\\.0\\.1:${frontendAdmin}/config_dump`));
    // its live requests: watch, send traffic through the ingress (the frontend's inbound), see them, stop
    await page.locator('#tap-toggle').click();
    await page.locator('#proxy-tap .muted', { hasText: 'watching' }).waitFor();
    const seen = await eventually(async () => {
      await traffic(mesh, 3);
      const n = await page.locator('#proxy-tap tbody tr').count();
      return n >= 3 ? n : undefined;
    }, 'three requests in the live table');
    assert.ok(seen >= 3);
    const newest = page.locator('#proxy-tap tbody tr').first();
    assert.equal(await newest.getAttribute('data-status'), '200');
    assert.match((await newest.textContent()) ?? '', /inbound.*GET.*\/.*200/);
    await screenshot(page, 'proxy-config');
    await page.locator('#tap-toggle').click();
    await page.locator('#proxy-tap .muted', { hasText: 'stopped' }).waitFor();
    // a proxy with no admin port to read says so
    await open('#/proxies/nack-demo-proxy');
    await page.locator('#proxy-sync .banner.error').waitFor();
    assert.match((await page.locator('#proxy-sync').textContent()) ?? '', /PROXY_UNREACHABLE .*declared no admin port/);
  });

  it('rolls back after confirmation: a new revision, and the sidecar routes 90/10 again', async () => {
    await open('#/history');
    const current = revisionBeforeShift + 1;
    await page.locator(`#history-table tr[data-revision="${current}"]`).waitFor();
    // the weight shift changed a route that existed: an update, not a creation
    assert.deepEqual(await page.locator(`#history-table tr[data-revision="${current}"] .tag`).allTextContents(), ['~Route/orders']);
    assert.equal(await page.locator(`#history-table tr[data-revision="${current}"] .tag`).getAttribute('title'), 'Route default/orders updated');
    // diff between the two revisions shows the weight change
    await page.locator('#diff-from').selectOption(String(revisionBeforeShift));
    await page.locator('#diff-to').selectOption(String(current));
    await page.locator('#diff-run').click();
    const objectDiff = page.locator('#revision-diff .object-diff[data-object="Route/default/orders"]');
    await objectDiff.waitFor();
    assert.match((await objectDiff.locator('.add').allTextContents()).join('\n'), /"weight": 50/);
    await page.locator(`#history-table tr[data-revision="${revisionBeforeShift}"] button.rollback`).click();
    await page.locator('#rollback-confirm [role="dialog"]').waitFor();
    // nothing happened yet: the confirmation is only a question
    assert.equal((await apiCall(mesh, 'GET', '/revisions')).current, current);
    await screenshot(page, 'history');
    await page.locator('#rollback-yes').click();
    await page.locator('#rollback-done').waitFor();
    assert.match((await page.locator('#rollback-done').textContent()) ?? '', new RegExp(`as revision ${current + 1}`));
    const weights = await eventually(async () => {
      const w = await weightsInSidecar(frontendAdmin, [V1, V2]);
      return w && w[V1] === 90 ? w : undefined;
    }, 'the frontend sidecar to route 90/10 again');
    assert.deepEqual(weights, { [V1]: 90, [V2]: 10 });
    const last = (await apiCall(mesh, 'GET', '/revisions')).items[0];
    assert.equal(last.summary, `rollback to revision ${revisionBeforeShift}`);
    assert.equal(last.actor, 'token:admin');
  });

  it('a viewer sees everything but every control is disabled, and the API refuses the write anyway', async () => {
    await page.locator('#logout').click();
    await login(viewerToken, 'viewer');
    assert.equal(await page.locator('#who-role').textContent(), 'viewer');
    await open('#/traffic/orders/default');
    await page.locator('#apply').waitFor();
    assert.equal(await page.locator('#apply').isDisabled(), true);
    assert.match((await page.locator('#apply').getAttribute('title')) ?? '', /role viewer/);
    // viewers may still preview (a dry run changes nothing)
    await page.locator('input[name="slider-1"]').fill('30');
    await page.locator('#preview').click();
    await page.locator('#diff-result').waitFor();
    await screenshot(page, 'viewer');
    await open('#/history');
    await page.locator('#history-table button.rollback').first().waitFor();
    const buttons = page.locator('#history-table button.rollback');
    for (let i = 0; i < (await buttons.count()); i++) assert.equal(await buttons.nth(i).isDisabled(), true);
    // a proxy's live requests (paths and headers) are for admins
    const anyProxy = (await apiCall(mesh, 'GET', '/proxies')).items.find((p: { service: string }) => p.service === 'frontend').id as string;
    await open(`#/proxies/${encodeURIComponent(anyProxy)}`);
    await page.locator('#tap-toggle').waitFor();
    assert.equal(await page.locator('#tap-toggle').isDisabled(), true);
    assert.match((await page.locator('#tap-toggle').getAttribute('title')) ?? '', /admin only: .* has role viewer/);
    // the same write from this page with the viewer's token: 403 with the API's message
    const refused = await page.evaluate(async (token) => {
      const res = await fetch(`/api/v1/revisions/1/rollback`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
      return { status: res.status, body: (await res.json()) as { error: { code: string } } };
    }, viewerToken);
    assert.equal(refused.status, 403);
    assert.equal(refused.body.error.code, 'FORBIDDEN');
    assert.equal(await weightsInSidecar(frontendAdmin, [V1, V2]).then((w) => w?.[V1]), 90);
  });
});
