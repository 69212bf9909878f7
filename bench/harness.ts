/**
 * What the views benchmarks share: their `--name value` options, the machine and load-average lines every
 * figure in RESULTS.md is recorded with, medians and percentiles, reproducible random numbers, and a page
 * opened in headless Chromium from a temporary HTML file (file://, as an exported view is opened).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import type { Attention } from '../src/core/attention.js';

/** The value after `--name` on the command line, if given. */
export function option(name: string): string | undefined {
  const args = process.argv.slice(2);
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

/** The q-quantile of `xs` (the element at ⌊n·q⌋ of the sorted values). */
export const quantile = (xs: number[], q: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * q))];
export const median = (xs: number[]) => quantile(xs, 0.5);
export const p95 = (xs: number[]) => quantile(xs, 0.95);

export function machineLine(): string {
  return (
    `machine: ${cpus()[0].model}, ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, ` +
    `node ${process.version}`
  );
}

/** `load average <when>: 1 min, 5 min, 15 min`: timings under load are not comparisons. */
export function loadLine(when: string): string {
  return `load average ${when}: ${loadavg()
    .map((x) => x.toFixed(2))
    .join(' ')}`;
}

/** A non-causal Attention of tokens tok0 … over `data` `[layers, heads, T, T]`: a benchmark's random input. */
export function syntheticAttention(T: number, layers: number, heads: number, data: Float32Array): Attention {
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

/** mulberry32: uniform numbers in [0, 1), the same sequence for the same seed. */
export function mulberry32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Writes `html` to a temporary file, opens a page of `viewport` (device scale 1) and runs `measure` on it
 * (the page not yet navigated: `url` is the file's), then closes the page and removes the file.
 */
export async function withHtmlPage<T>(
  browser: Browser,
  html: string,
  viewport: { width: number; height: number },
  measure: (page: Page, url: string) => Promise<T>,
): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'attnviz-bench-'));
  const file = join(dir, 'view.html');
  await writeFile(file, html);
  const page = await browser.newPage({ viewport, deviceScaleFactor: 1 });
  try {
    return await measure(page, pathToFileURL(file).href);
  } finally {
    await page.close();
    await rm(dir, { recursive: true, force: true });
  }
}
