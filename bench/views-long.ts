/**
 * Long-input views benchmark (prints figures; not a test), in headless Chromium, at 2048 and 8192 tokens with
 * 32 heads. The attention is built in the page (a causal pattern: an attention sink on token 0, a local band,
 * noise; rows sum to 1), as the app holds it for long inputs: heads loaded one at a time (`loadHead`) and the
 * model view's layers arriving max-pooled (`addLayer`), never all L × H × T² at once.
 *
 * - heatmap first paint: headView() on one head → the heatmap drawn (ms), the head's generation excluded;
 *   the mean of all 32 heads likewise (2048 only: 32 heads at 8192 take minutes to generate);
 * - zoom / pan frames: 60 wheel zooms about the centre and 60 drag steps, each one frame's work: the view
 *   moved, drawn, and the canvas rasterised (getImageData forces it), p50 / p95;
 * - lines mode at 2048 tokens (one head): a token's mouseenter → the next frame, its lines drawn, p50 / p95;
 * - model view, 16 layers × 32 heads: modelView() with no data, then a layer every task as [32, 128, 128]
 *   max-pooled blocks (what a server would stream): first layer painted, all layers painted (ms);
 * - page memory: the renderer process's peak resident memory (VmHWM) over the run at that size (a new page);
 * - with `--trace`, the zoom and pan frames again from a Chromium trace: each frame's main-thread work
 *   (ProxyMain::BeginMainFrame: the animation-frame callbacks that draw, then style, paint and commit) as CPU
 *   time and as wall time, p50 / p95, and the garbage collections in those frames. On a loaded machine the
 *   wall time of a frame is mostly time off the CPU; its CPU time is what the code costs.
 *
 *   npm run build && node dist/bench/views-long.js [--sizes 2048,8192] [--bundle FILE]
 *
 * `--bundle` also runs another build's views bundle (e.g. main's dist/views/attnviz-views.js, before a change),
 * alternating with this build's at each size, so the two are compared in one run under the same load.
 *
 * Targets (issue 9): zoom/pan p95 ≤ 16 ms at 2048; model view first paint ≤ 2 s for 16 × 32 at 2048; page
 * memory ≤ 1 GB.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { renderHtml } from '../src/export/html.js';
import { launchChromium } from '../src/export/image.js';
import { randomAttention } from './views-model.js';

const HEADS = 32;
const LAYERS = 16;
const POOLED = 128;

interface Figures {
  firstPaintMs: number;
  generateMs: number;
  meanPaintMs: number | null;
  linesHover: number[];
  zoom: number[];
  pan: number[];
  modelFirstMs: number;
  modelAllMs: number;
}

/** Everything that runs in the page: builds data, mounts the views, times them. */
async function inPage(page: Page, T: number): Promise<Figures> {
  return page
    .evaluate(
      async ([T, HEADS, withMean]) => {
        type Heatmap = {
          zoom(f: number, x: number, y: number): void;
          pan(dx: number, dy: number): void;
          draw(): void;
          viewport(): { cell: number };
        };
        type Api = {
          headView(el: HTMLElement, data: unknown, options: unknown): { heatmap(): Heatmap | null; destroy(): void };
          modelView(
            el: HTMLElement,
            data: unknown,
            options: unknown,
          ): { addLayer(l: number, w: Float32Array, s: number[]): void };
        };
        const api = (window as unknown as { attnvizStandalone: Api }).attnvizStandalone;
        const frame = () => new Promise((r) => requestAnimationFrame(() => r(undefined)));
        const tokens = Array.from({ length: T }, (_, i) => `tok${i}`);
        const empty = (L: number) => ({
          tokens,
          text: '',
          pair: null,
          sentenceBStart: null,
          model: { source: 'bench', modelType: 'llama' },
          causal: true,
          attention: { dims: [L, HEADS, T, T], data: new Float32Array(0) },
        });
        // A causal head: a sink on token 0, a band of width ~8·(h+1) before the diagonal, uniform noise.
        let generateMs = 0;
        const head = (h: number) => {
          const t0 = performance.now();
          const w = new Float32Array(T * T);
          const band = 8 * (h + 1);
          let s = h * 2654435761;
          for (let r = 0; r < T; r++) {
            let sum = 0;
            const o = r * T;
            for (let c = 0; c <= r; c++) {
              s = (s * 1103515245 + 12345) >>> 0;
              const v = (c === 0 ? 20 : 0) + (r - c < band ? 4 : 0) + (s >>> 24) / 256;
              w[o + c] = v;
              sum += v;
            }
            for (let c = 0; c <= r; c++) w[o + c] /= sum;
          }
          generateMs += performance.now() - t0;
          return w;
        };
        const host = document.createElement('div');
        host.style.width = '1000px';
        document.body.append(host);
        const painted = async (view: { heatmap(): Heatmap | null }) => {
          while (!view.heatmap() || !document.querySelector('.av-heatmap[data-level]')) await frame();
          await frame();
        };

        // ---- head view heatmap, one head ----
        let t0 = performance.now();
        const v = api.headView(host, empty(1), {
          mode: 'heatmap',
          heads: [0],
          loadHead: async (_l: number, h: number) => head(h),
        });
        await painted(v);
        const firstPaintMs = performance.now() - t0 - generateMs;
        const gen = generateMs;
        const hm = v.heatmap()!;
        const canvas = document.querySelector<HTMLCanvasElement>('.av-heatmap-canvas')!;
        const ctx = canvas.getContext('2d')!;
        const step = (f: () => void) => {
          const t = performance.now();
          f();
          hm.draw();
          ctx.getImageData(0, 0, 1, 1);
          return performance.now() - t;
        };
        performance.mark('attnviz:frames-start');
        const zoom: number[] = [],
          pan: number[] = [];
        for (let i = 0; i < 60; i++) {
          zoom.push(step(() => hm.zoom(i < 40 ? 1.25 : 0.8, 300, 300)));
          await frame();
        }
        for (let i = 0; i < 60; i++) {
          pan.push(step(() => hm.pan(i < 30 ? -15 : 15, i % 2 ? -10 : 10)));
          await frame();
        }
        performance.mark('attnviz:frames-end');
        v.destroy();

        // ---- the mean of all heads ----
        let meanPaintMs: number | null = null;
        if (withMean) {
          generateMs = 0;
          t0 = performance.now();
          const m = api.headView(host, empty(1), {
            mode: 'heatmap',
            combine: 'mean',
            loadHead: async (_l: number, h: number) => head(h),
          });
          await painted(m);
          meanPaintMs = performance.now() - t0 - generateMs;
          m.destroy();
        }

        // ---- lines mode: only hovered tokens' lines ----
        const linesHover: number[] = [];
        if (withMean) {
          const l = api.headView(host, empty(1), { mode: 'lines', heads: [0], loadHead: async () => head(0) });
          while (!document.querySelector('.av-token')) await frame();
          const tokens = [...document.querySelectorAll<HTMLElement>('.av-token[data-side=left]')];
          for (let k = 0; k < 30; k++) {
            const t = tokens[(k * 67) % tokens.length];
            await frame();
            const t1 = performance.now();
            t.dispatchEvent(new MouseEvent('mouseenter'));
            await frame();
            linesHover.push(performance.now() - t1);
            t.dispatchEvent(new MouseEvent('mouseleave'));
          }
          l.destroy();
        }
        return { firstPaintMs, generateMs: gen, meanPaintMs, linesHover, zoom, pan };
      },
      [T, HEADS, T <= 2048] as const,
    )
    .then(async (head) => ({ ...head, ...(await modelInPage(page, T)) }));
}

async function modelInPage(page: Page, T: number): Promise<{ modelFirstMs: number; modelAllMs: number }> {
  return page.evaluate(
    async ([T, L, H, P]) => {
      type Api = {
        modelView(
          el: HTMLElement,
          data: unknown,
          options: unknown,
        ): { addLayer(l: number, w: Float32Array, s: number[]): void };
      };
      const api = (window as unknown as { attnvizStandalone: Api }).attnvizStandalone;
      const frame = () => new Promise((r) => requestAnimationFrame(() => r(undefined)));
      const task = () => new Promise((r) => setTimeout(r, 0));
      document.querySelectorAll('.attnviz').forEach((e) => e.remove());
      const host = document.createElement('div');
      document.body.append(host);
      const t0 = performance.now();
      const view = api.modelView(
        host,
        {
          tokens: Array.from({ length: T }, (_, i) => `tok${i}`),
          text: '',
          pair: null,
          sentenceBStart: null,
          model: { source: 'bench', modelType: 'llama' },
          causal: true,
          attention: { dims: [L, H, T, T], data: new Float32Array(0) },
        },
        {},
      );
      let first = 0;
      for (let l = 0; l < L; l++) {
        // What a server sends per layer: [H, P, P] block maxima of a causal pattern.
        const w = new Float32Array(H * P * P);
        for (let h = 0; h < H; h++)
          for (let i = 0; i < P; i++)
            for (let j = 0; j <= i; j++) w[(h * P + i) * P + j] = j === 0 ? 0.9 : i - j < h / 4 + 1 ? 0.4 : 0.05;
        view.addLayer(l, w, [P, P]);
        if (l === 0) {
          await frame();
          first = performance.now() - t0;
        }
        await task();
      }
      await frame();
      return { modelFirstMs: first, modelAllMs: performance.now() - t0 };
    },
    [T, LAYERS, HEADS, Math.min(POOLED, T)] as const,
  );
}

/** Peak resident memory (MB) of the largest renderer process under the browser launched with `marker`. */
function rendererPeakMb(marker: string): number {
  const procs = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  const info = new Map<number, { ppid: number; cmd: string }>();
  for (const pid of procs) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      info.set(Number(pid), { ppid, cmd: readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ') });
    } catch {
      // The process ended while we read.
    }
  }
  const root = [...info].find(([, p]) => p.cmd.includes(marker) && !p.cmd.includes('--type='));
  if (!root) return NaN;
  const under = (pid: number): boolean => {
    for (let p = info.get(pid); p; p = info.get(p.ppid)) if (p.ppid === root[0]) return true;
    return false;
  };
  let kb = 0;
  for (const [pid, p] of info) {
    if (!p.cmd.includes('--type=renderer') || !under(pid)) continue;
    const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmHWM:\s+(\d+)/);
    if (m) kb = Math.max(kb, Number(m[1]));
  }
  return kb / 1024;
}

interface TraceEvent {
  name: string;
  ph: string;
  ts: number;
  dur?: number;
  tdur?: number;
}

/** Frames between the attnviz:frames-start and -end marks of a trace: CPU and wall ms each, and GC totals. */
function traceFrames(json: string): { cpu: number[]; wall: number[]; gcs: number; gcMs: number } {
  const events = (JSON.parse(json) as { traceEvents: TraceEvent[] }).traceEvents;
  const mark = (name: string) => events.find((e) => e.name === name)?.ts ?? Number.NaN;
  const [start, end] = [mark('attnviz:frames-start'), mark('attnviz:frames-end')];
  const within = (e: TraceEvent) => e.ph === 'X' && e.ts >= start && e.ts <= end;
  const frames = events.filter((e) => e.name === 'ProxyMain::BeginMainFrame' && within(e));
  const gc = events.filter((e) => (e.name === 'MajorGC' || e.name === 'MinorGC') && within(e));
  return {
    cpu: frames.map((e) => (e.tdur ?? 0) / 1000),
    wall: frames.map((e) => (e.dur ?? 0) / 1000),
    gcs: gc.length,
    gcMs: gc.reduce((a, e) => a + (e.tdur ?? 0), 0) / 1000,
  };
}

const pct = (xs: number[], q: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * q))];

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const opt = (name: string) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const sizes = (opt('--sizes') ?? '2048,8192').split(',').map(Number);
  const other = opt('--bundle');
  const trace = args.includes('--trace');
  console.log(
    `machine: ${cpus()[0].model}, ${cpus().length} cores, ` +
      `${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}`,
  );
  console.log(
    `load average at start: ${loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}`,
  );
  const dir = await mkdtemp(join(tmpdir(), 'attnviz-bench-'));
  // A flag Chromium ignores, so this run's browser process can be told from others' in /proc.
  const marker = `--attnviz-bench=${process.pid}`;
  // Any exported page carries the views bundle (and exposes attnvizStandalone); its own data is tiny.
  const html = renderHtml(randomAttention(2, 1, 1), { view: 'head' });
  const pages: [string, string][] = [['this build', join(dir, 'page.html')]];
  await writeFile(pages[0][1], html);
  if (other) {
    // The page's one inline script without a type is the bundle (data blocks have one).
    const script = /<script>[\s\S]*?<\/script>/.exec(html)![0];
    const bundle = readFileSync(other, 'utf8').replace(/<\/script/gi, '<\\/script');
    pages.unshift([other, join(dir, 'other.html')]);
    await writeFile(
      pages[0][1],
      html.replace(script, () => `<script>${bundle}</script>`),
    );
  }
  let browser: Browser | undefined;
  try {
    browser = await launchChromium([marker]);
    console.log(`chromium ${browser.version()}; ${HEADS} heads; model view ${LAYERS} × ${HEADS}\n`);
    console.log(
      'bundle      tokens  heatmap first paint  (head generated in)  mean of 32  zoom p50/p95     pan p50/p95    ' +
        '  lines hover p50/p95  model first / all layers  page peak MB',
    );
    for (const T of sizes)
      for (const [name, file] of pages) {
        const page = await browser.newPage({ viewport: { width: 1200, height: 1000 }, deviceScaleFactor: 1 });
        try {
          await page.goto(pathToFileURL(file).href);
          await page.waitForFunction(() => 'attnvizStandalone' in window);
          if (trace) await browser.startTracing(page, { categories: ['cc', 'devtools.timeline', 'blink.user_timing'] });
          const r = await inPage(page, T);
          const frames = trace ? traceFrames((await browser.stopTracing()).toString()) : null;
          const ms = (x: number) => `${x.toFixed(1)} ms`;
          const hover = r.linesHover.length
            ? `${pct(r.linesHover, 0.5).toFixed(1)} / ${pct(r.linesHover, 0.95).toFixed(1)} ms`
            : '–';
          console.log(
            `${(name === 'this build' ? name : 'other').padEnd(10)}  ` +
              `${String(T).padStart(6)}  ${ms(r.firstPaintMs).padStart(19)}  ` +
              `${ms(r.generateMs).padStart(19)}  ` +
              `${(r.meanPaintMs === null ? '–' : ms(r.meanPaintMs)).padStart(10)}  ` +
              `${`${pct(r.zoom, 0.5).toFixed(1)} / ${pct(r.zoom, 0.95).toFixed(1)} ms`.padStart(15)}  ` +
              `${`${pct(r.pan, 0.5).toFixed(1)} / ${pct(r.pan, 0.95).toFixed(1)} ms`.padStart(15)}  ` +
              `${hover.padStart(19)}  ` +
              `${`${r.modelFirstMs.toFixed(0)} / ${r.modelAllMs.toFixed(0)} ms`.padStart(24)}  ` +
              `${rendererPeakMb(marker).toFixed(0).padStart(12)}`,
          );
          if (frames)
            console.log(
              `          ${frames.cpu.length} zoom/pan frames traced: main-thread CPU p50 / p95 ` +
                `${pct(frames.cpu, 0.5).toFixed(1)} / ${pct(frames.cpu, 0.95).toFixed(1)} ms, wall ` +
                `${pct(frames.wall, 0.5).toFixed(1)} / ${pct(frames.wall, 0.95).toFixed(1)} ms; ` +
                `${frames.gcs} GCs, ${frames.gcMs.toFixed(1)} ms CPU`,
            );
        } finally {
          await page.close();
        }
      }
    console.log(
      `\nload average at end: ${loadavg()
        .map((x) => x.toFixed(2))
        .join(' ')}`,
    );
  } finally {
    await browser?.close();
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
