// Logging in with a pasted token: what a paste adds (spaces, a line break, a
// zero-width space) is dropped, and a token holding characters no token has
// (a smart quote, an accented letter) is refused on the login page as not a
// valid token. Before, both reached fetch(), which cannot put a character
// outside Latin-1 in a header and throws a TypeError, and the page said
// "NETWORK cannot reach the control plane" with the control plane up.
// Headless Chromium against the API alone.
import { after, before, describe, it, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser, Page } from 'playwright-core';
import { startApi, type Harness } from '../api/harness.ts';
import { launch, skipReason } from './browser.ts';

const skip = skipReason();

if (skip) test('login cleans a pasted token and refuses one that cannot be a token', { skip }, () => {});
else describe('login with a pasted token holding characters a token never has', () => {
  let h: Harness;
  let base: string;
  let browser: Browser;
  let page: Page;
  /** The /whoami requests the page made. */
  let whoami = 0;

  before(async () => {
    h = await startApi();
    base = await h.app.listen({ host: '127.0.0.1', port: 0 });
    browser = await launch();
  });

  after(async () => {
    await browser?.close();
    await h?.close();
  });

  const fresh = async () => {
    await page?.close();
    page = await browser.newPage();
    page.setDefaultTimeout(20_000);
    whoami = 0;
    page.on('request', (r) => { if (r.url().includes('/api/v1/whoami')) whoami++; });
    await page.goto(`${base}/ui/#/login`);
    await page.locator('#token').waitFor();
  };
  const submit = async (typed: string) => {
    await page.locator('#token').fill(typed);
    await page.getByRole('button', { name: 'Log in' }).click();
  };

  it('spaces, a line break and zero-width characters a paste added are dropped, and the token logs in', async () => {
    for (const pasted of [`\u200b${h.admin}\u200b`, `  ${h.admin.slice(0, 10)}\u200b${h.admin.slice(10)}\u00a0\t`, `\ufeff${h.admin}\u2060 `]) {
      await fresh();
      await submit(pasted);
      await page.locator('#who:not([hidden]), form.login .status .banner.error').first().waitFor();
      assert.equal(await page.locator('form.login .status .banner.error').count(), 0, `${JSON.stringify(pasted)}: ${await page.locator('#view').textContent()}`);
      await page.locator('#who-role').filter({ hasText: /^admin$/ }).waitFor({ state: 'visible' });
      assert.equal(await page.evaluate('sessionStorage.getItem("weft.token")'), h.admin, 'the clean token is kept');
    }
  });

  it('a smart quote or an accented letter: "not a valid token", nothing sent, not a network error', async () => {
    for (const typed of [`${h.admin}\u2019`, 'w\u00e9ft', 'we\u0301ft', `\u201c${h.admin}\u201d`]) {
      await fresh();
      await submit(typed);
      const status = page.locator('form.login .status .banner.error');
      await status.waitFor();
      const text = (await status.textContent()) ?? '';
      assert.match(text, /not a valid token \(it holds characters a token never has\)/, `${JSON.stringify(typed)}: ${text}`);
      assert.doesNotMatch(text, /NETWORK|cannot reach/);
      assert.equal(whoami, 0, 'nothing sent');
      assert.equal(await page.locator('#nav').isHidden(), true, 'still logged out');
    }
  });

  it('api.js calls a request the browser cannot build what it is, not a network error', async () => {
    await fresh();
    // a string, not a function: tsx would wrap a function's inner closures in a helper the page lacks
    const errors: string[] = await page.evaluate(`(async () => {
      const { api, apiResponse } = await import('/ui/js/api.js');
      const outcome = (p) => p.then(() => 'resolved', (e) => e.code + ': ' + e.message);
      return [
        await outcome(api('GET', '/whoami', undefined, 'weft_\u2019abc')),
        await outcome(apiResponse('GET', '/whoami', undefined, { 'if-match': '\u2019' }, 'weft_abc')),
      ];
    })()`);
    assert.match(errors[0]!, /^INVALID_TOKEN: not a valid token/);
    assert.match(errors[1]!, /^BAD_REQUEST: GET \/whoami: the browser cannot send this request/);
    for (const e of errors) assert.doesNotMatch(e, /NETWORK/);
  });
});
