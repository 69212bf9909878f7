/**
 * Model-view benchmark (prints figures; not a test): the first render of a 12-layer × 12-head random-softmax
 * Attention of T tokens, exported with renderHtml and opened from file:// in headless Chromium.
 *
 * - firstRenderMs: navigation start → the view's root gets `data-drawn` (parse the HTML, decode the data,
 *   draw every thumbnail); recorded in the page by a MutationObserver installed before any page script runs.
 * - paintedMs: the same, to the next animation frame after it (the grid on screen).
 * - renderMs: modelView() alone (its `attnviz:model-view` User Timing measure), i.e. without decoding.
 *
 *   node dist/bench/views-model.js                 # 32, 128, 512 tokens
 *   node dist/bench/views-model.js --sizes 512 --runs 3
 *
 * BertViz's model view, for comparison (docs study §4.2): 1.8 s at 32 tokens, 38 s at 128, unfinished at 256.
 */
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser } from 'playwright-core';
import { launchChromium } from '../src/export/image.js';
import { mulberry32, option, syntheticAttention, withHtmlPage } from './harness.js';
import type { Attention } from '../src/core/attention.js';
import { renderHtml } from '../src/export/html.js';

export interface ModelViewTiming {
  firstRenderMs: number;
  paintedMs: number;
  renderMs: number;
  htmlBytes: number;
}

/** `layers × heads` rows of softmax(4·U(0,1)) logits over T keys: dense, mildly peaked, reproducible. */
export function randomAttention(T: number, layers = 12, heads = 12, seed = 1): Attention {
  const rand = mulberry32(seed);
  const data = new Float32Array(layers * heads * T * T);
  for (let row = 0; row < layers * heads * T; row++) {
    const o = row * T;
    let sum = 0;
    for (let k = 0; k < T; k++) sum += data[o + k] = Math.exp(4 * rand());
    for (let k = 0; k < T; k++) data[o + k] /= sum;
  }
  return syntheticAttention(T, layers, heads, data);
}

/** One cold page load of the model view at T tokens (a fresh page each call). */
export async function measureModelView(browser: Browser, T: number): Promise<ModelViewTiming> {
  const html = renderHtml(randomAttention(T), { view: 'model' });
  return withHtmlPage(browser, html, { width: 1000, height: 800 }, async (page, url) => {
    await page.addInitScript(() => {
      const w = window as unknown as Record<string, number>;
      new MutationObserver((_, observer) => {
        if (!document.querySelector('.attnviz[data-drawn]')) return;
        observer.disconnect();
        w.__drawnAt = performance.now();
        requestAnimationFrame(() => {
          w.__paintedAt = performance.now();
        });
      }).observe(document, { subtree: true, childList: true, attributes: true, attributeFilter: ['data-drawn'] });
    });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(url, { timeout: 300_000 });
    await page.waitForFunction(
      () => (window as unknown as Record<string, number>).__paintedAt !== undefined,
      undefined,
      { timeout: 300_000 },
    );
    if (errors.length) throw new Error(`page error: ${errors.join('; ')}`);
    const t = await page.evaluate(() => {
      const w = window as unknown as Record<string, number>;
      const m = performance.getEntriesByName('attnviz:model-view')[0];
      return { drawn: w.__drawnAt, painted: w.__paintedAt, render: m ? m.duration : NaN };
    });
    return { firstRenderMs: t.drawn, paintedMs: t.painted, renderMs: t.render, htmlBytes: Buffer.byteLength(html) };
  });
}

async function main(): Promise<void> {
  const sizes = (option('--sizes') ?? '32,128,512').split(',').map(Number);
  const runs = Number(option('--runs') ?? 1);
  const browser = await launchChromium();
  try {
    console.log('model view, 12 layers × 12 heads, random softmax; ms from navigation start');
    console.log('tokens  HTML MB  data-drawn  painted  modelView()');
    for (const T of sizes) {
      for (let run = 0; run < runs; run++) {
        const r = await measureModelView(browser, T);
        console.log(
          `${String(T).padStart(6)}  ${(r.htmlBytes / 1e6).toFixed(1).padStart(7)}  ` +
            `${r.firstRenderMs.toFixed(0).padStart(10)}  ${r.paintedMs.toFixed(0).padStart(7)}  ` +
            `${r.renderMs.toFixed(0).padStart(11)}`,
        );
      }
    }
  } finally {
    await browser.close();
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
