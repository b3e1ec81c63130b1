// Browser-test kit: Debian's chromium driven by playwright-core, screenshots
// into docs/screenshots, and a probe of the routes a weft sidecar holds.
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';

/** Debian's chromium; WEFT_CHROMIUM points elsewhere (another build, or a missing path to see the skip). */
export const CHROMIUM = process.env.WEFT_CHROMIUM ?? '/usr/bin/chromium';
export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const SCREENSHOTS = join(ROOT, 'docs', 'screenshots');

/** Why browser tests cannot run here, or undefined when they can. */
export function skipReason(): string | undefined {
  return existsSync(CHROMIUM) ? undefined : `${CHROMIUM} is absent (apt-get install chromium; .ci/run installs it)`;
}

export function launch(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 60_000,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

export async function screenshot(page: Page, name: string): Promise<void> {
  await mkdir(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

/**
 * The weights of the weighted_clusters entry in a weft sidecar's
 * /config_dump that splits between `clusters` (the canary split), as
 * {cluster name: weight}; undefined when no route splits between them.
 */
export async function weightsInSidecar(adminPort: number, clusters: string[]): Promise<Record<string, number> | undefined> {
  const dump: unknown = await (await fetch(`http://127.0.0.1:${adminPort}/config_dump`)).json();
  let found: Record<string, number> | undefined;
  const walk = (v: unknown): void => {
    if (found || v === null || typeof v !== 'object') return;
    if (Array.isArray(v)) return v.forEach(walk);
    const o = v as Record<string, unknown>;
    const wc = o.weighted_clusters as { clusters?: { name: string; weight?: number | { value: number } }[] } | undefined;
    if (wc?.clusters && clusters.every((c) => wc.clusters!.some((x) => x.name === c))) {
      found = Object.fromEntries(wc.clusters.map((x) => [x.name, typeof x.weight === 'object' ? x.weight.value : (x.weight ?? 0)]));
      return;
    }
    Object.values(o).forEach(walk);
  };
  walk(dump);
  return found;
}

/** Polls until `probe` returns a value; a bound on the test, not a speed assertion. */
export async function eventually<T>(probe: () => Promise<T | undefined>, what: string, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
