/**
 * Headless Chromium (Debian's, driven by playwright-core) for view tests. Launch flags keep it off the
 * network: this machine's closed network refuses Chromium's background connections.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { chromiumLocation, launchChromium } from '../src/export/chromium.js';
import { present } from './shared.js';

export const CHROMIUM = chromiumLocation();
export const HAVE_CHROMIUM = present(
  existsSync(CHROMIUM),
  `Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`,
  'the browser tests',
);

/** Chromium as exports launch it, with hinting off so that screenshots depend less on the font setup. */
export function launch(): Promise<Browser> {
  return launchChromium(['--font-render-hinting=none']);
}

export interface OpenedPage {
  page: Page;
  /** URLs the page asked for beyond its own file. */
  requests: string[];
  errors: string[];
  /** Messages of the dialogs (alert, confirm) the page opened, each dismissed; heard from before its scripts run. */
  dialogs: string[];
  close(): Promise<void>;
}

/** Writes `html` to a temporary file and opens it from file://, recording every request and page error. */
export async function openHtml(
  browser: Browser,
  html: string,
  viewport = { width: 1000, height: 800 },
): Promise<OpenedPage> {
  const dir = await mkdtemp(join(tmpdir(), 'attnviz-page-'));
  const file = join(dir, 'view.html');
  await writeFile(file, html);
  const page = await browser.newPage({ viewport, deviceScaleFactor: 1 });
  const url = pathToFileURL(file).href;
  const requests: string[] = [],
    errors: string[] = [],
    dialogs: string[] = [];
  page.on('dialog', (d) => {
    dialogs.push(d.message());
    void d.dismiss();
  });
  page.on('request', (r) => {
    if (r.url() !== url && !r.url().startsWith('data:') && !r.url().startsWith('blob:')) requests.push(r.url());
  });
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  await page.goto(url);
  // A view, an analysis report (ready when drawn), or an error.
  await page
    .waitForSelector('.attnviz, .attnviz-error, #attnviz-report-root[data-ready]', { timeout: 10_000 })
    .catch(() => undefined);
  return {
    page,
    requests,
    errors,
    dialogs,
    close: async () => {
      await page.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Fraction of pixels of two PNGs that differ by more than 32 in some channel (1 when sizes differ), decoded
 * in `page` (any page: decoding needs no content).
 */
export async function pixelDiff(page: Page, a: Buffer, b: Buffer): Promise<number> {
  return page.evaluate(
    async ([a, b]) => {
      const decode = async (base64: string) => {
        const bitmap = await createImageBitmap(
          new Blob([Uint8Array.from(atob(base64), (ch) => ch.charCodeAt(0))], { type: 'image/png' }),
        );
        const ctx = new OffscreenCanvas(bitmap.width, bitmap.height).getContext('2d')!;
        ctx.drawImage(bitmap, 0, 0);
        return ctx.getImageData(0, 0, bitmap.width, bitmap.height);
      };
      const [x, y] = await Promise.all([decode(a), decode(b)]);
      if (x.width !== y.width || x.height !== y.height) return 1;
      let diff = 0;
      for (let i = 0; i < x.data.length; i += 4) {
        if (
          Math.abs(x.data[i] - y.data[i]) > 32 ||
          Math.abs(x.data[i + 1] - y.data[i + 1]) > 32 ||
          Math.abs(x.data[i + 2] - y.data[i + 2]) > 32
        )
          diff++;
      }
      return diff / (x.width * x.height);
    },
    [a.toString('base64'), b.toString('base64')] as const,
  );
}

/**
 * Compares a screenshot with the committed reference test/screenshots/<name>.png (pixelDiff; font
 * rasterisation varies slightly between Chromium builds, hence a tolerance). A missing reference is written
 * and reported, to be looked at and committed; in CI (CI=true) it fails the test instead, since a reference
 * made by the run under test checks nothing. A mismatch is saved beside it as <name>-changed.png.
 */
export async function compareScreenshot(
  page: Page,
  png: Buffer,
  name: string,
  maxDiff = 0.01,
): Promise<{ differing: number; created: boolean }> {
  const { readFile, mkdir } = await import('node:fs/promises');
  const ref = join(fileURLToPath(new URL('./screenshots/', import.meta.url)), `${name}.png`);
  if (!existsSync(ref)) {
    if (process.env.CI === 'true') throw new Error(`CI=true: reference screenshot ${ref} is missing`);
    await mkdir(dirname(ref), { recursive: true });
    await writeFile(ref, png);
    console.warn(`wrote missing reference screenshot ${ref}`);
    return { differing: 0, created: true };
  }
  const differing = await pixelDiff(page, png, await readFile(ref));
  if (differing >= maxDiff) await writeFile(ref.replace(/\.png$/, '-changed.png'), png);
  return { differing, created: false };
}
