/** Views on synthetic data built in the page: for tests of long inputs and of layers that arrive over time. */
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll } from 'vitest';
import type { Attention } from '../src/core/attention.js';
import { renderHtml } from '../src/export/html.js';
import { launch, openHtml, type OpenedPage } from './browser.js';

/**
 * H heads of T × T row-stochastic weights: a sink on token 0 (most of each row's weight), a pattern that differs
 * by head and cell, so combinations and colour scales have distinct, known values.
 */
export function synth(T: number, H: number): Float32Array {
  const w = new Float32Array(H * T * T);
  for (let h = 0; h < H; h++)
    for (let r = 0; r < T; r++) {
      const o = (h * T + r) * T;
      let sum = 0;
      for (let c = 0; c < T; c++) sum += w[o + c] = (c === 0 ? 40 : 0) + 1 + ((r * 7 + c * 13 + h * 5) % 11);
      for (let c = 0; c < T; c++) w[o + c] /= sum;
    }
  return w;
}

/**
 * Mounts `view` (through mountView, so the handle is on `.attnviz`) in a page that carries the views bundle, on
 * an Attention built in the page from `weights` (`[L, H, T, T]`; empty: layers to come) and `tokens`.
 */
export async function mountSynthetic(
  opened: Pick<OpenedPage, 'page'>,
  view: 'head' | 'model',
  dims: [number, number, number],
  weights: Float32Array,
  options: Record<string, unknown> = {},
  tokens?: string[],
  /** More Attention fields (e.g. promptLength). */
  extra: Record<string, unknown> = {},
): Promise<void> {
  await opened.page.evaluate(
    ([view, [L, H, T], weights, options, tokens, extra]) => {
      const api = (window as unknown as { attnvizStandalone: { mountView: (...a: unknown[]) => unknown } })
        .attnvizStandalone;
      for (const e of document.querySelectorAll('.attnviz')) e.remove();
      const host = document.createElement('div');
      document.body.append(host);
      const data = {
        tokens: tokens ?? Array.from({ length: T }, (_, i) => `tok${i}`),
        text: '',
        pair: null,
        sentenceBStart: null,
        model: { source: 'synthetic', modelType: 'llama' },
        causal: false,
        attention: { dims: [L, H, T, T], data: Float32Array.from(weights) },
        ...extra,
      };
      api.mountView(host, view, data, options);
    },
    [view, dims, Array.from(weights), options, tokens ?? null, extra] as const,
  );
}

/** A page with the views bundle (window.attnvizStandalone); its own small view is replaced by mountSynthetic. */
export async function bundlePage(browser: Browser): Promise<OpenedPage> {
  const tiny: Attention = {
    tokens: ['a', 'b'],
    text: 'a b',
    pair: null,
    sentenceBStart: null,
    model: { source: 'tiny', modelType: 'bert' },
    causal: false,
    attention: { dims: [1, 1, 2, 2], data: new Float32Array([1, 0, 0.5, 0.5]) },
  };
  return openHtml(browser, renderHtml(tiny, { view: 'head' }), { width: 1000, height: 800 });
}

/** For a describe block: Chromium and a bundlePage opened before its tests and closed after them. */
export function useBundlePage(): Pick<OpenedPage, 'page' | 'errors'> {
  let browser: Browser | undefined;
  let opened: OpenedPage | undefined;
  beforeAll(async () => {
    browser = await launch();
    opened = await bundlePage(browser);
  });
  afterAll(async () => {
    await opened?.close();
    await browser?.close();
  });
  return {
    get page() {
      return opened!.page;
    },
    get errors() {
      return opened!.errors;
    },
  };
}
