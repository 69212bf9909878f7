/**
 * The app in headless Chromium against the real server on the embedded model: type a text, switch views,
 * change the layer, pin a token, download the HTML, restore a shared URL — and an error path (an unknown
 * hub id, offline) that shows a readable message instead of a blank view. No request leaves the server.
 */
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Attention } from '../src/core/attention.js';
import { encodeAttentionFile } from '../src/core/attention-file.js';
import { startServer, type RunningServer } from '../src/server/server.js';
import { compareScreenshot, HAVE_CHROMIUM, launch } from './browser.js';
import { HAVE_SHARED, SHARED } from './shared.js';
import { removeTinyModels, writeTinyModel } from './tiny-models.js';
import { BART, bartConfig, bartWeights } from './tiny-seq2seq.js';

let server: RunningServer;
let browser: Browser;
let hubCache: string;

beforeAll(async () => {
  if (!HAVE_CHROMIUM) return;
  hubCache = await mkdtemp(join(tmpdir(), 'attnviz-app-hub-'));
  server = await startServer({ port: 0, env: { HF_HUB_CACHE: hubCache, HF_HUB_OFFLINE: '1' }, preload: true });
  browser = await launch();
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
  if (hubCache) await rm(hubCache, { recursive: true, force: true });
});

interface Opened {
  page: Page;
  /** Requests to anything but the server. */
  foreign: string[];
  errors: string[];
}

async function open(query = ''): Promise<Opened> {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 }, acceptDownloads: true });
  const foreign: string[] = [],
    errors: string[] = [];
  page.on('request', (r) => {
    if (!r.url().startsWith(server.url) && !/^(data|blob):/.test(r.url())) foreign.push(r.url());
  });
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${server.url}${query}`);
  return { page, foreign, errors };
}

/** Waits until the status line reports a finished run (and returns it). */
async function settled(page: Page, tokens?: number): Promise<string> {
  await page.waitForFunction(
    (n) => {
      const s = document.getElementById('status')?.textContent ?? '';
      return /tokens · \d+ layers/.test(s) && (n === undefined || s.includes(` ${n} tokens`));
    },
    tokens,
    { timeout: 30_000 },
  );
  return (await page.locator('#status').textContent())!;
}

const params = (page: Page) => new URL(page.url()).searchParams;

describe.runIf(HAVE_CHROMIUM)('the app', () => {
  test('opens on the embedded model and shows the head view of the default text', async () => {
    const { page, foreign, errors } = await open();
    // The status line names the model, then its family.
    expect(await settled(page)).toMatch(
      /^Universal Sentence Encoder lite \(embedded\) · use-lite · \d+ tokens · 2 layers × 4 heads/,
    );
    await expect.poll(() => page.locator('.attnviz-head-view').count()).toBe(1);
    expect(await page.locator('#model').inputValue()).toBe('embedded');
    expect(await page.locator('[role=tab][aria-selected=true]').textContent()).toBe('Head view');
    expect(await page.locator('#progress').isHidden()).toBe(true);
    expect(await page.locator('#error').isHidden()).toBe(true);
    expect(foreign).toEqual([]);
    expect(errors).toEqual([]);
    await page.close();
  });

  test(
    'typing updates the view (debounced) and the URL; views ' + 'switch as tabs; layer and pins go into the URL',
    async () => {
      const { page, foreign, errors } = await open();
      await settled(page);
      await page.locator('#text').fill('Dogs chase cats.');
      await expect.poll(() => params(page).get('text')).toBe('Dogs chase cats.');
      const tokens = () => page.locator('.attnviz-head-view .av-token[data-side=left]').allTextContents();
      await expect.poll(async () => (await tokens()).join(' '), { timeout: 30_000 }).toMatch(/Dog.*chase.*cat/);
      expect(await settled(page)).toContain(` ${(await tokens()).length} tokens`);

      // Layer 1 in the head view's own control.
      await page.locator('.attnviz-head-view select').first().selectOption('1');
      await expect.poll(() => params(page).get('layer')).toBe('1');
      // Head 2 alone (double-click solos it).
      await page.locator('.attnviz-head-view .av-head[data-head="2"]').dblclick();
      await expect.poll(() => params(page).get('heads')).toBe('2');
      // Pin the second query token.
      await page.locator('.attnviz-head-view .av-token[data-side=left][data-index="1"]').click();
      await expect.poll(() => params(page).get('pinned')).toBe('l1');

      await page.locator('[role=tab][data-view=model]').click();
      await expect.poll(() => page.locator('.attnviz-model-view').count()).toBe(1);
      expect(params(page).get('view')).toBe('model');
      await page.locator('[role=tab][data-view=neuron]').click();
      await expect.poll(() => page.locator('.attnviz-neuron-view').count()).toBe(1);
      // The neuron view opens on the state: layer 1, head 2, token 1 selected.
      const root = page.locator('.attnviz-neuron-view');
      expect(await root.getAttribute('data-layer')).toBe('1');
      expect(await root.getAttribute('data-head')).toBe('2');
      expect(await root.getAttribute('data-selected')).toBe('1');
      // Expanding the token's q·k computation goes into the URL, and a URL reopens it expanded.
      await root.locator('.av-toggle').click();
      await expect.poll(() => params(page).get('expanded')).toBe('1');
      expect(await root.getAttribute('data-expanded')).toBe('true');
      const again = await open(new URL(page.url()).search);
      await settled(again.page);
      const reopened = again.page.locator('.attnviz-neuron-view');
      expect(await reopened.getAttribute('data-selected')).toBe('1');
      expect(await reopened.getAttribute('data-expanded')).toBe('true');
      await again.page.close();
      expect(foreign).toEqual([]);
      expect(errors).toEqual([]);
      await page.close();
    },
  );

  test('a shared URL restores model, text, view, layer, heads and pinned tokens', async () => {
    const query = '?text=The+quick+brown+fox.&layer=1&heads=0,3&pinned=l2';
    const { page, errors } = await open(query);
    await settled(page);
    expect(await page.locator('#text').inputValue()).toBe('The quick brown fox.');
    expect(await page.locator('.attnviz-head-view select').first().inputValue()).toBe('1');
    const state = await page.evaluate(() => {
      const el = document.querySelector('.attnviz-head-view') as HTMLElement & {
        attnvizView: { state(): { layer: number; active: boolean[]; pinned: { side: string; index: number }[] } };
      };
      const s = el.attnvizView.state();
      return { layer: s.layer, active: s.active, pinned: s.pinned };
    });
    expect(state).toEqual({ layer: 1, active: [true, false, false, true], pinned: [{ side: 'left', index: 2 }] });
    expect(page.url()).toContain(query.slice(1));
    expect(errors).toEqual([]);
    await page.close();
  });

  test('downloads: HTML (a standalone page of the view), attention file, PNG and SVG', async () => {
    const { page } = await open('?text=Download+this.');
    await settled(page);
    const dir = await mkdtemp(join(tmpdir(), 'attnviz-dl-'));
    try {
      const save = async (button: string) => {
        const [download] = await Promise.all([page.waitForEvent('download'), page.locator(button).click()]);
        const path = join(dir, download.suggestedFilename());
        await download.saveAs(path);
        return { name: download.suggestedFilename(), bytes: await readFile(path) };
      };
      const html = await save('#dl-html');
      expect(html.name).toBe('attnviz-head-view.html');
      expect(html.bytes.toString()).toMatch(
        /^<!doctype html>[\s\S]*<script type="application\/x-attnviz" data-view="head"/,
      );
      const file = await save('#dl-attention');
      expect(file.name).toBe('attention.safetensors');
      expect(file.bytes.readBigUInt64LE(0)).toBeGreaterThan(0n);
      const png = await save('#dl-png');
      expect(png.name).toBe('attnviz-head-view.png');
      expect(png.bytes.subarray(1, 4).toString()).toBe('PNG');
      const svg = await save('#dl-svg');
      expect(svg.bytes.toString()).toMatch(/^<svg|^<\?xml/);

      // The downloaded page works on its own, from file://.
      const standalone = await browser.newPage();
      await standalone.goto(`file://${join(dir, html.name)}`);
      await standalone.waitForSelector('.attnviz-head-view');
      await standalone.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
      await page.close();
    }
  });

  test('an unknown hub id (offline) shows a readable error in the page, never a blank view', async () => {
    const { page, errors } = await open();
    await settled(page);
    await page.locator('#hub-id').fill('nobody/unknown-model');
    await page.locator('#hub-form button').click();
    await page.locator('#error').waitFor({ state: 'visible', timeout: 30_000 });
    const message = await page.locator('#error').textContent();
    expect(message).toMatch(/model "nobody\/unknown-model" is not in the Hugging Face cache/);
    expect(params(page).get('model')).toBe('nobody/unknown-model');
    // The last view stays on screen (dimmed), not an empty area.
    expect(await page.locator('.attnviz-head-view').count()).toBe(1);
    expect(await page.locator('#progress').isHidden()).toBe(true);

    // Opened directly from a URL with no view yet, the message takes the view's place.
    const fresh = await open('?model=nobody%2Funknown-model&text=Hello');
    await fresh.page.locator('#error').waitFor({ state: 'visible', timeout: 30_000 });
    expect(await fresh.page.locator('#view .placeholder').textContent()).toMatch(
      /^No view: model "nobody\/unknown-model"/,
    );
    // Back to the embedded model: the error goes, the view comes.
    await fresh.page.locator('#model').selectOption('embedded');
    await settled(fresh.page);
    expect(await fresh.page.locator('#error').isHidden()).toBe(true);
    expect(errors).toEqual([]);
    await fresh.page.close();
    await page.close();
  });

  test('layer-by-layer answers (the format of long inputs) are drawn like whole ones', async () => {
    const layered = await startServer({ port: 0, limits: { streamAbove: 1 }, preload: true });
    const page = await browser.newPage();
    try {
      const formats: string[] = [];
      page.on('response', (r) => {
        if (r.url().endsWith('/api/attention')) formats.push(r.headers()['x-attnviz-format']);
      });
      await page.goto(`${layered.url}?text=${'one+two+three+'.repeat(20)}`);
      expect(await settled(page)).toMatch(/ 2 layers × 4 heads/);
      expect(formats).toEqual(['avz1-layers']);
      expect(await page.locator('.attnviz-head-view select').first().locator('option').count()).toBe(2);
    } finally {
      await page.close();
      await layered.close();
    }
  });

  test('one theme for the page and all three views: light, dark, and auto following the system', async () => {
    /** The page's and the view root's computed backgrounds, and a pixel of the view's own canvas, per view. */
    const look = async (page: Page) => {
      const out: Record<string, string[]> = {};
      for (const view of ['head', 'model', 'neuron']) {
        await page.locator(`[role=tab][data-view=${view}]`).click();
        const root = page.locator(`.attnviz-${view}-view`);
        await root.waitFor();
        const css = await page.evaluate(
          (name) => [
            getComputedStyle(document.body).backgroundColor,
            getComputedStyle(document.querySelector(`.attnviz-${name}-view`)!).backgroundColor,
          ],
          view,
        );
        // The view's top-left corner (its padding), as painted.
        const box = (await root.boundingBox())!;
        const png = await page.screenshot({ clip: { x: box.x, y: box.y, width: 4, height: 4 } });
        const pixel = await page.evaluate(async (b64) => {
          const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
          const bitmap = await createImageBitmap(new Blob([bytes], { type: 'image/png' }));
          const ctx = new OffscreenCanvas(4, 4).getContext('2d')!;
          ctx.drawImage(bitmap, 0, 0);
          const [r, g, b] = ctx.getImageData(1, 1, 1, 1).data;
          return `rgb(${r}, ${g}, ${b})`;
        }, png.toString('base64'));
        out[view] = [...css, pixel];
      }
      return out;
    };
    const all = (color: string) => ({
      head: [color, color, color],
      model: [color, color, color],
      neuron: [color, color, color],
    });
    const DARK = 'rgb(17, 17, 17)',
      LIGHT = 'rgb(255, 255, 255)';

    const { page, errors } = await open('?text=Themes+everywhere.&theme=dark');
    await settled(page);
    expect(await page.locator('#theme').inputValue()).toBe('dark');
    expect(await look(page)).toEqual(all(DARK));
    // One control switches the page and the view shown, and goes into the URL.
    await page.locator('#theme').selectOption('light');
    expect(params(page).get('theme')).toBe('light');
    expect(await look(page)).toEqual(all(LIGHT));
    // Auto follows the system, and follows it when it changes.
    await page.locator('#theme').selectOption('auto');
    expect(params(page).has('theme')).toBe(false);
    await page.emulateMedia({ colorScheme: 'dark' });
    expect(await look(page)).toEqual(all(DARK));
    await page.emulateMedia({ colorScheme: 'light' });
    expect(await look(page)).toEqual(all(LIGHT));
    // The neuron view's own theme select is the page's control too.
    await page.locator('.attnviz-neuron-view select').filter({ hasText: 'Dark' }).selectOption('dark');
    await expect.poll(() => params(page).get('theme')).toBe('dark');
    expect(await page.locator('#theme').inputValue()).toBe('dark');
    expect(await page.evaluate(() => getComputedStyle(document.body).backgroundColor)).toBe(DARK);
    expect(errors).toEqual([]);
    await page.close();
  });

  test('opens an attention file written elsewhere (picker and drag-and-drop), viewed like a model run', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'attnviz-file-'));
    const { page, errors, foreign } = await open('?view=model&theme=dark');
    try {
      await settled(page);
      // As written from PyTorch's output_attentions: attention and tokens, no q/k.
      const path = join(dir, 'cat.safetensors');
      await writeFile(path, encodeAttentionFile(fromPyTorch()));
      await page.locator('#file-input').setInputFiles(path);
      await expect
        .poll(() => page.locator('#status').textContent())
        .toBe('cat.safetensors: bert-base-uncased · bert · 5 tokens · 2 layers × 3 heads');
      // The view, the theme and the URL as for a model run; the texts are the file's, shown but not edited.
      expect(await page.locator('.attnviz-model-view').getAttribute('data-thumbnails')).toBe('6');
      expect(await page.locator('.attnviz-model-view').getAttribute('data-theme')).toBe('dark');
      expect(await page.locator('#text').inputValue()).toBe('The cat sat.');
      expect(await page.locator('#text').getAttribute('readonly')).not.toBeNull();
      expect(await page.locator('#model option:checked').textContent()).toBe('Attention file: cat.safetensors');
      expect(params(page).get('file')).toBe('cat.safetensors');
      expect(params(page).has('text')).toBe(false);
      await page.locator('[role=tab][data-view=head]').click();
      expect(await page.locator('.attnviz-head-view .av-token[data-side=left]').allTextContents()).toEqual(
        fromPyTorch().tokens,
      );
      // The neuron view needs q and k, which this file lacks: it says so.
      await page.locator('[role=tab][data-view=neuron]').click();
      await expect
        .poll(() => page.locator('#view .av-note').allTextContents())
        .toContainEqual(
          expect.stringMatching(/^This file has no queries and keys \(q\/k\): the neuron view needs them/),
        );
      await page.locator('[role=tab][data-view=head]').click();
      // The attention file download gives the file back; the HTML page (made by the server) is not offered.
      const [download] = await Promise.all([page.waitForEvent('download'), page.locator('#dl-attention').click()]);
      expect(download.suggestedFilename()).toBe('cat.safetensors');
      await download.saveAs(join(dir, 'back.safetensors'));
      expect(await readFile(join(dir, 'back.safetensors'))).toEqual(await readFile(path));
      expect(await page.locator('#dl-html').isDisabled()).toBe(true);

      // Drag-and-drop: another file dropped on the page replaces it.
      const other = { ...fromPyTorch(), text: 'Dropped.', model: { source: 'my/model', modelType: 'gpt2' } };
      await drop(page, 'dropped.safetensors', encodeAttentionFile(other));
      await expect
        .poll(() => page.locator('#status').textContent())
        .toBe('dropped.safetensors: my/model · gpt2 · 5 tokens · 2 layers × 3 heads');
      expect(await page.locator('#text').inputValue()).toBe('Dropped.');

      // Not an attention file: a one-line error naming the file; the view shown stays.
      await drop(page, 'notes.safetensors', Buffer.from('hello'));
      await page.locator('#error').waitFor({ state: 'visible' });
      expect(await page.locator('#error').textContent()).toBe(
        'notes.safetensors: 5 bytes is too short for a safetensors file',
      );
      const nan = fromPyTorch();
      nan.attention.data[40] = Number.NaN;
      await drop(page, 'nan.safetensors', encodeAttentionFile(nan));
      await expect
        .poll(() => page.locator('#error').textContent())
        .toBe(
          'nan.safetensors: attention layer 0 head 1: row 3 holds NaN (column 0), not a probability ' +
            '(not attention probabilities)',
        );
      expect(await page.locator('#status').textContent()).toMatch(/^dropped\.safetensors/);
      expect(await page.locator('.attnviz-head-view').count()).toBe(1);

      // A shared URL can name the file but not carry it: the page asks for it.
      const shared = await open(`?file=cat.safetensors`);
      await expect
        .poll(() => shared.page.locator('#view .placeholder').textContent())
        .toMatch(/^This link showed the attention file cat\.safetensors: open it again/);
      await shared.page.close();

      // Back to a model: its run, editable texts again.
      await page.locator('#model').selectOption('embedded');
      expect(await settled(page)).toMatch(/^Universal Sentence Encoder lite/);
      expect(await page.locator('#text').getAttribute('readonly')).toBeNull();
      expect(params(page).has('file')).toBe(false);
      expect(errors).toEqual([]);
      expect(foreign).toEqual([]);
    } finally {
      await page.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('an encoder-decoder model in a model root is in the picker and runs with a target', async () => {
    const root = await mkdtemp(join(tmpdir(), 'attnviz-app-root-'));
    const dir = await writeTinyModel(bartConfig(BART), bartWeights(BART, 41), 'roberta-tiny');
    await cp(dir, join(root, 'tiny-bart'), { recursive: true });
    const withRoot = await startServer({ port: 0, modelRoots: [root], env: { HF_HUB_OFFLINE: '1' } });
    const page = await browser.newPage();
    try {
      await page.goto(withRoot.url);
      await settled(page);
      const option = page.locator('#model option', { hasText: 'tiny-bart' });
      expect(await option.count()).toBe(1);
      await page.locator('#model').selectOption((await option.getAttribute('value'))!);
      await page.locator('#target-field').waitFor({ state: 'visible', timeout: 30_000 });
      // No target yet: the page asks for one (no request the server would refuse).
      await expect
        .poll(() => page.locator('#view .placeholder').textContent())
        .toBe('Type a target text (what the decoder reads) to see its attention.');
      expect(await page.locator('#error').isHidden()).toBe(true);
      await page.locator('#target').fill('Le chat.');
      expect(await settled(page)).toMatch(/^tiny-bart · bart · \d+ tokens · 2 layers × 4 heads/);
      expect(await page.locator('.attnviz-head-view select').allTextContents()).toContainEqual(
        expect.stringMatching(/Encoder.*Decoder.*Cross/),
      );
    } finally {
      await page.close();
      await withRoot.close();
      await removeTinyModels();
      await rm(root, { recursive: true, force: true });
    }
  });

  test('the page in the dark theme matches its reference screenshot (page and view without a seam)', async () => {
    const page = await browser.newPage({ viewport: { width: 1000, height: 640 }, deviceScaleFactor: 1 });
    try {
      await page.goto(`${server.url}?text=The+cat+sat+on+the+mat.&theme=dark`);
      await settled(page);
      // The status line carries a timing; the URL-dependent picker text is the same on every machine.
      await page.addStyleTag({ content: '#status { visibility: hidden }' });
      const png = await page.screenshot();
      const { differing } = await compareScreenshot(page, png, 'app-dark');
      expect(differing).toBeLessThan(0.01);
    } finally {
      await page.close();
    }
  });

  test.runIf(HAVE_SHARED)('a long input: the pooled overview first, then single heads at full resolution', async () => {
    const long = await startServer({
      port: 0,
      modelRoots: [join(SHARED, 'golden', 'models')],
      limits: { overviewAbove: 1 },
    });
    const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    /** Every attention request's body and its answer's format, layer count and size. */
    const calls: { body: Record<string, unknown>; format: string; layers: string; bytes: number }[] = [];
    // Answers pass through the test (route.fetch), which records them before the page gets them: Chromium may
    // drop a response body from its DevTools buffer before a `response` handler reads it.
    await page.route('**/api/attention', async (route) => {
      const response = await route.fetch();
      const body = await response.body();
      const h = response.headers();
      if (response.status() === 200)
        calls.push({
          body: route.request().postDataJSON(),
          format: h['x-attnviz-format'],
          layers: h['x-attnviz-layers'],
          bytes: body.length,
        });
      await route.fulfill({ response, body });
    });
    try {
      // gpt2-tiny: 2 layers × 4 heads; 140 tokens, past the overview's 128 cells.
      await page.goto(`${long.url}?model=path%3Agpt2-tiny&view=model&text=${'a+'.repeat(140)}`);
      const status = await settled(page);
      expect(status).toMatch(
        /^gpt2-tiny · gpt2 · 141 tokens · 2 layers × 4 heads · overview: each head max-pooled to 128 × 128/,
      );
      const view = page.locator('.attnviz-model-view');
      expect(await view.getAttribute('data-layers')).toBe('2');
      expect(await view.getAttribute('data-thumbnails')).toBe('8');
      await expect.poll(() => calls.length).toBe(1);
      expect(calls).toEqual([
        expect.objectContaining({
          body: expect.objectContaining({ detail: 'auto' }),
          format: 'avz1-overview',
          layers: '2',
        }),
      ]);
      // The overview's bytes are the pooled cells', not every head × T²: 2 × 4 × 128² × 1.5 B and headers.
      const [L, H, T, n] = [2, 4, 141, 128];
      expect(calls[0].bytes).toBeLessThan(L * H * n * n * 1.5 + 8_000);
      expect(calls[0].bytes).toBeLessThan(L * H * T * T * 1.5);

      // A thumbnail opens its head at full resolution, fetched alone.
      await page.locator('.av-thumb[data-layer="1"][data-head="2"]').click();
      await expect.poll(() => view.getAttribute('data-selected')).toBe('1,2');
      await expect.poll(() => calls.length).toBe(2);
      expect(calls[1]).toMatchObject({
        body: { layers: [1], heads: [2], queryKey: false },
        format: 'avz1',
        layers: '1',
      });
      await expect.poll(() => params(page).get('heads')).toBe('2');
      expect(params(page).get('layer')).toBe('1');

      // The head view of that layer: its heads come one at a time, as it draws them.
      await page.locator('[role=tab][data-view=head]').click();
      await page.locator('.attnviz-head-view').waitFor();
      await expect.poll(() => calls.length, { timeout: 20_000 }).toBeGreaterThan(2);
      for (const c of calls.slice(2)) expect(c.body).toMatchObject({ layers: [1], heads: [expect.any(Number)] });

      // The neuron view: that one head with its q and k.
      const before = calls.length;
      await page.locator('[role=tab][data-view=neuron]').click();
      await page.locator('.attnviz-neuron-view').waitFor({ timeout: 20_000 });
      expect(await page.locator('#view .note').textContent()).toMatch(/^Layer 1, head 2 at full resolution/);
      await expect.poll(() => calls.length).toBe(before + 1);
      expect(calls.slice(before)).toEqual([
        expect.objectContaining({ body: expect.objectContaining({ layers: [1], heads: [2], queryKey: true }) }),
      ]);
      // Never a whole result: each answer after the overview is one head.
      for (const c of calls.slice(1)) expect(c.body.heads).toHaveLength(1);
      expect(errors).toEqual([]);
    } finally {
      await page.close();
      await long.close();
    }
  });

  test(
    'no silent cut: a token counter against the model, a ' + 'truncate toggle the error names, the text limit',
    async () => {
      const { page, errors } = await open('?text=Count+me.');
      await settled(page);
      await expect
        .poll(() => page.locator('#counter').textContent())
        .toMatch(/^\d+ of 128 tokens · 9 of 40,000 characters \(this server's limit\)$/);
      // 600 words: past the embedded model's 128 positions. The counter says so as you type.
      const long = 'word '.repeat(600).trim();
      await page.locator('#text').fill(long);
      await expect
        .poll(() => page.locator('#counter').textContent(), { timeout: 30_000 })
        .toMatch(/^(\d+) of 128 tokens: over the model's limit · 2,999 of 40,000 characters/);
      expect(await page.locator('#counter').getAttribute('class')).toContain('over');
      const tokens = Number(/^(\d+)/.exec((await page.locator('#counter').textContent())!)![1]);
      expect(tokens).toBeGreaterThan(128);
      // The run is refused with a message for the page: the toggle by name, no CLI flag.
      await page.locator('#error').waitFor({ state: 'visible', timeout: 30_000 });
      const message = (await page.locator('#error').textContent())!;
      expect(message).toBe(
        `The text is ${tokens} tokens; this model takes at most 128. ` +
          "Tick “Truncate to the model's limit” to cut it to that, or shorten it.",
      );
      expect(message).not.toMatch(/--|truncate: true/);
      // The toggle: the text is cut to the model's 128 positions, and the URL keeps it.
      await page.getByLabel("Truncate to the model's limit").check();
      expect(await settled(page, 128)).toMatch(/ 128 tokens · 2 layers/);
      expect(params(page).get('truncate')).toBe('1');
      expect(await page.locator('#counter').textContent()).toMatch(
        new RegExp(`^${tokens} of 128 tokens \\(cut to 128\\)`),
      );
      expect(await page.locator('#error').isHidden()).toBe(true);
      // Nothing cuts the text in the field: past the server's limit it is all there, and the page says why it is
      // refused.
      await page.locator('#text').fill('x'.repeat(40_001));
      await expect
        .poll(() => page.locator('#counter').textContent())
        .toBe("40,001 of 40,000 characters (this server's limit): too long for this server");
      expect(await page.locator('#text').inputValue()).toHaveLength(40_001);
      await page.locator('#error').waitFor({ state: 'visible', timeout: 30_000 });
      await expect
        .poll(() => page.locator('#error').textContent())
        .toMatch(/"text" is 40001 characters; this server takes at most 40000/);
      expect(errors).toEqual([]);
      await page.close();
    },
  );
});

/** A result as a PyTorch script writes it (docs/attention-file.md): attention and tokens, no q/k. */
function fromPyTorch(): Attention {
  const [L, H, T] = [2, 3, 5];
  // Causal rows: each token spreads its weight evenly over itself and the tokens before it.
  const data = Float32Array.from({ length: L * H * T * T }, (_, i) => {
    const [row, col] = [Math.floor(i / T) % T, i % T];
    return col <= row ? 1 / (row + 1) : 0;
  });
  return {
    tokens: ['[CLS]', 'the', 'cat', 'sat', '[SEP]'],
    text: 'The cat sat.',
    pair: null,
    sentenceBStart: null,
    model: { source: 'bert-base-uncased', modelType: 'bert' },
    causal: false,
    attention: { dims: [L, H, T, T], data },
  };
}

/** Drops a file named `name` holding `bytes` on the page, as a drag from the desktop does. */
async function drop(page: Page, name: string, bytes: Buffer): Promise<void> {
  await page.evaluate(
    ([name, b64]) => {
      const transfer = new DataTransfer();
      transfer.items.add(new File([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))], name));
      for (const type of ['dragenter', 'dragover', 'drop'])
        document.body.dispatchEvent(new DragEvent(type, { dataTransfer: transfer, bubbles: true, cancelable: true }));
    },
    [name, bytes.toString('base64')] as const,
  );
}
