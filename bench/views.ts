/**
 * Views benchmark (prints figures; not a test), in headless Chromium on exported standalone HTML, for a
 * 12-layer × 12-head random-softmax Attention at 32, 128 and 512 tokens:
 *
 * - head view: first render (navigation start → view drawn) and hover latency (event → next frame), both
 *   in the mode the view picks by itself (lines up to 96 tokens, heatmap above) and forced to lines;
 * - model view: first render (bench/views-model.ts);
 * - exported bytes per attention value (head and model views carry no q/k).
 *
 *   npm run build && node dist/bench/views.js [--sizes 32,128,512] [--runs 5]
 *
 * BertViz on this machine kind (study §4): head-view hover 1.1 s at 128 tokens, model view 38 s at 128 and
 * no finish at 256, 46 bytes per value. Targets: hover < 30 ms at 512; model view < 1.5 s at 512; ≤ 2 B/value.
 */
import type { Browser } from 'playwright-core';
import { renderHtml } from '../src/export/html.js';
import { launchChromium } from '../src/export/chromium.js';
import { machineLine, median, option, p95, withHtmlPage } from './harness.js';
import { measureModelView, randomAttention } from './views-model.js';

interface HeadTiming {
  firstRenderMs: number;
  hoverMs: number[];
  mode: string;
  drawn: number;
}

async function measureHeadView(
  browser: Browser,
  T: number,
  options: Record<string, unknown>,
  hovers: number,
): Promise<HeadTiming> {
  const html = renderHtml(randomAttention(T), { view: 'head', options });
  return withHtmlPage(browser, html, { width: 1200, height: 900 }, async (page, url) => {
    await page.addInitScript(() => {
      const w = window as unknown as Record<string, number>;
      new MutationObserver((_, o) => {
        if (!document.querySelector('.attnviz[data-drawn]')) return;
        o.disconnect();
        w.__drawnAt = performance.now();
      }).observe(document, { subtree: true, childList: true, attributes: true, attributeFilter: ['data-drawn'] });
    });
    await page.goto(url, { timeout: 300_000 });
    await page.waitForFunction(() => (window as unknown as Record<string, number>).__drawnAt !== undefined, undefined, {
      timeout: 300_000,
    });
    const firstRenderMs = await page.evaluate(() => (window as unknown as Record<string, number>).__drawnAt);
    // Hover: the event that a real pointer sends, then the next frame (the redraw is on screen).
    const r = await page.evaluate(async (n) => {
      const root = document.querySelector<HTMLElement>('.attnviz')!;
      const times: number[] = [];
      const frame = () => new Promise((res) => requestAnimationFrame(() => res(undefined)));
      const tokens = [...root.querySelectorAll<HTMLElement>('.av-token[data-side=left]')];
      const canvas = root.querySelector('canvas')!;
      for (let k = 0; k < n; k++) {
        await frame();
        const t0 = performance.now();
        if (tokens.length) {
          tokens[(k * 7) % tokens.length].dispatchEvent(new MouseEvent('mouseenter'));
        } else {
          const box = canvas.getBoundingClientRect();
          canvas.dispatchEvent(
            new MouseEvent('mousemove', {
              clientX: box.left + 120 + ((k * 37) % (box.width - 120)),
              clientY: box.top + ((k * 53) % box.height),
              bubbles: true,
            }),
          );
        }
        await frame();
        times.push(performance.now() - t0);
        if (tokens.length) tokens[(k * 7) % tokens.length].dispatchEvent(new MouseEvent('mouseleave'));
      }
      return { times, mode: root.dataset.mode!, drawn: Number(root.dataset.drawn) };
    }, hovers);
    return { firstRenderMs, hoverMs: r.times, mode: r.mode, drawn: r.drawn };
  });
}

async function main(): Promise<void> {
  const sizes = (option('--sizes') ?? '32,128,512').split(',').map(Number);
  const runs = Number(option('--runs') ?? 3);
  console.log(machineLine());
  const browser = await launchChromium();
  console.log(
    `chromium ${browser.version()}; 12 layers × 12 heads, random softmax; medians of ${runs} loads, 30 hovers each\n`,
  );
  try {
    console.log('head view                 tokens  mode     first render  hover median  hover p95  drawn');
    for (const T of sizes) {
      for (const [name, options] of [
        ['auto', {}],
        ['lines', { mode: 'lines' }],
      ] as const) {
        if (name === 'lines' && T <= 96) continue;
        const rs: HeadTiming[] = [];
        for (let i = 0; i < runs; i++) rs.push(await measureHeadView(browser, T, options, 30));
        const hovers = rs.flatMap((r) => r.hoverMs);
        const first = median(rs.map((r) => r.firstRenderMs))
          .toFixed(0)
          .padStart(9);
        console.log(
          `  ${name.padEnd(22)}  ${String(T).padStart(6)}  ${rs[0].mode.padEnd(7)}  ${first} ms  ` +
            `${median(hovers).toFixed(1).padStart(9)} ms  ${p95(hovers).toFixed(1).padStart(6)} ms  ${rs[0].drawn}`,
        );
      }
    }
    console.log('\nmodel view                tokens  first render  painted');
    for (const T of sizes) {
      const rs = [];
      for (let i = 0; i < runs; i++) rs.push(await measureModelView(browser, T));
      console.log(
        `                          ${String(T).padStart(6)}  ${median(rs.map((r) => r.firstRenderMs))
          .toFixed(0)
          .padStart(9)} ms  ${median(rs.map((r) => r.paintedMs))
          .toFixed(0)
          .padStart(5)} ms`,
      );
    }
    console.log('\nexported HTML             tokens  bytes      bytes per attention value (12×12×T²)');
    const empty = renderHtml(randomAttention(1, 1, 1), { view: 'head' }).length;
    for (const T of sizes) {
      for (const view of ['head', 'model'] as const) {
        const bytes = renderHtml(randomAttention(T), { view }).length;
        console.log(
          `  ${view.padEnd(22)}  ${String(T).padStart(6)}  ${String(bytes).padStart(9)}  ` +
            `${((bytes - empty) / (144 * T * T)).toFixed(3)} (whole file: ` +
            `${(bytes / (144 * T * T)).toFixed(3)})`,
        );
      }
    }
  } finally {
    await browser.close();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
