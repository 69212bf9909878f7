/**
 * The analysis tools end to end on a real model, ../shared/models/tinystories-656k: `attnviz compare` (a
 * pronoun comparison), `attnviz heads` (a corpus of TinyStories-like sentences written here) and
 * `attnviz generate --report` (greedy, step by step). The JSON is checked against the library run here; the
 * HTML reports are opened in Chromium: no console error, no request, the expected elements, and tooltip
 * values equal to the library's. Bad input: one-line errors (exit 2) and no file, or a message in the page.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { askQuestion } from '../src/analysis/compare.js';
import { CorpusScores, headScores, parsePattern } from '../src/analysis/head-metrics.js';
import { stepAttention } from '../src/analysis/steps.js';
import { readAttentionFile } from '../src/core/files.js';
import type { CompareReport, HeadsReport, StepsReport } from '../src/analysis/report-data.js';
import { Model } from '../src/models/checkpoint-model.js';
import { loadModel } from '../src/models/load-model.js';
import { HAVE_CHROMIUM, launch, openHtml } from './browser.js';
import { deriveCheckpoint, removeCheckpoint } from './checkpoints.js';
import { cli, expectCliError, HAVE_CLI } from './cli-run.js';
import { goldenModel, HAVE_SHARED, SHARED } from './shared.js';

const TINY = join(SHARED, 'models', 'tinystories-656k');
const READY = HAVE_SHARED && HAVE_CLI && existsSync(TINY);
if (!READY) console.warn('analysis-reports.test.ts: skipped (needs ../shared/models and the built CLI)');

const SHE = 'Lily and Tom went to the park. She was happy.';
const HE = 'Lily and Tom went to the park. He was happy.';
const PRONOUN = '/\\b(she|he)\\b/i';
const HOSTILE = 'A cat </script><b>sat</b><img src=x onerror="alert(1)"> down';

/** TinyStories-like sentences (written for this test): names, pronouns, repeats, punctuation. */
const CORPUS = [
  'Once upon a time, there was a little girl named Lily. She loved to play outside.',
  'Tom had a big red ball. He liked to throw it to his dog.',
  'The cat sat on the mat. The cat was happy and warm.',
  'Lily and Tom went to the park. They played on the swings.',
  'One day, a bird found a shiny stone. The bird took the stone home.',
  'Mom said, "Lily, it is time to eat." Lily ran to the kitchen.',
  'Ben saw a big tree. He wanted to climb it, but it was too tall.',
  'Sue and her mom baked a cake. It was sweet and yummy.',
];
/** Attention in a page is 12-bit (core/encode.ts: error ≤ 2.5e-4), plus rounding to 4 decimals. */
const PAGE_PRECISION = 2.5e-4 + 5e-5;
const PATTERN = '/\\b(she|he|they)\\b/i -> /^[A-Z]/';

let dir: string;
let model: Model;
let browser: Browser | undefined;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'attnviz-analysis-'));
  if (!READY) return;
  model = await Model.load(TINY);
  if (HAVE_CHROMIUM) browser = await launch();
});
afterAll(async () => {
  await browser?.close();
  await model?.release();
  await rm(dir, { recursive: true, force: true });
});

/** `attnviz compare` of "She" and "He" on TinyStories, asking how the pronoun attends to "Lily". */
const pronounArgs = ['compare', '--model', TINY, '--text', SHE, '--text', HE, '--from', PRONOUN, '--to', '/^lily/i'];
/** `attnviz generate`: 12 greedy tokens after "Once upon a time", the step report to the file that follows. */
const greedySteps = [
  ...['generate', '--model', TINY, '--prompt', 'Once upon a time'],
  ...['--max-new-tokens', '12', '--temperature', '0', '--report'],
];

/** Opens a report and checks what every report must: drawn, no error, no request beyond the file. */
async function openReport(file: string) {
  const opened = await openHtml(browser!, await readFile(file, 'utf8'), { width: 1300, height: 1000 });
  expect(await opened.page.getAttribute('#attnviz-report-root', 'data-ready')).toBe('true');
  expect(opened.errors).toEqual([]);
  expect(opened.requests).toEqual([]);
  return opened;
}

describe.skipIf(!READY)('attnviz compare: "Lily … She" vs "He" on TinyStories-656K', () => {
  test('JSON: the question per layer × head equals the library, ranked by |A − B|', async () => {
    const out = join(dir, 'pronoun.json');
    const r = await cli([...pronounArgs, '-o', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(
      /^wrote .*pronoun\.json: 8 and 8 tokens, aligned by same length; largest \|A − B\|: layer \d head \d/,
    );
    const report = JSON.parse(await readFile(out, 'utf8')) as CompareReport;
    const [a, b] = [await model.attention(SHE), await model.attention(HE)];
    // "Lily and" is one token of this tokenizer; the pronoun token is ". She was" / ". He was".
    const q = askQuestion(a, b, PRONOUN, '/^lily/i');
    expect(report.question!.rows).toHaveLength(16);
    expect(report.question!.picked).toEqual(q.picked);
    for (const [n, row] of report.question!.rows.entries()) {
      expect(row.layer).toBe(q.rows[n].layer);
      expect(row.head).toBe(q.rows[n].head);
      expect(row.diff).toBeCloseTo(q.rows[n].diff, 6);
      if (n) expect(Math.abs(row.diff)).toBeLessThanOrEqual(Math.abs(report.question!.rows[n - 1].diff));
    }
    expect(report.alignment!.labels[5]).toBe('. She was | . He was');
  });

  test.skipIf(!HAVE_CHROMIUM)('HTML: grid, table, linked head views, difference tooltip = the library', async () => {
    const out = join(dir, 'pronoun.html');
    const r = await cli([...pronounArgs, '-o', out]);
    expect(r.code, r.stderr).toBe(0);
    const [a, b] = [await model.attention(SHE), await model.attention(HE)];
    const q = askQuestion(a, b, PRONOUN, '/^lily/i');
    const { page, close } = await openReport(out);
    try {
      expect(await page.locator('.av-question .av-cell').count()).toBe(16);
      expect(await page.locator('.av-question-row').count()).toBe(16);
      // A cell's tooltip gives A, B and A − B to 4 decimals, as the library computes them.
      const row = q.rows[3];
      const title = await page.getAttribute(
        `.av-question .av-cell[data-layer="${row.layer}"][data-head="${row.head}"]`,
        'title',
      );
      expect(title).toBe(
        `layer ${row.layer} head ${row.head}: ` +
          `A ${row.a.toFixed(4)}, B ${row.b.toFixed(4)}, A − B ${row.diff.toFixed(4)}`,
      );
      // The report opens on the top-ranked head; a click on another row opens both views there.
      const views = page.locator('.av-compare-views .attnviz-head-view');
      expect(await views.count()).toBe(2);
      await page.locator(`.av-question-row[data-layer="${row.layer}"][data-head="${row.head}"]`).click();
      for (const v of [views.nth(0), views.nth(1)]) {
        expect(await v.getAttribute('data-layer')).toBe(String(row.layer));
        expect(await v.locator('.av-head[aria-pressed="true"]').count()).toBe(1);
        expect(await v.locator(`.av-head[data-head="${row.head}"]`).getAttribute('aria-pressed')).toBe('true');
      }
      // Hover in A highlights the aligned token in B.
      await views.nth(0).locator('.av-token[data-side="left"][data-index="5"]').hover();
      expect(await views.nth(1).locator('.av-token[data-side="left"][data-index="5"]').getAttribute('class')).toContain(
        'av-focus',
      );
      // Pin in B pins in A.
      await views.nth(1).locator('.av-token[data-side="right"][data-index="2"]').click();
      expect(
        await views.nth(0).locator('.av-token[data-side="right"][data-index="2"]').getAttribute('class'),
      ).toContain('av-pinned');
      // The difference heatmap follows the views; its tooltip gives the cell's A, B and A − B.
      const canvas = page.locator('.av-difference-canvas');
      expect(await canvas.getAttribute('data-layer')).toBe(String(row.layer));
      expect(await canvas.getAttribute('data-heads')).toBe(String(row.head));
      const [L, H, T] = a.attention.dims;
      expect(L * H).toBe(16);
      await canvas.scrollIntoViewIfNeeded();
      const box = (await canvas.boundingBox())!;
      const cell = Math.max(4, Math.min(18, Math.floor(700 / T)));
      const [i, j] = [5, 2];
      await page.mouse.move(box.x + 110 + j * cell + cell / 2, box.y + 110 + i * cell + cell / 2);
      const at = (x: typeof a) => x.attention.data[((row.layer * H + row.head) * T + i) * T + j];
      const tip = (await page.locator('.av-tip').textContent())!.split('\n');
      expect(tip[0]).toBe('. She was | . He was → Lily and');
      // The page holds attention in 12 bits (core/encode.ts: error ≤ 2.5e-4), shown to 4 decimals.
      const shown = tip.slice(1).map((line) => Number(line.split(' ').at(-1)));
      const expected = [at(a), at(b), at(a) - at(b)];
      shown.forEach((v, k) => expect(Math.abs(v - expected[k])).toBeLessThan(PAGE_PRECISION * 2));
    } finally {
      await close();
    }
  });

  test('one text on two models sharing a tokenizer (TinyStories-656K and a variant with RoPE base 1000)', async () => {
    const variant = await deriveCheckpoint(TINY, { config: { rope_theta: 1000 } });
    try {
      const out = join(dir, 'two-models.json');
      const r = await cli([
        'compare',
        '--model',
        TINY,
        '--model',
        variant,
        '--text',
        SHE,
        '--from',
        PRONOUN,
        '--to',
        '/^lily/i',
        '-o',
        out,
      ]);
      expect(r.code, r.stderr).toBe(0);
      const report = JSON.parse(await readFile(out, 'utf8')) as CompareReport;
      expect(report.b.model).toBe(variant);
      expect(report.b.tokens).toEqual(report.a.tokens);
      expect(report.alignment!.rule).toBe('same length');
      const b = await loadModel(variant);
      try {
        const q = askQuestion(await model.attention(SHE), await b.attention(SHE), PRONOUN, '/^lily/i');
        report.question!.rows.forEach((row, n) => expect(row.diff).toBeCloseTo(q.rows[n].diff, 6));
        // Another RoPE base moves the attention of some heads.
        expect(Math.abs(q.rows[0].diff)).toBeGreaterThan(1e-3);
      } finally {
        await b.release();
      }
    } finally {
      await removeCheckpoint(variant);
    }
  });

  test('PNG and SVG: both head views side by side, drawn without a browser', async () => {
    const [png, svg] = [join(dir, 'pronoun.png'), join(dir, 'pronoun.svg')];
    const r = await cli(['compare', '--model', TINY, '--text', SHE, '--text', HE, '-o', png, '-o', svg], {
      CHROMIUM_PATH: join(dir, 'no-chromium'),
    });
    expect(r.code, r.stderr).toBe(0);
    const bytes = await readFile(png);
    expect(bytes.subarray(1, 4).toString()).toBe('PNG');
    const text = await readFile(svg, 'utf8');
    // The PNG is the SVG at scale 1: as wide.
    expect(bytes.readUInt32BE(16)).toBe(Math.ceil(Number(/^<svg [^>]*width="([\d.]+)"/.exec(text)![1])));
    const nested = [...text.matchAll(/<svg x="(\d+)" xmlns="http:\/\/www\.w3\.org\/2000\/svg" width="([\d.]+)"/g)];
    expect(nested).toHaveLength(2);
    expect(Number(nested[1][1])).toBe(Number(nested[0][2]) + 20);
    // Every token of both inputs is drawn as text.
    for (const t of ['. She was ', '. He was ', 'Lily and ']) expect(text).toContain(`>${t}</text>`);
  });

  test.skipIf(!HAVE_CHROMIUM)('tokens that do not align: the report says so in the page', async () => {
    // GPT-2 has no BOS, so these share no first or last token; B's markup must show as text.
    const out = join(dir, 'unaligned.html');
    const r = await cli([
      'compare',
      '--model',
      goldenModel('gpt2-tiny'),
      '--text',
      'Hello there',
      '--text',
      HOSTILE,
      '-o',
      out,
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/no difference \(the two tokenizations do not align/);
    const { page, close } = await openReport(out);
    try {
      expect(await page.locator('.av-difference .av-message').textContent()).toMatch(
        /^No difference: the two tokenizations do not align/,
      );
      expect(await page.locator('.av-difference-canvas').count()).toBe(0);
      expect(await page.locator('.attnviz-head-view').count()).toBe(2);
      expect(await page.locator('.av-meta').nth(1).textContent()).toBe(`B: ${HOSTILE} — ${goldenModel('gpt2-tiny')}`);
      expect(await page.locator('b, img').count()).toBe(0);
    } finally {
      await close();
    }
  });
});

describe.skipIf(!READY)('attnviz heads over a TinyStories-like corpus', () => {
  test('JSON and CSV equal the library; the HTML opens each head on its best text', async () => {
    const corpus = join(dir, 'corpus.txt');
    await writeFile(corpus, `${CORPUS.join('\n')}\n\n`);
    const [html, json, csv] = ['heads.html', 'heads.json', 'heads.csv'].map((f) => join(dir, f));
    const r = await cli([
      'heads',
      '--model',
      TINY,
      '--texts',
      corpus,
      '--pattern',
      PATTERN,
      '-o',
      html,
      '-o',
      json,
      '-o',
      csv,
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/^wrote .*: 8 texts scored in [\d.]+ s\n$/);
    const report = JSON.parse(await readFile(json, 'utf8')) as HeadsReport;
    const scores = new CorpusScores();
    for (const [n, text] of CORPUS.entries())
      scores.add(n, headScores(await model.attention(text), [parsePattern(PATTERN)]));
    const lib = scores.result();
    expect(report.metrics.map((m) => m.name)).toEqual(lib.metrics);
    expect(report.texts).toEqual(CORPUS);
    lib.summary.forEach((row, m) =>
      row.forEach((s, lh) => {
        const j = report.summary[m][lh];
        expect(j.n).toBe(s.n);
        if (s.n === 0) expect(j.mean).toBeNull();
        else {
          expect(j.mean).toBeCloseTo(s.mean, 9);
          expect(j.bestText).toBe(s.bestText);
        }
      }),
    );
    // next is undefined in a causal model; previous is defined on every text.
    expect(report.summary[lib.metrics.indexOf('next')].every((s) => s.n === 0)).toBe(true);
    expect(report.summary[lib.metrics.indexOf('previous')].every((s) => s.n === 8)).toBe(true);
    const lines = (await readFile(csv, 'utf8')).trimEnd().split('\n');
    expect(lines).toHaveLength(17);
    expect(lines[0].split(',').slice(0, 4)).toEqual(['layer', 'head', 'entropy_mean', 'entropy_std']);
    expect(Number(lines[1].split(',')[2])).toBeCloseTo(lib.summary[0][0].mean, 12);

    if (!HAVE_CHROMIUM) return;
    const { page, close } = await openReport(html);
    try {
      expect(await page.locator('.av-headgrid .av-cell').count()).toBe(16);
      expect(await page.locator('.av-table tbody tr').count()).toBe(16);
      const previous = lib.metrics.indexOf('previous');
      await page.locator('.av-meta select').selectOption(String(previous));
      const [layer, head] = [1, 3];
      const s = lib.summary[previous][layer * 8 + head];
      expect(await page.getAttribute(`.av-cell[data-layer="${layer}"][data-head="${head}"]`, 'title')).toBe(
        `layer ${layer} head ${head}: previous ${s.mean.toFixed(4)} ± ${s.std.toFixed(4)} (8 texts)`,
      );
      await page.locator(`.av-cell[data-layer="${layer}"][data-head="${head}"]`).click();
      expect(await page.locator('.av-best').textContent()).toBe(
        `Highest previous: ${s.best.toFixed(4)} on text ${s.bestText + 1}: ${CORPUS[s.bestText]}`,
      );
      const view = page.locator('.av-best-view .attnviz-head-view');
      expect(await view.getAttribute('data-layer')).toBe(String(layer));
      expect(await view.locator('.av-head[aria-pressed="true"]').count()).toBe(1);
      // Sorting by a column header puts the largest first.
      await page.locator('.av-table th', { hasText: /^previous/ }).click();
      const first = page.locator('.av-table tbody tr').first();
      const best = lib.summary[previous].reduce((m, x, lh) => (x.mean > lib.summary[previous][m].mean ? lh : m), 0);
      expect(await first.getAttribute('data-layer')).toBe(String(Math.floor(best / 8)));
      expect(await first.getAttribute('data-head')).toBe(String(best % 8));
    } finally {
      await close();
    }
  });

  test("texts past the model's positions are skipped with a count, or cut with --truncate", async () => {
    const corpus = join(dir, 'long.txt');
    const long = Array.from({ length: 400 }, () => 'The dog ran to the big tree and back.').join(' ');
    await writeFile(corpus, `${CORPUS[0]}\n${long}\n${CORPUS[1]}\n`);
    const json = join(dir, 'long.json');
    const r = await cli(['heads', '--model', TINY, '--texts', corpus, '-o', json]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(
      /: 2 texts scored in [\d.]+ s, 1 skipped \(line 2: text is \d+ tokens but .* takes at most 512 positions/,
    );
    const report = JSON.parse(await readFile(json, 'utf8')) as HeadsReport;
    expect(report.texts).toEqual([CORPUS[0], CORPUS[1]]);
    expect(report.skipped).toHaveLength(1);
    const cut = await cli(['heads', '--model', TINY, '--texts', corpus, '--truncate', '-o', json]);
    expect(cut.stderr).toMatch(/: 3 texts scored/);
  });

  test('one run or a pool of two gives the same report', async () => {
    const corpus = join(dir, 'pool.txt');
    await writeFile(corpus, CORPUS.join('\n'));
    const reports: HeadsReport[] = [];
    for (const jobs of ['1', '2']) {
      const json = join(dir, `jobs${jobs}.json`);
      const r = await cli(['heads', '--model', TINY, '--texts', corpus, '--jobs', jobs, '-o', json]);
      expect(r.code, r.stderr).toBe(0);
      reports.push(JSON.parse(await readFile(json, 'utf8')) as HeadsReport);
    }
    expect(reports[1].texts).toEqual(reports[0].texts);
    reports[0].summary.forEach((row, m) =>
      row.forEach((s, lh) => {
        const t = reports[1].summary[m][lh];
        expect(t.n).toBe(s.n);
        expect(t.bestText).toBe(s.bestText);
        if (s.mean !== null) expect(t.mean).toBeCloseTo(s.mean, 6);
      }),
    );
  });
});

describe.skipIf(!READY)('attnviz generate --report: greedy generation step by step', () => {
  test("JSON: each greedy token is the most likely one; a step's attention is that of the shorter text", async () => {
    const json = join(dir, 'steps.json');
    const r = await cli([...greedySteps, json]);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(await readFile(json, 'utf8')) as StepsReport;
    expect(report.steps).toHaveLength(12);
    for (const s of report.steps) {
      expect(s.top).toHaveLength(5);
      expect(s.top[0].id).toBe(s.id);
      expect(s.top[0].probability).toBe(s.probability);
      expect(s.probability).toBeGreaterThan(0);
    }
    expect(report.tokens.slice(report.promptLength)).toEqual(report.steps.map((s) => s.token));
    // The attention over the final sequence at step n equals a run on the text as it was at that step.
    const g = await model.generate('Once upon a time', { maxNewTokens: 12, temperature: 0, alternatives: 3 });
    expect(g.ids).toEqual(report.tokens.map((_, i) => g.ids[i]));
    expect(g.tokens).toEqual(report.tokens);
    const step = 7;
    const ours = stepAttention(g.attention!, g.promptLength, step);
    const n = g.promptLength + step;
    const prefix = await model.attention(model.tokenizer.decode(g.ids.slice(1, n)));
    expect(prefix.tokens).toEqual(g.tokens.slice(0, n));
    const [L, H] = prefix.attention.dims;
    for (let lh = 0; lh < L * H; lh++)
      for (let j = 0; j < n; j++)
        expect(ours.data[lh * n + j]).toBeCloseTo(prefix.attention.data[(lh * n + n - 1) * n + j], 5);
  });

  test.skipIf(!HAVE_CHROMIUM)(
    'HTML: marked tokens, a slider, probabilities and context weights = the library',
    async () => {
      const html = join(dir, 'steps.html');
      const r = await cli([...greedySteps, html]);
      expect(r.code, r.stderr).toBe(0);
      const g = await model.generate('Once upon a time', { maxNewTokens: 12, temperature: 0, alternatives: 5 });
      const { page, close } = await openReport(html);
      try {
        expect(await page.locator('.av-strip:not(.av-context) .av-prompt').count()).toBe(g.promptLength);
        expect(await page.locator('.av-strip:not(.av-context) .av-generated').count()).toBe(12);
        const step = 4;
        await page.locator('input.av-step').fill(String(step));
        const s = g.steps![step];
        expect(await page.locator('.av-chosen').textContent()).toContain(
          `with probability ${s.probability.toFixed(4)}`,
        );
        expect(await page.locator('.av-alternatives tbody tr').count()).toBe(5);
        // Context weights at the default layer (the last) and "mean over heads".
        const att = stepAttention(g.attention!, g.promptLength, step);
        const [L, H, n] = att.dims;
        const spans = page.locator('.av-context .av-tok');
        expect(await spans.count()).toBe(n);
        for (let j = 0; j < n; j++) {
          let mean = 0;
          for (let h = 0; h < H; h++) mean += att.data[((L - 1) * H + h) * n + j] / H;
          expect(Math.abs(Number(await spans.nth(j).getAttribute('data-weight')) - mean)).toBeLessThan(PAGE_PRECISION);
        }
        // One head at layer 0.
        await page.locator('.av-steps-controls select').nth(0).selectOption('0');
        await page.locator('.av-steps-controls select').nth(1).selectOption('2');
        const weight = Number(await spans.nth(1).getAttribute('data-weight'));
        expect(Math.abs(weight - att.data[(0 * H + 2) * n + 1])).toBeLessThan(PAGE_PRECISION);
      } finally {
        await close();
      }
    },
  );
});

describe.skipIf(!READY)('report PNGs drawn without a browser', () => {
  test('heads -o x.png and generate --report x.png with Chromium out of reach', async () => {
    const noBrowser = { CHROMIUM_PATH: join(dir, 'no-chromium') };
    const corpus = join(dir, 'corpus-png.txt');
    await writeFile(corpus, `${CORPUS.join('\n')}\n`);
    const [heads, steps] = [join(dir, 'heads.png'), join(dir, 'steps.png')];
    const h = await cli(['heads', '--model', TINY, '--texts', corpus, '-o', heads], noBrowser);
    expect(h.code, h.stderr).toBe(0);
    const g = await cli([...greedySteps, steps], noBrowser);
    expect(g.code, g.stderr).toBe(0);
    for (const png of [heads, steps]) {
      const bytes = await readFile(png);
      expect(bytes.subarray(1, 4).toString()).toBe('PNG');
      // The reports' column width (views/reports/report-scenes.ts), at scale 1.
      expect(bytes.readUInt32BE(16)).toBe(1268);
    }
  });
});

describe.skipIf(!READY)('bad input: one line, exit 2, nothing written', () => {
  test('empty corpus, invalid regular expression, unmatched token, bad output, bad aggregate', async () => {
    const empty = join(dir, 'empty.txt');
    await writeFile(empty, '\n  \n');
    const outDir = await mkdtemp(join(dir, 'out-'));
    const out = (f: string) => join(outDir, f);
    expectCliError(await cli(['heads', '--model', TINY, '--texts', empty, '-o', out('a.json')]), /the corpus is empty/);
    expectCliError(
      await cli(['heads', '--model', TINY, '--texts', empty, '--pattern', '/(oops/ -> /x/', '-o', out('a.json')]),
      /invalid regular expression \/\(oops\//,
    );
    expectCliError(
      await cli(['heads', '--model', TINY, '--texts', join(dir, 'none.txt'), '-o', out('a.json')]),
      /no such file/,
    );
    const pairs = join(dir, 'pairs.txt');
    await writeFile(pairs, 'one\ttwo\nthree\n');
    expectCliError(
      await cli(['heads', '--model', TINY, '--texts', pairs, '--pair', '-o', out('a.json')]),
      /line 2 has no tab/,
    );
    expectCliError(
      await cli(['heads', '--model', TINY, '--texts', pairs, '-o', out('a.pdf')]),
      /-o must end in \.html, \.json, \.csv/,
    );
    expectCliError(
      await cli([
        'compare',
        '--model',
        TINY,
        '--text',
        SHE,
        '--text',
        HE,
        '--from',
        'dog',
        '--to',
        '/^lily/i',
        '-o',
        out('c.html'),
      ]),
      /no token matches "dog" in A/,
    );
    expectCliError(
      await cli(['compare', '--model', TINY, '--text', SHE, '--from', '/(/', '--to', '/^lily/i', '-o', out('c.html')]),
      /compare takes two texts on one model or one text on two models/,
    );
    expectCliError(
      await cli(['compare', '--model', TINY, '--text', SHE, '--text', HE, '--from', 'x', '-o', out('c.html')]),
      /--from and --to go together/,
    );
    expectCliError(
      await cli(['extract', '--model', TINY, '--text', SHE, '--aggregate', 'median', '--out', out('x.safetensors')]),
      /unknown aggregate "median"/,
    );
    expectCliError(
      await cli(['extract', '--model', TINY, '--text', SHE, '--aggregate', 'all', '--out', out('x.safetensors')]),
      /--aggregate all is for export/,
    );
    expectCliError(
      await cli([
        'export',
        '--view',
        'neuron',
        '--model',
        TINY,
        '--text',
        SHE,
        '--aggregate',
        'max',
        '-o',
        out('n.html'),
      ]),
      /no queries or keys to show in the neuron view/,
    );
    expectCliError(
      await cli(['generate', '--model', TINY, '--max-new-tokens', '3', '--report', out('r.txt')]),
      /--report must end in \.html, \.json/,
    );
    expect(await readdir(outDir)).toEqual([]);
  }, 300_000);

  test.skipIf(!HAVE_CHROMIUM)('export --aggregate all: a "Layers:" select switches to the pseudo-layers', async () => {
    for (const view of ['head', 'model']) {
      const out = join(dir, `aggregates-${view}.html`);
      const r = await cli(['export', '--view', view, '--model', TINY, '--text', SHE, '--aggregate', 'all', '-o', out]);
      expect(r.code, r.stderr).toBe(0);
      const opened = await openHtml(browser!, await readFile(out, 'utf8'));
      try {
        const { page } = opened;
        expect(opened.errors).toEqual([]);
        expect(opened.requests).toEqual([]);
        if (view === 'head') {
          expect(await page.locator('.av-head').count()).toBe(8);
          await page.locator('.attnviz-head-view select').first().selectOption('1');
          await page.selectOption('.av-layers-select select', 'rollout');
          expect(await page.getAttribute('.av-aggregates', 'data-layers')).toBe('rollout');
          expect(await page.locator('.av-head').count()).toBe(1);
          expect(await page.getAttribute('.attnviz-head-view', 'data-layer')).toBe('1');
        } else {
          expect(await page.getAttribute('.attnviz-model-view', 'data-thumbnails')).toBe('16');
          await page.selectOption('.av-layers-select select', 'mean');
          expect(await page.getAttribute('.attnviz-model-view', 'data-thumbnails')).toBe('2');
        }
      } finally {
        await opened.close();
      }
    }
  });

  test('extract --aggregate rollout writes the pseudo-layers', async () => {
    const out = join(dir, 'rollout.safetensors');
    const r = await cli(['extract', '--model', TINY, '--text', SHE, '--aggregate', 'rollout', '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    const a = await readAttentionFile(out);
    expect(a.attention.dims).toEqual([2, 1, 8, 8]);
    expect(a.query).toBeUndefined();
    // Rows of a rollout sum to 1.
    for (let r2 = 0; r2 < 16; r2++)
      expect(a.attention.data.subarray(r2 * 8, r2 * 8 + 8).reduce((x, y) => x + y)).toBeCloseTo(1, 5);
  });
});
