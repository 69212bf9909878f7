/**
 * Neuron-view benchmark (prints figures; not a test), in headless Chromium on exported standalone HTML, for a
 * 4-layer × 4-head Attention with d = 64 queries and keys (N(0, 1)) and attention = softmax(q·kᵀ/√d) computed
 * here (so the view's check holds), at 185, 369, 1024 and 2048 tokens:
 *
 * - open: neuronView() alone (the standalone page's `attnviz:render` measure: mount and first draw, decoding
 *   excluded), and navigation start → the view's root in the page (parse, decode, mount);
 * - expand: update({ selected: T/2, pinned, expanded }) → the next frame;
 * - hover: in the expanded view, unpinned, mouseenter on a visible token → the next frame (median, p95 of 20);
 * - scroll: the page scrolled by 300 px every frame, 30 frames: frame times (60 Hz: 16.7 ms when nothing lags).
 *
 *   npm run build && node dist/bench/neuron-view.js [--sizes 185,369,1024] [--runs 3]
 *     [--bundle ../main/dist/views/attnviz-views.js]    # another build's views (e.g. main's) for a side-by-side
 *
 * Target (issue 9): the view opens in ≤ 300 ms at 1k tokens (before: 2.5–12 s at 185–369 tokens).
 */
import { readFileSync } from 'node:fs';
import type { Browser } from 'playwright-core';
import type { Attention } from '../src/core/attention.js';
import { renderHtml } from '../src/export/html.js';
import { launchChromium } from '../src/export/chromium.js';
import { loadLine, machineLine, median, mulberry32, option, p95, syntheticAttention, withHtmlPage } from './harness.js';

/** Random q, k `[L, H, T, d]` and their attention softmax(q·kᵀ/√d), reproducible (mulberry32 + Box–Muller). */
export function randomNeuronAttention(T: number, layers = 4, heads = 4, d = 64, seed = 1): Attention {
  const rand = mulberry32(seed);
  const normal = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  const n = layers * heads * T;
  const query = Float32Array.from({ length: n * d }, normal),
    key = Float32Array.from({ length: n * d }, normal);
  const attention = new Float32Array(n * T);
  const scale = 1 / Math.sqrt(d);
  for (let lh = 0; lh < layers * heads; lh++)
    for (let i = 0; i < T; i++) {
      const o = (lh * T + i) * T,
        qo = (lh * T + i) * d;
      let max = -Infinity;
      for (let j = 0; j < T; j++) {
        let z = 0;
        for (let m = 0, ko = (lh * T + j) * d; m < d; m++) z += query[qo + m] * key[ko + m];
        attention[o + j] = z * scale;
        max = Math.max(max, z * scale);
      }
      let sum = 0;
      for (let j = 0; j < T; j++) sum += attention[o + j] = Math.exp(attention[o + j] - max);
      for (let j = 0; j < T; j++) attention[o + j] /= sum;
    }
  return {
    ...syntheticAttention(T, layers, heads, attention),
    query: { dims: [layers, heads, T, d], data: query },
    key: { dims: [layers, heads, T, d], data: key },
  };
}

interface Timing {
  renderMs: number;
  loadMs: number;
  expandMs: number;
  hoverMs: number[];
  scrollMs: number[];
  /** Drawn rows after the scrolls, and token elements in the page. */
  rows: string;
  tokens: number;
}

/** Swaps the views bundle of a standalone page for `bundle` (another build's views). */
function withBundle(html: string, bundle: string | null): string {
  if (bundle === null) return html;
  const start = html.lastIndexOf('<script>') + '<script>'.length,
    end = html.lastIndexOf('</script>');
  return html.slice(0, start) + bundle.replace(/<\/script/gi, '<\\/script') + html.slice(end);
}

async function measure(browser: Browser, html: string, T: number): Promise<Timing> {
  return withHtmlPage(browser, html, { width: 1400, height: 900 }, async (page, url) => {
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(url, { timeout: 600_000 });
    await page.waitForSelector('.attnviz-neuron-view', { timeout: 600_000 });
    const r = await page.evaluate(
      async ({ T }) => {
        type Handle = { update(p: Record<string, unknown>): void };
        const frame = () => new Promise((res) => requestAnimationFrame(() => res(undefined)));
        const root = document.querySelector<HTMLElement>('.attnviz-neuron-view')!;
        const view = (root as unknown as { attnvizView: Handle }).attnvizView;
        const render = performance.getEntriesByName('attnviz:render')[0].duration;
        const load = performance.getEntriesByName('attnviz:render')[0].startTime + render;
        await frame();
        let t0 = performance.now();
        view.update({ selected: Math.floor(T / 2), pinned: true, expanded: true });
        await frame();
        const expand = performance.now() - t0;
        view.update({ pinned: false });
        const hover: number[] = [];
        for (let k = 0; k < 20; k++) {
          const tokens = [...root.querySelectorAll<HTMLElement>('.av-token[data-side=left]')];
          const visible = tokens.filter((t) => {
            const b = t.getBoundingClientRect();
            return b.top >= 0 && b.bottom <= innerHeight;
          });
          const t = (visible.length ? visible : tokens)[(k * 7) % Math.max(1, visible.length || tokens.length)];
          await frame();
          t0 = performance.now();
          t.dispatchEvent(new MouseEvent('mouseenter'));
          await frame();
          hover.push(performance.now() - t0);
        }
        // Frame times while the page scrolls by 300 px every frame (the view redraws in its own frame callback).
        scrollTo(0, 0);
        await frame();
        const stamps = await new Promise<number[]>((res) => {
          const out: number[] = [];
          const step = (t: number) => {
            out.push(t);
            if (out.length > 30) return res(out);
            scrollBy(0, 300);
            requestAnimationFrame(step);
          };
          requestAnimationFrame(step);
        });
        const scroll = stamps.slice(1).map((t, k) => t - stamps[k]);
        return {
          render,
          load,
          expand,
          hover,
          scroll,
          rows: root.dataset.rows ?? '(all)',
          tokens: root.querySelectorAll('.av-token').length,
        };
      },
      { T },
    );
    if (errors.length) throw new Error(`page error: ${errors.join('; ')}`);
    return {
      renderMs: r.render,
      loadMs: r.load,
      expandMs: r.expand,
      hoverMs: r.hover,
      scrollMs: r.scroll,
      rows: r.rows,
      tokens: r.tokens,
    };
  });
}

const ms = (x: number, w: number) => x.toFixed(0).padStart(w);

async function main(): Promise<void> {
  const sizes = (option('--sizes') ?? '185,369,1024,2048').split(',').map(Number);
  const runs = Number(option('--runs') ?? 3);
  const bundlePath = option('--bundle');
  const bundle = bundlePath ? readFileSync(bundlePath, 'utf8') : null;
  console.log(machineLine());
  console.log(loadLine('at start'));
  const browser = await launchChromium();
  console.log(
    `chromium ${browser.version()}; views ${bundlePath ?? 'of this build'}; 4 layers × 4 heads, d = 64; ` +
      `viewport 1400 × 900; medians of ${runs} loads\n`,
  );
  console.log('tokens  HTML MB  neuronView()  page→view  expand  hover med/p95  scroll frame med/p95  drawn rows');
  try {
    for (const T of sizes) {
      const html = withBundle(renderHtml(randomNeuronAttention(T), { view: 'neuron' }), bundle);
      const rs: Timing[] = [];
      for (let i = 0; i < runs; i++) rs.push(await measure(browser, html, T));
      const hover = rs.flatMap((r) => r.hoverMs),
        scroll = rs.flatMap((r) => r.scrollMs);
      console.log(
        `${String(T).padStart(6)}  ${(Buffer.byteLength(html) / 1e6).toFixed(1).padStart(7)}  ` +
          `${ms(median(rs.map((r) => r.renderMs)), 12)}  ${ms(median(rs.map((r) => r.loadMs)), 9)}  ` +
          `${ms(median(rs.map((r) => r.expandMs)), 6)}  ${ms(median(hover), 6)} / ${ms(p95(hover), 4)}  ` +
          `${ms(median(scroll), 12)} / ${ms(p95(scroll), 5)}  ${rs[0].rows} (${rs[0].tokens} token elements)`,
      );
    }
  } finally {
    await browser.close();
  }
  console.log(`\n${loadLine('at end')}`);
}

if (process.argv[1]?.endsWith('neuron-view.js'))
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
