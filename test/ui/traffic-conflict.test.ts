// The traffic page applies a split as a conditional write (PUT with If-Match
// of the route as the page read it): when someone else changed the route in
// between (here a timeout added with the API), the apply is refused with the
// API's 412 shown on the page and their change survives. Before, the page
// sent its stale copy through /apply and silently undid the other change.
// Headless Chromium against the API alone (no mesh needed).
import { after, before, describe, it, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser, Page } from 'playwright-core';
import { startApi, type Harness } from '../api/harness.ts';
import { launch, skipReason } from './browser.ts';

const skip = skipReason();

if (skip) test('traffic page refuses to overwrite a route changed since it was read', { skip }, () => {});
else describe('traffic page against a route someone else changes meanwhile', () => {
  let h: Harness;
  let base: string;
  let browser: Browser;
  let page: Page;

  const route = (timeoutMs?: number) => ({
    service: 'orders',
    rules: [{ name: 'split', ...(timeoutMs ? { timeoutMs } : {}), destinations: [{ service: 'orders', subset: 'v1', weight: 90 }, { service: 'orders', subset: 'v2', weight: 10 }] }],
  });
  const stored = async () => (await h.call('GET', '/api/v1/routes/orders')).json;

  before(async () => {
    h = await startApi();
    assert.equal((await h.call('POST', '/api/v1/services', { name: 'orders', ports: [{ port: 8080, protocol: 'http' }] })).status, 201);
    assert.equal((await h.call('POST', '/api/v1/destination-policies', { name: 'orders', service: 'orders', subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2' } }] })).status, 201);
    assert.equal((await h.call('PUT', '/api/v1/routes/orders', route())).status, 201);
    base = await h.app.listen({ host: '127.0.0.1', port: 0 });
    browser = await launch();
    page = await browser.newPage();
    page.setDefaultTimeout(20_000);
    await page.goto(`${base}/ui/#/login`);
    await page.locator('#token').fill(h.admin);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.locator('#who-role').filter({ hasText: /^admin$/ }).waitFor({ state: 'visible' });
  });

  after(async () => {
    await browser?.close();
    await h?.close();
  });

  it('a route changed after the page read it: the apply is a 412 on the page and the other change stays', async () => {
    await page.goto(`${base}/ui/#/traffic/orders/default`);
    await page.locator('input[name="slider-0"]').waitFor();
    // another operator adds a timeout to the same rule while the page is open
    assert.equal((await h.call('PUT', '/api/v1/routes/orders', route(1500))).status, 200);
    const revision = h.store.revision();
    await page.locator('input[name="slider-0"]').fill('50');
    await page.locator('#apply').click();
    const status = page.locator('#apply-status .banner.error');
    await status.waitFor();
    assert.match((await status.textContent()) ?? '', /PRECONDITION_FAILED[\s\S]*has changed since it was read/);
    assert.match((await page.locator('#apply-status').textContent()) ?? '', /Reload the page/);
    assert.equal(h.store.revision(), revision, 'nothing stored');
    const now = await stored();
    assert.equal(now.rules[0].timeoutMs, 1500, 'the other operator\'s timeout survives');
    assert.deepEqual(now.rules[0].destinations.map((d: { weight: number }) => d.weight), [90, 10]);
  });

  it('after a reload the split applies, keeping the other change, and a second apply from the same page works too', async () => {
    await page.goto(`${base}/ui/#/traffic/orders/default`);
    await page.reload();
    await page.locator('input[name="slider-0"]').fill('50');
    await page.locator('#apply').click();
    await page.locator('#applied').waitFor();
    assert.match((await page.locator('#applied').textContent()) ?? '', new RegExp(`revision ${h.store.revision()}`));
    let now = await stored();
    assert.equal(now.rules[0].timeoutMs, 1500);
    assert.deepEqual(now.rules[0].destinations.map((d: { weight: number }) => d.weight), [50, 50]);
    // the page keeps the ETag its own write answered with
    const before = h.store.revision();
    await page.locator('input[name="slider-0"]').fill('20');
    await page.locator('#apply').click();
    await page.locator('#applied').filter({ hasText: new RegExp(`revision ${before + 1}`) }).waitFor().catch(async (e) => {
      throw new Error(`${(e as Error).message}; the page says: ${await page.locator('#apply-status').textContent()}`);
    });
    now = await stored();
    assert.deepEqual(now.rules[0].destinations.map((d: { weight: number }) => d.weight), [80, 20]);
  });
});
