/**
 * Headless Chromium (Debian's, driven by playwright-core) for view tests. Launch flags keep it off the
 * network: this machine's closed network refuses Chromium's background connections.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const HAVE_CHROMIUM = existsSync(CHROMIUM);
if (!HAVE_CHROMIUM) console.warn(`skipping browser tests: no Chromium at ${CHROMIUM} (apt-get install chromium)`);

export const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync', '--font-render-hinting=none'];

export function launch(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
}

export interface OpenedPage {
  page: Page;
  /** URLs the page asked for beyond its own file. */
  requests: string[];
  errors: string[];
  close(): Promise<void>;
}

/** Writes `html` to a temporary file and opens it from file://, recording every request and page error. */
export async function openHtml(browser: Browser, html: string, viewport = { width: 1000, height: 800 }): Promise<OpenedPage> {
  const dir = await mkdtemp(join(tmpdir(), 'attnviz-page-'));
  const file = join(dir, 'view.html');
  await writeFile(file, html);
  const page = await browser.newPage({ viewport, deviceScaleFactor: 1 });
  const url = pathToFileURL(file).href;
  const requests: string[] = [];
  const errors: string[] = [];
  page.on('request', (r) => { if (r.url() !== url && !r.url().startsWith('data:') && !r.url().startsWith('blob:')) requests.push(r.url()); });
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  await page.goto(url);
  await page.waitForSelector('.attnviz, .attnviz-error', { timeout: 10_000 }).catch(() => undefined);
  return { page, requests, errors, close: async () => { await page.close(); await rm(dir, { recursive: true, force: true }); } };
}

/**
 * Compares a screenshot with the committed reference test/screenshots/<name>.png: decoded in the page,
 * a pixel differs when any channel differs by more than 32; fewer than `maxDiff` of the pixels may differ
 * (font rasterisation varies slightly between Chromium builds). A missing reference is written and reported.
 */
export async function compareScreenshot(page: Page, png: Buffer, name: string, maxDiff = 0.01): Promise<{ differing: number; created: boolean }> {
  const { readFile, mkdir } = await import('node:fs/promises');
  const ref = join(fileURLToPath(new URL('./screenshots/', import.meta.url)), `${name}.png`);
  if (!existsSync(ref)) {
    await mkdir(dirname(ref), { recursive: true });
    await writeFile(ref, png);
    console.warn(`wrote missing reference screenshot ${ref}`);
    return { differing: 0, created: true };
  }
  const expected = (await readFile(ref)).toString('base64');
  const differing = await page.evaluate(async ([a, b]) => {
    const decode = async (b64: string) => {
      const bitmap = await createImageBitmap(await (await fetch(`data:image/png;base64,${b64}`)).blob());
      const c = new OffscreenCanvas(bitmap.width, bitmap.height);
      const ctx = c.getContext('2d')!;
      ctx.drawImage(bitmap, 0, 0);
      return ctx.getImageData(0, 0, bitmap.width, bitmap.height);
    };
    const [x, y] = await Promise.all([decode(a), decode(b)]);
    if (x.width !== y.width || x.height !== y.height) return 1;
    let diff = 0;
    for (let i = 0; i < x.data.length; i += 4) {
      if (Math.abs(x.data[i] - y.data[i]) > 32 || Math.abs(x.data[i + 1] - y.data[i + 1]) > 32 || Math.abs(x.data[i + 2] - y.data[i + 2]) > 32) diff++;
    }
    return diff / (x.width * x.height);
  }, [png.toString('base64'), expected] as const);
  if (differing >= maxDiff) await writeFile(ref.replace(/\.png$/, '-changed.png'), png);
  return { differing, created: false };
}
