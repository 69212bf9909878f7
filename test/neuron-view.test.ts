/**
 * The neuron view in Chromium, from golden data (which include the query and key vectors): controls, the
 * expanded columns against q·k/√d computed here from the float32 golden q/k, their softmax against the golden
 * attention, causal masking, a file without q/k, HTML in tokens, SVG/PNG export and one reference screenshot.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import type { Attention } from '../src/core/attention.js';
import { readAttentionFile } from '../src/core/files.js';
import { renderHtml } from '../src/export/html.js';
import {
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
 * ≤ 2⁻¹⁰ Σ|q_n k_n| / √d. ABS covers float16 subnormals (|x| < 6.1e-5, absolute error ≤ 2⁻²⁵) and float32 sums.
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

type Handle = Pick<NeuronView, 'state' | 'update' | 'columns' | 'scales' | 'toSVG'>;

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

    test('layer, head, pair-filter and theme selects list the right options; collapsed at first; no network, no errors', async () => {
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
    });

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

    test('q·k equals q_i·k_j/√d from the golden q/k (float16 bound) and its softmax the golden attention, every layer, head and token', async () => {
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
    });

    test('moving to other tokens updates the columns live; a click pins; (−) collapses', async () => {
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
      await p.page.click(leftToken(9));
      await p.page.mouse.move(990, 5);
      expect(await dataset(p.page)).toMatchObject({ selected: '', pinned: 'false', expanded: 'false' });
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

    test('pair filter A → B: sentence A queries against sentence B keys, softmax column = those attention weights', async () => {
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
    });

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
});
