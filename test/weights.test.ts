/**
 * Checkpoint naming variants and weight dtypes, each derived from a golden model (test/checkpoints.ts) and
 * checked against the golden case: BERT without the `bert.` prefix, with LayerNorm `gamma`/`beta`, with
 * pooler / NSP / MLM-head tensors, sharded; GPT-2 with the `transformer.` prefix, without the causal-mask
 * buffers, with `lm_head.weight`; F16 and BF16 weights.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import type { Attention } from '../src/core/attention.js';
import type { TensorToWrite } from '../src/core/safetensors.js';
import { loadModel } from '../src/models/load-model.js';
import {
  bf16BitsToF32,
  deriveCheckpoint,
  f16BitsToF32,
  f32ToBf16Bits,
  f32ToF16Bits,
  readWeights,
  removeCheckpoint,
  tensorToF32,
  type DeriveOptions,
} from './checkpoints.js';
import { goldenModel, HAVE_SHARED, maxAbs, maxAbsDiff, readGoldenCase, SHARED, type GoldenCase } from './shared.js';

const made: string[] = [];
afterAll(async () => {
  await Promise.all(made.map(removeCheckpoint));
});

async function derive(model: string, options: DeriveOptions): Promise<string> {
  const dir = await deriveCheckpoint(goldenModel(model), options);
  made.push(dir);
  return dir;
}

/** Loads the folder, runs the golden case's input, releases the model. */
async function run(dir: string, golden: GoldenCase): Promise<Attention> {
  const m = await loadModel(dir);
  try {
    return await m.attention(golden.text, { pair: golden.textPair });
  } finally {
    await m.release();
  }
}

const goldenCases = new Map<string, Promise<GoldenCase>>();
const goldenCase = (name: string): Promise<GoldenCase> => {
  if (!goldenCases.has(name))
    goldenCases.set(name, readGoldenCase(join(SHARED, 'golden', 'cases', `${name}.safetensors`)));
  return goldenCases.get(name)!;
};

/** The golden acceptance test: tokens and ids exact, attention within 1e-4, q/k/hidden within 1e-4 × scale. */
function expectGolden(a: Attention, golden: GoldenCase): void {
  expect(a.tokens).toEqual(golden.tokens);
  expect(a.inputIds).toEqual(golden.inputIds);
  expect(a.attention.dims).toEqual(golden.dims('attention'));
  expect(maxAbsDiff(a.attention.data, golden.f32('attention'))).toBeLessThan(1e-4);
  for (const [name, ours] of [
    ['query', a.query!],
    ['key', a.key!],
    ['hidden_last', a.hiddenLast!],
  ] as const) {
    const ref = golden.f32(name);
    expect(ours.dims, name).toEqual(golden.dims(name));
    expect(maxAbsDiff(ours.data, ref), name).toBeLessThan(1e-4 * Math.max(1, maxAbs(ref)));
  }
}

const f32Tensor = (shape: number[], fill: (i: number) => number): TensorToWrite => {
  const n = shape.reduce((a, b) => a * b, 1);
  return { dtype: 'F32', shape, data: Float32Array.from({ length: n }, (_, i) => fill(i)) };
};
/** Deterministic, non-trivial values (a model that read these instead of the real weights would be far off). */
const noise = (seed: number) => (i: number) => Math.sin(seed * 1000 + i * 12.9898) * 0.5;

describe('f32 → f16 / bf16 conversion (test helper)', () => {
  // Failures are collected rather than asserted one by one (65536 values × 4 checks).
  test('every finite f16 value round-trips, and midpoints round to the even neighbour', () => {
    const bad: string[] = [];
    const want = (what: string, got: number, expected: number) => {
      if (got !== expected) bad.push(`${what}: got 0x${got.toString(16)}, expected 0x${expected.toString(16)}`);
    };
    const y = new Float32Array(1);
    const bits = new Uint32Array(y.buffer);
    for (let h = 0; h < 0x10000; h++) {
      const x = f16BitsToF32(h);
      if (Number.isNaN(x)) {
        if (!Number.isNaN(f16BitsToF32(f32ToF16Bits(x)))) bad.push(`NaN 0x${h.toString(16)} not kept`);
        continue;
      }
      want(`${x}`, f32ToF16Bits(x), h);
      if ((h & 0x7fff) >= 0x7bff) continue; // Infinity, and 65504 → Infinity (checked below)
      // The midpoint to the next larger magnitude, exact in f32 (f16 has 13 fewer mantissa bits).
      const next = h + 1;
      const mid = (x + f16BitsToF32(next)) / 2;
      y[0] = mid;
      if (y[0] !== mid) bad.push(`midpoint after 0x${h.toString(16)} not exact in f32`);
      want(`midpoint after 0x${h.toString(16)}`, f32ToF16Bits(y[0]), h & 1 ? next : h);
      // One f32 ulp above / below the midpoint goes to the nearer neighbour.
      bits[0] += 1;
      want(`above midpoint after 0x${h.toString(16)}`, f32ToF16Bits(y[0]), next);
      bits[0] -= 2;
      want(`below midpoint after 0x${h.toString(16)}`, f32ToF16Bits(y[0]), h);
    }
    expect(bad.slice(0, 10)).toEqual([]);
    expect(f32ToF16Bits(65520)).toBe(0x7c00); // halfway between 65504 and 2^16 rounds (to even) to Infinity
    expect(f32ToF16Bits(65519.99)).toBe(0x7bff);
    expect(f32ToF16Bits(2 ** -25)).toBe(0); // exactly half the smallest subnormal: ties to even, 0
    expect(f32ToF16Bits(Math.fround(2 ** -25 * 1.0000001))).toBe(1);
    expect(f32ToF16Bits(-1e-8)).toBe(0x8000);
    expect(f32ToF16Bits(-Infinity)).toBe(0xfc00);
  });

  test('every finite bf16 value round-trips, and midpoints round to the even neighbour', () => {
    const bad: string[] = [];
    const want = (what: string, got: number, expected: number) => {
      if (got !== expected) bad.push(`${what}: got 0x${got.toString(16)}, expected 0x${expected.toString(16)}`);
    };
    const y = new Float32Array(1);
    const bits = new Uint32Array(y.buffer);
    for (let b = 0; b < 0x10000; b++) {
      const x = bf16BitsToF32(b);
      if (Number.isNaN(x)) {
        if (!Number.isNaN(bf16BitsToF32(f32ToBf16Bits(x)))) bad.push(`NaN 0x${b.toString(16)} not kept`);
        continue;
      }
      want(`${x}`, f32ToBf16Bits(x), b);
      if ((b & 0x7fff) >= 0x7f80) continue;
      y[0] = x;
      bits[0] += 0x8000; // exactly halfway to the next bf16 value (the max finite one: to Infinity, odd → up)
      want(`midpoint after 0x${b.toString(16)}`, f32ToBf16Bits(y[0]), b & 1 ? b + 1 : b);
      bits[0] += 1;
      want(`above midpoint after 0x${b.toString(16)}`, f32ToBf16Bits(y[0]), b + 1);
      bits[0] -= 2;
      want(`below midpoint after 0x${b.toString(16)}`, f32ToBf16Bits(y[0]), b);
    }
    expect(bad.slice(0, 10)).toEqual([]);
    expect(f32ToBf16Bits(3.4028234663852886e38)).toBe(0x7f80); // max f32 rounds up to Infinity
  });
});

describe.skipIf(!HAVE_SHARED)('BERT naming variants (bert-tiny__cat_pair)', () => {
  const NAME = 'bert-tiny';
  const theCase = () => goldenCase('bert-tiny__cat_pair');
  const layerNormLegacy = (n: string) =>
    n.replace(/LayerNorm\.weight$/, 'LayerNorm.gamma').replace(/LayerNorm\.bias$/, 'LayerNorm.beta');

  test('the golden checkpoint itself (bert. prefix, weight/bias)', async () => {
    const golden = await theCase();
    expectGolden(await run(await derive(NAME, {}), golden), golden);
  });

  test('without the bert. prefix', async () => {
    const golden = await theCase();
    const dir = await derive(NAME, { rename: (n) => n.replace(/^bert\./, '') });
    const { tensors } = await readWeights(dir);
    expect([...tensors.keys()].some((n) => n.startsWith('bert.'))).toBe(false);
    expect(tensors.has('embeddings.word_embeddings.weight')).toBe(true);
    expectGolden(await run(dir, golden), golden);
  });

  test('with LayerNorm gamma/beta', async () => {
    const golden = await theCase();
    const dir = await derive(NAME, { rename: layerNormLegacy });
    const { tensors } = await readWeights(dir);
    expect(tensors.has('bert.encoder.layer.0.output.LayerNorm.gamma')).toBe(true);
    expect([...tensors.keys()].some((n) => /LayerNorm\.(weight|bias)$/.test(n))).toBe(false);
    expectGolden(await run(dir, golden), golden);
  });

  test('without the bert. prefix and with gamma/beta', async () => {
    const golden = await theCase();
    expectGolden(
      await run(await derive(NAME, { rename: (n) => layerNormLegacy(n.replace(/^bert\./, '')) }), golden),
      golden,
    );
  });

  test(
    'with pooler, NSP head (cls.seq_relationship.*) and MLM head ' + '(cls.predictions.*) tensors, which are ignored',
    async () => {
      const golden = await theCase();
      const dir = await derive(NAME, {
        extra: {
          'bert.pooler.dense.weight': f32Tensor([40, 40], noise(1)),
          'bert.pooler.dense.bias': f32Tensor([40], noise(2)),
          'cls.seq_relationship.weight': f32Tensor([2, 40], noise(3)),
          'cls.seq_relationship.bias': f32Tensor([2], noise(4)),
          'cls.predictions.decoder.weight': f32Tensor([30522, 40], noise(5)),
          'cls.predictions.decoder.bias': f32Tensor([30522], noise(6)),
        },
      });
      const { tensors } = await readWeights(dir);
      expect(tensors.has('cls.predictions.transform.dense.weight')).toBe(true);
      expect(tensors.has('cls.seq_relationship.weight')).toBe(true);
      expectGolden(await run(dir, golden), golden);
    },
  );

  test('sharded into 3 files with model.safetensors.index.json', async () => {
    const golden = await theCase();
    const dir = await derive(NAME, { shards: 3 });
    const files = (await readdir(dir)).filter((f) => f.includes('safetensors')).sort();
    expect(files).toEqual([
      'model-00001-of-00003.safetensors',
      'model-00002-of-00003.safetensors',
      'model-00003-of-00003.safetensors',
      'model.safetensors.index.json',
    ]);
    const index = JSON.parse(await readFile(join(dir, 'model.safetensors.index.json'), 'utf8'));
    expect(new Set(Object.values(index.weight_map)).size).toBe(3);
    expect(index.metadata.total_size).toBeGreaterThan(0);
    expectGolden(await run(dir, golden), golden);
  });

  test('all at once: no prefix, gamma/beta, extra heads, 3 shards, legacy vocab.txt only', async () => {
    const golden = await theCase();
    const dir = await derive(NAME, {
      rename: (n) => layerNormLegacy(n.replace(/^bert\./, '')),
      extra: { 'pooler.dense.weight': f32Tensor([40, 40], noise(7)), 'pooler.dense.bias': f32Tensor([40], noise(8)) },
      shards: 3,
      dropTokenizerJson: true,
    });
    expect((await readdir(dir)).includes('tokenizer.json')).toBe(false);
    expectGolden(await run(dir, golden), golden);
  });
});

describe.skipIf(!HAVE_SHARED)('GPT-2 naming variants (gpt2-tiny__cat_sat)', () => {
  const NAME = 'gpt2-tiny';
  const theCase = () => goldenCase('gpt2-tiny__cat_sat');
  const isMaskBuffer = (n: string) => /(^|\.)h\.\d+\.attn\.(bias|masked_bias)$/.test(n);

  test('with the transformer. prefix', async () => {
    const golden = await theCase();
    const dir = await derive(NAME, { rename: (n) => `transformer.${n}` });
    expect((await readWeights(dir)).tensors.has('transformer.wte.weight')).toBe(true);
    expectGolden(await run(dir, golden), golden);
  });

  test('without the h.N.attn.bias / h.N.attn.masked_bias buffers', async () => {
    const golden = await theCase();
    const dir = await derive(NAME, { rename: (n) => (isMaskBuffer(n) ? null : n) });
    const names = [...(await readWeights(dir)).tensors.keys()];
    expect(names.some(isMaskBuffer)).toBe(false);
    expect(names).toContain('h.0.attn.c_attn.bias');
    expectGolden(await run(dir, golden), golden);
  });

  test('with h.N.attn.masked_bias buffers as older saves have them (ignored)', async () => {
    const golden = await theCase();
    const dir = await derive(NAME, {
      extra: { 'h.0.attn.masked_bias': f32Tensor([], () => -1e4), 'h.1.attn.masked_bias': f32Tensor([], () => -1e4) },
    });
    expectGolden(await run(dir, golden), golden);
  });

  test('with an extra lm_head.weight (untied copy, and a different one: neither is read)', async () => {
    const golden = await theCase();
    const wte = (await readWeights(goldenModel(NAME))).tensors.get('wte.weight')!;
    expectGolden(await run(await derive(NAME, { extra: { 'lm_head.weight': wte } }), golden), golden);
    expectGolden(
      await run(await derive(NAME, { extra: { 'lm_head.weight': f32Tensor([50257, 32], noise(9)) } }), golden),
      golden,
    );
  });

  test(
    'all at once: transformer. prefix, no mask buffers, lm_head, ' + '3 shards, legacy vocab.json + merges.txt only',
    async () => {
      const golden = await theCase();
      const wte = (await readWeights(goldenModel(NAME))).tensors.get('wte.weight')!;
      const dir = await derive(NAME, {
        rename: (n) => (isMaskBuffer(n) ? null : `transformer.${n}`),
        extra: { 'lm_head.weight': wte },
        shards: 3,
        dropTokenizerJson: true,
      });
      expectGolden(await run(dir, golden), golden);
    },
  );
});

/**
 * Half-precision weights. Two checks per model and dtype:
 *  1. exact: the F16/BF16 checkpoint gives the same numbers (≤ 1e-6) as an F32 checkpoint holding the very
 *     same rounded values — the loader widens half floats exactly (a Cast, nothing else changes);
 *  2. close: against the F32 golden, within a tolerance set by the dtype's precision.
 *
 * Tolerance. Rounding to nearest changes each weight by at most the unit roundoff u relative: u = 2^-11 ≈
 * 4.9e-4 for f16 (10 stored mantissa bits), 2^-8 ≈ 3.9e-3 for bf16 (7 bits), 8× coarser. An attention logit
 * q·k/√d carries a relative error of a few u (q and k are each sums of rounded products, plus the rounded
 * embeddings and LayerNorm parameters upstream); a probability p moves by p(1-p)·Δlogit ≤ Δlogit/4. These
 * models have deliberately peaked attention (logits up to ~10), so a few u · 10 / 4 ≈ 10u is a reasonable
 * ceiling for the worst entry. Observed max |attention − golden| (printed by the test; this machine):
 *   bert-tiny cat_pair  F16 1.29e-3 (2.6u)   BF16 1.27e-2 (3.2u)
 *   gpt2-tiny cat_sat   F16 7.0e-4  (1.4u)   BF16 4.7e-3  (1.2u)
 * Asserted: < 12u (F16 5.9e-3, BF16 4.7e-2), ~4× above the largest observation and still far below what a
 * misread or mis-cast weight gives (attention moves by 0.1–1, cf. the golden README's sensitivity figures).
 */
const OBSERVED: Record<string, number> = {};
const UNIT_ROUNDOFF = { F16: 2 ** -11, BF16: 2 ** -8 } as const;
const TOLERANCE = { F16: 12 * UNIT_ROUNDOFF.F16, BF16: 12 * UNIT_ROUNDOFF.BF16 } as const;

describe.skipIf(!HAVE_SHARED)('F16 and BF16 checkpoints', () => {
  afterAll(() => {
    if (Object.keys(OBSERVED).length > 0)
      console.log('max |attention - golden| with half-precision weights:', OBSERVED);
  });

  const cases = [
    ['bert-tiny', 'bert-tiny__cat_pair', 'F16'],
    ['bert-tiny', 'bert-tiny__cat_pair', 'BF16'],
    ['gpt2-tiny', 'gpt2-tiny__cat_sat', 'F16'],
    ['gpt2-tiny', 'gpt2-tiny__cat_sat', 'BF16'],
  ] as const;

  test.each(cases)('%s %s %s', async (model, caseName, dtype) => {
    const golden = await goldenCase(caseName);
    const half = await derive(model, { floats: { dtype } });
    const rounded = await derive(model, { floats: { dtype, storeAs: 'F32' } });

    // The derived files really hold half floats (the float tensors), or f32 copies of them.
    const halfWeights = (await readWeights(half)).tensors;
    const roundedWeights = (await readWeights(rounded)).tensors;
    const probe = model === 'bert-tiny' ? 'bert.encoder.layer.0.attention.self.query.weight' : 'h.0.attn.c_attn.weight';
    expect(halfWeights.get(probe)!.dtype).toBe(dtype);
    expect(roundedWeights.get(probe)!.dtype).toBe('F32');
    expect(tensorToF32(halfWeights.get(probe)!)).toEqual(tensorToF32(roundedWeights.get(probe)!));
    if (model === 'bert-tiny') expect(halfWeights.get('bert.embeddings.position_ids')!.dtype).toBe('I64');

    const a = await run(half, golden);
    const b = await run(rounded, golden);
    expect(a.tokens).toEqual(golden.tokens);

    // 1. exact: half-float checkpoint == f32 checkpoint of the same rounded values
    expect(maxAbsDiff(a.attention.data, b.attention.data)).toBeLessThanOrEqual(1e-6);
    for (const name of ['query', 'key', 'hiddenLast'] as const) {
      expect(maxAbsDiff(a[name]!.data, b[name]!.data), name).toBeLessThanOrEqual(
        1e-6 * Math.max(1, maxAbs(b[name]!.data)),
      );
    }

    // 2. close to the f32 golden
    const err = maxAbsDiff(a.attention.data, golden.f32('attention'));
    OBSERVED[`${model} ${dtype}`] = err;
    expect(err).toBeLessThan(TOLERANCE[dtype]);
    // ... and not trivially so: rounding does change the result (the weights really are the rounded ones)
    expect(err).toBeGreaterThan(1e-7);
  });
});
