/**
 * The app's model view at a long input (prints figures; not a test): `attnviz serve --model DIR` as a child, the
 * app opened in headless Chromium on `?view=model&truncate=1&text=…` (a text cut to the model's positions: 512
 * tokens for BERT-base), as a user who shares a URL would. Past 2^23 values the server streams the pooled
 * overview (each head max-pooled to 128 × 128, layer by layer) and the page paints each layer as it comes.
 *
 * Each run is a fresh page on a server that already holds the model (a first, untimed load warms it), on a text
 * of its own: the server keeps its newest result, and the same text again would be answered from it without
 * running the model (the texts differ in where "cat" falls, all 512 tokens).
 * - attention request: the page's POST /api/attention, from sending it to its last byte (the server computing
 *   and streaming; what the page waits for);
 * - first layer / all layers painted: navigation start → the model view's `data-layers` reaching 1 / L, plus
 *   the next animation frame (on screen); and the first layer from the request's start (the server's part);
 * - after data: all layers painted minus the response's end (the page's own decoding and drawing).
 *
 *   npm run build && node dist/bench/app-model-view.js --model DIR [--runs 3] [--against CHECKOUT]
 *
 * `--against CHECKOUT` (another clone or worktree, built: e.g. one at the commit before a change) serves the
 * same model from that checkout's dist/ too, and the page loads alternate between the two servers, so both
 * sets of figures come from one run on the same machine load.
 *
 * DIR: a BERT-base-shaped checkpoint, e.g. the one bench/checkpoints.ts writes (bench/engine.ts leaves it in
 * $TMPDIR/attnviz-bench-bert-base). Target (issue 13): the model view painted ≤ 1 s at 512 tokens, 12 × 12.
 */
import { cpus, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { launchChromium } from '../src/export/chromium.js';
import { type Server, startServer } from './serve.js';

interface AppTiming {
  requestMs: number;
  requestStartMs: number;
  responseEndMs: number;
  firstLayerMs: number;
  allLayersMs: number;
  layers: number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { model: { type: 'string' }, runs: { type: 'string', default: '3' }, against: { type: 'string' } },
  });
  if (!values.model) throw new Error('--model DIR is required (a BERT-base-shaped checkpoint folder)');
  const runs = Number(values.runs);
  console.log(
    `machine: ${cpus()[0].model}, ${cpus().length} cores; load average ${loadavg().map((x) => x.toFixed(1))}`,
  );
  const clis = [
    { label: 'this checkout', cli: fileURLToPath(new URL('../src/cli/main.js', import.meta.url)) },
    ...(values.against
      ? [{ label: resolve(values.against), cli: join(resolve(values.against), 'dist', 'src', 'cli', 'main.js') }]
      : []),
  ];
  const servers: Server[] = [];
  const browser = await launchChromium();
  try {
    for (const { cli } of clis) servers.push(await startServer(['--model', values.model], { cli }));
    // "the" and "cat" are one token each in BERT's vocabulary: 600 words are cut to the model's 512 positions.
    // Load `n` puts "cat" at every 7th word from word n mod 7, so two loads in a row never share a text.
    const query = (n: number) => {
      const text = Array.from({ length: 600 }, (_, i) => (i % 7 === n % 7 ? 'cat' : 'the')).join(' ');
      return `?view=model&truncate=1&theme=dark&text=${encodeURIComponent(text)}`;
    };
    const once = async (url: string, n: number): Promise<AppTiming> => {
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
        await page.goto(url + query(n));
        // The last layer can be painted before the response has ended (its timing entry comes at the end).
        await page.waitForFunction(
          () =>
            ((window as unknown as Record<string, number>).__all ?? -1) > 0 &&
            performance.getEntriesByType('resource').some((e) => e.name.endsWith('/api/attention')),
          undefined,
          { timeout: 300_000 },
        );
        return await page.evaluate(() => {
          const w = window as unknown as Record<string, number>;
          const req = performance
            .getEntriesByType('resource')
            .filter((e) => e.name.endsWith('/api/attention')) as PerformanceResourceTiming[];
          const last = req[req.length - 1];
          return {
            requestMs: last ? last.responseEnd - last.startTime : Number.NaN,
            requestStartMs: last ? last.startTime : Number.NaN,
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
    for (const { url } of servers) await once(url, 0); // loads the model into the server
    const rs: AppTiming[][] = servers.map(() => []);
    for (let i = 1; i <= runs; i++) for (const [k, { url }] of servers.entries()) rs[k].push(await once(url, i));
    console.log(`app, BERT-base shapes (${values.model}), 512 tokens, model view; medians of ${runs} page loads`);
    for (const [k, { label }] of clis.entries()) {
      const ms = (f: (t: AppTiming) => number) => `${median(rs[k].map(f)).toFixed(0)} ms`;
      console.log(`${label}:`);
      console.log(`  attention request (server computes + streams the pooled overview): ${ms((t) => t.requestMs)}`);
      console.log(`  navigation → attention request sent: ${ms((t) => t.requestStartMs)}`);
      console.log(`  navigation → first layer painted: ${ms((t) => t.firstLayerMs)}`);
      console.log(`  attention request sent → first layer painted: ${ms((t) => t.firstLayerMs - t.requestStartMs)}`);
      console.log(`  navigation → all ${rs[k][0].layers} layers painted: ${ms((t) => t.allLayersMs)}`);
      console.log(`  after the last byte → all layers painted: ${ms((t) => t.allLayersMs - t.responseEndMs)}`);
    }
    console.log(`load average at end ${loadavg().map((x) => x.toFixed(1))}`);
  } finally {
    await browser.close();
    for (const { child } of servers) child.kill();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
