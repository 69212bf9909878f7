/**
 * `<attnviz-view src=… view=…>` (src/views/element.ts) on a page that loads only the standalone bundle, served
 * over HTTP as a blog would serve it: the element fetches its attention file, renders the view, stays
 * independent of another element, loads lazily (an element far below the fold fetches nothing until scrolled
 * to), remounts when an attribute changes, and shows an error in the page for a bad file.
 */
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Attention } from '../src/core/attention.js';
import { encodeAttentionFile } from '../src/core/attention-file.js';
import { HAVE_CHROMIUM, launch } from './browser.js';

const BUNDLE = resolve(import.meta.dirname, '../dist/views/attnviz-views.js');

/** Two layers, two heads over three tokens: layer l, head h puts all weight on token (i + l + h) mod 3. */
function synthetic(tokens: string[]): Attention {
  const T = tokens.length;
  const data = new Float32Array(2 * 2 * T * T);
  for (let l = 0; l < 2; l++)
    for (let h = 0; h < 2; h++) for (let i = 0; i < T; i++) data[((l * 2 + h) * T + i) * T + ((i + l + h) % T)] = 1;
  return {
    tokens,
    text: tokens.join(' '),
    pair: null,
    sentenceBStart: null,
    model: { source: 'synthetic', modelType: 'test' },
    causal: false,
    attention: { dims: [2, 2, T, T], data },
  };
}

const PAGE = `<!doctype html><html><head><meta charset="utf-8"></head><body>
<attnviz-view id="a" src="/a.safetensors" view="head" layer="1"></attnviz-view>
<attnviz-view id="b" src="/b.safetensors" view="model"></attnviz-view>
<attnviz-view id="bad" src="/missing.safetensors"></attnviz-view>
<div style="height: 6000px"></div>
<attnviz-view id="far" src="/far.safetensors"></attnviz-view>
<script src="/attnviz-views.js"></script>
</body></html>`;

let server: Server;
let base: string;
const requested: string[] = [];

beforeAll(async () => {
  const files: Record<string, [string, Uint8Array | string]> = {
    '/': ['text/html', PAGE],
    '/attnviz-views.js': ['text/javascript', readFileSync(BUNDLE, 'utf8')],
    '/a.safetensors': ['application/octet-stream', encodeAttentionFile(synthetic(['<s>', '<script>x', 'cat']))],
    '/b.safetensors': ['application/octet-stream', encodeAttentionFile(synthetic(['one', 'two', 'three']))],
    '/far.safetensors': ['application/octet-stream', encodeAttentionFile(synthetic(['far', 'below', 'fold']))],
  };
  server = createServer((req, res) => {
    requested.push(req.url ?? '');
    const file = files[req.url ?? ''];
    res.writeHead(file ? 200 : 404, { 'content-type': file ? file[0] : 'text/plain' });
    res.end(file ? file[1] : 'not found');
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((done) => (server ? server.close(() => done()) : done())));

describe.skipIf(!HAVE_CHROMIUM)('<attnviz-view>', () => {
  test('fetches, renders, stays independent, loads lazily, remounts, reports errors', async () => {
    const browser = await launch();
    try {
      const page = await browser.newPage({ viewport: { width: 1000, height: 700 } });
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(base);
      const state = (id: string) => page.locator(`#${id}`).getAttribute('data-state');
      await expect.poll(() => state('a')).toBe('ready');
      await expect.poll(() => state('b')).toBe('ready');
      await expect.poll(() => state('bad')).toBe('error');
      expect(await page.locator('#a .attnviz-head-view').getAttribute('data-layer')).toBe('1');
      expect(await page.locator('#b .attnviz-model-view').count()).toBe(1);
      // Token text is text: the "<script>x" token is shown, not run.
      expect(await page.locator('#a').textContent()).toContain('<script>x');
      expect(await page.locator('#bad').textContent()).toMatch(/cannot show \/missing\.safetensors \(.*404\)/);
      // Lazy: the element 6000 px down has fetched nothing yet.
      expect(requested).not.toContain('/far.safetensors');
      expect(await state('far')).toBeNull();
      await page.locator('#far').scrollIntoViewIfNeeded();
      await expect.poll(() => state('far')).toBe('ready');
      expect(requested).toContain('/far.safetensors');
      // An attribute change remounts on the data the element has (no second fetch).
      const fetchesOfA = requested.filter((r) => r === '/a.safetensors').length;
      await page.locator('#a').evaluate((e) => e.setAttribute('layer', '0'));
      await expect.poll(() => page.locator('#a .attnviz-head-view').getAttribute('data-layer')).toBe('0');
      expect(requested.filter((r) => r === '/a.safetensors').length).toBe(fetchesOfA);
      // The other element did not change.
      expect(await page.locator('#b .attnviz-model-view').count()).toBe(1);
      expect(errors).toEqual([]);
    } finally {
      await browser.close();
    }
  }, 60_000);
});
