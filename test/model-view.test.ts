/**
 * The model view in Chromium, from golden data: grid layout facts, the detail panel, filters, exports, safety, a
 * screenshot.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import type { Attention } from '../src/core/attention.js';
import { readAttentionFile } from '../src/core/files.js';
import { renderHtml } from '../src/export/html.js';
import { compareScreenshot, HAVE_CHROMIUM, launch, openHtml, type OpenedPage } from './browser.js';
import { HAVE_SHARED, SHARED } from './shared.js';
import { bundlePage, synth } from './views-synthetic.js';

const golden = (name: string) => readAttentionFile(join(SHARED, 'golden/cases', `${name}.safetensors`));

/** bert-tiny's sentence pair; golden files carry no sentence_b_start, so take BERT's: after the first [SEP]. */
async function catPair(): Promise<Attention> {
  const a = await golden('bert-tiny__cat_pair');
  return { ...a, sentenceBStart: a.tokens.indexOf('[SEP]') + 1 };
}

const html = (a: Attention, options: Record<string, unknown> = {}) => renderHtml(a, { view: 'model', options });
const thumb = (l: number, h: number) => `.av-thumb[data-layer="${l}"][data-head="${h}"]`;
const root = (page: Page) => page.$eval('.attnviz', (e) => ({ ...(e as HTMLElement).dataset }));
const panelTokens = (page: Page, side: 'left' | 'right') =>
  page.locator(`.av-panel .av-token[data-side=${side}]`).allTextContents();
const axisText = (page: Page, sel: string) => page.locator(`.av-axis${sel}`).allTextContents();

/** Relative luminance (0 black … 1 white) of a computed CSS colour `rgb(r, g, b)`. */
function luminance(css: string): number {
  const [r, g, b] = css
    .match(/\d+(\.\d+)?/g)!
    .slice(0, 3)
    .map((v) => Number(v) / 255);
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

/** Clicks an export button and returns the downloaded file: the PNG and SVG buttons call toPNG() and toSVG(). */
async function exported(page: Page, name: 'PNG' | 'SVG'): Promise<Buffer> {
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.click(`.av-controls .av-button:text-is("${name}")`),
  ]);
  return readFile((await download.path())!);
}

describe.skipIf(!HAVE_CHROMIUM || !HAVE_SHARED)('model view', () => {
  let browser: Browser;
  let pair: Attention;
  let p: OpenedPage;
  /** A page with no content security policy, for parsing and decoding what the view exports. */
  let blank: Page;
  beforeAll(async () => {
    browser = await launch();
    pair = await catPair();
    p = await openHtml(browser, html(pair));
    blank = await browser.newPage();
  });
  afterAll(async () => {
    await p?.close();
    await blank?.close();
    await browser?.close();
  });

  test(
    'one thumbnail per layer × head, axis titles and indices ' + 'in the theme colour, no network, no errors',
    async () => {
      expect(await root(p.page)).toMatchObject({ mode: 'lines', thumbnails: '12', selected: '', theme: 'dark' });
      expect(Number((await root(p.page)).drawn)).toBeGreaterThan(12 * 17);
      expect(await p.page.locator('.av-thumb').count()).toBe(12);
      expect(await axisText(p.page, '-title')).toEqual(['Heads', 'Layers']);
      expect(await axisText(p.page, '[data-head]')).toEqual(['0', '1', '2', '3']);
      expect(await axisText(p.page, '[data-layer]')).toEqual(['0', '1', '2']);
      // BertViz hard-codes black axis text; on the dark theme ours must be light.
      for (const sel of ['.av-axis-title', '.av-axis-index']) {
        const color = await p.page
          .locator(sel)
          .first()
          .evaluate((e) => getComputedStyle(e).color);
        expect(luminance(color)).toBeGreaterThan(0.7);
      }
      expect(p.requests).toEqual([]);
      expect(p.errors).toEqual([]);
    },
  );

  test(
    'click a thumbnail: panel with heading and every token on ' + 'each side; click again closes; another moves it',
    async () => {
      await p.page.click(thumb(1, 2));
      expect((await root(p.page)).selected).toBe('1,2');
      expect(await p.page.locator('.av-panel').isVisible()).toBe(true);
      expect(await p.page.locator('.av-panel-title').textContent()).toBe('Layer 1, Head 2');
      expect(await panelTokens(p.page, 'left')).toEqual(pair.tokens);
      expect(await panelTokens(p.page, 'right')).toEqual(pair.tokens);
      expect(await p.page.getAttribute(thumb(1, 2), 'aria-pressed')).toBe('true');

      await p.page.click(thumb(1, 2));
      expect((await root(p.page)).selected).toBe('');
      expect(await p.page.locator('.av-panel').isVisible()).toBe(false);

      await p.page.click(thumb(1, 2));
      await p.page.click(thumb(2, 0));
      expect((await root(p.page)).selected).toBe('2,0');
      expect(await p.page.locator('.av-panel-title').textContent()).toBe('Layer 2, Head 0');
      expect(await p.page.getAttribute(thumb(1, 2), 'aria-pressed')).toBe('false');
    },
  );

  test('hovering a panel token keeps only its lines; pinning it gives exact weights on the other side', async () => {
    const panelDrawn = () => p.page.$eval('.av-panel', (e) => Number((e as HTMLElement).dataset.drawn));
    const all = await panelDrawn();
    expect(all).toBeGreaterThan(17);
    await p.page.hover('.av-panel .av-token[data-side=left][data-index="2"]');
    const one = await panelDrawn();
    expect(one).toBeGreaterThan(0);
    expect(one).toBeLessThanOrEqual(17);

    await p.page.click('.av-panel .av-token[data-side=left][data-index="2"]');
    await p.page.hover('.av-panel .av-token[data-side=right][data-index="6"]');
    const tip = await p.page.locator('.av-tooltip').textContent();
    expect(await p.page.locator('.av-tooltip').isVisible()).toBe(true);
    const [heading, value] = tip!.split('\n');
    expect(heading).toBe('cat → mat');
    // Layer 2, head 0, query 2 ("cat"), key 6 ("mat"); the page's 12-bit encoding is within 2.5e-4.
    const T = pair.tokens.length;
    expect(Math.abs(Number(value) - pair.attention.data[((2 * 4 + 0) * T + 2) * T + 6])).toBeLessThan(5e-4);
    await p.page.click('.av-panel .av-token[data-side=left][data-index="2"]');
    await p.page.mouse.move(5, 5);
    expect(await panelDrawn()).toBe(all);
  });

  test('the pair filter narrows the panel: A→B has sentence A on the left, sentence B on the right', async () => {
    const b = pair.sentenceBStart!;
    await p.page.selectOption('.av-controls label:has-text("Attention:") select', 'ab');
    expect((await root(p.page)).thumbnails).toBe('12');
    expect(await panelTokens(p.page, 'left')).toEqual(pair.tokens.slice(0, b));
    expect(await panelTokens(p.page, 'right')).toEqual(pair.tokens.slice(b));
    await p.page.selectOption('.av-controls label:has-text("Attention:") select', 'ba');
    expect(await panelTokens(p.page, 'left')).toEqual(pair.tokens.slice(b));
    expect(await panelTokens(p.page, 'right')).toEqual(pair.tokens.slice(0, b));
    await p.page.selectOption('.av-controls label:has-text("Attention:") select', 'all');
    await p.page.check('.av-controls label:has-text("Hide special tokens") input');
    expect(await panelTokens(p.page, 'left')).toEqual(pair.tokens.filter((t) => !['[CLS]', '[SEP]'].includes(t)));
    await p.page.uncheck('.av-controls label:has-text("Hide special tokens") input');
    expect(await panelTokens(p.page, 'left')).toEqual(pair.tokens);
  });

  test('SVG and PNG buttons export the grid and the open panel: well-formed SVG, a decodable PNG', async () => {
    expect((await root(p.page)).selected).toBe('2,0');
    const svg = (await exported(p.page, 'SVG')).toString('utf8');
    const parsed = await blank.evaluate((text) => {
      const doc = new DOMParser().parseFromString(text, 'image/svg+xml');
      return {
        error: doc.querySelector('parsererror')?.textContent ?? null,
        root: doc.documentElement.nodeName,
        texts: [...doc.querySelectorAll('text')].map((t) => t.textContent),
      };
    }, svg);
    expect(parsed.error).toBeNull();
    expect(parsed.root).toBe('svg');
    expect(parsed.texts).toEqual(
      expect.arrayContaining(['Heads', 'Layers', '0', '1', '2', '3', 'Layer 2, Head 0', '[CLS]', 'mat']),
    );

    const png = await exported(p.page, 'PNG');
    expect([...png.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    const size = await blank.evaluate(async (b64) => {
      const bitmap = await createImageBitmap(
        new Blob([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))], { type: 'image/png' }),
      );
      return [bitmap.width, bitmap.height];
    }, png.toString('base64'));
    // Scale 2; the grid is 970 px wide (BertViz's width).
    expect(size[0]).toBe(970 * 2);
    expect(size[1]).toBeGreaterThan(500);
    expect(p.errors).toEqual([]);
  });

  test('includeLayers / includeHeads reduce the grid and keep the model indices', async () => {
    const q = await openHtml(browser, html(pair, { includeLayers: [2], includeHeads: [1, 3], theme: 'light' }));
    try {
      expect((await root(q.page)).thumbnails).toBe('2');
      expect(await q.page.locator('.av-thumb').count()).toBe(2);
      expect(await axisText(q.page, '[data-layer]')).toEqual(['2']);
      expect(await axisText(q.page, '[data-head]')).toEqual(['1', '3']);
      await q.page.click(thumb(2, 3));
      expect(await q.page.locator('.av-panel-title').textContent()).toBe('Layer 2, Head 3');
      // Light theme: dark axis text.
      expect(
        luminance(
          await q.page
            .locator('.av-axis-title')
            .first()
            .evaluate((e) => getComputedStyle(e).color),
        ),
      ).toBeLessThan(0.3);
      expect(q.errors).toEqual([]);
    } finally {
      await q.close();
    }
  });

  test('a long causal input (gpt2-tiny, 119 tokens) is drawn as heatmaps with rows = queries', async () => {
    const a = await golden('gpt2-tiny__paragraph');
    const q = await openHtml(browser, html({ ...a, causal: true }));
    try {
      const [L, H] = a.attention.dims;
      expect(await root(q.page)).toMatchObject({ mode: 'heatmap', thumbnails: String(L * H) });
      // Thumbnail (0, 0): the first query sees only itself (weight 1, full layer colour); the top-right cell
      // is a future key (weight 0, background).
      const px = await q.page.evaluate(() => {
        const canvas = document.querySelector<HTMLCanvasElement>('.av-grid > canvas')!;
        const t = document.querySelector<HTMLElement>('.av-thumb[data-layer="0"][data-head="0"]')!;
        const ctx = canvas.getContext('2d')!;
        const x = t.offsetLeft + 5,
          y = t.offsetTop + 5,
          side = t.offsetWidth - 10;
        return {
          first: [...ctx.getImageData(x + 1, y + 1, 1, 1).data],
          future: [...ctx.getImageData(x + side - 2, y + 1, 1, 1).data],
        };
      });
      expect(px.first).toEqual([0x1f, 0x77, 0xb4, 255]); // schemeCategory10[0], layer 0
      expect(px.future).toEqual([0x11, 0x11, 0x11, 255]); // the dark theme's background
      await q.page.click(thumb(1, 3));
      expect(await q.page.locator('.av-panel-title').textContent()).toBe('Layer 1, Head 3');
      expect(await q.page.getAttribute('.av-panel', 'data-mode')).toBe('heatmap');
      // Hovering a heatmap cell names its tokens (the cells start below and right of the 110-px label bands).
      const box = (await q.page.locator('.av-panel canvas').first().boundingBox())!;
      await q.page.mouse.move(box.x + 110 + 1, box.y + 110 + 1);
      expect(await q.page.locator('.av-tooltip').textContent()).toMatch(/^Att → Att\n1\.0000$/);
      expect(q.requests).toEqual([]);
      expect(q.errors).toEqual([]);
    } finally {
      await q.close();
    }
  });

  test('markup in tokens shows as text and runs nothing', async () => {
    const a = await golden('bert-tiny__html');
    const evil = ['<script>alert(1)</script>', '<img src=x onerror=alert(2)>'];
    const tokens = [...a.tokens];
    tokens.splice(1, 2, ...evil);
    const q = await openWatched(browser, html({ ...a, tokens }));
    try {
      await q.page.click(thumb(0, 0));
      const left = await panelTokens(q.page, 'left');
      expect(left.slice(1, 3)).toEqual(evil);
      expect(left.slice(3)).toEqual(a.tokens.slice(3));
      expect(await q.page.locator('.attnviz img, .attnviz script').count()).toBe(0);
      await q.page.hover('.av-panel .av-token[data-side=left][data-index="2"]');
      expect(q.dialogs).toEqual([]);
      expect(q.errors).toEqual([]);
    } finally {
      await q.close();
    }
  });

  test('looks like the committed screenshot (bert-tiny cat_pair, panel open)', async () => {
    const q = await openHtml(browser, html(pair), { width: 1000, height: 1300 });
    try {
      await q.page.click(thumb(1, 2));
      await q.page.mouse.move(995, 5);
      const shot = await q.page.locator('.attnviz').screenshot();
      const { differing } = await compareScreenshot(blank, shot, 'model-view');
      expect(differing).toBeLessThan(0.01);
    } finally {
      await q.close();
    }
  });
});

/** Like openHtml, with a dialog listener in place before the page's scripts run (an alert() would be caught). */
async function openWatched(browser: Browser, text: string): Promise<OpenedPage & { dialogs: string[] }> {
  const dir = await mkdtemp(join(tmpdir(), 'attnviz-page-'));
  const file = join(dir, 'view.html');
  await writeFile(file, text);
  const page = await browser.newPage({ viewport: { width: 1000, height: 800 }, deviceScaleFactor: 1 });
  const url = pathToFileURL(file).href;
  const dialogs: string[] = [],
    requests: string[] = [],
    errors: string[] = [];
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
  await page.waitForSelector('.attnviz[data-drawn]', { timeout: 10_000 });
  return {
    page,
    dialogs,
    requests,
    errors,
    close: async () => {
      await page.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

describe.skipIf(!HAVE_CHROMIUM)('model view, layers as they arrive (synthetic data)', () => {
  let browser: Browser;
  let p: OpenedPage;
  beforeAll(async () => {
    browser = await launch();
    p = await bundlePage(browser);
  });
  afterAll(async () => {
    await p?.close();
    await browser?.close();
  });

  interface Progressive {
    attnvizView: {
      addLayer(l: number, w: Float32Array, size?: [number, number]): void;
      pending(): number[];
    };
  }
  /** Pixels of thumbnail (layer, head) equal to `rgb`, and those that are not the light background. */
  const thumbPixels = (layer: number, head: number, rgb: number[]) =>
    p.page.evaluate(
      ([layer, head, rgb]) => {
        const canvas = document.querySelector<HTMLCanvasElement>('.av-grid > canvas')!;
        const t = document.querySelector<HTMLElement>(`.av-thumb[data-layer="${layer}"][data-head="${head}"]`)!;
        const d = canvas
          .getContext('2d')!
          .getImageData(t.offsetLeft + 5, t.offsetTop + 5, t.offsetWidth - 10, t.offsetHeight - 10).data;
        let same = 0,
          painted = 0;
        for (let i = 0; i < d.length; i += 4) {
          if (d[i] === rgb[0] && d[i + 1] === rgb[1] && d[i + 2] === rgb[2]) same++;
          if (d[i] !== 255 || d[i + 1] !== 255 || d[i + 2] !== 255) painted++;
        }
        return { same, painted };
      },
      [layer, head, rgb] as const,
    );

  test(
    'first paint before all layers have arrived; thumbnails ' + 'max-pooled to their pixels; click loads the head',
    async () => {
      const [L, H, T, P] = [4, 8, 256, 64];
      // Mounted here rather than with mountSynthetic: loadHead, a function, cannot be passed into the page.
      await p.page.evaluate(
        ([L, H, T]) => {
          const api = (window as unknown as { attnvizStandalone: { mountView: (...a: unknown[]) => unknown } })
            .attnvizStandalone;
          for (const e of document.querySelectorAll('.attnviz')) e.remove();
          const host = document.body.appendChild(document.createElement('div'));
          const loads: number[][] = [];
          (window as unknown as { loads: number[][] }).loads = loads;
          const data = {
            tokens: Array.from({ length: T }, (_, i) => `tok${i}`),
            text: '',
            pair: null,
            sentenceBStart: null,
            model: { source: 'synthetic', modelType: 'llama' },
            causal: true,
            attention: { dims: [L, H, T, T], data: new Float32Array(0) },
          };
          api.mountView(host, 'model', data, {
            theme: 'light',
            loadHead: async (l: number, h: number) => {
              loads.push([l, h]);
              // Causal, uniform over the keys so far: row r holds 1 / (r + 1).
              const w = new Float32Array(T * T);
              for (let r = 0; r < T; r++) w.fill(1 / (r + 1), r * T, r * T + r + 1);
              return w;
            },
          });
        },
        [L, H, T] as const,
      );
      const root = () => p.page.$eval('.attnviz', (e) => ({ ...(e as HTMLElement).dataset }));
      const pending = () => p.page.$eval('.attnviz', (e) => (e as unknown as Progressive).attnvizView.pending());
      expect(await root()).toMatchObject({ mode: 'heatmap', thumbnails: String(L * H), layers: '0' });
      expect(await pending()).toEqual([0, 1, 2, 3]);

      // Layer 0 pooled to 64 × 64 blocks: 0.9 on the first key block, 0.2 on the diagonal, 0 elsewhere.
      await p.page.$eval(
        '.attnviz',
        (e, [H, P]) => {
          const w = new Float32Array(H * P * P);
          for (let h = 0; h < H; h++)
            for (let i = 0; i < P; i++) {
              w[(h * P + i) * P] = 0.9;
              w[(h * P + i) * P + i] = 0.2;
            }
          (e as unknown as Progressive).attnvizView.addLayer(0, w, [P, P]);
        },
        [H, P] as const,
      );
      expect(await root()).toMatchObject({ layers: '1' });
      expect(await pending()).toEqual([1, 2, 3]);
      expect((await thumbPixels(0, 3, [0x1f, 0x77, 0xb4])).same).toBeGreaterThan(0); // layer 0's colour, at 0.9/0.9
      expect((await thumbPixels(2, 3, [0, 0, 0])).painted).toBe(0); // not arrived: background only

      // Layer 1 in full, head 0 with one weight of 1 among 65,536 cells: the ~106-px thumbnail keeps it.
      await p.page.$eval(
        '.attnviz',
        (e, [H, T]) => {
          const w = new Float32Array(H * T * T);
          w[200 * T + 37] = 1;
          (e as unknown as Progressive).attnvizView.addLayer(1, w);
        },
        [H, T] as const,
      );
      const one = await thumbPixels(1, 0, [0xff, 0x7f, 0x0e]); // schemeCategory10[1]
      expect(one.same).toBeGreaterThanOrEqual(1);
      expect(one.painted).toBe(one.same);

      // A bad layer is refused with a one-line error naming it; the view keeps working.
      const error = await p.page.$eval('.attnviz', (e) => {
        try {
          (e as unknown as Progressive).attnvizView.addLayer(9, new Float32Array(1));
          return '';
        } catch (err) {
          return (err as Error).message;
        }
      });
      expect(error).toBe('addLayer: no layer 9 (0–3)');

      // Layer 2 has not arrived; its panel comes from loadHead, as a heatmap with exact values.
      await p.page.click(thumb(2, 1));
      await p.page.waitForSelector('.av-panel .av-heatmap[data-level]');
      expect(await p.page.locator('.av-panel-title').textContent()).toBe('Layer 2, Head 1');
      expect(await p.page.evaluate(() => (window as unknown as { loads: number[][] }).loads)).toEqual([[2, 1]]);
      const box = (await p.page.locator('.av-panel .av-heatmap-canvas').boundingBox())!;
      const cell = (box.width - 110) / T;
      await p.page.mouse.move(box.x + 110 + 3.5 * cell, box.y + 110 + 3.5 * cell);
      expect(await p.page.locator('.av-tooltip').textContent()).toBe(`tok3 → tok3\n${(1 / 4).toFixed(4)}`);
      expect(p.errors).toEqual([]);
    },
  );
});

describe.skipIf(!HAVE_CHROMIUM)('model view exported in two parts (pooled overview, then the full data)', () => {
  const [L, H, T] = [2, 3, 160];
  const weights = synth(T, L * H);
  const a: Attention = {
    tokens: Array.from({ length: T }, (_, i) => `tok${i}`),
    text: '',
    pair: null,
    sentenceBStart: null,
    model: { source: 'synthetic', modelType: 'bert' },
    causal: false,
    attention: { dims: [L, H, T, T], data: weights },
  };
  const split = renderHtml(a, { view: 'model', overviewAbove: 0 });
  const whole = renderHtml(a, { view: 'model', overviewAbove: Infinity });
  let browser: Browser;
  beforeAll(async () => {
    browser = await launch();
  });
  afterAll(async () => {
    await browser?.close();
  });
  /** The grid canvas's RGBA bytes. */
  const grid = async (page: Page) =>
    Buffer.from(
      await page.$eval('.av-grid > canvas', (c) => {
        const canvas = c as HTMLCanvasElement;
        const d = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
        let s = '';
        for (let i = 0; i < d.length; i += 0x8000) s += String.fromCharCode(...d.subarray(i, i + 0x8000));
        return btoa(s);
      }),
      'base64',
    );

  test('the page holds the pooled heads before the bundle and the full data after it', () => {
    const overview = split.indexOf('data-full="attnviz-full-data"');
    const bundle = split.indexOf('attnvizStandalone');
    const full = split.indexOf('<script type="application/x-attnviz-full" id="attnviz-full-data"');
    expect(overview).toBeGreaterThan(0);
    expect(bundle).toBeGreaterThan(overview);
    expect(full).toBeGreaterThan(bundle);
    // 128 × 128 pooled cells per head before the bundle (12 bits each, at most: deflate may shrink them).
    const bytes = (at: number) => Number(/data-bytes="(\d+)"/.exec(split.slice(at))![1]);
    expect(bytes(overview - 200)).toBeLessThan(L * H * 128 * 128 * 1.5 + 2000);
    expect(whole).not.toContain('attnviz-full-data');
  });

  test('once the full data is in, the grid equals the one-block page and the panel shows exact weights', async () => {
    const p = await openHtml(browser, split);
    const q = await openHtml(browser, whole);
    try {
      await p.page.waitForSelector('[data-attnviz-full="ready"]');
      expect(await p.page.locator('.av-note[role=status]').count()).toBe(0);
      expect(await root(p.page)).toMatchObject({ layers: String(L), thumbnails: String(L * H) });
      // Every opaque pixel equal; thumbnails repainted in place only darken their anti-aliased edges' alpha.
      const [got, want] = [await grid(p.page), await grid(q.page)];
      expect(got.length).toBe(want.length);
      let opaque = 0,
        differ = 0,
        edges = 0;
      for (let i = 0; i < got.length; i += 4) {
        if (got[i + 3] !== want[i + 3]) edges++;
        if (got[i + 3] !== 255 || want[i + 3] !== 255) continue;
        opaque++;
        if (got[i] !== want[i] || got[i + 1] !== want[i + 1] || got[i + 2] !== want[i + 2]) differ++;
      }
      expect(differ).toBe(0);
      expect(opaque).toBeGreaterThan(0.8 * (got.length / 4));
      expect(edges).toBeLessThan(0.01 * (got.length / 4));
      await p.page.click(thumb(1, 2));
      await p.page.waitForSelector('.av-panel .av-heatmap[data-level]');
      const box = (await p.page.locator('.av-panel .av-heatmap-canvas').boundingBox())!;
      const cell = (box.width - 110) / T;
      await p.page.mouse.move(box.x + 110 + 5.5 * cell, box.y + 110 + 3.5 * cell);
      // Row 3, key 5 of layer 1, head 2, as the 12-bit encoding stores it: round(√w · 4095)² / 4095².
      const w = weights[((1 * H + 2) * T + 3) * T + 5];
      const stored = (Math.round(Math.sqrt(w) * 4095) / 4095) ** 2;
      expect(await p.page.locator('.av-tooltip').textContent()).toBe(`tok3 → tok5\n${stored.toFixed(4)}`);
      expect([...p.errors, ...p.requests, ...q.errors]).toEqual([]);
    } finally {
      await p.close();
      await q.close();
    }
  });

  test('a corrupt full block leaves the pooled thumbnails and says why', async () => {
    const corrupt = split.replace(/(id="attnviz-full-data"[^>]*>)[^<]{20}/, '$1~~~~~~~~~~~~~~~~~~~~');
    expect(corrupt).not.toBe(split);
    const p = await openHtml(browser, corrupt);
    try {
      await p.page.waitForSelector('[data-attnviz-full="failed"]');
      expect(await p.page.locator('.av-note[role=status]').textContent()).toMatch(
        /^attnviz: the full data cannot be shown \(.+\); thumbnails are pooled$/,
      );
      expect(await root(p.page)).toMatchObject({ layers: String(L) });
      expect(p.errors).toEqual([]);
    } finally {
      await p.close();
    }
  });
});
