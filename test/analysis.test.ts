/**
 * The analysis functions (src/analysis/) on constructed attention with known answers, and on the golden
 * models against values recomputed here, in float64, from the golden files' attention.
 */
import { describe, expect, test } from 'vitest';
import { aggregate, maxHeads, meanHeads, parseAggregate, rollout } from '../src/analysis/aggregate.js';
import {
  alignTokens,
  askQuestion,
  attentionBetween,
  attentionDifference,
  selectTokens,
} from '../src/analysis/compare.js';
import { CorpusScores, headScores, parsePattern } from '../src/analysis/head-metrics.js';
import { stepAttention } from '../src/analysis/steps.js';
import type { Attention, Tensor } from '../src/core/attention.js';
import { AttnvizError } from '../src/core/errors.js';
import { loadModel } from '../src/models/load-model.js';
import { goldenCases, goldenModel, HAVE_SHARED, loadedOnce, maxAbsDiff, readGoldenCase } from './shared.js';

/** An Attention over `tokens` whose every layer and head has the matrix `cell(l, h, i, j)`. */
function attention(
  tokens: string[],
  cell: (l: number, h: number, i: number, j: number) => number,
  { layers = 2, heads = 2, causal = false } = {},
): Attention {
  const T = tokens.length;
  const data = new Float32Array(layers * heads * T * T);
  for (let l = 0; l < layers; l++)
    for (let h = 0; h < heads; h++)
      for (let i = 0; i < T; i++)
        for (let j = 0; j < T; j++) data[((l * heads + h) * T + i) * T + j] = cell(l, h, i, j);
  return {
    tokens,
    text: tokens.join(' '),
    pair: null,
    sentenceBStart: null,
    model: { source: 'constructed', modelType: 'test' },
    causal,
    attention: { dims: [layers, heads, T, T], data },
  };
}

const WORDS = ['[CLS]', 'the', 'cat', 'sat', ',', 'the', 'cat', 'ran', '.', '[SEP]'];
const metric = (a: Attention, name: string, l = 0, h = 0) => {
  const s = headScores(a);
  return s.values[s.metrics.indexOf(name)][l * s.heads + h];
};

describe('head metrics on constructed attention', () => {
  test('an exact previous-token head scores 1 on previous, 0 on self and next, distance 1, entropy 0', () => {
    // Causal: row 0 can only attend to itself; every later row puts all its weight on i − 1.
    const a = attention(WORDS, (_l, _h, i, j) => (i === 0 ? (j === 0 ? 1 : 0) : j === i - 1 ? 1 : 0), {
      causal: true,
    });
    expect(metric(a, 'previous')).toBe(1);
    expect(metric(a, 'self')).toBe(0);
    expect(metric(a, 'next')).toBeNaN(); // not defined in a causal model
    expect(metric(a, 'distance')).toBe(1);
    expect(metric(a, 'entropy')).toBe(0);
    // Row 1 attends to token 0 (first, special); rows 2… do not: 1 of 9 rows.
    expect(metric(a, 'first')).toBeCloseTo(1 / 9, 12);
  });

  test('uniform attention has entropy 1; a diagonal head scores 1 on self; a next-token head 1 on next', () => {
    const T = WORDS.length;
    expect(
      metric(
        attention(WORDS, () => 1 / T),
        'entropy',
      ),
    ).toBeCloseTo(1, 6);
    // Causal uniform: row i spreads over i + 1 keys, still entropy 1 after normalising by ln(i + 1).
    expect(
      metric(
        attention(WORDS, (_l, _h, i, j) => (j <= i ? 1 / (i + 1) : 0), { causal: true }),
        'entropy',
      ),
    ).toBeCloseTo(1, 6);
    expect(
      metric(
        attention(WORDS, (_l, _h, i, j) => (i === j ? 1 : 0)),
        'self',
      ),
    ).toBe(1);
    const next = attention(WORDS, (_l, _h, i, j) => (i === T - 1 ? (j === 0 ? 1 : 0) : j === i + 1 ? 1 : 0));
    expect(metric(next, 'next')).toBe(1);
    expect(metric(next, 'previous')).toBe(0);
  });

  test('sinks, punctuation, same word, induction and a user pattern', () => {
    const T = WORDS.length;
    // All weight on [SEP] (special, last): special = 1, first = 0, punctuation = 0.
    const sep = attention(WORDS, (_l, _h, _i, j) => (j === T - 1 ? 1 : 0));
    expect(metric(sep, 'special')).toBe(1);
    expect(metric(sep, 'first')).toBe(0);
    expect(metric(sep, 'punctuation')).toBe(0);
    // Half on "," and half on ".": punctuation = 1 for every row.
    const punct = attention(WORDS, (_l, _h, _i, j) => (j === 4 || j === 8 ? 0.5 : 0));
    expect(metric(punct, 'punctuation')).toBe(1);
    // Each repeated word (the, cat at 1/5, 2/6) looks at its other occurrence: same = 1 over those 4 rows.
    const twin = new Map([
      [1, 5],
      [5, 1],
      [2, 6],
      [6, 2],
    ]);
    const same = attention(WORDS, (_l, _h, i, j) => (twin.has(i) ? (j === twin.get(i) ? 1 : 0) : j === i ? 1 : 0));
    expect(metric(same, 'same')).toBe(1);
    // Induction: "the" at 5 attends to 2 (the token after the earlier "the"), "cat" at 6 to 3: 1 over rows 5, 6.
    const induction = attention(WORDS, (_l, _h, i, j) =>
      (i === 5 && j === 2) || (i === 6 && j === 3) ? 1 : i === j ? 1 : 0,
    );
    expect(metric(induction, 'induction')).toBe(1);
    expect(metric(same, 'induction')).toBe(0);
    // A pattern: from "cat" to "sat"/"ran": rows 2 and 6 put 0.25 and 0.75 there.
    const s = headScores(
      attention(WORDS, (_l, _h, i, j) =>
        i === 2
          ? j === 3
            ? 0.25
            : j === 2
              ? 0.75
              : 0
          : i === 6
            ? j === 7
              ? 0.75
              : j === 6
                ? 0.25
                : 0
            : i === j
              ? 1
              : 0,
      ),
      [parsePattern('/^cat$/ -> /^(sat|ran)$/')],
    );
    expect(s.metrics.at(-1)).toBe('/^cat$/ -> /^(sat|ran)$/');
    expect(s.values.at(-1)![0]).toBeCloseTo(0.5, 12);
  });

  test('corpus means, spread and the best text', () => {
    const scores = new CorpusScores();
    const T = WORDS.length;
    const mixed = (x: number) => attention(WORDS, (_l, _h, i, j) => (i === j ? x : 0) + (1 - x) / T);
    [0.2, 0.4, 0.9].forEach((x, n) => scores.add(n, headScores(mixed(x))));
    const r = scores.result();
    const self = r.summary[r.metrics.indexOf('self')][0];
    const values = [0.2, 0.4, 0.9].map((x) => x + (1 - x) / T);
    const mean = values.reduce((a, b) => a + b) / 3;
    expect(self.n).toBe(3);
    expect(self.mean).toBeCloseTo(mean, 6);
    expect(self.std).toBeCloseTo(Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / 3), 6);
    expect(self.bestText).toBe(2);
    expect(() => new CorpusScores().result()).toThrow(AttnvizError);
  });

  test('bad patterns are one-line errors', () => {
    expect(() => parsePattern('/(unclosed/ -> /x/')).toThrow(/invalid regular expression/);
    expect(() => parsePattern('/a/')).toThrow(/must be "\/from\/ -> \/to\/"/);
  });
});

describe('aggregation on constructed attention', () => {
  test('rollout of identity layers is the identity', () => {
    const a = attention(['a', 'b', 'c', 'd'], (_l, _h, i, j) => (i === j ? 1 : 0), { layers: 3 });
    const r = rollout(a.attention);
    expect(r.dims).toEqual([3, 1, 4, 4]);
    for (let l = 0; l < 3; l++)
      for (let i = 0; i < 4; i++) for (let j = 0; j < 4; j++) expect(r.data[(l * 4 + i) * 4 + j]).toBe(i === j ? 1 : 0);
  });

  test('rollout is the product of the normalised layers (float64 reference), rows sum to 1', () => {
    // Two layers, two heads of arbitrary row-stochastic attention.
    const a = attention(['a', 'b', 'c'], (l, h, i, j) => [1 + l + h + j, 2 + i * j, 3 + l * i][j % 3] / 1, {
      layers: 2,
    });
    const rowSums = (t: Tensor, T: number) => t.data.length / T;
    // Normalise rows of the constructed data first.
    const T = 3;
    for (let r = 0; r < rowSums(a.attention, T); r++) {
      let s = 0;
      for (let j = 0; j < T; j++) s += a.attention.data[r * T + j];
      for (let j = 0; j < T; j++) a.attention.data[r * T + j] /= s;
    }
    const hat = (l: number) =>
      Array.from({ length: T }, (_, i) => {
        const row = Array.from({ length: T }, (_, j) => {
          let m = 0;
          for (let h = 0; h < 2; h++) m += a.attention.data[((l * 2 + h) * T + i) * T + j] / 2;
          return 0.5 * m + (i === j ? 0.5 : 0);
        });
        const s = row.reduce((x, y) => x + y);
        return row.map((x) => x / s);
      });
    const [h0, h1] = [hat(0), hat(1)];
    const product = h1.map((row) => Array.from({ length: T }, (_, j) => row.reduce((s, x, k) => s + x * h0[k][j], 0)));
    const r = rollout(a.attention);
    expect(maxAbsDiff(r.data.subarray(0, 9), h0.flat())).toBeLessThan(1e-6);
    expect(maxAbsDiff(r.data.subarray(9, 18), product.flat())).toBeLessThan(1e-6);
    for (let i = 0; i < 6; i++) expect(r.data.subarray(i * 3, i * 3 + 3).reduce((x, y) => x + y)).toBeCloseTo(1, 6);
  });

  test('mean and max over heads; aggregate() drops q/k; bad names are refused', () => {
    const a = attention(['a', 'b'], (_l, h, i, j) => (h === 0 ? (i === j ? 1 : 0) : 0.5), { layers: 1 });
    expect(Array.from(meanHeads(a.attention).data)).toEqual([0.75, 0.25, 0.25, 0.75]);
    expect(Array.from(maxHeads(a.attention).data)).toEqual([1, 0.5, 0.5, 1]);
    const q = { dims: [1, 2, 2, 4], data: new Float32Array(16) };
    const agg = aggregate({ ...a, query: q, key: q }, 'max');
    expect(agg.attention.dims).toEqual([1, 1, 2, 2]);
    expect(agg.query).toBeUndefined();
    expect(agg.tokens).toEqual(['a', 'b']);
    expect(() => parseAggregate('median')).toThrow(/unknown aggregate "median" \(one of mean, max, rollout\)/);
  });
});

describe('compare on constructed attention', () => {
  test('alignment: same length, else common prefix and suffix, else refused', () => {
    expect(alignTokens(['a', 'She', 'b'], ['a', 'He', 'b'])).toMatchObject({
      rule: 'same length',
      a: [0, 1, 2],
      labels: ['a', 'She | He', 'b'],
    });
    const al = alignTokens(['x', 'y', 'She', 'z'], ['x', 'y', 'The', 'man', 'z']);
    expect(al).toMatchObject({ rule: 'common prefix and suffix', a: [0, 1, 3], b: [0, 1, 4] });
    expect(() => alignTokens(['a', 'b'], ['c', 'd', 'e'])).toThrow(/do not align/);
  });

  test('difference, question and ranking', () => {
    const A = attention(['x', 'She', 'y'], (l, h, i, j) =>
      i === 1 && j === 0 ? 0.5 + 0.1 * l + 0.1 * h : i === j ? 1 : 0.25,
    );
    const B = attention(['x', 'He', 'y'], (_l, _h, i, j) => (i === 1 && j === 0 ? 0.5 : i === j ? 1 : 0.25));
    const d = attentionDifference(A, B);
    expect(d.dims).toEqual([2, 2, 3, 3]);
    expect(d.data[((1 * 2 + 1) * 3 + 1) * 3 + 0]).toBeCloseTo(0.2, 6);
    expect(d.data[0]).toBe(0);
    const q = askQuestion(A, B, '/^(she|he)$/i', 'x');
    expect(q.picked.a).toEqual({ from: [1], to: [0] });
    expect(q.rows[0]).toMatchObject({ layer: 1, head: 1 });
    expect(q.rows[0].diff).toBeCloseTo(0.2, 6);
    expect(q.rows.at(-1)).toMatchObject({ layer: 0, head: 0, diff: 0 });
    expect(Array.from(attentionBetween(A, [1], [0, 2]))[0]).toBeCloseTo(0.75, 6);
    expect(selectTokens(A.tokens, '#0,2')).toEqual([0, 2]);
    expect(() => selectTokens(A.tokens, 'dog', 'A')).toThrow(/no token matches "dog" in A/);
    expect(() => selectTokens(A.tokens, '/[/')).toThrow(/invalid regular expression/);
    expect(() => selectTokens(A.tokens, '#7')).toThrow(/out of range/);
  });
});

describe('generation steps on constructed attention', () => {
  test('step n is row promptLength + n − 1 over its context', () => {
    const a = attention(['<s>', 'a', 'b', 'c'], (l, h, i, j) => (j <= i ? (1 + j + l + h) / 10 : 0), { causal: true });
    const s = stepAttention(a, 2, 1); // token 3, produced by position 2
    expect(s.dims).toEqual([2, 2, 3]);
    expect(Array.from(s.data.subarray(0, 3))).toEqual([0.1, 0.2, 0.3].map(Math.fround));
    expect(() => stepAttention(a, 2, 2)).toThrow(/out of range: 2 tokens were generated/);
  });
});

describe.skipIf(!HAVE_SHARED)('on golden models, against the golden attention', () => {
  const model = loadedOnce((name: string) => loadModel(goldenModel(name)));
  const cases = goldenCases(['bert-tiny', 'gpt2-tiny']).filter((f) => /cat_sat|doctor_she/.test(f));

  test.each(cases.map((f) => [f.split('/').pop()!, f]))(
    '%s: entropy, previous, first and rollout',
    async (_n, file) => {
      const golden = await readGoldenCase(file);
      const a = await (await model(golden.model)).attention(golden.text, { pair: golden.textPair });
      const g = golden.f32('attention');
      const [L, H, T] = golden.dims('attention');
      const causal = golden.model.startsWith('gpt2');
      const s = headScores(a);
      for (let lh = 0; lh < L * H; lh++) {
        // Recomputed from the golden tensor, row by row, in float64.
        let entropy = 0,
          previous = 0,
          first = 0,
          rows = 0;
        for (let i = causal ? 1 : 0; i < T; i++) {
          const n = causal ? i + 1 : T;
          let e = 0;
          for (let j = 0; j < n; j++) {
            const w = g[(lh * T + i) * T + j];
            if (w > 0) e -= w * Math.log(w);
          }
          entropy += e / Math.log(n);
          first += g[(lh * T + i) * T];
          rows++;
        }
        for (let i = 1; i < T; i++) previous += g[(lh * T + i) * T + i - 1];
        expect(s.values[s.metrics.indexOf('entropy')][lh]).toBeCloseTo(entropy / rows, 4);
        expect(s.values[s.metrics.indexOf('first')][lh]).toBeCloseTo(first / rows, 4);
        expect(s.values[s.metrics.indexOf('previous')][lh]).toBeCloseTo(previous / (T - 1), 4);
      }
      // Rollout of the engine's attention against the golden attention's, computed here.
      let R: number[][] | null = null;
      for (let l = 0; l < L; l++) {
        const hat = Array.from({ length: T }, (_, i) => {
          const row = Array.from({ length: T }, (_, j) => {
            let m = 0;
            for (let h = 0; h < H; h++) m += g[((l * H + h) * T + i) * T + j] / H;
            return 0.5 * m + (i === j ? 0.5 : 0);
          });
          const sum = row.reduce((x, y) => x + y);
          return row.map((x) => x / sum);
        });
        const prev: number[][] | null = R;
        R = prev
          ? hat.map((row) => Array.from({ length: T }, (_, j) => row.reduce((s2, x, k) => s2 + x * prev[k][j], 0)))
          : hat;
      }
      const ours = rollout(a.attention);
      expect(maxAbsDiff(ours.data.subarray((L - 1) * T * T), R!.flat())).toBeLessThan(1e-4);
    },
  );

  test('the doctor/nurse golden pair: the question "from she/he to doctor" matches the golden attention', async () => {
    const [she, he] = ['doctor_she', 'nurse_he'].map((n) => goldenCases(['gpt2-tiny']).find((f) => f.includes(n))!);
    const [gs, gh] = await Promise.all([readGoldenCase(she), readGoldenCase(he)]);
    const m = await model('gpt2-tiny');
    const [a, b] = await Promise.all([m.attention(gs.text), m.attention(gh.text)]);
    const from = '/^(she|he)$/i';
    const q = askQuestion(a, b, from, '#1');
    const [L, H, T] = gs.dims('attention');
    const Tb = gh.dims('attention')[2];
    const fa = selectTokens(gs.tokens, from)[0],
      fb = selectTokens(gh.tokens, from)[0];
    for (const row of q.rows) {
      const lh = row.layer * H + row.head;
      expect(row.a).toBeCloseTo(gs.f32('attention')[(lh * T + fa) * T + 1], 4);
      expect(row.b).toBeCloseTo(gh.f32('attention')[(lh * Tb + fb) * Tb + 1], 4);
    }
    expect(q.rows).toHaveLength(L * H);
  });
});
