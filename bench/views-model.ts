/**
 * Model-view benchmark (prints figures; not a test): the first render of a 12-layer × 12-head random-softmax
 * Attention of T tokens, exported with renderHtml and opened from file:// in headless Chromium.
 *
 * - firstRenderMs: navigation start → the view's root gets `data-drawn` (parse the HTML, decode the data,
 *   draw every thumbnail); recorded in the page by a MutationObserver installed before any page script runs.
 * - paintedMs: the same, to the next animation frame after it (the grid on screen): the first paint.
 * - renderMs: modelView() alone (its `attnviz:model-view` User Timing measure), i.e. without decoding.
 * - fullMs: for a page in two parts (export/html.ts: pooled overview first, full data after the bundle), navigation
 *   start → the full data decoded and drawn (`data-attnviz-full="ready"`); equal to paintedMs for one block.
 *
 * Each size is measured both ways, alternating, in one run: "one block" (the page as before the split:
 * `overviewAbove: Infinity`) and "split" (the default; sizes under the split threshold give the same page).
 *
 *   node dist/bench/views-model.js                 # 32, 128, 512 tokens
 *   node dist/bench/views-model.js --sizes 512 --runs 3
 *
 * BertViz's model view, for comparison (docs study §4.2): 1.8 s at 32 tokens, 38 s at 128, unfinished at 256.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Browser } from 'playwright-core';
import { launchChromium } from '../src/export/image.js';
import type { Attention } from '../src/core/attention.js';
import { renderHtml } from '../src/export/html.js';

export interface ModelViewTiming {
  firstRenderMs: number;
  paintedMs: number;
  renderMs: number;
  fullMs: number;
  htmlBytes: number;
}

/** `layers × heads` rows of softmax(4·U(0,1)) logits over T keys: dense, mildly peaked, reproducible. */
export function randomAttention(T: number, layers = 12, heads = 12, seed = 1): Attention {
  let s = seed >>> 0;
  const rand = () => {
    // mulberry32
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const data = new Float32Array(layers * heads * T * T);
  for (let row = 0; row < layers * heads * T; row++) {
    const o = row * T;
    let sum = 0;
    for (let k = 0; k < T; k++) sum += data[o + k] = Math.exp(4 * rand());
    for (let k = 0; k < T; k++) data[o + k] /= sum;
  }
  return {
    tokens: Array.from({ length: T }, (_, i) => `tok${i}`),
    text: '',
    pair: null,
    sentenceBStart: null,
    model: { source: 'random', modelType: 'bert' },
    causal: false,
    attention: { dims: [layers, heads, T, T], data },
  };
}

/** One cold page load of the model view at T tokens (a fresh page each call); `split` false: one data block. */
export async function measureModelView(browser: Browser, T: number, split = true): Promise<ModelViewTiming> {
  const html = renderHtml(randomAttention(T), { view: 'model', ...(split ? {} : { overviewAbove: Infinity }) });
  const dir = await mkdtemp(join(tmpdir(), 'attnviz-bench-'));
  const file = join(dir, 'model.html');
  await writeFile(file, html);
  const page = await browser.newPage({ viewport: { width: 1000, height: 800 }, deviceScaleFactor: 1 });
  try {
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
      new MutationObserver((_, observer) => {
        if (!document.querySelector('[data-attnviz-full="ready"]')) return;
        observer.disconnect();
        w.__fullAt = performance.now();
      }).observe(document, { subtree: true, attributes: true, attributeFilter: ['data-attnviz-full'] });
    });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(pathToFileURL(file).href, { timeout: 300_000 });
    await page.waitForFunction(
      () => {
        const w = window as unknown as Record<string, number>;
        const split = document.querySelector('[data-attnviz-full]') !== null;
        return w.__paintedAt !== undefined && (!split || w.__fullAt !== undefined);
      },
      undefined,
      { timeout: 300_000 },
    );
    if (errors.length) throw new Error(`page error: ${errors.join('; ')}`);
    const t = await page.evaluate(() => {
      const w = window as unknown as Record<string, number>;
      const m = performance.getEntriesByName('attnviz:model-view')[0];
      return {
        drawn: w.__drawnAt,
        painted: w.__paintedAt,
        full: w.__fullAt ?? w.__paintedAt,
        render: m ? m.duration : NaN,
      };
    });
    return {
      firstRenderMs: t.drawn,
      paintedMs: t.painted,
      renderMs: t.render,
      fullMs: t.full,
      htmlBytes: Buffer.byteLength(html),
    };
  } finally {
    await page.close();
    await rm(dir, { recursive: true, force: true });
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const opt = (name: string) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const sizes = (opt('--sizes') ?? '32,128,512').split(',').map(Number);
  const runs = Number(opt('--runs') ?? 1);
  console.log(
    `load average ${loadavg()
      .map((x) => x.toFixed(1))
      .join(' ')}`,
  );
  const browser = await launchChromium();
  try {
    console.log('model view, 12 layers × 12 heads, random softmax; ms from navigation start; medians of runs');
    console.log('tokens  page       HTML MB  data-drawn  first paint  full data  modelView()');
    for (const T of sizes) {
      const rs: Record<string, ModelViewTiming[]> = { 'one block': [], split: [] };
      for (let run = 0; run < runs; run++)
        for (const name of Object.keys(rs)) rs[name].push(await measureModelView(browser, T, name === 'split'));
      for (const [name, r] of Object.entries(rs)) {
        const ms = (pick: (t: ModelViewTiming) => number, width: number) =>
          median(r.map(pick)).toFixed(0).padStart(width);
        console.log(
          `${String(T).padStart(6)}  ${name.padEnd(9)}  ${(r[0].htmlBytes / 1e6).toFixed(1).padStart(7)}  ` +
            `${ms((t) => t.firstRenderMs, 10)}  ${ms((t) => t.paintedMs, 11)}  ${ms((t) => t.fullMs, 9)}  ` +
            `${ms((t) => t.renderMs, 11)}`,
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
