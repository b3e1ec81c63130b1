// The traffic page with a weight that is not one: an emptied field, what the
// browser cannot parse ("-", "e": the field's value is then '' with
// validity.badInput), negative, fractional, too big. Each says so, disables
// Preview and Apply, and sends nothing. Before, the message showed but Apply
// stayed enabled and the page read '' as weight 0 (Number('') === 0): the
// canary silently got 0 %. Headless Chromium against the API alone.
import { after, before, describe, it, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser, Page } from 'playwright-core';
import { startApi, type Harness } from '../api/harness.ts';
import { launch, skipReason } from './browser.ts';

const skip = skipReason();

if (skip) test('traffic page refuses invalid weights', { skip }, () => {});
else describe('traffic page with a weight that is not a whole number 0 or more', () => {
  let h: Harness;
  let base: string;
  let browser: Browser;
  let page: Page;
  /** Every request the page made to change or preview a route. */
  const writes: string[] = [];

  const stored = async () => (await h.call('GET', '/api/v1/routes/orders')).json.rules[0].destinations.map((d: { weight: number }) => d.weight);

  before(async () => {
    h = await startApi();
    assert.equal((await h.call('POST', '/api/v1/services', { name: 'orders', ports: [{ port: 8080, protocol: 'http' }] })).status, 201);
    assert.equal((await h.call('POST', '/api/v1/destination-policies', { name: 'orders', service: 'orders', subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2' } }] })).status, 201);
    const route = { service: 'orders', rules: [{ name: 'split', destinations: [{ service: 'orders', subset: 'v1', weight: 90 }, { service: 'orders', subset: 'v2', weight: 10 }] }] };
    assert.equal((await h.call('PUT', '/api/v1/routes/orders', route)).status, 201);
    base = await h.app.listen({ host: '127.0.0.1', port: 0 });
    browser = await launch();
    page = await browser.newPage();
    page.setDefaultTimeout(20_000);
    page.on('request', (r) => {
      if (r.method() !== 'GET' && r.url().includes('/api/v1/')) writes.push(`${r.method()} ${r.url()} ${r.postData() ?? ''}`);
    });
    await page.goto(`${base}/ui/#/login`);
    await page.locator('#token').fill(h.admin);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.locator('#who-role').filter({ hasText: /^admin$/ }).waitFor({ state: 'visible' });
    await page.goto(`${base}/ui/#/traffic/orders/default`);
    await page.locator('input.weight').nth(1).waitFor();
  });

  after(async () => {
    await browser?.close();
    await h?.close();
  });

  const canary = () => page.locator('input.weight').nth(1);
  const expectRefused = async (what: string) => {
    await page.locator('.shares .banner.error').waitFor();
    assert.match((await page.locator('.shares .banner.error').textContent()) ?? '', /weights are whole numbers/, what);
    assert.equal(await page.locator('#preview').isDisabled(), true, `${what}: Preview disabled`);
    assert.equal(await page.locator('#apply').isDisabled(), true, `${what}: Apply disabled`);
    // clicked anyway (enabled behind the page's back), they send nothing either and say why
    for (const button of ['#preview', '#apply']) {
      await page.locator(button).evaluate((b: { disabled: boolean; click(): void }) => { b.disabled = false; b.click(); b.disabled = true; });
      assert.match((await page.locator('#apply-status').textContent()) ?? '', /Not sent: a weight is not a whole number/, `${what}: ${button} clicked`);
    }
  };

  it('an emptied weight field disables Preview and Apply; nothing is sent, the route keeps 90/10', async () => {
    const revision = h.store.revision();
    await canary().fill('');
    await expectRefused('empty');
    await page.waitForTimeout(300);
    assert.deepEqual(writes, [], 'no preview, no apply');
    assert.equal(h.store.revision(), revision);
    assert.deepEqual(await stored(), [90, 10]);
  });

  it('what the browser cannot parse ("-", "e"), negative, fractional and too big weights are refused alike', async () => {
    for (const typed of ['-', 'e', '1e']) {
      await canary().fill('');
      await canary().pressSequentially(typed);
      assert.equal(await canary().evaluate((el: { validity: { badInput: boolean } }) => el.validity.badInput), true, `"${typed}" is bad input`);
      await expectRefused(`typed "${typed}"`);
    }
    for (const typed of ['-5', '2.5', '1000001']) {
      await canary().fill(typed);
      await expectRefused(typed);
    }
    await page.waitForTimeout(300);
    assert.deepEqual(writes, []);
    assert.deepEqual(await stored(), [90, 10]);
  });

  it('a valid weight again enables both, and Apply stores exactly it', async () => {
    await canary().fill('30');
    await page.locator('.shares .banner.error').waitFor({ state: 'detached' });
    assert.equal(await page.locator('#preview').isDisabled(), false);
    assert.equal(await page.locator('#apply').isDisabled(), false);
    await page.locator('#preview').click();
    await page.locator('#diff-result').waitFor();
    await page.locator('#apply').click();
    await page.locator('#applied').waitFor();
    assert.deepEqual(await stored(), [90, 30]);
    assert.ok(writes.every((w) => !/"weight":0\b/.test(w)), `no weight 0 sent: ${writes.join('\n')}`);
  });
});
