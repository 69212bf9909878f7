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
import { viewImage, viewSvg } from '../src/export/image.js';
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

  test('a bad scale is one clear error', () => {
    for (const scale of [0, -1, Number.NaN, Number.POSITIVE_INFINITY, 9])
      expect(() => viewImage(sample(), 'head', {}, 'png', scale)).toThrow(/--scale must be a number above 0/);
  });
});

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
