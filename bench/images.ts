/**
 * Image export benchmark (prints figures; not a test): PNG and SVG of the model view drawn in Node
 * (export/image.ts: the view's scene to SVG; for the PNG, resvg for all but the thumbnails' hairlines, which
 * export/hairlines.ts draws into its pixels), beside the Chromium path it replaces (the standalone HTML opened in
 * headless Chromium and the view's own toPNG()/toSVG(), launch included, as `attnviz export` ran it) and the
 * first Node path (resvg stroking every line of the SVG), in the same run. Wall and CPU time (median of the runs):
 * on a loaded machine the CPU time is the steadier figure.
 *
 * - a 12 layers × 12 heads × 32-token model view (random softmax rows, bench/views-model.ts): time of SVG and PNG
 *   (targets: SVG ≤ 200 ms, PNG ≤ 500 ms), bytes;
 * - a head view of 200 tokens (a heatmap) as PNG, and the head finder (12 × 12) and generation reports as PNG;
 * - BERT-tiny's model view of the golden cat/pair case (../shared/golden): PNG bytes at the default scale
 *   (target ≤ 1 MB);
 * - raster cells (a 12 × 12 model view of 128 tokens: heatmap thumbnails) as PNG data URIs against one <rect> per
 *   cell: SVG bytes and time.
 *
 *   node dist/bench/images.js                 # 3 runs each, Chromium when it is there
 *   node dist/bench/images.js --runs 5 --no-chromium
 */
import { existsSync } from 'node:fs';
import os from 'node:os';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { Attention } from '../src/core/attention.js';
import { readAttentionFile } from '../src/core/files.js';
import { chromiumLocation, renderImage } from '../src/export/chromium.js';
import { renderHtml } from '../src/export/html.js';
import type { HeadsReport, StepsReport } from '../src/analysis/report-data.js';
import { DEFAULT_SCALE, reportPng, svgToPng, viewImage, viewSvg } from '../src/export/image.js';
import { GRID_WIDTH } from '../src/views/layout.js';
import { drawGrid, fullLayers, modelGrid, openingGrid } from '../src/views/model-grid.js';
import { type Pixels, SvgPainter } from '../src/views/painter.js';
import { resolveTheme } from '../src/views/palette.js';
import { randomAttention } from './views-model.js';

const CAT_PAIR = fileURLToPath(
  new URL('../../../shared/golden/cases/bert-tiny__cat_pair.safetensors', import.meta.url),
);

/** Medians of `runs` wall and CPU timings of `f` (ms), and its last result. */
async function time<T>(runs: number, f: () => T | Promise<T>): Promise<{ ms: number; cpu: number; out: T }> {
  const ms: number[] = [],
    cpu: number[] = [];
  let out!: T;
  for (let i = 0; i < runs; i++) {
    const t = performance.now(),
      c = process.cpuUsage();
    out = await f();
    ms.push(performance.now() - t);
    const u = process.cpuUsage(c);
    cpu.push((u.user + u.system) / 1000);
  }
  const median = (x: number[]) => x.sort((a, b) => a - b)[Math.floor(runs / 2)];
  return { ms: median(ms), cpu: median(cpu), out };
}

const times = (t: { ms: number; cpu: number }) =>
  `${t.ms.toFixed(0).padStart(6)} ms (cpu ${t.cpu.toFixed(0).padStart(5)} ms)`;

const size = (x: string | Uint8Array) => (typeof x === 'string' ? Buffer.byteLength(x) : x.length);
const kb = (n: number) => `${(n / 1024).toFixed(0)} KB`;
const met = (ok: boolean) => (ok ? 'met' : 'NOT met');

/** The model view's SVG with raster cells as one <rect> per cell rather than a PNG data URI. */
function modelSvgWithRects(a: Attention): string {
  const [L, H] = a.attention.dims;
  const layers = Array.from({ length: L }, (_, l) => l);
  const grid = modelGrid(
    a,
    { layers, heads: Array.from({ length: H }, (_, h) => h), arrived: fullLayers(a, layers) },
    openingGrid(a, {}, false),
    resolveTheme('dark'),
  );
  const p = new SvgPainter(GRID_WIDTH, grid.g.height, grid.theme.background);
  p.image = (x: number, y: number, w: number, h: number, px: Pixels) => {
    const [cw, ch] = [w / px.width, h / px.height];
    const hex = (i: number) => px.data[i].toString(16).padStart(2, '0');
    for (let r = 0; r < px.height; r++)
      for (let c = 0; c < px.width; c++) {
        const i = (r * px.width + c) * 4;
        p.rect(x + c * cw, y + r * ch, cw, ch, `#${hex(i)}${hex(i + 1)}${hex(i + 2)}`);
      }
  };
  drawGrid(p, grid, null);
  return p.toString();
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { runs: { type: 'string' }, 'no-chromium': { type: 'boolean' } } });
  const runs = Number(values.runs ?? 3);
  const chromium = !values['no-chromium'] && existsSync(chromiumLocation());
  const cpus = os.cpus();
  console.log(
    `machine: ${cpus[0]?.model ?? 'unknown'}, ${cpus.length} cores, Node ${process.version}; ` +
      `load average ${os
        .loadavg()
        .map((x) => x.toFixed(1))
        .join(' ')}; median of ${runs} runs; default scale ` +
      `${DEFAULT_SCALE}`,
  );

  // 12 × 12 × 32: the targets.
  const a = randomAttention(32);
  const svg = await time(runs, () => viewSvg(a, 'model', {}));
  const png = await time(runs, () => viewImage(a, 'model', {}, 'png'));
  const png2 = await time(runs, () => viewImage(a, 'model', {}, 'png', 2));
  const whole = await time(runs, () => svgToPng(svg.out));
  console.log('\n12 layers × 12 heads × 32 tokens, model view');
  console.log(`  Node SVG            ${times(svg)}  ${kb(size(svg.out))}  (target ≤ 200 ms: ${met(svg.ms <= 200)})`);
  console.log(
    `  Node PNG (scale ${DEFAULT_SCALE}) ${times(png)}  ${kb(size(png.out))}  (target ≤ 500 ms: ${met(png.ms <= 500)})`,
  );
  console.log(`  Node PNG (scale 2)  ${times(png2)}  ${kb(size(png2.out))}`);
  console.log(`  resvg, whole SVG    ${times(whole)}  ${kb(size(whole.out))}  (before: resvg stroked every line)`);
  if (chromium) {
    const html = renderHtml(a, { view: 'model' });
    const csvg = await time(runs, () => renderImage(html, 'svg'));
    const cpng = await time(runs, () => renderImage(html, 'png'));
    const launched = '  (launch included)';
    console.log(`  Chromium SVG        ${times(csvg)}  ${kb(size(csvg.out))}${launched}`);
    console.log(`  Chromium PNG (2×)   ${times(cpng)}  ${kb(size(cpng.out))}${launched}`);
  }

  // BERT-tiny, the golden cat/pair case.
  if (existsSync(CAT_PAIR)) {
    const cat = await readAttentionFile(CAT_PAIR);
    const [L, H, T] = cat.attention.dims;
    const p1 = await time(runs, () => viewImage(cat, 'model', {}, 'png'));
    const p2 = viewImage(cat, 'model', {}, 'png', 2);
    console.log(`\nBERT-tiny cat/pair (${L} layers × ${H} heads × ${T} tokens), model view PNG`);
    // 1 MB as 10⁶ bytes, the stricter reading.
    console.log(
      `  Node, scale ${DEFAULT_SCALE}       ${times(p1)}  ${size(p1.out)} bytes  ` +
        `(target ≤ 1 MB: ${met(size(p1.out) <= 1e6)})`,
    );
    console.log(`  Node, scale 2                 ${kb(size(p2))}`);
    if (chromium) {
      const c = await renderImage(renderHtml(cat, { view: 'model' }), 'png');
      console.log(`  Chromium (2×, as before)      ${kb(size(c))}`);
    }
  } else console.log(`\n(${CAT_PAIR} missing: BERT-tiny figures skipped)`);

  // The head view's heatmap (200 tokens) and the reports, as PNG.
  const heatmap = await time(runs, () => viewImage(randomAttention(200), 'head', {}, 'png'));
  const [L, H] = a.attention.dims;
  const heads: HeadsReport = {
    kind: 'heads',
    model: 'random',
    layers: L,
    heads: H,
    texts: ['a text'],
    skipped: [],
    metrics: ['entropy', 'first', 'previous'].map((name) => ({ name, description: name })),
    summary: [0, 1, 2].map((m) =>
      Array.from({ length: L * H }, (_, i) => ({ mean: Math.sin(i + m) ** 2, std: 0.1, n: 1, best: 1, bestText: 0 })),
    ),
  };
  const headsPng = await time(runs, () => reportPng(heads, {}));
  // A generation of 16 tokens after a 16-token prompt (random weights stand in for a decoder's).
  const g = { ...a, causal: true };
  const steps: StepsReport = {
    kind: 'steps',
    model: 'random',
    prompt: 'prompt',
    promptLength: 16,
    text: g.tokens.join(''),
    tokens: g.tokens,
    stopped: 'length',
    temperature: 0,
    steps: g.tokens
      .slice(16)
      .map((token, i) => ({ id: i, token, probability: 0.5, top: [{ id: i, token, probability: 0.5 }] })),
  };
  const stepsPng = await time(runs, () => reportPng(steps, { a: g }));
  console.log('\nOther images, PNG at scale 1');
  console.log(`  head view, 200 tokens (heatmap)   ${times(heatmap)}  ${kb(size(heatmap.out))}`);
  console.log(`  head finder report, ${L} × ${H} heads ${times(headsPng)}  ${kb(size(headsPng.out))}`);
  console.log(`  generation report, 16 + 16 tokens  ${times(stepsPng)}  ${kb(size(stepsPng.out))}`);

  // Raster cells: data URIs against rects, 128 tokens (heatmap thumbnails).
  const long = randomAttention(128);
  const uri = await time(runs, () => viewSvg(long, 'model', {}));
  const rects = await time(1, () => modelSvgWithRects(long));
  const uriPng = await time(1, () => svgToPng(uri.out));
  const rectPng = await time(1, () => svgToPng(rects.out));
  console.log('\n12 × 12 × 128 tokens (heatmap thumbnails): raster cells in the SVG');
  console.log(
    `  PNG data URIs   SVG ${uri.ms.toFixed(0).padStart(6)} ms  ${kb(size(uri.out))}; ` +
      `to PNG ${uriPng.ms.toFixed(0)} ms`,
  );
  console.log(
    `  <rect> per cell SVG ${rects.ms.toFixed(0).padStart(6)} ms  ${kb(size(rects.out))}; ` +
      `to PNG ${rectPng.ms.toFixed(0)} ms`,
  );
  console.log(
    `\nload average at the end ${os
      .loadavg()
      .map((x) => x.toFixed(1))
      .join(' ')}`,
  );
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
