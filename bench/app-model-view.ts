/**
 * The app's model view at a long input (prints figures; not a test): `attnviz serve --model DIR` as a child, the
 * app opened in headless Chromium on `?view=model&truncate=1&text=…` (a text cut to the model's positions: 512
 * tokens for BERT-base), as a user who shares a URL would. Past 2^23 values the server streams the pooled
 * overview (each head max-pooled to 128 × 128, layer by layer) and the page paints each layer as it comes.
 *
 * Each run is a fresh page on a server that already holds the model (a first, untimed load warms it):
 * - attention request: the page's POST /api/attention, from sending it to its last byte (the server computing
 *   and streaming; what the page waits for);
 * - first layer / all layers painted: navigation start → the model view's `data-layers` reaching 1 / L, plus
 *   the next animation frame (on screen);
 * - after data: all layers painted minus the response's end (the page's own decoding and drawing).
 *
 *   npm run build && node dist/bench/app-model-view.js --model DIR [--runs 3]
 *
 * DIR: a BERT-base-shaped checkpoint, e.g. the one bench/checkpoints.ts writes (bench/engine.ts leaves it in
 * $TMPDIR/attnviz-bench-bert-base). Target (issue 13): the model view painted ≤ 1 s at 512 tokens, 12 × 12.
 */
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { launchChromium } from '../src/export/chromium.js';
import { startServer } from './serve.js';

interface AppTiming {
  requestMs: number;
  responseEndMs: number;
  firstLayerMs: number;
  allLayersMs: number;
  layers: number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { model: { type: 'string' }, runs: { type: 'string', default: '3' } } });
  if (!values.model) throw new Error('--model DIR is required (a BERT-base-shaped checkpoint folder)');
  const runs = Number(values.runs);
  console.log(
    `machine: ${cpus()[0].model}, ${cpus().length} cores; load average ${loadavg().map((x) => x.toFixed(1))}`,
  );
  const { url, child } = await startServer(['--model', values.model]);
  const browser = await launchChromium();
  try {
    // "the" is one token in BERT's vocabulary: 600 of them are cut to the model's 512 positions.
    const text = Array.from({ length: 600 }, (_, i) => (i % 7 === 6 ? 'cat' : 'the')).join(' ');
    const query = `?view=model&truncate=1&theme=dark&text=${encodeURIComponent(text)}`;
    const once = async (): Promise<AppTiming> => {
      const page = await browser.newPage({ viewport: { width: 1300, height: 1000 }, deviceScaleFactor: 1 });
      try {
        await page.addInitScript(() => {
          const w = window as unknown as Record<string, number>;
          new MutationObserver(() => {
            const root = document.querySelector<HTMLElement>('.attnviz-model-view');
            const n = Number(root?.dataset.layers ?? 0);
            if (n >= 1 && w.__first === undefined) {
              w.__first = -1;
              requestAnimationFrame(() => (w.__first = performance.now()));
            }
            const rows = document.querySelectorAll('.attnviz-model-view .av-axis-layer').length;
            if (n >= 1 && n >= rows && w.__all === undefined) {
              w.__all = -1;
              w.__layers = n;
              requestAnimationFrame(() => (w.__all = performance.now()));
            }
          }).observe(document, { subtree: true, childList: true, attributes: true, attributeFilter: ['data-layers'] });
        });
        await page.goto(url + query);
        await page.waitForFunction(() => ((window as unknown as Record<string, number>).__all ?? -1) > 0, undefined, {
          timeout: 300_000,
        });
        return await page.evaluate(() => {
          const w = window as unknown as Record<string, number>;
          const req = performance
            .getEntriesByType('resource')
            .filter((e) => e.name.endsWith('/api/attention')) as PerformanceResourceTiming[];
          const last = req[req.length - 1];
          return {
            requestMs: last ? last.responseEnd - last.startTime : Number.NaN,
            responseEndMs: last ? last.responseEnd : Number.NaN,
            firstLayerMs: w.__first,
            allLayersMs: w.__all,
            layers: w.__layers,
          };
        });
      } finally {
        await page.close();
      }
    };
    await once(); // loads the model into the server
    const rs: AppTiming[] = [];
    for (let i = 0; i < runs; i++) rs.push(await once());
    const ms = (f: (t: AppTiming) => number) => `${median(rs.map(f)).toFixed(0)} ms`;
    console.log(`app, BERT-base shapes (${values.model}), 512 tokens, model view; medians of ${runs} page loads`);
    console.log(`  attention request (server computes + streams the pooled overview): ${ms((t) => t.requestMs)}`);
    console.log(`  navigation → first layer painted: ${ms((t) => t.firstLayerMs)}`);
    console.log(`  navigation → all ${rs[0].layers} layers painted: ${ms((t) => t.allLayersMs)}`);
    console.log(`  after the last byte → all layers painted: ${ms((t) => t.allLayersMs - t.responseEndMs)}`);
    console.log(`load average at end ${loadavg().map((x) => x.toFixed(1))}`);
  } finally {
    await browser.close();
    child.kill();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
