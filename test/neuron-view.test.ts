/**
 * The neuron view in Chromium, from golden data (which include the query and key vectors): controls, the
 * expanded columns against q·k/√d computed here from the float32 golden q/k, their softmax against the golden
 * attention, causal masking, a file without q/k, HTML in tokens, SVG/PNG export and one reference screenshot.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { keyContributions, rowContributions } from '../src/analysis/contributions.js';
import { neuronReport } from '../src/analysis/neuron-report.js';
import type { Attention } from '../src/core/attention.js';
import { decodeAttention, encodeAttention } from '../src/core/encode.js';
import { readAttentionFile } from '../src/core/files.js';
import { renderHtml } from '../src/export/html.js';
import {
  ALL_LINES_MAX,
  HEADINGS,
  NEURON_LAYOUT as G,
  NO_QK_NOTE,
  type NeuronColumns,
  type NeuronView,
} from '../src/views/neuron-view.js';
import { compareScreenshot, HAVE_CHROMIUM, launch, openHtml, pixelDiff, type OpenedPage } from './browser.js';
import { HAVE_SHARED, SHARED } from './shared.js';

const golden = (name: string) => readAttentionFile(join(SHARED, 'golden/cases', `${name}.safetensors`));
// Golden case files carry no attnviz metadata: the sentence-pair start and causality come from the family.
const bertPair = async (): Promise<Attention> => {
  const a = await golden('bert-tiny__cat_pair');
  return { ...a, sentenceBStart: a.tokens.indexOf('[SEP]') + 1 };
};
const gpt2 = async (): Promise<Attention> => ({ ...(await golden('gpt2-tiny__cat_sat')), causal: true });

// ---- reference values, computed here from the float32 golden tensors --------------------------------------

/**
 * renderHtml stores q and k as IEEE float16: each value is rounded to 11 significant bits (relative error
 * ≤ u = 2⁻¹¹), so a product q_n·k_n is off by ≤ (1+u)² − 1 ≈ 2⁻¹⁰ of |q_n·k_n|, and q·k/√d by
 * ≤ 2⁻¹⁰ Σ|q_n k_n| / √d. ABS covers float16 subnormals (|x| < 6.1e-5, absolute error ≤ 2⁻²⁵) and
 * float32 sums.
 */
const F16_REL = 2 ** -10 * 1.001;
const ABS = 1e-6;

interface Expected {
  dots: (number | null)[];
  dotTol: number[];
  products: (number[] | null)[];
  /** Golden attention row a_i·. */
  attention: number[];
}

function expected(a: Attention, l: number, h: number, i: number): Expected {
  const [, H, T, d] = a.query!.dims;
  const vec = (t: Float32Array, j: number) => t.subarray(((l * H + h) * T + j) * d, ((l * H + h) * T + j + 1) * d);
  const q = vec(a.query!.data, i);
  const out: Expected = {
    dots: [],
    dotTol: [],
    products: [],
    attention: Array.from(a.attention.data.subarray(((l * H + h) * T + i) * T, ((l * H + h) * T + i + 1) * T)),
  };
  for (let j = 0; j < T; j++) {
    if (a.causal && j > i) {
      out.dots.push(null);
      out.dotTol.push(0);
      out.products.push(null);
      continue;
    }
    const k = vec(a.key!.data, j);
    const p = Array.from(q, (x, n) => x * k[n]);
    out.products.push(p);
    out.dots.push(p.reduce((s, x) => s + x, 0) / Math.sqrt(d));
    out.dotTol.push((F16_REL * p.reduce((s, x) => s + Math.abs(x), 0)) / Math.sqrt(d) + ABS);
  }
  return out;
}

/** softmax over the non-null entries (null = masked, probability 0). */
function softmax(z: (number | null)[]): number[] {
  const max = Math.max(...z.filter((x): x is number => x !== null));
  const e = z.map((x) => (x === null ? 0 : Math.exp(x - max)));
  const sum = e.reduce((s, x) => s + x, 0);
  return e.map((x) => x / sum);
}

function expectColumnsMatch(a: Attention, l: number, h: number, c: NeuronColumns, where: string): void {
  const e = expected(a, l, h, c.query);
  const T = a.tokens.length;
  expect(c.keys, where).toEqual(Array.from({ length: T }, (_, j) => j));
  c.keys.forEach((j) => {
    if (e.dots[j] === null) {
      expect(c.dots[j], `${where} j=${j} masked`).toBeNull();
      expect(c.products[j], `${where} j=${j} masked`).toBeNull();
      return;
    }
    expect(Math.abs(c.dots[j]! - e.dots[j]!), `${where} dot j=${j}`).toBeLessThanOrEqual(e.dotTol[j]);
    c.products[j]!.forEach((x, n) =>
      expect(Math.abs(x - e.products[j]![n]), `${where} product j=${j} n=${n}`).toBeLessThanOrEqual(
        F16_REL * Math.abs(e.products[j]![n]) + ABS,
      ),
    );
  });
  // The softmax of the displayed dots is the golden attention row (1e-3: f16 q/k move it by ≤ 6e-4 here).
  const sm = softmax(c.dots);
  for (let j = 0; j < T; j++) expect(Math.abs(sm[j] - e.attention[j]), `${where} softmax j=${j}`).toBeLessThan(1e-3);
  // The Softmax column draws the data's attention (12-bit: ≤ 2.5e-4 off), and the view's own check agrees.
  for (let j = 0; j < T; j++)
    expect(Math.abs(c.softmax[j] - e.attention[j]), `${where} attention j=${j}`).toBeLessThan(1e-3);
  expect(c.maxDiff, where).toBeLessThan(1e-3);
  expect(c.maxDiff, where).toBeLessThanOrEqual(c.tolerance);
}

// ---- page helpers ---------------------------------------------------------------------------------------

type Handle = Pick<NeuronView, 'state' | 'update' | 'columns' | 'scales' | 'contributions' | 'toSVG'>;

/** Calls a method of the view handle, which the root element carries as `attnvizView`. */
function call<R>(page: Page, method: keyof Handle, ...args: unknown[]): Promise<R> {
  return page.evaluate(
    ({ method, args }) => {
      const view = (
        document.querySelector('.attnviz-neuron-view') as unknown as {
          attnvizView: Record<string, (...a: unknown[]) => unknown>;
        }
      ).attnvizView;
      return view[method](...args);
    },
    { method, args },
  ) as Promise<R>;
}

const dataset = (page: Page) => page.$eval('.attnviz-neuron-view', (e) => ({ ...(e as HTMLElement).dataset }));
const leftToken = (i: number) => `.av-token[data-side=left][data-index="${i}"]`;
const selectOf = (page: Page, label: string) => page.locator('label.av-control', { hasText: label }).locator('select');
const optionTexts = (page: Page, label: string) => selectOf(page, label).locator('option').allTextContents();

/** Largest channel spread (max − min of r, g, b) per key row of a canvas rectangle: 0 for greys. */
async function colourfulness(page: Page, x: number, y0: number, w: number, h: number, rows: number): Promise<number[]> {
  return page.$eval(
    '.attnviz-neuron-view canvas',
    (c, [x, y0, w, h, rows, row]) => {
      const ctx = (c as HTMLCanvasElement).getContext('2d')!;
      const dpr = (c as HTMLCanvasElement).width / parseFloat((c as HTMLCanvasElement).style.width);
      return Array.from({ length: rows }, (_, r) => {
        const img = ctx.getImageData(
          Math.round(x * dpr),
          Math.round((y0 + r * row) * dpr),
          Math.round(w * dpr),
          Math.round(h * dpr),
        ).data;
        let spread = 0;
        for (let p = 0; p < img.length; p += 4)
          spread = Math.max(
            spread,
            Math.max(img[p], img[p + 1], img[p + 2]) - Math.min(img[p], img[p + 1], img[p + 2]),
          );
        return spread;
      });
    },
    [x, y0, w, h, rows, G.ROW] as const,
  );
}

// ---- tests ----------------------------------------------------------------------------------------------

describe.skipIf(!HAVE_CHROMIUM || !HAVE_SHARED)('neuron view', () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await launch();
  });
  afterAll(async () => {
    await browser?.close();
  });

  describe('bert-tiny cat_pair (3 layers × 4 heads, 17 tokens, d = 10, bidirectional)', () => {
    let a: Attention;
    let p: OpenedPage;
    beforeAll(async () => {
      a = await bertPair();
      p = await openHtml(browser, renderHtml(a, { view: 'neuron' }));
    });
    afterAll(async () => {
      await p?.close();
    });

    test(
      'layer, head, pair-filter and theme selects list the right ' +
        'options; collapsed at first; no network, no errors',
      async () => {
        expect(await optionTexts(p.page, 'Layer:')).toEqual(['0', '1', '2']);
        expect(await optionTexts(p.page, 'Head:')).toEqual(['0', '1', '2', '3']);
        expect(await optionTexts(p.page, 'Attention:')).toEqual([
          'All',
          'Sentence A → Sentence A',
          'Sentence B → Sentence B',
          'Sentence A → Sentence B',
          'Sentence B → Sentence A',
        ]);
        expect(await optionTexts(p.page, 'Theme:')).toEqual(['Dark', 'Light', 'Auto']);
        expect(await dataset(p.page)).toMatchObject({
          layer: '0',
          head: '0',
          expanded: 'false',
          selected: '',
          theme: 'dark',
        });
        expect(await p.page.locator('.av-token[data-side=left]').allTextContents()).toEqual(a.tokens);
        expect(await p.page.locator('.av-token[data-side=right]').count()).toBe(17);
        expect(await p.page.locator('.av-heading:visible').count()).toBe(0);
        expect(p.requests).toEqual([]);
        expect(p.errors).toEqual([]);
      },
    );

    test('hovering a token shows a (+) button; clicking it expands to the five columns', async () => {
      await p.page.hover(leftToken(2));
      expect(await dataset(p.page)).toMatchObject({ selected: '2', expanded: 'false' });
      const toggle = p.page.locator(`${leftToken(2)} .av-toggle`);
      expect(await toggle.getAttribute('aria-label')).toBe('expand');
      await toggle.click();
      expect(await dataset(p.page)).toMatchObject({ selected: '2', expanded: 'true' });
      expect(await p.page.locator('.av-heading:visible').allTextContents()).toEqual([...HEADINGS]);
      expect(await p.page.locator('.av-heading:visible').allTextContents()).toEqual([
        'Query q',
        'Key k',
        'q × k (elementwise)',
        'q · k',
        'Softmax',
      ]);
      expect(await p.page.locator('.av-check').textContent()).toMatch(/^✓ softmax/);
      expect(p.errors).toEqual([]);
    });

    test(
      'q·k equals q_i·k_j/√d from the golden q/k (float16 bound) and its ' +
        'softmax the golden attention, every layer, head and token',
      async () => {
        const [L, H, T] = a.attention.dims;
        const all = await p.page.evaluate(
          ({ L, H, T }) => {
            const view = (document.querySelector('.attnviz-neuron-view') as unknown as { attnvizView: NeuronView })
              .attnvizView;
            const out = [];
            for (let l = 0; l < L; l++)
              for (let h = 0; h < H; h++)
                for (let i = 0; i < T; i++) {
                  view.update({ layer: l, head: h, selected: i, pinned: true, expanded: true });
                  out.push({ l, h, i, c: view.columns()! });
                }
            return out;
          },
          { L, H, T },
        );
        expect(all).toHaveLength(L * H * T);
        for (const { l, h, i, c } of all) {
          expect(c.query).toBe(i);
          expect(c.masked.every((m) => !m)).toBe(true);
          expectColumnsMatch(a, l, h, c, `layer ${l} head ${h} token ${i}`);
        }
        await call(p.page, 'update', { layer: 0, head: 0, selected: 2, pinned: false });
      },
    );

    test('moving to other tokens updates the columns live; a click expands and pins; (−) collapses', async () => {
      await p.page.hover(leftToken(5));
      expect(await dataset(p.page)).toMatchObject({ selected: '5', expanded: 'true' });
      expect((await call<NeuronColumns>(p.page, 'columns')).query).toBe(5);
      await p.page.hover(leftToken(9));
      const c9 = await call<NeuronColumns>(p.page, 'columns');
      expect(c9.query).toBe(9);
      expectColumnsMatch(a, 0, 0, c9, 'hover token 9');
      expect(await p.page.locator('.av-check').textContent()).toContain('“the”');

      await p.page.click(leftToken(9));
      await p.page.hover(leftToken(3));
      await p.page.mouse.move(990, 5);
      expect(await dataset(p.page)).toMatchObject({ selected: '9', pinned: 'true', expanded: 'true' });

      const toggle = p.page.locator(`${leftToken(9)} .av-toggle`);
      expect(await toggle.getAttribute('aria-label')).toBe('collapse');
      await toggle.click();
      expect(await dataset(p.page)).toMatchObject({ selected: '9', pinned: 'true', expanded: 'false' });
      expect(await p.page.locator('.av-heading:visible').count()).toBe(0);
      // A click on a collapsed token expands it (and pins it); a click on the expanded, pinned token collapses it.
      await p.page.click(leftToken(9));
      expect(await dataset(p.page)).toMatchObject({ selected: '9', pinned: 'true', expanded: 'true' });
      await p.page.click(leftToken(9));
      await p.page.mouse.move(990, 5);
      expect(await dataset(p.page)).toMatchObject({ selected: '', pinned: 'false', expanded: 'false' });
      await p.page.click(leftToken(4));
      expect(await dataset(p.page)).toMatchObject({ selected: '4', pinned: 'true', expanded: 'true' });
      await call(p.page, 'update', { selected: null, expanded: false });
    });

    test('changing the layer and head selects updates the values', async () => {
      await call(p.page, 'update', { selected: 4, pinned: true, expanded: true });
      const before = await call<NeuronColumns>(p.page, 'columns');
      await selectOf(p.page, 'Layer:').selectOption('2');
      await selectOf(p.page, 'Head:').selectOption('3');
      expect(await dataset(p.page)).toMatchObject({ layer: '2', head: '3', selected: '4', expanded: 'true' });
      const after = await call<NeuronColumns>(p.page, 'columns');
      expectColumnsMatch(a, 2, 3, after, 'layer 2 head 3 token 4');
      expect(after.dots).not.toEqual(before.dots);
      await selectOf(p.page, 'Layer:').selectOption('0');
      await selectOf(p.page, 'Head:').selectOption('0');
      expect(await call<NeuronColumns>(p.page, 'columns')).toEqual(before);
    });

    test(
      'pair filter A → B: sentence A queries against sentence B ' + 'keys, softmax column = those attention weights',
      async () => {
        const b = a.sentenceBStart!;
        await selectOf(p.page, 'Attention:').selectOption('ab');
        expect(await p.page.locator('.av-token[data-side=left]').count()).toBe(b);
        expect(await p.page.locator('.av-token[data-side=right]').count()).toBe(17 - b);
        await call(p.page, 'update', { selected: 3, pinned: true, expanded: true });
        const c = await call<NeuronColumns>(p.page, 'columns');
        expect(c.keys).toEqual(Array.from({ length: 17 - b }, (_, k) => b + k));
        const e = expected(a, 0, 0, 3);
        c.keys.forEach((j, k) => {
          expect(Math.abs(c.dots[k]! - e.dots[j]!)).toBeLessThanOrEqual(e.dotTol[j]);
          expect(Math.abs(c.softmax[k] - e.attention[j])).toBeLessThan(1e-3);
          // The model's softmax runs over the whole row, whatever the filter shows.
          expect(Math.abs(c.computed[k]! - e.attention[j])).toBeLessThan(1e-3);
        });
        // A sentence-B token is not a query under A → B: the selection goes.
        await call(p.page, 'update', { selected: 12 });
        expect(await dataset(p.page)).toMatchObject({ selected: '', filter: 'ab' });
        await selectOf(p.page, 'Attention:').selectOption('all');
      },
    );

    test('the theme select switches palettes; Auto follows prefers-color-scheme as it changes', async () => {
      const background = () => p.page.$eval('.attnviz-neuron-view', (e) => getComputedStyle(e).backgroundColor);
      expect(await background()).toBe('rgb(17, 17, 17)');
      await selectOf(p.page, 'Theme:').selectOption('light');
      expect(await dataset(p.page)).toMatchObject({ theme: 'light' });
      expect(await background()).toBe('rgb(255, 255, 255)');
      await p.page.emulateMedia({ colorScheme: 'light' });
      await selectOf(p.page, 'Theme:').selectOption('auto');
      expect(await dataset(p.page)).toMatchObject({ theme: 'light' });
      // The media-query change event arrives asynchronously.
      await p.page.emulateMedia({ colorScheme: 'dark' });
      await p.page.waitForFunction(
        () => (document.querySelector('.attnviz-neuron-view') as HTMLElement).dataset.theme === 'dark',
        undefined,
        { timeout: 5000 },
      );
      expect(await background()).toBe('rgb(17, 17, 17)');
      await selectOf(p.page, 'Theme:').selectOption('dark');
      expect(await background()).toBe('rgb(17, 17, 17)');
      expect(p.errors).toEqual([]);
    });

    test('toSVG() parses as SVG with the columns; toPNG() is a PNG', async () => {
      await call(p.page, 'update', { selected: 6, pinned: true, expanded: true });
      const svg = await p.page.evaluate(() => {
        const view = (document.querySelector('.attnviz-neuron-view') as unknown as { attnvizView: NeuronView })
          .attnvizView;
        const doc = new DOMParser().parseFromString(view.toSVG(), 'image/svg+xml');
        return {
          root: doc.documentElement.nodeName,
          errors: doc.getElementsByTagName('parsererror').length,
          texts: [...doc.querySelectorAll('text')].map((t) => t.textContent),
          rects: doc.querySelectorAll('rect').length,
          images: [...doc.querySelectorAll('image')].map((i) => i.getAttribute('href')!.slice(0, 22)),
          width: Number(doc.documentElement.getAttribute('width')),
        };
      });
      expect(svg).toMatchObject({ root: 'svg', errors: 0 });
      expect(svg.texts).toEqual(expect.arrayContaining([...HEADINGS, 'Layer 0 · Head 0', '[CLS]', 'mat']));
      // q, k and q × k as one raster each; dots, bars and the focus as rectangles.
      expect(svg.images).toEqual(Array(3).fill('data:image/png;base64,'));
      expect(svg.rects).toBeGreaterThan(17 * 2);
      const png = await p.page.evaluate(async () => {
        const view = (document.querySelector('.attnviz-neuron-view') as unknown as { attnvizView: NeuronView })
          .attnvizView;
        const blob = await view.toPNG();
        const bitmap = await createImageBitmap(blob);
        return {
          type: blob.type,
          magic: [...new Uint8Array(await blob.slice(0, 8).arrayBuffer())],
          width: bitmap.width,
          height: bitmap.height,
        };
      });
      expect(png.type).toBe('image/png');
      expect(png.magic).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
      expect(png.width).toBe(Math.ceil(svg.width * 2));
      expect(p.requests).toEqual([]);
      expect(p.errors).toEqual([]);
    });
  });

  test('gpt2-tiny cat_sat (causal): products and dots only for j ≤ i, nothing coloured where masked', async () => {
    const a = await gpt2();
    const p = await openHtml(browser, renderHtml(a, { view: 'neuron' }));
    try {
      const [L, H, T] = a.attention.dims;
      for (let l = 0; l < L; l++)
        for (let h = 0; h < H; h++)
          for (let i = 0; i < T; i++) {
            await call(p.page, 'update', { layer: l, head: h, selected: i, pinned: true, expanded: true });
            const c = await call<NeuronColumns>(p.page, 'columns');
            expect(c.masked).toEqual(c.keys.map((j) => j > i));
            expectColumnsMatch(a, l, h, c, `layer ${l} head ${h} token ${i}`);
            c.keys.forEach((j) => {
              if (j > i) expect(c.computed[j]).toBeNull();
            });
          }
      // On the canvas: the masked rows' products and dot squares hold only greys (frame, "masked" label).
      const i = 2;
      await call(p.page, 'update', { layer: 1, head: 1, selected: i });
      const cellTop = G.TOP + (G.ROW - G.CELL_H) / 2;
      const products = await colourfulness(p.page, G.P_X + 1, cellTop + 1, G.VEC_W - 2, G.CELL_H - 2, T);
      const dots = await colourfulness(p.page, G.D_X + 1, cellTop, G.DOT - 2, G.DOT - 2, T);
      for (let j = 0; j < T; j++) {
        if (j > i) {
          expect(products[j], `products row ${j}`).toBeLessThanOrEqual(2);
          expect(dots[j], `dot ${j}`).toBeLessThanOrEqual(2);
        } else {
          expect(products[j], `products row ${j}`).toBeGreaterThan(6);
        }
      }
      expect(await p.page.locator('.av-check').textContent()).toMatch(/^✓/);
      expect(p.requests).toEqual([]);
      expect(p.errors).toEqual([]);
    } finally {
      await p.close();
    }
  });

  test('a file with attention only: the collapsed view and a note instead of failing', async () => {
    const { query: _q, key: _k, ...rest } = await bertPair();
    const a: Attention = rest;
    const p = await openHtml(browser, renderHtml(a, { view: 'neuron' }));
    try {
      expect(await p.page.locator('.av-note.av-no-qk').textContent()).toBe(NO_QK_NOTE);
      expect(await p.page.locator('.av-note.av-no-qk').isVisible()).toBe(true);
      expect(await p.page.locator('.av-token[data-side=left]').count()).toBe(17);
      await p.page.hover(leftToken(3));
      expect(await dataset(p.page)).toMatchObject({ selected: '3', expanded: 'false' });
      expect(await p.page.locator('.av-toggle').count()).toBe(0);
      await call(p.page, 'update', { expanded: true });
      expect(await dataset(p.page)).toMatchObject({ expanded: 'false' });
      expect(await call(p.page, 'columns')).toBeNull();
      expect(await call(p.page, 'scales')).toBeNull();
      // The collapsed lines are drawn: coloured pixels between the token columns.
      const lines = await colourfulness(p.page, G.TOKEN_W + 10, G.TOP, 150, 17 * G.ROW, 1);
      expect(lines[0]).toBeGreaterThan(20);
      expect(await call<string>(p.page, 'toSVG')).toContain('This file has no queries and keys (q/k)');
      expect(p.requests).toEqual([]);
      expect(p.errors).toEqual([]);
    } finally {
      await p.close();
    }
  });

  test('HTML in tokens shows literally and runs nothing', async () => {
    const html = await golden('bert-tiny__html');
    const tokens = [...html.tokens];
    tokens[1] = '<script>alert(1)</script>';
    tokens[2] = '<img src=x onerror="document.body.dataset.pwned=1;alert(2)">';
    const a: Attention = { ...html, tokens };
    const p = await openHtml(browser, renderHtml(a, { view: 'neuron', options: { selected: 1, expanded: true } }));
    const dialogs: string[] = [];
    p.page.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    try {
      expect(await dataset(p.page)).toMatchObject({ selected: '1', expanded: 'true' });
      expect(await p.page.locator('.av-token[data-side=left]').allTextContents()).toEqual(tokens);
      expect(await p.page.locator('.av-token[data-side=right]').allTextContents()).toEqual(tokens);
      await p.page.hover(leftToken(2));
      await p.page.mouse.move(990, 5);
      expect(await p.page.locator('.attnviz script, .attnviz img').count()).toBe(0);
      expect(await p.page.evaluate(() => document.body.dataset.pwned)).toBeUndefined();
      const svg = await call<string>(p.page, 'toSVG');
      expect(svg).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
      expect(
        await p.page.evaluate(
          (s) =>
            new DOMParser().parseFromString(s, 'image/svg+xml').querySelectorAll('parsererror, script, img').length,
          svg,
        ),
      ).toBe(0);
      expect(dialogs).toEqual([]);
      expect(p.requests).toEqual([]);
      expect(p.errors).toEqual([]);
    } finally {
      await p.close();
    }
  });

  test('expanded state matches the reference screenshot (< 1 % of pixels off by > 32 in a channel)', async () => {
    const a = await bertPair();
    const shot = async (selected: number) => {
      const p = await openHtml(
        browser,
        renderHtml(a, { view: 'neuron', options: { layer: 1, head: 2, selected, expanded: true } }),
      );
      try {
        await p.page.mouse.move(999, 799);
        expect(p.errors).toEqual([]);
        return await p.page.locator('.attnviz-neuron-view').screenshot();
      } finally {
        await p.close();
      }
    };
    const now = await shot(12);
    const page = await browser.newPage();
    try {
      const { differing } = await compareScreenshot(page, now, 'neuron-view');
      expect(differing).toBeLessThan(0.01);
      // The comparison does see a change: another selected token differs well beyond the tolerance.
      expect(await pixelDiff(page, now, await shot(3))).toBeGreaterThan(0.01);
    } finally {
      await page.close();
    }
  });
  describe('contributions, tooltips and the expanded token in the state (gpt2-tiny cat_sat, causal)', () => {
    let a: Attention;
    /** What the page holds: q/k rounded to float16 by the page encoding, decoded the same way here. */
    let held: Attention;
    let p: OpenedPage;
    beforeAll(async () => {
      a = await gpt2();
      held = decodeAttention(encodeAttention(a, { queryKey: true }));
      p = await openHtml(browser, renderHtml(a, { view: 'neuron', options: { layer: 1, head: 2 } }), {
        width: 1500,
        height: 800,
      });
      await p.page.evaluate(() => {
        const w = window as unknown as { changes: unknown[] };
        w.changes = [];
        document.addEventListener('attnviz-change', (e) => w.changes.push((e as CustomEvent).detail));
      });
    });
    afterAll(async () => {
      await p?.close();
    });
    const changes = () => p.page.evaluate(() => (window as unknown as { changes: unknown[] }).changes);
    const table = (kind: 'key' | 'row') =>
      p.page.$$eval(`.av-contrib-${kind} tbody tr`, (trs) =>
        trs.map((tr) => ({
          data: { ...(tr as HTMLElement).dataset },
          cells: [...tr.children].map((td) => td.textContent!),
          top: tr.classList.contains('av-top'),
          title: (tr as HTMLElement).title,
        })),
      );

    test('a click expands a token; the state and an attnviz-change event carry the token and key', async () => {
      await p.page.click(leftToken(5));
      expect(await dataset(p.page)).toMatchObject({ selected: '5', pinned: 'true', expanded: 'true' });
      expect(await p.page.locator(leftToken(5)).getAttribute('aria-expanded')).toBe('true');
      expect(await changes()).toContainEqual(
        expect.objectContaining({ layer: 1, head: 2, selected: 5, pinned: true, expanded: true, key: null }),
      );
      // No key chosen: the panel breaks down the key token 5 attends to most.
      const row = [...held.attention.data.subarray(((1 * 4 + 2) * 7 + 5) * 7, ((1 * 4 + 2) * 7 + 6) * 7)];
      const strongest = row.indexOf(Math.max(...row));
      expect((await dataset(p.page)).key).toBe(String(strongest));
      await p.page.click('.av-token[data-side=right][data-index="2"]');
      expect(await dataset(p.page)).toMatchObject({ selected: '5', key: '2' });
      expect((await changes()).at(-1)).toMatchObject({ selected: 5, key: 2, expanded: true });
      expect(await call<{ key: number | null }>(p.page, 'state')).toMatchObject({ key: 2, expanded: true });
    });

    test('the panel’s sorted terms and row shares are the library’s numbers; top dimensions marked', async () => {
      await call(p.page, 'update', { selected: 5, pinned: true, expanded: true, key: 2 });
      const key = keyContributions(held, 1, 2, 5, 2);
      const rows = await table('key');
      expect(rows.map((r) => Number(r.data.dim))).toEqual(key.terms.map((t) => t.dim));
      rows.forEach((r, n) => {
        const t = key.terms[n];
        expect(Number(r.data.product)).toBe(t.product);
        expect(Number(r.data.share)).toBe(t.share);
        expect(Number(r.data.q)).toBe(t.q);
        expect(Number(r.data.k)).toBe(t.k);
        expect(Math.abs(Number(r.cells[3]) - t.product)).toBeLessThanOrEqual(Math.abs(t.product) * 1e-3);
        expect(r.cells[4]).toBe(`${(t.share * 100).toFixed(1)} %`);
        expect(r.top).toBe(key.top.includes(t.dim));
        expect(r.title).toContain(`dimension ${t.dim}: q ${t.q} × k ${t.k} = ${t.product}`);
      });
      const sizes = rows.map((r) => Math.abs(Number(r.data.product)));
      expect(sizes).toEqual([...sizes].sort((x, y) => y - x));
      const line = await p.page.locator('.av-contrib-key p').first().textContent();
      expect(line).toContain(`q · k = ${key.dot.toPrecision(4)}`);
      const whole = rowContributions(held, 1, 2, 5);
      const shares = await table('row');
      expect(shares.map((r) => r.data.dim)).toEqual(whole.dims.map((d) => String(d.dim)));
      shares.forEach((r, n) => {
        expect(Number(r.data.share)).toBe(whole.dims[n].share);
        expect(r.top).toBe(whole.top.includes(whole.dims[n].dim as number));
      });
      expect(await p.page.locator('.av-contrib-row h4').textContent()).toContain('6 keys');
      expect(await p.page.locator('.av-contrib').textContent()).toContain('Score: softmax(q · k / √d).');
      expect(p.errors).toEqual([]);
    });

    test('tooltips: exact q, k, q × k and score under the pointer; a click on a key row picks that key', async () => {
      await call(p.page, 'update', { selected: 5, pinned: true, expanded: true, key: 2 });
      const box = (await p.page.locator('.attnviz-neuron-view canvas').boundingBox())!;
      const d = held.query!.dims[3];
      const at = async (x: number, row: number) => {
        await p.page.mouse.move(box.x + x, box.y + G.TOP + row * G.ROW + G.ROW / 2);
        return p.page.locator('.av-tooltip').textContent();
      };
      const vec = (t: Float32Array, j: number) => t.subarray(((1 * 4 + 2) * 7 + j) * d, ((1 * 4 + 2) * 7 + j + 1) * d);
      const q5 = vec(held.query!.data, 5),
        k3 = vec(held.key!.data, 3);
      const cellX = (x0: number, n: number) => x0 + ((n + 0.5) * G.VEC_W) / d;
      expect(await at(cellX(G.Q_X, 6), 5)).toBe(`“mat” (5) q[6] = ${q5[6]}`);
      expect(await at(cellX(G.K_X, 1), 3)).toBe(`“on” (3) k[1] = ${k3[1]}`);
      const t = q5[4] * k3[4];
      const dot = q5.reduce((s, x, n) => s + x * k3[n], 0);
      expect(await at(cellX(G.P_X, 4), 3)).toBe(`q[4] × k[4] = ${t} (${((t / dot) * 100).toFixed(1)} % of q · k)`);
      const c = await call<NeuronColumns>(p.page, 'columns');
      expect(await at(G.D_X + G.DOT / 2, 3)).toBe(
        `“mat” → “on”\nscore ${c.dots[3]}\nsoftmax ${c.computed[3]}\nattention ${c.softmax[3]}`,
      );
      await p.page.mouse.click(box.x + cellX(G.P_X, 4), box.y + G.TOP + 3 * G.ROW + G.ROW / 2);
      expect(await dataset(p.page)).toMatchObject({ selected: '5', key: '3' });
      await p.page.mouse.move(box.x + 5, box.y + 5);
      expect(await p.page.locator('.av-tooltip').isHidden()).toBe(true);
      expect(p.errors).toEqual([]);
    });

    test('the JSON button downloads the report attnviz neurons writes, for the token and key shown', async () => {
      await call(p.page, 'update', { selected: 5, pinned: true, expanded: true, key: 2 });
      const [download] = await Promise.all([p.page.waitForEvent('download'), p.page.click('.av-contrib .av-json')]);
      expect(download.suggestedFilename()).toBe('neuron-contributions-l1-h2-t5.json');
      const { readFile } = await import('node:fs/promises');
      const report = JSON.parse(await readFile(await download.path(), 'utf8'));
      expect(report).toEqual(JSON.parse(JSON.stringify(neuronReport(held, 1, 2, 5, 2))));
      expect(report.key).toMatchObject({ query: 5, key: 2, token: a.tokens[2] });
    });

    test('options restore the expanded token and key (as from a URL)', async () => {
      const q = await openHtml(
        browser,
        renderHtml(a, { view: 'neuron', options: { layer: 1, head: 2, selected: 4, expanded: true, key: 1 } }),
      );
      try {
        expect(await dataset(q.page)).toMatchObject({ selected: '4', expanded: 'true', key: '1', pinned: 'true' });
        expect(await q.page.locator('.av-contrib-key h4').textContent()).toBe('“the” (4) → “cat” (1)');
        expect(q.errors).toEqual([]);
      } finally {
        await q.close();
      }
    });
  });

  test('rotary q/k are said to be after RoPE; a position bias is named in the score and the row shares', async () => {
    const llama: Attention = { ...(await golden('llama-tiny-mha__cat_sat')), causal: true, rotary: 'half' };
    const p = await openHtml(browser, renderHtml(llama, { view: 'neuron', options: { selected: 4, expanded: true } }), {
      width: 1500,
      height: 800,
    });
    try {
      expect(await p.page.locator('.av-scale').textContent()).toContain('q, k after RoPE.');
      expect(await p.page.locator('.av-contrib').textContent()).toContain(
        'q and k are after rotary position embedding (RoPE: dims n and n + d/2 rotate together).',
      );
      expect(await p.page.locator('.av-check').textContent()).toMatch(/^✓/);
    } finally {
      await p.close();
    }
    const bert = await bertPair();
    const [, H, T] = bert.attention.dims;
    const bias = Float32Array.from({ length: H * T * T }, (_, n) => ((n % T) - (Math.floor(n / T) % T)) * 0.1);
    const biased: Attention = { ...bert, positionBias: { dims: [H, T, T], data: bias } };
    const q = await openHtml(
      browser,
      renderHtml(biased, { view: 'neuron', options: { selected: 3, expanded: true, key: 5 } }),
      { width: 1500, height: 800 },
    );
    try {
      const held = decodeAttention(encodeAttention(biased, { queryKey: true }));
      const key = keyContributions(held, 0, 0, 3, 5);
      expect(key.positionBias).toBeCloseTo(0.2, 6);
      expect(await q.page.locator('.av-contrib-key p').first().textContent()).toContain(
        `+ position bias = ${(key.dot * key.scale).toPrecision(4)} + ${key.positionBias!.toPrecision(4)}`,
      );
      const shares = await q.page.$$eval('.av-contrib-row tbody tr', (trs) =>
        trs.map((t) => (t as HTMLElement).dataset.dim),
      );
      const row = rowContributions(held, 0, 0, 3);
      expect(row.dims.map((d) => String(d.dim))).toContain('position bias');
      expect(shares).toEqual(row.dims.slice(0, 12).map((d) => String(d.dim)));
      expect(await q.page.locator('.av-contrib').textContent()).toContain(
        'Score: softmax(q · k / √d + position bias).',
      );
      expect(q.errors).toEqual([]);
    } finally {
      await q.close();
    }
  });

  test('a head size below the stored (zero-padded) q/k fills the boxes with its own dimensions', async () => {
    const bert = await bertPair();
    const [L, H, T, d] = bert.query!.dims;
    const pad = (t: Float32Array) => {
      const out = new Float32Array(L * H * T * 2 * d);
      for (let r = 0; r < L * H * T; r++) out.set(t.subarray(r * d, (r + 1) * d), r * 2 * d);
      return { dims: [L, H, T, 2 * d], data: out };
    };
    // Stored with D = 2d; the score keeps 1/√d, as the embedded model's q/k are scaled to keep it.
    const padded: Attention = {
      ...bert,
      query: pad(bert.query!.data),
      key: pad(bert.key!.data),
      scoreScale: 1 / Math.sqrt(d),
    };
    const p = await openHtml(browser, renderHtml(padded, { view: 'neuron', options: { selected: 2, expanded: true } }));
    try {
      expect(await p.page.locator('.av-scale').textContent()).toContain(
        `Head size ${d} (q/k stored zero-padded to ${2 * d}).`,
      );
      const c = await call<NeuronColumns>(p.page, 'columns');
      expect(c.products.map((v) => v!.length)).toEqual(Array(T).fill(d));
      expect(await p.page.locator('.av-check').textContent()).toMatch(/^✓/);
      // The right half of every q and k box is coloured (it would be empty with the padding drawn).
      const cellTop = G.TOP + (G.ROW - G.CELL_H) / 2 + 2;
      for (const x of [G.Q_X, G.K_X]) {
        const right = await colourfulness(p.page, x + G.VEC_W / 2 + 2, cellTop, G.VEC_W / 2 - 4, G.CELL_H - 4, T);
        expect(Math.min(...right), `column at ${x}`).toBeGreaterThan(6);
      }
      expect(p.errors).toEqual([]);
    } finally {
      await p.close();
    }
  });

  test('1,024 tokens: only the rows on screen are drawn and have elements; scrolling brings the others', async () => {
    const T = 1024,
      d = 16;
    let seed = 7;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31 - 0.5;
    };
    const query = Float32Array.from({ length: T * d }, rand),
      key = Float32Array.from({ length: T * d }, rand);
    const attention = new Float32Array(T * T);
    for (let i = 0; i < T; i++) {
      let sum = 0;
      for (let j = 0; j < T; j++) {
        let z = 0;
        for (let n = 0; n < d; n++) z += query[i * d + n] * key[j * d + n];
        sum += attention[i * T + j] = Math.exp(z / Math.sqrt(d));
      }
      for (let j = 0; j < T; j++) attention[i * T + j] /= sum;
    }
    const long: Attention = {
      tokens: Array.from({ length: T }, (_, i) => `w${i}`),
      text: '',
      pair: null,
      sentenceBStart: null,
      model: { source: 'random', modelType: 'bert' },
      causal: false,
      attention: { dims: [1, 1, T, T], data: attention },
      query: { dims: [1, 1, T, d], data: query },
      key: { dims: [1, 1, T, d], data: key },
    };
    const p = await openHtml(browser, renderHtml(long, { view: 'neuron' }));
    try {
      const rows = async () => (await dataset(p.page)).rows!.split('-').map(Number);
      const [first, last] = await rows();
      expect(first).toBe(0);
      // 800 px show about 30 rows; with the margin, well under 100 of the 1,024 are drawn.
      expect(last).toBeLessThan(100);
      expect(await p.page.locator('.av-token').count()).toBe(2 * last);
      expect(T * T).toBeGreaterThan(ALL_LINES_MAX);
      expect(await p.page.locator('.av-lines').textContent()).toBe(
        'Long input: hover or click a token to see its lines.',
      );
      // The body keeps its full height, so the page scrolls to the last token.
      await p.page.evaluate(() => window.scrollTo(0, document.body.scrollHeight));
      await p.page.waitForFunction(
        () => (document.querySelector('.attnviz-neuron-view') as HTMLElement).dataset.rows?.endsWith('-1024'),
        undefined,
        { timeout: 5000 },
      );
      const [first2] = await rows();
      expect(first2).toBeGreaterThan(900);
      expect(await p.page.locator(leftToken(0)).count()).toBe(0);
      await p.page.click(leftToken(1020));
      expect(await dataset(p.page)).toMatchObject({ selected: '1020', expanded: 'true' });
      const c = await call<NeuronColumns>(p.page, 'columns');
      expect(c.keys).toHaveLength(T);
      expect(c.maxDiff).toBeLessThanOrEqual(c.tolerance);
      expect(await p.page.locator('.av-check').textContent()).toMatch(/^✓/);
      // The key rows on screen show their products: coloured cells in the q × k column near the bottom.
      const canvasTop = await p.page.$eval('.attnviz-neuron-view canvas', (e) =>
        parseFloat((e as HTMLElement).style.top),
      );
      const y = G.TOP + 1020 * G.ROW + (G.ROW - G.CELL_H) / 2 + 2 - canvasTop;
      expect((await colourfulness(p.page, G.P_X + 2, y, G.VEC_W - 4, G.CELL_H - 4, 1))[0]).toBeGreaterThan(6);
      // Exports draw every row.
      const svg = await call<string>(p.page, 'toSVG');
      expect(svg).toContain('>w0<');
      expect(svg).toContain('>w1023<');
      expect(p.errors).toEqual([]);
    } finally {
      await p.close();
    }
  });
});
