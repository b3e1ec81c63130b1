// A token revoked while the UI is open with it: the next API call answered
// 401 (the page's poll, or the page a click goes to) ends the session and
// shows the login page saying the token was refused. Before, the header kept
// the operator (whoami was cached), every page said "UNAUTHENTICATED unknown
// or revoked token", and only a reload reached the login page.
// Headless Chromium against the API alone.
import { after, before, describe, it, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser, Page } from 'playwright-core';
import { startApi, type Harness } from '../api/harness.ts';
import { launch, skipReason } from './browser.ts';

const skip = skipReason();

if (skip) test('a revoked token ends the UI session', { skip }, () => {});
else describe('UI session whose token is revoked meanwhile', () => {
  let h: Harness;
  let base: string;
  let browser: Browser;
  let page: Page;

  const create = async (name: string, role: string): Promise<string> => {
    const res = await h.call('POST', '/api/v1/tokens', { name, role });
    assert.equal(res.status, 201);
    return res.json.token;
  };
  const revoke = async (name: string) => assert.equal((await h.call('DELETE', `/api/v1/tokens/${name}`)).status, 200);
  const login = async (token: string, role: string) => {
    await page.goto(`${base}/ui/#/login`);
    await page.locator('#token').fill(token);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.locator('#who-role').filter({ hasText: new RegExp(`^${role}$`) }).waitFor({ state: 'visible' });
  };
  /** The login page, saying why, with no operator in the header and no token kept. */
  const loggedOut = async (why: RegExp) => {
    await page.locator('#token').waitFor({ timeout: 8000 }).catch(async () => {
      assert.fail(`not on the login page; the header says "${await page.locator('#who').textContent()}", the page: ${await page.locator('body').textContent()}`);
    });
    const notice = page.locator('#session-ended');
    assert.equal(await notice.count(), 1, 'the login page says why');
    assert.match((await notice.textContent()) ?? '', why);
    assert.equal(await page.locator('#who').isHidden(), true, 'no operator in the header');
    assert.equal(await page.locator('#nav').isHidden(), true, 'no nav');
    assert.equal(await page.locator('#global-error').isHidden(), true, 'no UNAUTHENTICATED banner');
    assert.equal(await page.evaluate('sessionStorage.getItem("weft.token")'), null, 'the token is forgotten');
  };

  before(async () => {
    h = await startApi();
    base = await h.app.listen({ host: '127.0.0.1', port: 0 });
    browser = await launch();
    page = await browser.newPage();
    page.setDefaultTimeout(20_000);
  });

  after(async () => {
    await browser?.close();
    await h?.close();
  });

  it('revoked while a page polls: the next refresh shows the login page saying the token was refused', async () => {
    await login(await create('carol', 'viewer'), 'viewer');
    await page.goto(`${base}/ui/#/proxies`);
    await page.locator('#view h1').waitFor();
    await revoke('carol');
    await loggedOut(/refused your token \(revoked, or unknown to it\)[\s\S]*UNAUTHENTICATED/);
    // the notice is said once: a later visit to the login page is a plain one
    await page.goto(`${base}/ui/#/topology`);
    await page.locator('#token').waitFor();
    assert.equal(await page.locator('#session-ended').count(), 0);
  });

  it('revoked, then a click to another page: that page\'s first call ends the session', async () => {
    // the page's timers held (a fake clock, paused), so it is the click, not the 2-second poll, that finds out
    await page.close();
    page = await browser.newPage();
    page.setDefaultTimeout(20_000);
    await page.clock.install();
    await login(await create('dave', 'admin'), 'admin');
    await page.goto(`${base}/ui/#/history`);
    await page.locator('#view h1').waitFor();
    await page.clock.pauseAt((await page.evaluate('Date.now()') as number) + 1);
    await revoke('dave');
    await page.locator('#nav a[data-page="traffic"]').click();
    await loggedOut(/refused your token \(revoked, or unknown to it\)/);
    await page.clock.resume();
    // and another token logs in as usual
    await login(h.admin, 'admin');
    assert.equal(await page.locator('#session-ended').count(), 0);
    assert.equal(await page.locator('#global-error').isHidden(), true);
  });

  it('a session holding what cannot be a token ends on the login page too, not as a network error', async () => {
    await page.goto(`${base}/ui/#/topology`);
    await page.evaluate('sessionStorage.setItem("weft.token", "weft_\u2019x")');
    await page.reload();
    await loggedOut(/not a token[\s\S]*INVALID_TOKEN/);
  });
});
