/**
 * PNG and SVG export from Node: the standalone HTML opened in headless Chromium (Debian's, driven by
 * playwright-core), and the view's own toPNG()/toSVG() called there, so images match what the page shows.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Browser } from 'playwright-core';
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
      `PNG and SVG export need Chromium, not found at ${path} (install Debian's chromium or set CHROMIUM_PATH)`,
    );
  return path;
}

/** Headless Chromium (playwright-core, loaded on first use) with the flags above and `extraArgs`. */
export async function launchChromium(extraArgs: readonly string[] = []): Promise<Browser> {
  const { chromium } = await import('playwright-core');
  return chromium.launch({ executablePath: chromiumPath(), headless: true, args: [...CHROMIUM_ARGS, ...extraArgs] });
}

/** Renders `html` (from renderHtml) and returns the view as PNG bytes or SVG text. */
export async function renderImage(
  html: string,
  format: 'png' | 'svg',
  viewport = { width: 1200, height: 900 },
): Promise<Uint8Array | string> {
  const browser = await launchChromium();
  const dir = await mkdtemp(join(tmpdir(), 'attnviz-export-'));
  try {
    const file = join(dir, 'view.html');
    await writeFile(file, html);
    const page = await browser.newPage({ viewport });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(pathToFileURL(file).href);
    await page.waitForSelector('.attnviz', { timeout: 30_000 }).catch(() => {
      throw new AttnvizError(`the view did not render${errors.length ? `: ${errors[0]}` : ''}`);
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
  } finally {
    await browser.close();
    await rm(dir, { recursive: true, force: true });
  }
}
