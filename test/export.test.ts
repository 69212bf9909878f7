/**
 * Export: the binary encoding's precision and size, the standalone HTML (one copy of the data, ≤ 2 bytes per
 * attention value, no external resource, works from file:// offline), and `attnviz export` to HTML/PNG/SVG.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Attention } from '../src/core/attention.js';
import { readAttentionFile } from '../src/core/files.js';
import { decodeBase85, encodeBase85 } from '../src/core/base85.js';
import { decodeAttention, encodeAttention } from '../src/core/encode.js';
import { f16ToF32, f32BitsToF16 } from '../src/core/half.js';
import { renderHtml } from '../src/export/html.js';
import { HAVE_CHROMIUM, launch, openHtml } from './browser.js';
import { HAVE_SHARED, maxAbsDiff, SHARED } from './shared.js';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const tmp = await mkdtemp(join(tmpdir(), 'attnviz-export-'));
afterAll(() => rm(tmp, { recursive: true, force: true }));

/** A random-softmax Attention of BERT-base shape (the study's measurement data), seeded. */
function randomAttention(L: number, H: number, T: number, d = 0): Attention {
  let seed = 1;
  const rand = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
  const data = new Float32Array(L * H * T * T);
  for (let row = 0; row < L * H * T; row++) {
    let sum = 0;
    for (let j = 0; j < T; j++) sum += data[row * T + j] = Math.exp(4 * rand());
    for (let j = 0; j < T; j++) data[row * T + j] /= sum;
  }
  const qk = d
    ? {
        query: { dims: [L, H, T, d], data: Float32Array.from({ length: L * H * T * d }, () => rand() * 8 - 4) },
        key: { dims: [L, H, T, d], data: Float32Array.from({ length: L * H * T * d }, () => rand() * 8 - 4) },
      }
    : {};
  return {
    tokens: Array.from({ length: T }, (_, i) => `t${i}`),
    text: 'x',
    pair: null,
    sentenceBStart: null,
    model: { source: 'random', modelType: 'bert' },
    causal: false,
    attention: { dims: [L, H, T, T], data },
    ...qk,
  };
}

describe('base 85 text', () => {
  test('round-trips any length, and never contains characters unsafe in HTML', () => {
    for (let n = 0; n < 40; n++) {
      const bytes = Uint8Array.from({ length: n }, (_, i) => (i * 73 + n * 31) & 255);
      if (n === 7) bytes.fill(255);
      const text = encodeBase85(bytes);
      expect(text.length).toBe(Math.ceil(n / 4) * 5);
      expect(text).not.toMatch(/["&'<>\\`]/);
      expect([...decodeBase85(text, n)]).toEqual([...bytes]);
    }
  });
});

describe('binary encoding', () => {
  test('attention within 2.5e-4 (near 1) and 1e-7 (near 0); q/k within half precision', () => {
    const a = randomAttention(2, 3, 20, 8);
    a.attention.data[0] = 1;
    a.attention.data[1] = 1e-6;
    const b = decodeAttention(encodeAttention(a));
    expect(b.tokens).toEqual(a.tokens);
    expect(maxAbsDiff(b.attention.data, a.attention.data)).toBeLessThan(2.5e-4);
    expect(Math.abs(b.attention.data[1] - 1e-6)).toBeLessThan(1e-7);
    for (let i = 0; i < a.query!.data.length; i++)
      expect(Math.abs(b.query!.data[i] - a.query!.data[i])).toBeLessThanOrEqual(Math.abs(a.query!.data[i]) * 2 ** -11);
  });

  test('float16 conversion rounds to nearest even and round-trips every half', () => {
    const f = new Float32Array(1),
      u = new Uint32Array(f.buffer);
    for (let h = 0; h < 0x7c00; h++) {
      f[0] = f16ToF32(h);
      expect(f32BitsToF16(u[0])).toBe(h);
    }
    f[0] = 1 + 2 ** -11; // halfway between 1 and the next half: rounds to even (1)
    expect(f16ToF32(f32BitsToF16(u[0]))).toBe(1);
  });
});

describe('standalone HTML', () => {
  test.each([32, 128])('at most 2 bytes per attention value, 12×12 heads, %i tokens', (T) => {
    const a = randomAttention(12, 12, T, 64);
    const html = renderHtml(a, { view: 'head' });
    const values = 12 * 12 * T * T;
    const dataBytes = html.length - renderHtml(randomAttention(1, 1, 1), { view: 'head' }).length;
    expect(dataBytes / values).toBeLessThanOrEqual(1.9);
    // The data is embedded once: exactly one data block.
    expect(html.match(/<script type="application\/x-attnviz"/g)).toHaveLength(1);
    // No external resource: no src/href loads, no URL but the SVG namespace.
    expect(html).not.toMatch(/<script[^>]+src=|<link[^>]+href=|https?:\/\/(?!www\.w3\.org\/2000\/svg)/);
  });

  test('escapes hostile text in the title and options', () => {
    const a = { ...randomAttention(1, 1, 3), model: { source: '</title><script>alert(1)</script>', modelType: 'x' } };
    const html = renderHtml(a, { view: 'head', options: { title: '"><script>alert(2)</script>' } });
    expect(html).not.toContain('<script>alert');
  });
});

describe.skipIf(!HAVE_CHROMIUM || !HAVE_SHARED)('export in Chromium', () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await launch();
  });
  afterAll(async () => {
    await browser?.close();
  });

  test('the HTML opened from file:// renders with no network request and shows hostile tokens as text', async () => {
    const a = await readAttentionFile(join(SHARED, 'golden/cases/gpt2-tiny__html.safetensors'));
    const p = await openHtml(browser, renderHtml(a, { view: 'head' }));
    try {
      let dialogs = 0;
      p.page.on('dialog', async (d) => {
        dialogs++;
        await d.dismiss();
      });
      const texts = await p.page.locator('.av-token[data-side=left]').allTextContents();
      expect(texts.join('')).toContain('<script>alert(1)</script>');
      for (const t of await p.page.locator('.av-token').all()) await t.hover();
      expect(await p.page.locator('.attnviz script').count()).toBe(0);
      expect(dialogs).toBe(0);
      expect(p.requests).toEqual([]);
      expect(p.errors).toEqual([]);
    } finally {
      await p.close();
    }
  });

  test('attnviz export writes HTML, SVG and PNG', async () => {
    const from = join(SHARED, 'golden/cases/bert-tiny__cat_pair.safetensors');
    for (const ext of ['html', 'svg', 'png']) {
      const out = join(tmp, `head.${ext}`);
      const { stderr } = await run(
        process.execPath,
        ['dist/src/cli/main.js', 'export', '--view', 'head', '--from', from, '-o', out],
        { cwd: ROOT },
      );
      expect(stderr).toContain(`wrote ${out}`);
    }
    expect(await readFile(join(tmp, 'head.html'), 'utf8')).toMatch(/^<!doctype html>/);
    const svg = await readFile(join(tmp, 'head.svg'), 'utf8');
    expect(svg).toMatch(/^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    expect(svg.match(/<text /g)!.length).toBeGreaterThanOrEqual(2 * 17);
    const png = await readFile(join(tmp, 'head.png'));
    expect(png.subarray(1, 4).toString()).toBe('PNG');
  });

  test('attnviz export rejects a bad view and a bad extension with exit code 2', async () => {
    const from = join(SHARED, 'golden/cases/bert-tiny__cat_pair.safetensors');
    await expect(
      run(
        process.execPath,
        ['dist/src/cli/main.js', 'export', '--view', 'nope', '--from', from, '-o', join(tmp, 'x.html')],
        { cwd: ROOT },
      ),
    ).rejects.toMatchObject({ code: 2, stderr: expect.stringContaining('--view must be one of head, model, neuron') });
    await expect(
      run(
        process.execPath,
        ['dist/src/cli/main.js', 'export', '--view', 'head', '--from', from, '-o', join(tmp, 'x.gif')],
        { cwd: ROOT },
      ),
    ).rejects.toMatchObject({ code: 2 });
  });
});
