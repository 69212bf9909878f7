/**
 * The views on encoder-decoder data, in Chromium: the "Attention: Encoder / Decoder / Cross" select switches
 * what the head, model and neuron views draw and which tokens stand on each side (cross-attention: decoder
 * tokens left, encoder tokens right), layers follow the part (the tiny BART has 2 encoder and 3 decoder
 * layers), the neuron view's consistency check holds on all three (T5: with its position bias and no
 * scaling; causal masking only in the decoder's self-attention), and nothing errs or reaches the network.
 * The data comes from the tiny random checkpoints of test/tiny-seq2seq.ts, run by the engine.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Browser } from 'playwright-core';
import { attentionPart, type Attention, type AttentionPart } from '../src/core/attention.js';
import type { AttentionModel } from '../src/models/model.js';
import { loadModel } from '../src/models/load-model.js';
import { renderHtml } from '../src/export/html.js';
import { prettifyToken } from '../src/views/tokens.js';
import { HAVE_CHROMIUM, launch, openHtml, type OpenedPage } from './browser.js';
import { removeTinyModels, writeTinyModel } from './tiny-models.js';
import { BART, bartConfig, bartWeights, SOURCE, T5_V11, t5Weights, TARGET, writeT5 } from './tiny-seq2seq.js';

const models: AttentionModel[] = [];
let browser: Browser;
let bart: Attention, t5: Attention;
const pages: OpenedPage[] = [];

beforeAll(async () => {
  if (!HAVE_CHROMIUM) return;
  const open = async (dir: string) => {
    const m = await loadModel(dir);
    models.push(m);
    return m;
  };
  bart = await (await open(await writeTinyModel(bartConfig(BART), bartWeights(BART, 31), 'roberta-tiny'))).attention(
    SOURCE,
    { target: TARGET },
  );
  t5 = await (await open(await writeT5(T5_V11, t5Weights(T5_V11, 32)))).attention(SOURCE, { target: TARGET });
  browser = await launch();
});
afterAll(async () => {
  await Promise.all(pages.splice(0).map((p) => p.close()));
  await browser?.close();
  await Promise.all(models.splice(0).map((m) => m.release()));
  await removeTinyModels();
});

async function page(
  a: Attention,
  view: 'head' | 'model' | 'neuron',
  options: Record<string, unknown> = {},
): Promise<OpenedPage> {
  const p = await openHtml(browser, renderHtml(a, { view, options }), { width: 1300, height: 900 });
  pages.push(p);
  return p;
}

interface Handle {
  attnvizView: { state(): Record<string, unknown>; drawn(): number; columns(): Columns };
}
interface Columns {
  keys: number[];
  masked: boolean[];
  maxDiff: number;
  tolerance: number;
}
const state = (p: OpenedPage) => p.page.$eval('.attnviz', (e) => (e as unknown as Handle).attnvizView.state());
const drawn = (p: OpenedPage) => p.page.$eval('.attnviz', (e) => (e as unknown as Handle).attnvizView.drawn());
const columns = (p: OpenedPage) => p.page.$eval('.attnviz', (e) => (e as unknown as Handle).attnvizView.columns());

const pretty = (tokens: string[]) => tokens.map(prettifyToken);
const tokensOn = (p: OpenedPage, side: 'left' | 'right') =>
  p.page
    .locator(`.attnviz .av-body > .av-token[data-side=${side}], .attnviz .av-panel .av-token[data-side=${side}]`)
    .allTextContents();
const choose = (p: OpenedPage, part: AttentionPart) => p.page.selectOption('.av-part select', part);

describe.skipIf(!HAVE_CHROMIUM)('encoder-decoder data in the views', () => {
  test(
    'head view: the select offers Encoder / Decoder / Cross and switches the ' +
      'token lists; cross puts decoder tokens left, encoder tokens right',
    async () => {
      const p = await page(bart, 'head');
      expect(await p.page.locator('.av-part select option').allTextContents()).toEqual(['Encoder', 'Decoder', 'Cross']);
      const encoder = pretty(bart.tokens),
        decoder = pretty(bart.encoderDecoder!.decoderTokens);
      expect(await tokensOn(p, 'left')).toEqual(encoder);
      expect(await tokensOn(p, 'right')).toEqual(encoder);
      // Two encoder layers, three decoder layers: the layer select follows.
      const layerOptions = () => p.page.locator('.av-controls label:has-text("Layer") select option').count();
      expect(await layerOptions()).toBe(2);

      await choose(p, 'decoder');
      expect(await tokensOn(p, 'left')).toEqual(decoder);
      expect(await tokensOn(p, 'right')).toEqual(decoder);
      expect(await layerOptions()).toBe(3);
      expect(await p.page.$eval('.attnviz-parts', (e) => (e as HTMLElement).dataset.part)).toBe('decoder');

      await choose(p, 'cross');
      expect(await tokensOn(p, 'left')).toEqual(decoder);
      expect(await tokensOn(p, 'right')).toEqual(encoder);
      expect((await state(p)).part).toBe('cross');
      expect(await p.page.$eval('.av-part select', (s) => (s as HTMLSelectElement).value)).toBe('cross');

      // Lines drawn = the cross weights of layer 0 at opacity ≥ 1/255 (4 heads active).
      const cross = attentionPart(bart, 'cross');
      const [, H, T, S] = cross.attention.dims;
      let expected = 0;
      for (let h = 0; h < H; h++)
        for (let i = 0; i < T; i++)
          for (let j = 0; j < S; j++)
            if (cross.attention.data[((0 * H + h) * T + i) * S + j] / H >= 1 / 255 - 1e-6) expected++;
      expect(Math.abs((await drawn(p)) - expected)).toBeLessThanOrEqual(4);
      expect(p.errors).toEqual([]);
      expect(p.requests).toEqual([]);
    },
  );

  test(
    'head view, cross: the tooltip gives decoder token → encoder ' +
      'token and the exact weights; the heatmap is T × S',
    async () => {
      const p = await page(bart, 'head', { part: 'cross' });
      await p.page.click('.av-token[data-side=left][data-index="2"]');
      await p.page.hover('.av-token[data-side=right][data-index="3"]');
      const text = await p.page.locator('.av-tooltip').textContent();
      const cross = attentionPart(bart, 'cross');
      const [, H, T, S] = cross.attention.dims;
      expect(text).toContain(`${prettifyToken(cross.tokens[2])} → ${prettifyToken(bart.tokens[3])}`);
      // Pages carry attention in 12 bits (≤ 2.5e-4 off), so compare the printed values, not their last digit.
      const shown = [...text!.matchAll(/head (\d): ([\d.]+)/g)].map((m) => Number(m[2]));
      expect(shown).toHaveLength(H);
      shown.forEach((v, h) =>
        expect(Math.abs(v - cross.attention.data[((0 * H + h) * T + 2) * S + 3])).toBeLessThan(4e-4),
      );
      await p.page.selectOption('.av-controls label:has-text("Show") select', 'heatmap');
      expect(await drawn(p)).toBe(T * S);
      expect(p.errors).toEqual([]);
    },
  );

  test('head view: switching keeps the heads and the layer where the part has it', async () => {
    const p = await page(bart, 'head', { part: 'decoder', layer: 2 });
    await p.page.click('.av-head[data-head="1"]');
    await choose(p, 'cross');
    expect(await state(p)).toMatchObject({ part: 'cross', layer: 2, active: [true, false, true, true] });
    await choose(p, 'encoder');
    expect(await state(p)).toMatchObject({ part: 'encoder', layer: 1, active: [true, false, true, true] });
    expect(p.errors).toEqual([]);
  });

  test(
    'model view: thumbnails follow the ' +
      'part’s layers; a cross ' +
      'panel has decoder tokens left, encoder tokens right',
    async () => {
      const p = await page(bart, 'model');
      const thumbnails = () => p.page.$eval('.attnviz', (e) => Number((e as HTMLElement).dataset.thumbnails));
      expect(await thumbnails()).toBe(2 * 4);
      await choose(p, 'decoder');
      expect(await thumbnails()).toBe(3 * 4);
      await choose(p, 'cross');
      expect(await thumbnails()).toBe(3 * 4);
      await p.page.click('.av-thumb[data-layer="2"][data-head="1"]');
      expect(await p.page.locator('.av-panel .av-token[data-side=left]').allTextContents()).toEqual(
        pretty(bart.encoderDecoder!.decoderTokens),
      );
      expect(await p.page.locator('.av-panel .av-token[data-side=right]').allTextContents()).toEqual(
        pretty(bart.tokens),
      );
      expect(await p.page.$eval('.attnviz', (e) => (e as HTMLElement).dataset.selected)).toBe('2,1');
      // Back to the encoder: its two layers, and the selection (layer 2) no longer exists there.
      await choose(p, 'encoder');
      expect(await thumbnails()).toBe(2 * 4);
      expect((await state(p)).selected).toBeNull();
      expect(p.errors).toEqual([]);
    },
  );

  const checkNote = (p: OpenedPage) =>
    p.page.$eval('.av-check', (e) => ({ ok: (e as HTMLElement).dataset.ok, text: e.textContent }));

  test(
    'neuron view (T5): the check holds on all three ' + 'attentions, with the position bias where T5 has one',
    async () => {
      const p = await page(t5, 'neuron');
      const S = t5.tokens.length,
        T = t5.encoderDecoder!.decoderTokens.length;
      // Encoder: bidirectional bias, no scaling.
      // A click on a token expands it.
      await p.page.click('.av-token.av-left[data-index="3"]');
      expect(await checkNote(p)).toMatchObject({
        ok: 'true',
        text: expect.stringContaining('softmax(q · k + position bias) reproduces'),
      });
      let cols = await columns(p);
      expect(cols.keys).toHaveLength(S);
      expect(cols.masked.some(Boolean)).toBe(false);

      // Decoder: causal, with the unidirectional bias.
      await choose(p, 'decoder');
      await p.page.click('.av-token.av-left[data-index="4"]');
      expect(await checkNote(p)).toMatchObject({
        ok: 'true',
        text: expect.stringContaining('softmax(q · k + position bias) reproduces'),
      });
      cols = await columns(p);
      expect(cols.keys).toHaveLength(T);
      expect(cols.masked).toEqual(Array.from({ length: T }, (_, j) => j > 4));

      // Cross: the same query token stays selected (decoder tokens on the left in both); keys are the encoder's, none
      // masked, no bias.
      await choose(p, 'cross');
      expect(await state(p)).toMatchObject({ part: 'cross', selected: 4, expanded: true });
      expect(await checkNote(p)).toMatchObject({
        ok: 'true',
        text: expect.stringContaining('softmax(q · k) reproduces'),
      });
      cols = await columns(p);
      expect(cols.keys).toEqual(Array.from({ length: S }, (_, j) => j));
      expect(cols.masked.some(Boolean)).toBe(false);
      expect(cols.maxDiff).toBeLessThanOrEqual(cols.tolerance);
      expect(await p.page.locator('.av-token.av-right').allTextContents()).toEqual(pretty(t5.tokens));
      expect(await p.page.locator('.av-token.av-left').allTextContents()).toEqual(
        pretty(t5.encoderDecoder!.decoderTokens),
      );
      expect(p.errors).toEqual([]);
    },
  );

  test('neuron view (BART): softmax(q · k / √d) on the cross-attention', async () => {
    const p = await page(bart, 'neuron', { part: 'cross', layer: 2, head: 3, selected: 1, expanded: true });
    expect(await checkNote(p)).toMatchObject({
      ok: 'true',
      text: expect.stringContaining('softmax(q · k / √d) reproduces'),
    });
    expect(p.errors).toEqual([]);
  });

  test('SVG and PNG export through the handle on .attnviz', async () => {
    const p = await page(t5, 'head', { part: 'cross' });
    const svg = await p.page.$eval('.attnviz', (e) =>
      (e as unknown as { attnvizView: { toSVG(): string } }).attnvizView.toSVG(),
    );
    expect(svg).toContain('<svg');
    expect(svg).toContain('tapis');
    expect(svg).toContain('mat');
    const png = await p.page.$eval(
      '.attnviz',
      async (e) => (await (e as unknown as { attnvizView: { toPNG(): Promise<Blob> } }).attnvizView.toPNG()).size,
    );
    expect(png).toBeGreaterThan(1000);
    expect(p.errors).toEqual([]);
  });
});
