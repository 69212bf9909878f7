/**
 * The app's analysis tabs in headless Chromium against the real server and real models: Compare and Generate
 * on ../shared/models/tinystories-656k, Heads on the golden bert-tiny. The numbers the page shows are the
 * library's (computed here with the same functions the CLI uses); no console error, no request leaves the
 * server; bad input (an empty corpus, an invalid regex, tokens that do not align, an encoder asked to
 * generate) is a clear message in the page.
 */
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { compareReport } from '../src/export/report.js';
import { CorpusScores, headScores } from '../src/analysis/head-metrics.js';
import { stepAttention } from '../src/analysis/steps.js';
import { prettifyToken } from '../src/core/tokens.js';
import { loadModel } from '../src/models/load-model.js';
import { startServer, type RunningServer } from '../src/server/server.js';
import { HAVE_CHROMIUM, launch } from './browser.js';
import { goldenModel, HAVE_SHARED, SHARED } from './shared.js';

const STORIES = join(SHARED, 'models', 'tinystories-656k');
const BERT = goldenModel('bert-tiny');
const A = 'Lily and Tom went to the park. She was happy.';
const B = 'Lily and Tom went to the park. He was happy.';

let server: RunningServer;
let browser: Browser;

beforeAll(async () => {
  if (!HAVE_SHARED) return;
  server = await startServer({ port: 0, modelRoots: [join(SHARED, 'models'), join(SHARED, 'golden', 'models')] });
  if (HAVE_CHROMIUM) browser = await launch();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await server?.close();
});

interface Opened {
  page: Page;
  foreign: string[];
  errors: string[];
}

/** The app on `model` (a folder under the roots) and `tab`, recording foreign requests and console errors. */
async function open(model: string, tab: string): Promise<Opened> {
  const page = await browser.newPage({ viewport: { width: 1300, height: 1000 } });
  const foreign: string[] = [],
    errors: string[] = [];
  page.on('request', (r) => {
    if (!r.url().startsWith(server.url) && !/^(data|blob):/.test(r.url())) foreign.push(r.url());
  });
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => {
    // A refused request (400) is logged by Chromium itself; the page shows its message, checked below.
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) errors.push(m.text());
  });
  const id = model === 'embedded' ? model : `path:${model}`;
  await page.goto(`${server.url}?model=${encodeURIComponent(id)}&view=${tab}`);
  await page.locator(`.tool[data-tool="${tab}"]`).waitFor();
  return { page, foreign, errors };
}

const report = (page: Page) => page.locator('.tool-result .attnviz-report[data-ready]');

async function errorText(page: Page): Promise<string> {
  await page.locator('#error').waitFor({ state: 'visible', timeout: 30_000 });
  return (await page.locator('#error').textContent()) ?? '';
}

const post = (path: string, body: unknown) =>
  fetch(`${server.url}api/${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });

/** The events of a Server-Sent Events answer, as [event, data]. */
const eventsOf = async (res: Response) =>
  [...(await res.text()).matchAll(/^event: (\w+)\ndata: (.*)$/gm)].map((e) => [e[1], JSON.parse(e[2])] as const);

describe.runIf(HAVE_SHARED)('the tool endpoints', () => {
  test('/api/heads streams progress, one event per text, before the result; a too-long text is skipped', async () => {
    const long = 'word '.repeat(600);
    const res = await post('heads', { model: `path:${BERT}`, corpus: `One text.\n${long}\nThree.` });
    const events = await eventsOf(res);
    expect(events.map((e) => e[0])).toEqual(['progress', 'progress', 'progress', 'result']);
    expect(events[2][1]).toEqual({ done: 3, total: 3, skipped: 1 });
    expect(events[3][1].report.skipped).toEqual([{ where: 'line 2', reason: expect.stringMatching(/tokens/) }]);
  }, 60_000);

  test('/api/generate streams each token before the result, which has the prompt length and the seed', async () => {
    const res = await post('generate', {
      model: `path:${STORIES}`,
      prompt: 'Once upon a time',
      maxNewTokens: 4,
      seed: 7,
    });
    const events = await eventsOf(res);
    expect(events.map((e) => e[0])).toEqual(['token', 'token', 'token', 'token', 'result']);
    const result = events[4][1];
    expect(result.seed).toBe(7);
    expect(events.slice(0, 4).map((e) => e[1].index)).toEqual([0, 1, 2, 3].map((n) => result.report.promptLength + n));
    expect(events.slice(0, 4).map((e) => e[1].token)).toEqual(result.report.tokens.slice(result.report.promptLength));
  }, 60_000);

  test('bad requests are one-line 400s', async () => {
    const cases: [string, unknown, RegExp][] = [
      ['compare', { model: 'embedded', text: 'a', textB: 'a' }, /^A and B are the same input/],
      ['compare', { model: 'embedded', text: 'a', textB: 'b', from: 'a' }, /needs both "from"/],
      ['compare', { model: 'embedded', text: 'a', colour: 1 }, /^unknown field "colour"/],
      ['heads', { model: 'embedded', corpus: 'a', patterns: ['/(/ -> /a/'] }, /invalid regular expression/],
      ['heads', { model: 'embedded', corpus: 'a\n'.repeat(2001) }, /at most 2000/],
      ['generate', { model: 'embedded', prompt: 'a' }, /cannot generate in attnviz/],
      ['generate', { model: `path:${STORIES}`, maxNewTokens: 0 }, /"maxNewTokens" must be an integer from 1/],
      ['generate', { model: `path:${STORIES}`, topP: 2 }, /"topP" must be a number in \(0, 1\]/],
    ];
    for (const [path, body, message] of cases) {
      const res = await post(path, body);
      const answer = (await res.json()) as { message: string };
      expect([res.status, answer.message]).toEqual([expect.any(Number), expect.stringMatching(message)]);
      expect(res.status).toBeGreaterThanOrEqual(400);
    }
  }, 60_000);
});

describe.runIf(HAVE_CHROMIUM && HAVE_SHARED)('the app’s analysis tabs', () => {
  test('Compare: the pronoun question on tinystories-656k; grid, table = the library; linked head views', async () => {
    const m = await loadModel(STORIES);
    const from = '/\\b(she|he)\\b/i',
      to = '/^lily/i';
    const expected = compareReport(await m.attention(A), await m.attention(B), { from, to });
    await m.release();

    const { page, foreign, errors } = await open(STORIES, 'compare');
    await page.fill('[aria-label="text A"]', A);
    await page.fill('[aria-label="text B"]', B);
    await page.fill('[aria-label="from tokens"]', from);
    await page.fill('[aria-label="to tokens"]', to);
    await page.click('.tool[data-tool=compare] button[type=submit]');
    await report(page).waitFor({ timeout: 30_000 });

    const q = expected.question!;
    // Every grid cell carries A − B as the JSON gave it: equal to the library's float64.
    for (const row of q.rows) {
      const cell = page.locator(`.av-question .av-cell[data-layer="${row.layer}"][data-head="${row.head}"]`);
      expect(Number(await cell.getAttribute('data-value'))).toBe(row.diff);
    }
    // The table is ranked by |A − B|: its first row is the library's first, with A, B, A − B to 4 decimals.
    const first = page.locator('.av-question-row').first();
    const top = q.rows[0];
    expect(await first.getAttribute('data-layer')).toBe(String(top.layer));
    expect(await first.getAttribute('data-head')).toBe(String(top.head));
    expect((await first.locator('td').allTextContents()).slice(3)).toEqual(
      [top.a, top.b, top.diff].map((v) => v.toFixed(4)),
    );
    // A click opens both head views at that layer with only that head on.
    await first.click();
    const views = page.locator('.av-compare-views .attnviz-head-view');
    expect(await views.count()).toBe(2);
    for (const v of await views.all()) {
      expect(await v.getAttribute('data-layer')).toBe(String(top.layer));
      expect(await v.locator('.av-head[aria-pressed="true"]').count()).toBe(1);
      expect(await v.locator(`.av-head[data-head="${top.head}"]`).getAttribute('aria-pressed')).toBe('true');
    }
    // The texts align (same length: She / He), so the difference is drawn.
    expect(expected.alignment?.rule).toBe('same length');
    expect(await page.locator('.av-difference-canvas').count()).toBe(1);
    expect(foreign).toEqual([]);
    expect(errors).toEqual([]);

    // The comparison is in the URL: opened again, it runs again.
    const url = new URL(page.url());
    expect([...['text', 'textB', 'from', 'to'].map((k) => url.searchParams.get(k))]).toEqual([A, B, from, to]);
    const again = await browser.newPage();
    await again.goto(url.href);
    await report(again).waitFor({ timeout: 30_000 });
    expect(await again.locator('.av-question-row').first().getAttribute('data-layer')).toBe(String(top.layer));
    await again.close();
    await page.close();
  }, 90_000);

  test('Compare: an invalid regex and tokens that do not align are messages in the page', async () => {
    const { page, errors } = await open('embedded', 'compare');
    await page.fill('[aria-label="text A"]', 'cats');
    await page.fill('[aria-label="text B"]', 'dogs run fast');
    await page.fill('[aria-label="from tokens"]', '/(/');
    await page.fill('[aria-label="to tokens"]', 'x');
    await page.click('.tool[data-tool=compare] button[type=submit]');
    expect(await errorText(page)).toMatch(/^invalid regular expression \/\(\/ \(/);
    expect(await page.locator('.tool-failed').count()).toBe(1);

    await page.fill('[aria-label="from tokens"]', '');
    await page.fill('[aria-label="to tokens"]', '');
    await page.click('.tool[data-tool=compare] button[type=submit]');
    await report(page).waitFor({ timeout: 30_000 });
    expect(await page.locator('#error').isHidden()).toBe(true);
    expect(await page.locator('.av-difference .av-message').textContent()).toMatch(
      /^No difference: the two tokenizations do not align \(\d+ and \d+ tokens with no common prefix or suffix\)/,
    );
    expect(errors).toEqual([]);
    await page.close();
  }, 60_000);

  test('Heads: a corpus on bert-tiny; grid = the library’s corpus means, best text in the head view', async () => {
    const corpus = ['The cat sat on the mat.', 'A dog ran to the park and back.', 'She said that he was late again.'];
    const m = await loadModel(BERT);
    const scores = new CorpusScores();
    for (const [i, t] of corpus.entries()) scores.add(i, headScores(await m.attention(t)));
    const expected = scores.result();
    await m.release();

    const { page, foreign, errors } = await open(BERT, 'heads');
    await page.fill('[aria-label="corpus"]', `${corpus.join('\n')}\n\n`);
    await page.click('.tool[data-tool=heads] button[type=submit]');
    await report(page).waitFor({ timeout: 30_000 });
    expect(await page.locator('.attnviz-report .av-meta').first().textContent()).toContain('3 texts scored');
    const H = expected.heads;
    // The grid shows the first metric (entropy): each cell's value is the library's corpus mean.
    for (let lh = 0; lh < expected.layers * H; lh++) {
      const cell = page.locator(`.av-cell[data-layer="${Math.floor(lh / H)}"][data-head="${lh % H}"]`);
      expect(Number(await cell.getAttribute('data-value'))).toBeCloseTo(expected.summary[0][lh].mean, 12);
    }
    // Another metric from the select: previous-token mass.
    const previous = expected.metrics.indexOf('previous');
    await page.locator('.attnviz-report select').selectOption(String(previous));
    const cell = page.locator('.av-cell[data-layer="1"][data-head="2"]');
    expect(Number(await cell.getAttribute('data-value'))).toBeCloseTo(expected.summary[previous][H + 2].mean, 12);
    // A click opens the head's best text in the head view at that layer and head.
    await cell.click();
    const best = expected.summary[previous][H + 2].bestText;
    expect(await page.locator('.av-best').getAttribute('data-text')).toBe(String(best));
    const view = page.locator('.av-best-view .attnviz-head-view');
    expect(await view.getAttribute('data-layer')).toBe('1');
    expect(await view.locator('.av-head[data-head="2"]').getAttribute('aria-pressed')).toBe('true');
    expect(foreign).toEqual([]);
    expect(errors).toEqual([]);

    // An empty corpus: a message in the page, no report.
    await page.fill('[aria-label="corpus"]', ' \n\n');
    await page.click('.tool[data-tool=heads] button[type=submit]');
    expect(await errorText(page)).toBe('corpus: the corpus is empty (no non-blank text)');
    await page.close();
  }, 90_000);

  test('Generate: tokens stream in, then the step slider shows the library’s probabilities and attention', async () => {
    const prompt = 'Once upon a time';
    const m = await loadModel(STORIES);
    const g = await m.generate!(prompt, { maxNewTokens: 8, temperature: 0, alternatives: 5 });
    await m.release();

    const { page, foreign, errors } = await open(STORIES, 'steps');
    const go = page.locator('.tool[data-tool=steps] button[type=submit]');
    await expect.poll(() => go.isEnabled(), { timeout: 30_000 }).toBe(true);
    await page.fill('[aria-label="prompt"]', prompt);
    await page.fill('[aria-label="temperature"]', '0');
    await page.fill('[aria-label="max tokens"]', '8');
    await go.click();
    await report(page).waitFor({ timeout: 30_000 });
    const generated = g.tokens.slice(g.promptLength);
    expect(await page.locator('.tool-stream .tool-token').allTextContents()).toEqual(generated.map(prettifyToken));
    // The last step (the slider starts there): the token, its probability, and the alternatives.
    const steps = g.steps!;
    const last = steps[steps.length - 1];
    expect(await page.locator('.av-chosen').textContent()).toContain(`with probability ${last.probability.toFixed(4)}`);
    expect(await page.locator('.av-alternatives tbody td:nth-child(2)').allTextContents()).toEqual(
      last.top.map((t) => t.probability.toFixed(4)),
    );
    // Step 2, layer 0, head 3: the context's weights are the library's (12-bit encoding: within 2.5e-4).
    await page.locator('.av-step').fill('2');
    await page.locator('.av-steps-controls select').first().selectOption('0');
    await page.locator('.av-steps-controls select').nth(1).selectOption('3');
    const att = stepAttention(g.attention!, g.promptLength, 2);
    const n = att.dims[2];
    const H = att.dims[1];
    const weights = (await page.locator('.av-context .av-tok').evaluateAll((s) => s.map((e) => e.dataset.weight))).map(
      Number,
    );
    expect(weights).toHaveLength(n);
    weights.forEach((w, j) => expect(Math.abs(w - att.data[3 * n + j])).toBeLessThan(2.5e-4));
    expect(H).toBe(8);

    // The generated text in the head view: prompt and generated tokens marked.
    await page.locator('.tool[data-tool=steps] button', { hasText: 'Show in the head' }).click();
    const view = page.locator('.attnviz-head-view');
    await view.waitFor();
    expect(await view.locator('.av-token[data-side=left].av-generated').count()).toBe(generated.length);
    expect(await view.locator('.av-token[data-side=left].av-generated-first').count()).toBe(1);
    expect(await view.locator('.av-token[data-side=left].av-generated-first').getAttribute('data-index')).toBe(
      String(g.promptLength),
    );
    // The same mark in the neuron view (it has the generation's q and k).
    await page.locator('[role=tab][data-view=neuron]').click();
    const neuron = page.locator('.attnviz-neuron-view');
    await neuron.waitFor();
    expect(await neuron.locator('.av-token.av-left.av-generated').count()).toBe(generated.length);
    expect(await neuron.locator('.av-token.av-left.av-generated-first').getAttribute('data-index')).toBe(
      String(g.promptLength),
    );
    // And in the model view's panel of a head.
    await page.locator('[role=tab][data-view=model]').click();
    await page.locator('.attnviz-model-view .av-thumb[data-layer="1"][data-head="2"]').click();
    const panel = page.locator('.attnviz-model-view .av-panel');
    expect(await panel.locator('.av-token[data-side=right].av-generated').count()).toBe(generated.length);
    expect(await panel.locator('.av-token[data-side=right].av-generated-first').getAttribute('data-index')).toBe(
      String(g.promptLength),
    );
    expect(foreign).toEqual([]);
    expect(errors).toEqual([]);
    await page.close();
  }, 90_000);

  test('Generate on the embedded encoder: the button is disabled and says why', async () => {
    const { page, errors } = await open('embedded', 'steps');
    const reason = page.locator('.tool-reason');
    await reason.waitFor({ state: 'visible', timeout: 30_000 });
    expect(await reason.textContent()).toMatch(
      /^Generate needs a decoder with a language-model head: embedded \(use-lite\) is an encoder\./,
    );
    expect(await page.locator('.tool[data-tool=steps] button[type=submit]').isDisabled()).toBe(true);
    expect(errors).toEqual([]);
    await page.close();
  }, 60_000);
});
