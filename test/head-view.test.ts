/** The head view in Chromium, from golden data: layout facts and every interaction. */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Browser } from 'playwright-core';
import { readAttentionFile } from '../src/core/attention-file.js';
import { renderHtml } from '../src/export/html.js';
import { HAVE_CHROMIUM, launch, openHtml, type OpenedPage } from './browser.js';
import { HAVE_SHARED, SHARED } from './shared.js';

const golden = (name: string) => readAttentionFile(join(SHARED, 'golden/cases', `${name}.safetensors`));

describe.skipIf(!HAVE_CHROMIUM || !HAVE_SHARED)('head view', () => {
  let browser: Browser;
  let p: OpenedPage;
  beforeAll(async () => {
    browser = await launch();
    p = await openHtml(browser, renderHtml(await golden('bert-tiny__cat_pair'), { view: 'head' }));
  });
  afterAll(async () => { await p?.close(); await browser?.close(); });

  const drawn = () => p.page.$eval('.attnviz', (e) => Number((e as HTMLElement).dataset.drawn));

  test('one colour square per head, tokens on both sides, no network, no errors', async () => {
    expect(await p.page.locator('.av-head').count()).toBe(4);
    const left = await p.page.locator('.av-token[data-side=left]').allTextContents();
    expect(left.slice(0, 4)).toEqual(['[CLS]', 'the', 'cat', 'sat']);
    expect(await p.page.locator('.av-token[data-side=right]').count()).toBe(17);
    expect(p.requests).toEqual([]);
    expect(p.errors).toEqual([]);
  });

  test('hovering a token keeps only its lines', async () => {
    const all = await drawn();
    expect(all).toBeGreaterThan(17 * 4);
    await p.page.hover('.av-token[data-side=left][data-index="2"]');
    const one = await drawn();
    expect(one).toBeGreaterThan(0);
    expect(one).toBeLessThanOrEqual(17 * 4);
    await p.page.mouse.move(900, 5);
    expect(await drawn()).toBe(all);
  });
});
