/** The head view in Chromium, from golden data: layout facts and every interaction. */
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import type { Browser } from 'playwright-core';
import type { Attention } from '../src/core/attention.js';
import { readAttentionFile } from '../src/core/files.js';
import { renderHtml } from '../src/export/html.js';
import { linesLayout, panelLayout } from '../src/views/layout.js';
import { accumulate, combineHeads, halve, maxPool, scaleValues, type ColorScale } from '../src/views/raster.js';
import { compareScreenshot, HAVE_CHROMIUM, launch, openHtml, type OpenedPage } from './browser.js';
import { HAVE_SHARED, SHARED } from './shared.js';
import { mountSynthetic, synth, useBundlePage } from './views-synthetic.js';

interface HeatmapHandle {
  heatmap(): { cellCenter(r: number, c: number): { x: number; y: number } } | null;
}

const golden = (name: string) => readAttentionFile(join(SHARED, 'golden/cases', `${name}.safetensors`));

describe.skipIf(!HAVE_CHROMIUM || !HAVE_SHARED)('head view', () => {
  let browser: Browser;
  let pair: Attention;
  let p: OpenedPage;
  beforeAll(async () => {
    browser = await launch();
    pair = await golden('bert-tiny__cat_pair');
  });
  afterAll(async () => {
    await browser?.close();
  });
  beforeEach(async () => {
    await p?.close();
    p = await openHtml(browser, renderHtml(pair, { view: 'head' }));
  });

  const root = '.attnviz';
  const drawn = () => p.page.$eval(root, (e) => Number((e as HTMLElement).dataset.drawn));
  const state = () =>
    p.page.$eval(root, (e) => (e as unknown as { attnvizView: { state(): unknown } }).attnvizView.state()) as Promise<{
      active: boolean[];
      pinned: { side: string; index: number }[];
      layer: number;
    }>;
  const token = (side: string, index: number) => `.av-token[data-side=${side}][data-index="${index}"]`;
  /** Lines drawn when only the given head is active: expected from the data, weights ≥ 1/255. */
  const linesFor = (layer: number, heads: number[], rows: number[] | null) => {
    const [, H, T] = pair.attention.dims;
    let n = 0;
    for (const h of heads)
      for (let i = 0; i < T; i++)
        if (!rows || rows.includes(i))
          for (let j = 0; j < T; j++) {
            if (pair.attention.data[((layer * H + h) * T + i) * T + j] / heads.length >= 1 / 255 - 1e-6) n++;
          }
    return n;
  };

  test('one colour square per head, tokens on both sides, no network, no errors', async () => {
    expect(await p.page.locator('.av-head').count()).toBe(4);
    const left = await p.page.locator('.av-token[data-side=left]').allTextContents();
    expect(left).toEqual(pair.tokens);
    expect(await p.page.locator('.av-token[data-side=right]').count()).toBe(17);
    const colors = await p.page
      .locator('.av-head')
      .evaluateAll((els) => els.map((e) => getComputedStyle(e).backgroundColor));
    expect(new Set(colors).size).toBe(4);
    expect(p.requests).toEqual([]);
    expect(p.errors).toEqual([]);
  });

  test(
    'lines are the weights of all active heads; hovering a ' + 'token keeps only its lines; leaving restores',
    async () => {
      const all = await drawn();
      expect(Math.abs(all - linesFor(0, [0, 1, 2, 3], null))).toBeLessThanOrEqual(4);
      await p.page.hover(token('left', 2));
      expect(Math.abs((await drawn()) - linesFor(0, [0, 1, 2, 3], [2]))).toBeLessThanOrEqual(2);
      expect(await p.page.locator('.av-token.av-focus').count()).toBe(1);
      await p.page.mouse.move(900, 790);
      expect(await drawn()).toBe(all);
    },
  );

  test(
    'click toggles a head, the last head cannot be switched ' + 'off; double-click solos, again restores all',
    async () => {
      await p.page.click('.av-head[data-head="1"]');
      expect((await state()).active).toEqual([true, false, true, true]);
      expect(await p.page.getAttribute('.av-head[data-head="1"]', 'aria-pressed')).toBe('false');
      await p.page.dblclick('.av-head[data-head="2"]');
      expect((await state()).active).toEqual([false, false, true, false]);
      expect(Math.abs((await drawn()) - linesFor(0, [2], null))).toBeLessThanOrEqual(2);
      await p.page.click('.av-head[data-head="2"]');
      expect((await state()).active).toEqual([false, false, true, false]);
      await p.page.dblclick('.av-head[data-head="2"]');
      expect((await state()).active).toEqual([true, true, true, true]);
    },
  );

  test('layer selector redraws from that layer', async () => {
    await p.page.selectOption('.av-controls select >> nth=0', '2');
    expect((await state()).layer).toBe(2);
    expect(Math.abs((await drawn()) - linesFor(2, [0, 1, 2, 3], null))).toBeLessThanOrEqual(4);
  });

  test('sentence-pair filter A→B: sentence A on the left, sentence B on the right', async () => {
    await p.page.selectOption('.av-controls label:has-text("Attention") select', 'ab');
    const b = pair.sentenceBStart!;
    expect(await p.page.locator('.av-token[data-side=left]').allTextContents()).toEqual(pair.tokens.slice(0, b));
    expect(await p.page.locator('.av-token[data-side=right]').allTextContents()).toEqual(pair.tokens.slice(b));
  });

  test('click pins a token (moving away keeps it); shift-click adds; click again unpins', async () => {
    await p.page.click(token('left', 3));
    await p.page.mouse.move(900, 790);
    expect((await state()).pinned).toEqual([{ side: 'left', index: 3 }]);
    const one = await drawn();
    expect(one).toBeLessThanOrEqual(4 * 17);
    await p.page.click(token('left', 5), { modifiers: ['Shift'] });
    expect((await state()).pinned).toEqual([
      { side: 'left', index: 3 },
      { side: 'left', index: 5 },
    ]);
    expect(await drawn()).toBeGreaterThan(one);
    expect(await p.page.locator('.av-token.av-pinned').count()).toBe(2);
    await p.page.click(token('left', 5));
    expect((await state()).pinned).toEqual([{ side: 'left', index: 5 }]);
    await p.page.click(token('left', 5));
    expect((await state()).pinned).toEqual([]);
  });

  test('tooltip gives the exact per-head weights between the pinned and the hovered token', async () => {
    await p.page.click(token('left', 2));
    await p.page.hover(token('right', 8));
    const text = await p.page.locator('.av-tooltip').textContent();
    const [, H, T] = pair.attention.dims;
    for (let h = 0; h < H; h++)
      expect(text).toContain(`head ${h}: ${pair.attention.data[((0 * H + h) * T + 2) * T + 8].toFixed(4)}`);
  });

  test('threshold and top-k hide weak lines', async () => {
    const all = await drawn();
    await p.page.fill('.av-threshold', '0.2');
    const strong = await drawn();
    expect(strong).toBeLessThan(all);
    await p.page.fill('.av-threshold', '');
    await p.page.fill('.av-topk', '1');
    expect(await drawn()).toBeLessThanOrEqual(4 * 17);
  });

  test('hide special tokens removes [CLS]/[SEP] and renormalises rows', async () => {
    await p.page.check('.av-controls label:has-text("Hide special") input');
    const left = await p.page.locator('.av-token[data-side=left]').allTextContents();
    expect(left).toEqual(pair.tokens.filter((t) => t !== '[CLS]' && t !== '[SEP]'));
    await p.page.click(token('left', 1));
    await p.page.hover(token('right', 2));
    const values = [...(await p.page.locator('.av-tooltip').textContent())!.matchAll(/head 0: ([\d.]+)/g)].map((m) =>
      Number(m[1]),
    );
    const [, H, T] = pair.attention.dims;
    const row = Array.from({ length: T }, (_, j) => pair.attention.data[1 * T + j]);
    const kept = row.filter((_, j) => !['[CLS]', '[SEP]'].includes(pair.tokens[j]));
    expect(values[0]).toBeCloseTo(row[2] / kept.reduce((x, y) => x + y, 0), 3);
    expect(H).toBe(4);
  });

  test(
    'heatmap mode draws one cell per weight; the tooltip names ' + 'both tokens and gives the value; click pins a row',
    async () => {
      await p.page.selectOption('.av-controls label:has-text("Show") select', 'heatmap');
      expect(await p.page.$eval(root, (e) => (e as HTMLElement).dataset.mode)).toBe('heatmap');
      expect(await drawn()).toBe(17 * 17);
      const at = await p.page.$eval(root, (e) =>
        (e as unknown as { attnvizView: HeatmapHandle }).attnvizView.heatmap()!.cellCenter(16, 3),
      );
      await p.page.mouse.move(at.x, at.y);
      const text = (await p.page.locator('.av-tooltip').textContent())!;
      const [, H, T] = pair.attention.dims;
      const weight = (h: number) => pair.attention.data[(h * T + 16) * T + 3];
      const mean = [0, 1, 2, 3].reduce((s, h) => s + weight(h), 0) / H;
      expect(text.split('\n')[0]).toBe('[SEP] → sat');
      // The page carries attention in 12 bits (≤ 2.5e-4 off).
      expect(Math.abs(Number(text.match(/^mean of 4 heads: ([\d.]+)$/m)![1]) - mean)).toBeLessThan(5e-4);
      expect(Math.abs(Number(text.match(/^head 2: ([\d.]+)$/m)![1]) - weight(2))).toBeLessThan(5e-4);
      await p.page.mouse.click(at.x, at.y);
      expect((await state()).pinned).toEqual([{ side: 'left', index: 16 }]);
    },
  );

  test('several views on one page are independent', async () => {
    const html = renderHtml(pair, { view: 'head' });
    const block = html.match(/<script type="application\/x-attnviz"[\s\S]*?<\/script>/)![0];
    const two = await openHtml(browser, html.replace(block, block + block));
    try {
      expect(await two.page.locator('.attnviz').count()).toBe(2);
      await two.page.click('.attnviz >> nth=0 >> .av-head[data-head="0"]');
      const active = await two.page.$$eval('.attnviz', (els) =>
        els.map(
          (e) => (e as unknown as { attnvizView: { state(): { active: boolean[] } } }).attnvizView.state().active,
        ),
      );
      expect(active).toEqual([
        [false, true, true, true],
        [true, true, true, true],
      ]);
    } finally {
      await two.close();
    }
  });

  test('dark mode: readable text on a dark background', async () => {
    const dark = await openHtml(browser, renderHtml(pair, { view: 'head', options: { theme: 'dark' } }));
    try {
      const [bg, fg] = await dark.page.$eval('.attnviz', (e) => [
        getComputedStyle(e).backgroundColor,
        getComputedStyle(e.querySelector('.av-token')!).color,
      ]);
      expect(bg).toBe('rgb(17, 17, 17)');
      expect(fg).toBe('rgb(221, 221, 221)');
    } finally {
      await dark.close();
    }
  });

  test('looks like the reference screenshot', async () => {
    await p.page.hover(token('left', 2));
    const png = await p.page.locator(root).screenshot();
    const { differing } = await compareScreenshot(p.page, png, 'head-view');
    expect(differing).toBeLessThan(0.01);
  });

  test('SVG and PNG export of the view as shown', async () => {
    await p.page.click(token('left', 2));
    const svg = await p.page.$eval(root, (e) =>
      (e as unknown as { attnvizView: { toSVG(): string } }).attnvizView.toSVG(),
    );
    const parsed = await p.page.evaluate((s) => {
      const doc = new DOMParser().parseFromString(s, 'image/svg+xml');
      return {
        error: doc.querySelector('parsererror') !== null,
        texts: [...doc.querySelectorAll('text')].map((t) => t.textContent),
      };
    }, svg);
    expect(parsed.error).toBe(false);
    expect(parsed.texts).toContain('[CLS]');
    const size = await p.page.$eval(
      root,
      async (e) => (await (e as unknown as { attnvizView: { toPNG(): Promise<Blob> } }).attnvizView.toPNG()).size,
    );
    expect(size).toBeGreaterThan(1000);
  });
});

interface Viewport {
  row: number;
  col: number;
  rows: number;
  cols: number;
  cell: number;
  labelStep: number;
}
interface LongHandle {
  attnvizView: {
    update(p: Record<string, unknown>): void;
    toSVG(): string;
    heatmap(): { cellCenter(r: number, c: number): { x: number; y: number }; viewport(): Viewport } | null;
  };
}

describe.skipIf(!HAVE_CHROMIUM)('head view, long inputs (synthetic data)', () => {
  const p = useBundlePage();
  const viewport = () =>
    p.page.$eval('.attnviz', (e) => (e as unknown as LongHandle).attnvizView.heatmap()!.viewport());
  const center = (r: number, c: number) =>
    p.page.$eval('.attnviz', (e, [r, c]) => (e as unknown as LongHandle).attnvizView.heatmap()!.cellCenter(r, c), [
      r,
      c,
    ]);
  const update = (patch: Record<string, unknown>) =>
    p.page.$eval('.attnviz', (e, patch) => (e as unknown as LongHandle).attnvizView.update(patch), patch);
  const tooltipAt = async (r: number, c: number) => {
    const at = await center(r, c);
    await p.page.mouse.move(at.x, at.y);
    return (await p.page.locator('.av-tooltip').textContent())!;
  };
  const dataset = (sel: string) => p.page.$eval(sel, (e) => ({ ...(e as HTMLElement).dataset }));

  test("heatmap mode marks generated tokens: their labels in italics, the prompt's upright", async () => {
    const T = 120;
    await mountSynthetic(p, 'head', [1, 2, T], synth(T, 2), {}, undefined, { promptLength: 100 });
    expect((await dataset('.attnviz')).mode).toBe('heatmap');
    const svg = await p.page.$eval('.attnviz', (e) => (e as unknown as LongHandle).attnvizView.toSVG());
    const labels = [...svg.matchAll(/<text([^>]*)>tok(\d+)<\/text>/g)].map((m) => ({
      italic: m[1].includes('font-style="italic"'),
      token: Number(m[2]),
    }));
    expect(labels.some((l) => l.token >= 100)).toBe(true);
    for (const l of labels) expect(l.italic, `tok${l.token}`).toBe(l.token >= 100);
    expect(p.errors).toEqual([]);
  });

  test(
    'heatmap at 300 tokens: every n-th label, all of them once zoomed ' +
      'in; wheel zooms, drag pans, minimap while zoomed',
    async () => {
      const T = 300;
      await mountSynthetic(p, 'head', [1, 2, T], synth(T, 2));
      expect((await dataset('.attnviz')).mode).toBe('heatmap');
      const fit = await viewport();
      expect(fit.labelStep).toBeGreaterThan(1);
      expect(fit.rows).toBeCloseTo(T, 5);
      expect(await p.page.locator('.av-minimap').isVisible()).toBe(false);
      // Zoom in about the plot's middle with the wheel until every token is labelled.
      const mid = await center(150, 150);
      await p.page.mouse.move(mid.x, mid.y);
      for (let i = 0; i < 8 && (await viewport()).labelStep > 1; i++) {
        await p.page.mouse.wheel(0, -400);
        await p.page.waitForTimeout(50);
      }
      const zoomed = await viewport();
      expect(zoomed.labelStep).toBe(1);
      expect(zoomed.cell).toBeGreaterThan(fit.cell * 3);
      expect(await p.page.locator('.av-minimap').isVisible()).toBe(true);
      expect((await dataset('.av-heatmap')).labelStep).toBe('1');
      // The view as shown, exported: every visible row's label is there, and no label outside it.
      const svg = await p.page.$eval('.attnviz', (e) => (e as unknown as LongHandle).attnvizView.toSVG());
      const texts = new Set([...svg.matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((m) => m[1]));
      const first = Math.ceil(zoomed.row),
        last = Math.floor(zoomed.row + zoomed.rows) - 1;
      for (let r = first; r <= last; r++) expect(texts.has(`tok${r}`)).toBe(true);
      expect(texts.has(`tok${last + 40}`)).toBe(false);
      // Drag 120 px to the left: the view moves 120 / cell columns to the right.
      const from = await center(Math.ceil(zoomed.row) + 2, Math.ceil(zoomed.col) + 8);
      await p.page.mouse.move(from.x, from.y);
      await p.page.mouse.down();
      await p.page.mouse.move(from.x - 60, from.y, { steps: 3 });
      await p.page.mouse.move(from.x - 120, from.y, { steps: 3 });
      await p.page.mouse.up();
      await p.page.waitForTimeout(50);
      const panned = await viewport();
      expect(panned.col - zoomed.col).toBeCloseTo(120 / zoomed.cell, 1);
      expect(panned.row).toBeCloseTo(zoomed.row, 5);
      expect(p.errors).toEqual([]);
    },
  );

  test('tooltips give both tokens and the exact value; heads combine by mean or max; one head alone', async () => {
    const T = 40,
      H = 3;
    const w = synth(T, H);
    await mountSynthetic(p, 'head', [1, H, T], w, { mode: 'heatmap' });
    const at = (h: number, r: number, c: number) => w[(h * T + r) * T + c];
    const [r, c] = [17, 5];
    const values = [0, 1, 2].map((h) => at(h, r, c));
    let text = await tooltipAt(r, c);
    expect(text.split('\n')).toEqual([
      'tok17 → tok5',
      `mean of 3 heads: ${((values[0] + values[1] + values[2]) / 3).toFixed(4)}`,
      ...values.map((v, h) => `head ${h}: ${v.toFixed(4)}`),
    ]);
    await update({ combine: 'max' });
    text = await tooltipAt(r, c);
    expect(text.split('\n')[1]).toBe(`max of 3 heads: ${Math.max(...values).toFixed(4)}`);
    await update({ active: [false, true, false] });
    text = await tooltipAt(r, c);
    expect(text).toBe(`tok17 → tok5\nhead 1: ${values[1].toFixed(4)}`);
    // Mean of heads 0 and 2 only.
    await update({ active: [true, false, true], combine: 'mean' });
    text = await tooltipAt(r, c);
    expect(text.split('\n')[1]).toBe(`mean of 2 heads: ${((values[0] + values[2]) / 2).toFixed(4)}`);
  });

  test('colour scales: linear, sqrt, log, row maximum, and columns left out of the scale', async () => {
    // One head, light theme, head colour #1f77b4 over white; cell (3, 3) holds 0.1, row 3's maximum is 0.5.
    const rows = [
      [1, 0, 0, 0],
      [0.8, 0.2, 0, 0],
      [0.6, 0.3, 0.1, 0],
      [0.5, 0.25, 0.15, 0.1],
    ];
    await mountSynthetic(p, 'head', [1, 1, 4], new Float32Array(rows.flat()), { mode: 'heatmap', theme: 'light' });
    const red = async (r: number, c: number) => {
      const at = await center(r, c);
      return p.page.$eval(
        '.av-heatmap-canvas',
        (canvas, at) => {
          const box = canvas.getBoundingClientRect();
          const ctx = (canvas as HTMLCanvasElement).getContext('2d')!;
          return ctx.getImageData(Math.floor(at.x - box.left), Math.floor(at.y - box.top), 1, 1).data[0];
        },
        at,
      );
    };
    // Red channel of position t (0…1) quantised to a byte, as raster.ts paints it: white → 0x1f.
    const expected = (t: number) => Math.round(255 + (0x1f - 255) * (Math.round(255 * t) / 255));
    const cases: [Record<string, unknown>, number, number, number][] = [
      [{ scale: 'linear' }, 3, 3, 0.1],
      [{ scale: 'sqrt' }, 3, 3, Math.sqrt(0.1)],
      [{ scale: 'log' }, 3, 3, 1 + Math.log10(0.1) / 4],
      [{ scale: 'row' }, 3, 3, 0.1 / 0.5],
      [{ scale: 'linear', exclude: [0] }, 3, 3, 0.1 / 0.3],
      [{ scale: 'linear', exclude: [0] }, 3, 0, 1],
      [{ scale: 'linear', exclude: [] }, 2, 1, 0.3],
    ];
    for (const [patch, r, c, t] of cases) {
      await update(patch);
      await p.page.waitForTimeout(30);
      expect(Math.abs((await red(r, c)) - expected(t))).toBeLessThanOrEqual(1);
    }
    // The control names the option; typing indices there leaves those columns out.
    await update({ scale: 'linear' });
    await p.page.fill('.av-exclude', '0');
    await p.page.press('.av-exclude', 'Enter');
    expect(Math.abs((await red(3, 3)) - expected(0.1 / 0.3))).toBeLessThanOrEqual(1);
  });

  test(
    'lines mode at 600 tokens draws only the hovered or pinned ' + 'tokens’ lines, and scrolls with the page',
    async () => {
      const T = 600;
      const w = synth(T, 1);
      await mountSynthetic(p, 'head', [1, 1, T], w, { mode: 'lines' });
      expect(await dataset('.attnviz')).toMatchObject({ mode: 'lines', lines: 'focus', drawn: '0' });
      expect(await p.page.locator('.av-note').textContent()).toContain('hover or click a token');
      const visible = (r: number) =>
        Array.from({ length: T }, (_, c) => w[r * T + c]).filter((x) => x >= 1 / 255).length;
      await p.page.hover('.av-token[data-side=left][data-index="5"]');
      expect(Number((await dataset('.attnviz')).drawn)).toBe(visible(5));
      await p.page.mouse.move(990, 5);
      expect((await dataset('.attnviz')).drawn).toBe('0');
      await p.page.click('.av-token[data-side=left][data-index="400"]');
      await p.page.mouse.move(990, 5);
      expect(Number((await dataset('.attnviz')).drawn)).toBe(visible(400));
      // No inner scroll box: the body is as tall as its rows; its canvas covers only the part near the screen.
      const sizes = await p.page.$eval('.av-body', (b) => ({
        height: b.getBoundingClientRect().height,
        scrolls: b.scrollHeight > b.clientHeight,
        canvas: b.querySelector('canvas')!.getBoundingClientRect().height,
      }));
      expect(sizes).toMatchObject({ height: T * 22.5, scrolls: false });
      expect(sizes.canvas).toBeLessThan(4096);
      expect(p.errors).toEqual([]);
    },
  );

  test(
    'geometry: the line area widens with the token count, token ' +
      'columns fit long labels, hover shows the whole token',
    async () => {
      const T = 60;
      const tokens = Array.from({ length: T }, (_, i) => (i === 7 ? 'internationalization' : `t${i}`));
      await mountSynthetic(p, 'head', [1, 1, T], synth(T, 1), { mode: 'lines' }, tokens);
      const token = (i: number) =>
        p.page.$eval(`.av-token[data-side=left][data-index="${i}"]`, (e) => ({
          cut: e.scrollWidth > e.clientWidth,
          title: e.getAttribute('title'),
          width: e.getBoundingClientRect().width,
          right: e.getBoundingClientRect().right,
        }));
      const long = await token(7);
      expect(long.cut).toBe(false);
      expect(long.width).toBeGreaterThan(110);
      const gap =
        (await p.page.$eval('.av-token[data-side=right][data-index="0"]', (e) => e.getBoundingClientRect().left)) -
        long.right;
      // 60 rows × 22.5 px / 4 = 337.5 px of lines (185 px at BertViz's sizes, up to 33 tokens).
      expect(gap).toBeCloseTo(338, 0);
      // Token columns stop growing at 240 px: a longer token is cut, and its tooltip has it whole.
      tokens[9] = 'x'.repeat(80);
      await mountSynthetic(p, 'head', [1, 1, T], synth(T, 1), { mode: 'lines' }, tokens);
      const huge = await token(9);
      expect(huge.cut).toBe(true);
      expect(huge.title).toBe(tokens[9]);
      expect(huge.width).toBe(240);
    },
  );
});

describe('raster and layout: the views’ pure functions against references written here', () => {
  test('combineHeads: cell-by-cell mean and maximum', () => {
    const a = new Float32Array([0.1, 0.5, 0.4]),
      b = new Float32Array([0.3, 0.2, 0.4]);
    expect([...combineHeads([a, b], 3, 'mean')].map((x) => +x.toFixed(6))).toEqual([0.2, 0.35, 0.4]);
    expect([...combineHeads([a, b], 3, 'max')].map((x) => +x.toFixed(6))).toEqual([0.3, 0.5, 0.4]);
    // Heads folded in one at a time give the same.
    const acc = new Float32Array(3);
    accumulate(acc, [a], 'max', true);
    accumulate(acc, [b], 'max');
    expect([...acc].map((x) => +x.toFixed(6))).toEqual([0.3, 0.5, 0.4]);
  });

  test('maxPool and halve: each output cell is the maximum of the cells it covers', () => {
    const R = 7,
      C = 9;
    const w = Float32Array.from({ length: R * C }, (_, i) => ((i * 37) % 23) / 23);
    const pooled = maxPool(w, R, C, 3, 4, new Float32Array(12));
    for (let i = 0; i < 3; i++)
      for (let j = 0; j < 4; j++) {
        let m = 0;
        for (let r = 0; r < R; r++)
          for (let c = 0; c < C; c++)
            if (Math.floor((r * 3) / R) === i && Math.floor((c * 4) / C) === j) m = Math.max(m, w[r * C + c]);
        expect(pooled[i * 4 + j]).toBe(m);
      }
    const t = Uint8Array.from({ length: R * C }, (_, i) => (i * 53) % 256);
    const half = halve(t, R, C);
    expect(half.length).toBe(4 * 5);
    for (let i = 0; i < 4; i++)
      for (let j = 0; j < 5; j++) {
        let m = 0;
        for (let r = 2 * i; r < Math.min(R, 2 * i + 2); r++)
          for (let c = 2 * j; c < Math.min(C, 2 * j + 2); c++) m = Math.max(m, t[r * C + c]);
        expect(half[i * 5 + j]).toBe(m);
      }
  });

  test('scaleValues: linear, sqrt, log, row maximum, excluded columns', () => {
    const w = new Float32Array([1, 0, 0, 0, 0.8, 0.2, 0, 0, 0.6, 0.3, 0.1, 0, 0.5, 0.25, 0.15, 0.1]);
    const byte = (x: number) => Math.round(255 * Math.min(1, Math.max(0, x)));
    const cell = (scale: ColorScale, exclude: number[] = []) =>
      scaleValues(w, 4, 4, { scale, exclude: new Set(exclude) });
    expect(cell('linear')[15]).toBe(byte(0.1));
    expect(cell('sqrt')[15]).toBe(byte(Math.sqrt(0.1)));
    expect(cell('log')[15]).toBe(byte(1 + Math.log10(0.1) / 4));
    expect(cell('log')[3]).toBe(0);
    expect(cell('row')[15]).toBe(byte(0.1 / 0.5));
    expect(cell('row')[5]).toBe(byte(0.2 / 0.8));
    expect(cell('linear', [0])[15]).toBe(byte(0.1 / 0.3));
    expect(cell('linear', [0])[12]).toBe(255);
    expect(cell('row', [0])[13]).toBe(255);
  });

  test(
    'linesLayout: BertViz’s look for short inputs, wider lines ' + 'for more tokens, columns fit labels up to 240 px',
    () => {
      expect(linesLayout(17, 40)).toEqual({ box: 110, gap: 185, height: 17 * 22.5, width: 405 });
      expect(linesLayout(60, 140)).toMatchObject({ box: 154, gap: 338 });
      expect(linesLayout(2000, 60)).toMatchObject({ box: 110, gap: 480 });
      expect(linesLayout(10, 600)).toMatchObject({ box: 240, gap: 360 });
    },
  );

  test('panelLayout: right of the thumbnail, flipped left at the grid’s edge, kept below the heads axis', () => {
    const right = panelLayout({ x: 100, y: 300, w: 80 }, { w: 300, h: 200 }, 600);
    expect(right).toMatchObject({ x: 164, y: 300, width: 316, bodyH: 200 });
    const flipped = panelLayout({ x: 850, y: 20, w: 80 }, { w: 300, h: 800 }, 600);
    expect(flipped.x).toBe(850 + 16 - flipped.width);
    expect(flipped).toMatchObject({ y: 38, bodyH: 600 });
  });
});
