/**
 * The neuron maths (src/analysis/neuron.ts) and neuron contributions (src/analysis/contributions.ts): on
 * constructed q/k with known answers, on golden models against float64 values recomputed here from the golden
 * files, and `attnviz neurons` / `attnviz export --view neuron --token` end to end (built CLI).
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, test } from 'vitest';
import { keyContributions, rowContributions, TOP_MASS } from '../src/analysis/contributions.js';
import { headScales, headSize, neuronColumns, SCALE_RMS } from '../src/analysis/neuron.js';
import type { Attention } from '../src/core/attention.js';
import { readAttentionFile, writeAttentionFile } from '../src/core/files.js';
import { loadModel } from '../src/models/load-model.js';
import { HAVE_SHARED, SHARED } from './shared.js';

// ---- constructed data --------------------------------------------------------------------------------------

/**
 * One layer and head over T tokens with q/k given per token (d values each), attention = softmax(q·k/√d [+ bias])
 * computed here in float64, under a causal mask when asked.
 */
function constructed(
  q: number[][],
  k: number[][],
  opts: { causal?: boolean; bias?: number[][]; layers?: number } = {},
): Attention {
  const T = q.length,
    d = q[0].length,
    L = opts.layers ?? 1;
  const attention = new Float32Array(L * T * T);
  for (let l = 0; l < L; l++)
    for (let i = 0; i < T; i++) {
      const z = k.map((kj, j) =>
        opts.causal && j > i
          ? -Infinity
          : kj.reduce((s, x, n) => s + x * q[i][n], 0) / Math.sqrt(d) + (opts.bias?.[i][j] ?? 0),
      );
      const max = Math.max(...z);
      const e = z.map((x) => Math.exp(x - max));
      const sum = e.reduce((s, x) => s + x, 0);
      e.forEach((x, j) => {
        attention[(l * T + i) * T + j] = x / sum;
      });
    }
  const flat = (v: number[][]) => {
    const out = new Float32Array(L * T * d);
    for (let l = 0; l < L; l++) out.set(v.flat(), l * T * d);
    return { dims: [L, 1, T, d], data: out };
  };
  return {
    tokens: q.map((_, i) => `t${i}`),
    text: '',
    pair: null,
    sentenceBStart: null,
    model: { source: 'constructed', modelType: 'test' },
    causal: opts.causal ?? false,
    attention: { dims: [L, 1, T, T], data: attention },
    query: flat(q),
    key: flat(k),
    ...(opts.bias ? { positionBias: { dims: [1, T, T], data: Float32Array.from(opts.bias.flat()) } } : {}),
  };
}

describe('keyContributions', () => {
  test('one dimension carries all of q · k: it is the only term with a share, 100 %, and the only top one', () => {
    const a = constructed(
      [
        [0, 2, 0, 0],
        [1, 0, 0, 0],
      ],
      [
        [5, 1.5, -3, 7],
        [0, 1, 0, 0],
      ],
    );
    const c = keyContributions(a, 0, 0, 0, 0);
    expect(c.dot).toBe(3);
    expect(c.scale).toBe(0.5);
    expect(c.score).toBe(1.5);
    expect(c.positionBias).toBeNull();
    expect(c.terms[0]).toEqual({ dim: 1, q: 2, k: 1.5, product: 3, share: 1 });
    expect(c.terms.slice(1).map((t) => Math.abs(t.share))).toEqual([0, 0, 0]);
    expect(c.top).toEqual([1]);
    expect(c.size).toBe(4);
    expect(c.attention).toBeCloseTo(1 / (1 + Math.exp(1 - 1.5)), 6);
  });

  test('cancelling terms: shares above 1 and negative, sorted by size; the top ones reach TOP_MASS of Σ|t|', () => {
    // q ⊙ k = [4, −3, 0.5, 0.25]: q · k = 1.75; Σ|t| = 7.75, 80 % = 6.2 → 4 + 3 = 7 reach it: top = dims 0, 1.
    const a = constructed([[2, 3, 0.5, 1]], [[2, -1, 1, 0.25]]);
    const c = keyContributions(a, 0, 0, 0, 0);
    expect(c.dot).toBe(1.75);
    expect(c.terms.map((t) => t.dim)).toEqual([0, 1, 2, 3]);
    expect(c.terms.map((t) => t.share)).toEqual([4 / 1.75, -3 / 1.75, 0.5 / 1.75, 0.25 / 1.75]);
    expect(TOP_MASS).toBe(0.8);
    expect(c.top).toEqual([0, 1]);
  });

  test('a causally masked key has its terms but no score; a position bias is added to the score by name', () => {
    const causal = constructed(
      [
        [1, 0],
        [0, 1],
      ],
      [
        [1, 1],
        [2, 2],
      ],
      { causal: true },
    );
    const masked = keyContributions(causal, 0, 0, 0, 1);
    expect(masked).toMatchObject({ masked: true, score: null, dot: 2, attention: 0 });
    const biased = constructed(
      [
        [1, 0],
        [0, 1],
      ],
      [
        [1, 1],
        [2, 2],
      ],
      {
        bias: [
          [0.5, -1],
          [0.25, 2],
        ],
      },
    );
    const c = keyContributions(biased, 0, 0, 1, 1);
    expect(c.positionBias).toBe(2);
    expect(c.score).toBeCloseTo(2 / Math.SQRT2 + 2, 6);
  });
});

describe('rowContributions', () => {
  test('a pattern made by one dimension (a positional head): that dimension has 100 % of the share', () => {
    // Dim 0 is the same for every key (shifts all scores alike: no effect on softmax), dim 2 grows with j.
    const k = Array.from({ length: 6 }, (_, j) => [1, 0, j, 0]);
    const q = Array.from({ length: 6 }, () => [3, 5, 2, 0]);
    const r = rowContributions(constructed(q, k), 0, 0, 4);
    expect(r.keys).toBe(6);
    expect(r.dims[0]).toMatchObject({ dim: 2, share: 1 });
    // Dimension 0: a constant term 3 × 1 × ½ = 1.5, sd 0, share 0.
    const d0 = r.dims.find((d) => d.dim === 0)!;
    expect(d0).toEqual({ dim: 0, share: 0, mean: 1.5, std: 0 });
    expect(r.top).toEqual([2]);
    // Variance of the scores 2·j/2 = j over j = 0..5: 35/12.
    expect(r.variance).toBeCloseTo(35 / 12, 10);
  });

  test('shares are Cov(c_n, ℓ) / Var(ℓ) over the unmasked keys, sum to 1, and name the position bias', () => {
    const q = [
      [1, -2, 0.5],
      [0.3, 1, -1],
      [2, 0.5, 1],
      [-1, 1, 1],
    ];
    const k = [
      [0.5, 1, -1],
      [1, 0, 2],
      [-0.5, 2, 1],
      [1, 1, 1],
    ];
    const bias = [
      [0, -1, -2, -3],
      [1, 0, -1, -2],
      [2, 1, 0, -1],
      [3, 2, 1, 0],
    ];
    const a = constructed(q, k, { causal: true, bias });
    const i = 2,
      scale = 1 / Math.sqrt(3);
    const r = rowContributions(a, 0, 0, i);
    expect(r.keys).toBe(3);
    // float64 reference: terms c[n][j] for j ≤ i, plus the bias.
    const keys = [0, 1, 2];
    const terms = [0, 1, 2].map((n) => keys.map((j) => Math.fround(q[i][n]) * Math.fround(k[j][n]) * scale));
    terms.push(keys.map((j) => bias[i][j]));
    const score = keys.map((_, x) => terms.reduce((s, t) => s + t[x], 0));
    const mean = (v: number[]) => v.reduce((s, x) => s + x, 0) / v.length;
    const cov = (u: number[], v: number[]) => mean(u.map((x, m) => (x - mean(u)) * (v[m] - mean(v))));
    const variance = cov(score, score);
    expect(r.variance).toBeCloseTo(variance, 9);
    const expected = new Map<number | string, number>(
      terms.map((t, n) => [n < 3 ? n : 'position bias', cov(t, score) / variance]),
    );
    expect(r.dims).toHaveLength(4);
    for (const d of r.dims) expect(d.share, String(d.dim)).toBeCloseTo(expected.get(d.dim)!, 9);
    expect(r.dims.reduce((s, d) => s + d.share, 0)).toBeCloseTo(1, 12);
    expect(r.dims.map((d) => d.share)).toEqual([...r.dims.map((d) => d.share)].sort((x, y) => y - x));
  });

  test('one key (the first token of a causal model) or equal scores: variance 0, no shares, no top', () => {
    const a = constructed(
      [
        [1, 2],
        [1, 2],
      ],
      [
        [3, 4],
        [3, 4],
      ],
      { causal: true },
    );
    expect(rowContributions(a, 0, 0, 0)).toMatchObject({ keys: 1, variance: 0, top: [] });
    const flat = rowContributions(a, 0, 0, 1);
    expect(flat).toMatchObject({ keys: 2, variance: 0, top: [] });
    expect(flat.dims.every((d) => d.share === 0)).toBe(true);
  });
});

describe('head size and colour scales', () => {
  test('zero-padded q/k (layers with different head sizes): headSize finds each layer’s own size', () => {
    // Two layers stored with d = 6; layer 0 uses 3 dims (the rest zero), layer 1 all 6.
    const pad = (v: number[]) => [...v, 0, 0, 0];
    const a = constructed(
      [
        [1, 2, 3, 4, 5, 6],
        [6, 5, 4, 3, 2, 1],
      ],
      [
        [1, 0, 1, 0, 1, 1],
        [0, 1, 0, 1, 0, 1],
      ],
      { layers: 2 },
    );
    const T = 2,
      d = 6;
    for (const t of [a.query!, a.key!])
      for (let i = 0; i < T; i++) t.data.set(pad(Array.from(t.data.subarray(i * d, i * d + 3))), i * d);
    expect(headSize(a, 0)).toBe(3);
    expect(headSize(a, 1)).toBe(6);
    // The products and terms cover the layer's own dimensions only.
    expect(neuronColumns(a, 0, 0, 0, [0, 1], 3).products.map((p) => p!.length)).toEqual([3, 3]);
    expect(keyContributions(a, 0, 0, 0, 1).terms).toHaveLength(3);
    expect(rowContributions(a, 1, 0, 0).dims).toHaveLength(6);
  });
});

test('the embedded model (USE lite: head size 64 in layer 0, 128 in layer 1, stored padded to 128)', async () => {
  const m = await loadModel('embedded');
  try {
    const a = await m.attention('The cat sat on the mat.');
    expect(a.query!.dims[3]).toBe(128);
    expect([headSize(a, 0), headSize(a, 1)]).toEqual([64, 128]);
    const T = a.tokens.length;
    for (const layer of [0, 1]) {
      const c = neuronColumns(a, layer, 1, 2, [0, T - 1], headSize(a, layer));
      expect(c.products.map((v) => v!.length)).toEqual([headSize(a, layer), headSize(a, layer)]);
      // The padding changes no score: softmax of the scores is the model's attention.
      expect(c.maxDiff).toBeLessThan(1e-4);
      expect(keyContributions(a, layer, 1, 2, 0).terms).toHaveLength(headSize(a, layer));
      const r = rowContributions(a, layer, 1, 2);
      expect(r.dims).toHaveLength(headSize(a, layer));
      expect(r.dims.reduce((s, d) => s + d.share, 0)).toBeCloseTo(1, 9);
    }
  } finally {
    await m.release();
  }
}, 120_000);

// ---- golden models: float64 values recomputed from the golden q/k -----------------------------------------

const golden = (name: string) => readAttentionFile(join(SHARED, 'golden/cases', `${name}.safetensors`));
// Golden case files carry no attnviz metadata: causality comes from the family.
const CASES = [
  { name: 'bert-tiny__cat_pair', causal: false },
  { name: 'gpt2-tiny__cat_sat', causal: true },
  { name: 'llama-tiny-mha__fox', causal: true },
] as const;

describe.skipIf(!HAVE_SHARED)('golden models', () => {
  for (const { name, causal } of CASES)
    test(`${name}: terms, shares, scales = float64 from the golden q/k; scores give the attention`, async () => {
      const a: Attention = { ...(await golden(name)), causal };
      const [L, H, T, d] = a.query!.dims;
      const vec = (t: Float32Array, l: number, h: number, j: number) =>
        Array.from(t.subarray(((l * H + h) * T + j) * d, ((l * H + h) * T + j + 1) * d));
      const scale = 1 / Math.sqrt(d);
      for (let l = 0; l < L; l++)
        for (let h = 0; h < H; h++) {
          expect(headSize(a, l)).toBe(d);
          // Colour scales: brute force over the unmasked pairs (the library uses prefix sums).
          let vecSq = 0,
            prodSq = 0,
            dotSq = 0,
            pairs = 0;
          for (let i = 0; i < T; i++) {
            const q = vec(a.query!.data, l, h, i);
            vecSq += q.reduce((s, x) => s + x * x, 0) + vec(a.key!.data, l, h, i).reduce((s, x) => s + x * x, 0);
            for (let j = 0; j <= (causal ? i : T - 1); j++) {
              const k = vec(a.key!.data, l, h, j);
              prodSq += q.reduce((s, x, n) => s + (x * k[n]) ** 2, 0);
              dotSq += (q.reduce((s, x, n) => s + x * k[n], 0) * scale) ** 2;
              pairs++;
            }
          }
          const s = headScales(a, l, h);
          expect(s.vector).toBeCloseTo(SCALE_RMS * Math.sqrt(vecSq / (2 * T * d)), 9);
          expect(s.product).toBeCloseTo(SCALE_RMS * Math.sqrt(prodSq / (pairs * d)), 9);
          expect(s.dot).toBeCloseTo(SCALE_RMS * Math.sqrt(dotSq / pairs), 9);
          for (let i = 0; i < T; i += 3) {
            const q = vec(a.query!.data, l, h, i);
            const keys = Array.from({ length: causal ? i + 1 : T }, (_, j) => j);
            const terms = keys.map((j) => {
              const k = vec(a.key!.data, l, h, j);
              return q.map((x, n) => x * k[n]);
            });
            const scores = terms.map((t) => t.reduce((s2, x) => s2 + x, 0) * scale);
            // softmax of the recomputed scores = the golden attention row.
            const max = Math.max(...scores);
            const e = scores.map((z) => Math.exp(z - max));
            const sum = e.reduce((s2, x) => s2 + x, 0);
            const row = a.attention.data.subarray(((l * H + h) * T + i) * T, ((l * H + h) * T + i + 1) * T);
            keys.forEach((j) => expect(Math.abs(e[j] / sum - row[j])).toBeLessThan(2e-5));
            // One key (the last visible): every term, its share, sorted by |t|.
            const j = keys[keys.length - 1];
            const c = keyContributions(a, l, h, i, j);
            const dot = terms[j].reduce((s2, x) => s2 + x, 0);
            expect(c.dot).toBeCloseTo(dot, 9);
            expect(c.score).toBeCloseTo(dot * scale, 9);
            expect(c.attention).toBe(row[j]);
            const byDim = new Map(c.terms.map((t) => [t.dim, t]));
            terms[j].forEach((t, n) => {
              expect(byDim.get(n)!.product).toBeCloseTo(t, 12);
              expect(byDim.get(n)!.share).toBeCloseTo(t / dot, 6);
            });
            const sizes = c.terms.map((t) => Math.abs(t.product));
            expect(sizes).toEqual([...sizes].sort((x, y) => y - x));
            // The whole row: variance shares from the float64 terms.
            const r = rowContributions(a, l, h, i);
            if (keys.length === 1) {
              expect(r.variance).toBe(0);
              continue;
            }
            const mean = (v: number[]) => v.reduce((s2, x) => s2 + x, 0) / v.length;
            const sm = mean(scores);
            const variance = mean(scores.map((z) => (z - sm) ** 2));
            expect(r.variance).toBeCloseTo(variance, 9);
            for (const dim of r.dims) {
              const n = dim.dim as number;
              const cn = terms.map((t) => t[n] * scale);
              const cm = mean(cn);
              const share = mean(cn.map((x, m) => (x - cm) * (scores[m] - sm))) / variance;
              expect(dim.share, `layer ${l} head ${h} token ${i} dim ${n}`).toBeCloseTo(share, 6);
            }
          }
        }
    });
});

// ---- the CLI ---------------------------------------------------------------------------------------------

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CLI = join(ROOT, 'dist/src/cli/main.js');
const tmp = await mkdtemp(join(tmpdir(), 'attnviz-neurons-'));
afterAll(() => rm(tmp, { recursive: true, force: true }));

/** Runs the built CLI; resolves with its exit code and output whatever the code. */
async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, ...args], { cwd: ROOT });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

describe.skipIf(!HAVE_SHARED)('attnviz neurons', () => {
  test('-o .json: the library’s numbers for the key asked for and for the whole row; summary on stdout', async () => {
    const a: Attention = { ...(await golden('gpt2-tiny__cat_sat')), causal: true };
    const file = join(tmp, 'gpt2.safetensors');
    await writeAttentionFile(file, a);
    const out = join(tmp, 'n.json');
    const r = await cli(
      'neurons',
      '--from',
      file,
      '--layer',
      '1',
      '--head',
      '2',
      '--token',
      '5',
      '--key',
      '3',
      '-o',
      out,
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe(`wrote ${out}: layer 1 head 2, token 5 → key 3\n`);
    const report = JSON.parse(await readFile(out, 'utf8'));
    // The file stores attention and q/k as float32: the library on the file's data gives the same numbers.
    const back = await readAttentionFile(file);
    const key = keyContributions(back, 1, 2, 5, 3),
      row = rowContributions(back, 1, 2, 5);
    expect(report.key).toEqual({ ...JSON.parse(JSON.stringify(key)), token: a.tokens[3] });
    expect(report.row).toEqual(JSON.parse(JSON.stringify(row)));
    expect(report).toMatchObject({
      layer: 1,
      head: 2,
      query: { index: 5, token: a.tokens[5] },
      headSize: 8,
      rotary: null,
      score: { formula: 'softmax(q · k / √d)', positionBias: false },
      check: { ok: true },
    });
    // Without -o: a summary, and without --key the key the token attends to most.
    const s = await cli('neurons', '--from', file, '--layer', '1', '--head', '2', '--token', '5');
    expect(s.code, s.stderr).toBe(0);
    const attention = back.attention.data.subarray(((1 * 4 + 2) * 7 + 5) * 7, ((1 * 4 + 2) * 7 + 6) * 7);
    const strongest = [...attention].indexOf(Math.max(...attention));
    expect(s.stdout.split('\n')[0]).toContain(`→ key ${JSON.stringify(a.tokens[strongest])} (${strongest})`);
    expect(s.stdout).toContain('reproduces the attention row');
  });

  test('bad input: one line, exit 2, nothing written', async () => {
    const file = join(tmp, 'gpt2.safetensors');
    const out = join(tmp, 'bad.json');
    for (const [args, message] of [
      [['--layer', '0', '--head', '9', '--token', '1'], /--head 9 is out of range: the data has 4 heads/],
      [['--layer', '0', '--head', '0'], /missing --token/],
      [['--layer', '0', '--head', '0', '--token', '1', '--key', '4'], /--key 4 is masked for --token 1/],
      [['--layer', '0', '--head', '0', '--token', 'x'], /--token must be a non-negative integer/],
    ] as const) {
      const r = await cli('neurons', '--from', file, ...args, '-o', out);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
    const r = await cli('neurons', '--from', file, '--layer', '0', '--head', '0', '--token', '1', '-o', 'x.txt');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--out must end in .json, .html, .png or .svg/);
    await expect(readFile(out)).rejects.toThrow();
  });

  test('export --view neuron --head --token --key opens the view expanded on that token', async () => {
    const out = join(tmp, 'n.html');
    const file = join(tmp, 'gpt2.safetensors');
    const r = await cli(
      'export',
      '--view',
      'neuron',
      '--from',
      file,
      '--head',
      '3',
      '--token',
      '4',
      '--key',
      '2',
      '-o',
      out,
    );
    expect(r.code, r.stderr).toBe(0);
    const html = await readFile(out, 'utf8');
    const options = JSON.parse(html.match(/data-options="([^"]*)"/)![1].replace(/&quot;/g, '"'));
    expect(options).toEqual({ head: 3, selected: 4, expanded: true, key: 2 });
    const bad = await cli('export', '--view', 'head', '--from', file, '--token', '4', '-o', out);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--token is for --view neuron/);
  });
});
