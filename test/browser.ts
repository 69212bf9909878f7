/**
 * Headless Chromium (Debian's, driven by playwright-core) for view tests. Launch flags keep it off the
 * network: this machine's closed network refuses Chromium's background connections.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
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
