/** The head view in Chromium, from golden data: layout facts and every interaction. */
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import type { Browser } from 'playwright-core';
import type { Attention } from '../src/core/attention.js';
import { readAttentionFile } from '../src/core/files.js';
import { renderHtml } from '../src/export/html.js';
import { compareScreenshot, HAVE_CHROMIUM, launch, openHtml, type OpenedPage } from './browser.js';
import { HAVE_SHARED, SHARED } from './shared.js';

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

  test('lines are the weights of all active heads; hovering a token keeps only its lines; leaving restores', async () => {
    const all = await drawn();
    expect(Math.abs(all - linesFor(0, [0, 1, 2, 3], null))).toBeLessThanOrEqual(4);
    await p.page.hover(token('left', 2));
    expect(Math.abs((await drawn()) - linesFor(0, [0, 1, 2, 3], [2]))).toBeLessThanOrEqual(2);
    expect(await p.page.locator('.av-token.av-focus').count()).toBe(1);
    await p.page.mouse.move(900, 790);
    expect(await drawn()).toBe(all);
  });

  test('click toggles a head, the last head cannot be switched off; double-click solos, again restores all', async () => {
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
  });

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

  test('heatmap mode draws one cell per weight; the tooltip names both tokens and gives the value; click pins a row', async () => {
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
  });

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
