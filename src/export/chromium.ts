/**
 * Headless Chromium (Debian's, driven by playwright-core), for tests and benchmarks: they open the standalone HTML
 * and call the views there. `renderImage` gives the page's own toPNG()/toSVG(), which the tests and the image
 * benchmark compare with Node's browserless export (image.ts). No export needs it: images are drawn in Node.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { AttnvizError } from '../core/errors.js';

/** Flags that keep Chromium off the network: a closed network refuses its background connections. */
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Where Chromium is looked for: CHROMIUM_PATH, else Debian's. */
export const chromiumLocation = (env: NodeJS.ProcessEnv = process.env) => env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export function chromiumPath(env: NodeJS.ProcessEnv = process.env): string {
  const path = chromiumLocation(env);
  if (!existsSync(path))
    throw new AttnvizError(
      `Chromium (for tests and benchmarks) not found at ${path} (install Debian's chromium or set CHROMIUM_PATH)`,
    );
  return path;
}

/** Headless Chromium (playwright-core, loaded on first use) with the flags above and `extraArgs`. */
export async function launchChromium(extraArgs: readonly string[] = []): Promise<Browser> {
  const { chromium } = await import('playwright-core');
  return chromium.launch({ executablePath: chromiumPath(), headless: true, args: [...CHROMIUM_ARGS, ...extraArgs] });
}

/** Renders `html` (from renderHtml) and returns the view as PNG bytes or SVG text. */
export function renderImage(
  html: string,
  format: 'png' | 'svg',
  viewport = { width: 1200, height: 900 },
): Promise<Uint8Array | string> {
  return withPage(html, viewport, '.attnviz', async (page) => {
    // A large model view paints pooled thumbnails first (views/split-page.ts): the image shows the full data.
    await page.waitForFunction(() => !document.querySelector('[data-attnviz-full="loading"]'), undefined, {
      timeout: 120_000,
    });
    type Handle = { toSVG(): string; toPNG(): Promise<Blob> };
    if (format === 'svg')
      return await page.$eval('.attnviz', (e) => (e as unknown as { attnvizView: Handle }).attnvizView.toSVG());
    const base64 = await page.$eval('.attnviz', async (e) => {
      const blob = await (e as unknown as { attnvizView: Handle }).attnvizView.toPNG();
      const bytes = new Uint8Array(await blob.arrayBuffer());
      let s = '';
      for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
      return btoa(s);
    });
    return Buffer.from(base64, 'base64');
  });
}

/** Opens `html` from a temporary file in headless Chromium, waits for `ready`, then runs `fn` on the page. */
async function withPage<T>(
  html: string,
  viewport: { width: number; height: number },
  ready: string,
  fn: (page: Page) => Promise<T>,
): Promise<T> {
  const browser = await launchChromium();
  const dir = await mkdtemp(join(tmpdir(), 'attnviz-export-'));
  try {
    const file = join(dir, 'view.html');
    await writeFile(file, html);
    const page = await browser.newPage({ viewport });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(pathToFileURL(file).href);
    await page.waitForSelector(ready, { timeout: 30_000 }).catch(() => {
      throw new AttnvizError(`the view did not render${errors.length ? `: ${errors[0]}` : ''}`);
    });
    return await fn(page);
  } finally {
    await browser.close();
    await rm(dir, { recursive: true, force: true });
  }
}
