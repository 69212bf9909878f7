/**
 * Issue 14 item 3: images without a browser. The views' scenes drawn in Node (export/image.ts): PNGs compared
 * with committed references (test/images/*.png, pixel tolerance), SVGs parsed as XML, `attnviz export` and
 * `attnviz neurons` writing images with Chromium out of reach, and --scale checked.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decode } from 'fast-png';
import { XMLValidator } from 'fast-xml-parser';
import { afterAll, describe, expect, test } from 'vitest';
import type { Attention } from '../src/core/attention.js';
import { encodeAttentionFile } from '../src/core/attention-file.js';
import { readAttentionFile } from '../src/core/files.js';
import { renderImage } from '../src/export/chromium.js';
import { renderHtml } from '../src/export/html.js';
import { reportPng, viewImage, viewSvg } from '../src/export/image.js';
import type { HeadsReport, StepsReport } from '../src/analysis/report-data.js';
import { colorScale } from '../src/views/reports/widgets.js';
import { HAVE_CHROMIUM } from './browser.js';
import { cli, expectCliError, HAVE_CLI } from './cli-run.js';
import { HAVE_SHARED, SHARED } from './shared.js';
import { synth } from './views-synthetic.js';

const tmp = await mkdtemp(join(tmpdir(), 'attnviz-images-'));
afterAll(() => rm(tmp, { recursive: true, force: true }));

/** 2 layers × 3 heads × 6 tokens (a sentence pair) of synth() weights, with q and k of head size 8. */
function sample(): Attention {
  const [L, H, T, d] = [2, 3, 6, 8];
  const layer = synth(T, H);
  const attention = new Float32Array(L * H * T * T);
  for (let l = 0; l < L; l++) attention.set(layer, l * layer.length);
  const vectors = (k: number) =>
    Float32Array.from({ length: L * H * T * d }, (_, i) => Math.sin(i * 0.37 + k) * 2 + Math.cos(i * 1.3) * 0.5);
  return {
    tokens: ['[CLS]', 'The', 'cat', '[SEP]', 'sat', '[SEP]'],
    text: 'The cat',
    pair: 'sat',
    sentenceBStart: 4,
    model: { source: 'synthetic', modelType: 'bert' },
    causal: false,
    attention: { dims: [L, H, T, T], data: attention },
    query: { dims: [L, H, T, d], data: vectors(0) },
    key: { dims: [L, H, T, d], data: vectors(1) },
  };
}

const VIEWS = {
  head: { layer: 1 },
  model: {},
  neuron: { layer: 1, head: 2, selected: 2, expanded: true },
} as const;

/** A 1-layer, 2-head attention of T tokens (synth() weights): past 96 tokens the head view is a heatmap. */
function long(T: number): Attention {
  return {
    tokens: Array.from({ length: T }, (_, i) => `t${i}`),
    text: 'long',
    pair: null,
    sentenceBStart: null,
    model: { source: 'synthetic', modelType: 'gpt2' },
    causal: false,
    attention: { dims: [1, 2, T, T], data: synth(T, 2) },
  };
}

/** Pixels of a decoded PNG whose colour is exactly `hex` (#rrggbb). */
function count(png: ReturnType<typeof decode>, hex: string): number {
  const [r, g, b] = [1, 3, 5].map((i) => Number.parseInt(hex.slice(i, i + 2), 16));
  let n = 0;
  for (let i = 0; i < png.width * png.height; i++) {
    const o = i * png.channels;
    if (png.data[o] === r && png.data[o + 1] === g && png.data[o + 2] === b) n++;
  }
  return n;
}

/** Fraction of pixels whose colour differs by more than 32 in a channel (1 when the sizes differ). */
function pixelDiff(a: Uint8Array, b: Uint8Array): number {
  const x = decode(a),
    y = decode(b);
  if (x.width !== y.width || x.height !== y.height) return 1;
  const [cx, cy] = [x.channels, y.channels];
  let diff = 0;
  for (let i = 0; i < x.width * x.height; i++)
    for (let c = 0; c < 3; c++)
      if (Math.abs(x.data[i * cx + c] - y.data[i * cy + c]) > 32) {
        diff++;
        break;
      }
  return diff / (x.width * x.height);
}

/**
 * Compares a PNG with test/images/<name>.png. A missing reference is written and reported, to be looked at and
 * committed; with CI=true it fails instead. A mismatch is saved beside it as <name>-changed.png.
 */
async function compareReference(png: Uint8Array, name: string): Promise<number> {
  const ref = join(fileURLToPath(new URL('./images/', import.meta.url)), `${name}.png`);
  if (!existsSync(ref)) {
    if (process.env.CI === 'true') throw new Error(`CI=true: reference image ${ref} is missing`);
    await mkdir(dirname(ref), { recursive: true });
    await writeFile(ref, png);
    console.warn(`wrote missing reference image ${ref}`);
    return 0;
  }
  const differing = pixelDiff(png, await readFile(ref));
  if (differing >= 0.005) await writeFile(ref.replace(/\.png$/, '-changed.png'), png);
  return differing;
}

describe('images drawn in Node', () => {
  for (const [view, options] of Object.entries(VIEWS))
    test(`the ${view} view's PNG matches its reference`, async () => {
      const png = viewImage(sample(), view as keyof typeof VIEWS, options, 'png') as Uint8Array;
      expect(Buffer.from(png.subarray(1, 4)).toString()).toBe('PNG');
      expect(await compareReference(png, `${view}-view`)).toBeLessThan(0.005);
    });

  test('the PNG has the scene size × scale in pixels, and its background is the theme', () => {
    const a = sample();
    const svg = viewSvg(a, 'model', {});
    const [w, h] = ['width', 'height'].map((k) => Number(new RegExp(`<svg[^>]* ${k}="([\\d.]+)"`).exec(svg)![1]));
    for (const scale of [1, 2]) {
      const png = decode(viewImage(a, 'model', {}, 'png', scale) as Uint8Array);
      expect([png.width, png.height]).toEqual([Math.ceil(w * scale), Math.ceil(h * scale)]);
      // Dark theme's background (#111111) in the corner.
      expect(Array.from(png.data.subarray(0, 3))).toEqual([0x11, 0x11, 0x11]);
    }
  });

  test('SVGs parse as XML and hold every token label as text', () => {
    const a = sample();
    for (const view of Object.keys(VIEWS) as (keyof typeof VIEWS)[]) {
      const svg = viewSvg(a, view, VIEWS[view]);
      expect(XMLValidator.validate(svg), view).toBe(true);
      if (view !== 'model') for (const t of ['[CLS]', 'The', 'cat', 'sat']) expect(svg, view).toContain(`>${t}</text>`);
    }
    // The model view of 6 tokens draws lines, a path per opacity level and layer colour.
    expect(viewSvg(a, 'model', {})).toMatch(/<path d="M/);
  });

  test('hostile tokens are escaped in all three SVGs', () => {
    const a = { ...sample(), tokens: ['<script>', 'a&b', '"q"', '\u0000nul', 'lone\ud800', "'x'"] };
    for (const view of Object.keys(VIEWS) as (keyof typeof VIEWS)[]) {
      const svg = viewSvg(a, view, VIEWS[view]);
      expect(XMLValidator.validate(svg), view).toBe(true);
      expect(svg).not.toContain('<script>');
    }
  });

  test("past 96 tokens the head view's image is its heatmap: cells, labels, reference", async () => {
    const a = long(120);
    const svg = viewSvg(a, 'head', {});
    expect(XMLValidator.validate(svg)).toBe(true);
    // One raster of 120 × 120 cells, and every 10th token labelled on both axes (7.5 px cells: 12 px apart).
    expect(svg.match(/<image /g)).toHaveLength(1);
    for (const t of ['t0', 't10', 't110']) expect(svg.match(new RegExp(`>${t}</text>`, 'g'))).toHaveLength(2);
    expect(svg).not.toContain('>t5</text>');
    const png = viewImage(a, 'head', {}, 'png') as Uint8Array;
    expect(await compareReference(png, 'head-heatmap')).toBeLessThan(0.005);
    // A single head in its colour: its strongest cell is the head's colour (head 1: #ff7f0e, d3's orange).
    expect(count(decode(viewImage(a, 'head', { heads: [1] }, 'png') as Uint8Array), '#ff7f0e')).toBeGreaterThan(0);
  });

  test('the head finder and generation reports as PNG: the grid and context colours of the page', () => {
    const heads: HeadsReport = {
      kind: 'heads',
      model: 'synthetic',
      layers: 2,
      heads: 3,
      texts: ['a b c'],
      skipped: [],
      metrics: [{ name: 'entropy', description: 'normalised entropy' }],
      summary: [[0.1, 0.5, 0.9, 0.3, 0.7, null].map((mean) => ({ mean, std: 0, n: 1, best: mean, bestText: 0 }))],
    };
    const png = decode(reportPng(heads, {}));
    expect(png.width).toBe(1268);
    const color = colorScale(
      'sequential',
      heads.summary[0].map((x) => x.mean),
    );
    // Each cell a 26 × 20 block of its mean's viridis colour (the undefined one grey), as the page's grid.
    for (const x of heads.summary[0]) expect(count(png, rgbHex(color(x.mean)))).toBeGreaterThanOrEqual(26 * 20);

    const a = { ...sample(), causal: true, sentenceBStart: null, pair: null };
    const steps: StepsReport = {
      kind: 'steps',
      model: 'synthetic',
      prompt: 'The cat',
      promptLength: 3,
      text: 'The cat sat',
      tokens: a.tokens,
      stopped: 'length',
      temperature: 0,
      steps: [1, 2, 3].map((id) => ({ id, token: a.tokens[2 + id], probability: 0.5, top: [] })),
    };
    const s = decode(reportPng(steps, { a }));
    // The context token with the largest weight has the page's full rgba(220, 60, 40) background.
    expect(count(s, '#dc3c28')).toBeGreaterThan(100);
  });

  test('a bad scale is one clear error', () => {
    for (const scale of [0, -1, Number.NaN, Number.POSITIVE_INFINITY, 9])
      expect(() => viewImage(sample(), 'head', {}, 'png', scale)).toThrow(/--scale must be a number above 0/);
  });
});

/** `rgb(r, g, b)`, `#rgb` or `#rrggbb` as `#rrggbb`. */
function rgbHex(css: string): string {
  const m = /rgb\((\d+), (\d+), (\d+)\)/.exec(css);
  if (m)
    return `#${m
      .slice(1)
      .map((v) => Number(v).toString(16).padStart(2, '0'))
      .join('')}`;
  return css.length === 4 ? `#${[...css.slice(1)].map((c) => c + c).join('')}` : css;
}

describe.skipIf(!HAVE_CLI)('attnviz export and neurons without Chromium', () => {
  const noBrowser = { CHROMIUM_PATH: join(tmp, 'no-chromium') };

  test('export writes PNG and SVG of each view with CHROMIUM_PATH pointing to a missing file', async () => {
    const from = join(tmp, 'sample.safetensors');
    await writeFile(from, encodeAttentionFile(sample()));
    for (const view of ['head', 'model', 'neuron'])
      for (const ext of ['png', 'svg']) {
        const out = join(tmp, `${view}.${ext}`);
        const extra = view === 'neuron' ? ['--head', '2', '--token', '2'] : [];
        const r = await cli(['export', '--view', view, '--from', from, '-o', out, ...extra], noBrowser);
        expect(r.code, r.stderr).toBe(0);
        const bytes = await readFile(out);
        if (ext === 'png') expect(bytes.subarray(1, 4).toString()).toBe('PNG');
        else expect(XMLValidator.validate(bytes.toString('utf8'))).toBe(true);
      }
    const r = await cli(['export', '--view', 'model', '--from', from, '-o', join(tmp, 'x2.png'), '--scale', '2']);
    expect(r.code, r.stderr).toBe(0);
    const [one, two] = await Promise.all(['model.png', 'x2.png'].map((f) => readFile(join(tmp, f))));
    expect(decode(two).width).toBe(2 * decode(one).width);
    const n = await cli(
      ['neurons', '--from', from, '--layer', '1', '--head', '2', '--token', '2', '-o', join(tmp, 'n.png')],
      noBrowser,
    );
    expect(n.code, n.stderr).toBe(0);
    // A head view past 96 tokens (a heatmap) too.
    const long120 = join(tmp, 'long.safetensors');
    await writeFile(long120, encodeAttentionFile(long(120)));
    const h = await cli(['export', '--view', 'head', '--from', long120, '-o', join(tmp, 'long.png')], noBrowser);
    expect(h.code, h.stderr).toBe(0);
    expect(decode(await readFile(join(tmp, 'long.png'))).width).toBeGreaterThan(900);
  }, 300_000);

  test('a bad --scale, or --scale on an SVG: exit 2, one line', async () => {
    const from = join(tmp, 'sample.safetensors');
    await writeFile(from, encodeAttentionFile(sample()));
    for (const scale of ['0', '-2', 'big', '9', 'Infinity'])
      expectCliError(
        await cli(['export', '--view', 'head', '--from', from, '-o', join(tmp, 'bad.png'), `--scale=${scale}`]),
        /--scale must be a number above 0 and at most 8/,
      );
    expectCliError(
      await cli(['export', '--view', 'head', '--from', from, '-o', join(tmp, 'bad.svg'), '--scale', '2']),
      '--scale is for .png outputs',
    );
    expect(existsSync(join(tmp, 'bad.png'))).toBe(false);
  }, 300_000);
});

/** Each line segment of an SVG's paths, keyed by colour and coordinates, with its opacity. */
function segments(svg: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const [, d, color, opacity] of svg.matchAll(/<path d="([^"]*)" stroke="([^"]+)" stroke-opacity="([\d.]+)"/g))
    for (const seg of d.split('M').slice(1)) out.set(`${color} ${seg}`, Number(opacity));
  return out;
}

describe.skipIf(!HAVE_CHROMIUM || !HAVE_SHARED)('the same scene as the page', () => {
  test("Node's head view SVG draws what the page's own toSVG() draws (bert-tiny cat/pair)", async () => {
    const a = await readAttentionFile(join(SHARED, 'golden/cases/bert-tiny__cat_pair.safetensors'));
    for (const layer of [0, 1]) {
      const page = String(await renderImage(renderHtml(a, { view: 'head', options: { layer } }), 'svg'));
      const node = viewSvg(a, 'head', { layer });
      // Size, header and token labels: identical.
      const fixed = (svg: string) => [/^<svg[^>]*>/.exec(svg)![0], ...svg.matchAll(/<(text|rect)[^>]*>/g)].join('');
      expect(fixed(node)).toBe(fixed(page));
      // Lines: the page holds the attention in 12 bits (core/encode.ts), Node the file's float32, so a segment may
      // fall in the next opacity level, or under the 1/255 cut, but no further.
      const [n, p] = [segments(node), segments(page)];
      let missing = 0;
      for (const [key, opacity] of n) {
        const other = p.get(key);
        if (other === undefined) missing++;
        else expect(Math.abs(other - opacity), key).toBeLessThanOrEqual(1 / 64 + 1e-3);
      }
      expect(missing + Math.max(0, p.size - (n.size - missing))).toBeLessThanOrEqual(0.02 * n.size);
    }
  }, 180_000);
});
