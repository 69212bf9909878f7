/**
 * The Llama family (src/graph/llama.ts) on Hugging Face checkpoints.
 *
 * Against an independent reference: every llama-tiny-mha golden case (llama2.c's model.py, ../shared/golden)
 * — tokens and ids exactly, attention within 1e-4, q/k (HF layout, after RoPE) and hidden_last within
 * 1e-4 × max(1, max |golden|), full logits within 1e-3 × max(1, max |golden|). Mistral on an input within
 * its sliding window must give the same numbers. Sliding windows shorter than the text (Mistral; Qwen2 from
 * max_window_layers; explicit layer_types) against a float64 forward pass written here.
 *
 * Invariants on checkpoints derived from llama-tiny-mha (test/checkpoints.ts): grouped-query attention gives
 * exactly what multi-head attention with each kv head's rows copied gives (head h reads kv head ⌊h / n⌋);
 * Qwen2's q/k/v biases move q and k at position 0 (where RoPE is the identity) by exactly the bias; a tied
 * matrix saved only as lm_head.weight loads; bad configs fail with one line naming the field.
 */
import { afterAll, describe, expect, test } from 'vitest';
import { decodeAttentionFile, encodeAttentionFile } from '../src/core/attention-file.js';
import type { TensorToWrite } from '../src/core/safetensors.js';
import { Model } from '../src/models/checkpoint-model.js';
import { ropeInvFreq } from '../src/graph/rotary.js';
import { ModelConfig } from '../src/load/config.js';
import { deriveCheckpoint, readWeights, removeCheckpoint, tensorToF32, type DeriveOptions } from './checkpoints.js';
import {
  expectMatchesGolden,
  goldenCases,
  goldenModel,
  HAVE_SHARED,
  maxAbs,
  maxAbsDiff,
  readGoldenCase,
} from './shared.js';

const LLAMA = 'llama-tiny-mha';
const D = 48,
  HEADS = 4,
  HEAD_DIM = 12,
  LAYERS = 2;
const TEXT = 'The cat sat on the mat.';

const opened: Model[] = [];
const derived: string[] = [];
async function open(dir: string, options: Parameters<typeof Model.load>[1] = {}): Promise<Model> {
  const m = await Model.load(dir, options);
  opened.push(m);
  return m;
}
async function derive(options: DeriveOptions): Promise<string> {
  const dir = await deriveCheckpoint(goldenModel(LLAMA), options);
  derived.push(dir);
  return dir;
}
afterAll(async () => {
  await Promise.all(opened.splice(0).map((m) => m.release()));
  await Promise.all(derived.splice(0).map(removeCheckpoint));
});

/** Awaits `p`, which must reject with a one-line error matching `pattern`. */
async function expectBad(p: Promise<unknown>, pattern: RegExp): Promise<void> {
  const e = await p.then(
    async (m) => {
      if (m && typeof m === 'object' && 'release' in m) await (m as Model).release();
      throw new Error(`expected an error matching ${pattern}`);
    },
    (error: Error) => error,
  );
  expect(e.name).toBe('AttnvizError');
  expect(e.message).not.toMatch(/\n/);
  expect(e.message).toMatch(pattern);
}

/** Rows [from, to) of a row-major [rows, cols] matrix. */
const rows = (m: Float32Array, cols: number, from: number, to: number) => m.subarray(from * cols, to * cols);
const f32 = (shape: number[], data: Float32Array): TensorToWrite => ({ dtype: 'F32', shape, data });

describe.skipIf(!HAVE_SHARED)('Llama golden cases (llama2.c model.py)', () => {
  const files = goldenCases([LLAMA]);
  let model: Promise<Model>;
  const llama = () => (model ??= open(goldenModel(LLAMA), { logits: 'all' }));

  test('there are nine cases', () => {
    expect(files.length).toBeGreaterThanOrEqual(9);
  });

  test.each(files.map((f) => [f.split('/').pop()!, f]))('%s', async (_, file) => {
    const golden = await readGoldenCase(file);
    const m = await llama();
    const a = await m.attention(golden.text, { pair: golden.textPair });
    expectMatchesGolden(a, golden);
    expect(a.kvHeads).toBeUndefined();
    expect(a.rotary).toBe('half');
    const logits = await m.logits(golden.text, { pair: golden.textPair });
    const ref = golden.f32('logits');
    expect(logits.dims).toEqual(golden.dims('logits'));
    expect(maxAbsDiff(logits.data, ref)).toBeLessThan(1e-3 * Math.max(1, maxAbs(ref)));
  });

  test("logits: 'last' is the last row of 'all'", async () => {
    const golden = await readGoldenCase(files.find((f) => f.includes('__cat_sat'))!);
    const last = await (await open(goldenModel(LLAMA), { logits: 'last', extract: false })).logits(golden.text);
    const all = golden.f32('logits');
    expect(last.dims).toEqual([1, 512]);
    expect(maxAbsDiff(last.data, all.subarray(all.length - 512))).toBeLessThan(1e-3 * Math.max(1, maxAbs(all)));
  });

  test('Mistral within its sliding window computes the same as Llama', async () => {
    const m = await open(await derive({ config: { model_type: 'mistral', sliding_window: 64 } }));
    const golden = await readGoldenCase(files.find((f) => f.includes('__cat_sat'))!);
    const a = await m.attention(golden.text);
    expectMatchesGolden(a, golden);
    expect(a.layerWindows).toEqual([
      [63, 0],
      [63, 0],
    ]);
    expect(decodeAttentionFile(encodeAttentionFile(a), 'a.safetensors').layerWindows).toEqual(a.layerWindows);
  });
});

// ---- sliding windows, against a float64 forward pass -------------------------------------------------------

/**
 * llama-tiny-mha's forward pass in float64, from modeling_llama.py (HF 'half' RoPE, θ 500000, RMSNorm eps
 * 1e-6, SwiGLU), with transformers' sliding-window rule in the layers given a window: query i attends to
 * keys j with 0 ≤ i − j < window. Returns each layer's probabilities `[H, T, T]`.
 */
async function reference64(ids: number[], windows: (number | null)[]): Promise<Float64Array[]> {
  const { tensors } = await readWeights(goldenModel(LLAMA));
  const w = (name: string) => Float64Array.from(tensorToF32(tensors.get(name)!));
  const T = ids.length,
    d = HEAD_DIM,
    F = 128;
  const emb = w('model.embed_tokens.weight');
  let x = ids.map((id) => emb.slice(id * D, (id + 1) * D));
  const rms = (v: Float64Array, g: Float64Array) => {
    const s = 1 / Math.sqrt(v.reduce((a, b) => a + b * b, 0) / v.length + 1e-6);
    return v.map((t, i) => t * s * g[i]);
  };
  const linear = (v: Float64Array, m: Float64Array, rows: number) =>
    Float64Array.from({ length: rows }, (_, r) => v.reduce((a, t, c) => a + t * m[r * v.length + c], 0));
  const inv = Array.from({ length: d / 2 }, (_, j) => 1 / 500000 ** ((2 * j) / d));
  const rope = (v: Float64Array, t: number) => {
    const out = v.slice();
    for (let h = 0; h < HEADS; h++) {
      for (let j = 0; j < d / 2; j++) {
        const [a, b] = [v[h * d + j], v[h * d + j + d / 2]],
          [c, s] = [Math.cos(t * inv[j]), Math.sin(t * inv[j])];
        out[h * d + j] = a * c - b * s;
        out[h * d + j + d / 2] = b * c + a * s;
      }
    }
    return out;
  };
  const probs: Float64Array[] = [];
  for (let l = 0; l < LAYERS; l++) {
    const p = `model.layers.${l}`;
    const h = x.map((v) => rms(v, w(`${p}.input_layernorm.weight`)));
    const [wq, wk, wv, wo] = ['q', 'k', 'v', 'o'].map((n) => w(`${p}.self_attn.${n}_proj.weight`));
    const q = h.map((v, t) => rope(linear(v, wq, D), t)),
      k = h.map((v, t) => rope(linear(v, wk, D), t)),
      v = h.map((u) => linear(u, wv, D));
    const layer = new Float64Array(HEADS * T * T);
    const context = x.map(() => new Float64Array(D));
    for (let hd = 0; hd < HEADS; hd++) {
      for (let i = 0; i < T; i++) {
        const seen = (j: number) => j <= i && (windows[l] === null || i - j < windows[l]!);
        const scores = Array.from({ length: T }, (_, j) =>
          seen(j)
            ? q[i].slice(hd * d, hd * d + d).reduce((a, t, c) => a + t * k[j][hd * d + c], 0) / Math.sqrt(d)
            : -Infinity,
        );
        const max = Math.max(...scores),
          e = scores.map((s) => Math.exp(s - max)),
          sum = e.reduce((a, b) => a + b);
        for (let j = 0; j < T; j++) {
          layer[(hd * T + i) * T + j] = e[j] / sum;
          for (let c = 0; c < d; c++) context[i][hd * d + c] += (e[j] / sum) * v[j][hd * d + c];
        }
      }
    }
    probs.push(layer);
    x = x.map((u, t) => u.map((a, i) => a + linear(context[t], wo, D)[i]));
    const [gate, up, down] = ['gate', 'up', 'down'].map((n) => w(`${p}.mlp.${n}_proj.weight`));
    x = x.map((u) => {
      const h2 = rms(u, w(`${p}.post_attention_layernorm.weight`));
      const g = linear(h2, gate, F),
        z = linear(h2, up, F);
      const act = g.map((a, i) => (a / (1 + Math.exp(-a))) * z[i]);
      const out = linear(act, down, D);
      return u.map((a, i) => a + out[i]);
    });
  }
  return probs;
}

describe.skipIf(!HAVE_SHARED)('sliding windows (window < T), against a float64 forward pass', () => {
  const long = 'The cat sat on the mat and the dog sat on the rug by the door.';

  test.each([
    ['Mistral: every layer', { model_type: 'mistral', sliding_window: 5 }, [5, 5]],
    [
      'Qwen2 use_sliding_window: layers from max_window_layers',
      { model_type: 'qwen2', use_sliding_window: true, sliding_window: 4, max_window_layers: 1 },
      [null, 4],
    ],
    ['Qwen2 without use_sliding_window: none', { model_type: 'qwen2', sliding_window: 4 }, [null, null]],
    [
      'explicit layer_types',
      { model_type: 'mistral', sliding_window: 3, layer_types: ['sliding_attention', 'full_attention'] },
      [3, null],
    ],
  ] as const)('%s', async (_, config, windows) => {
    // Qwen2's q/k/v biases, zero: the same weights as the reference.
    const zero = (n: string) => [n, f32([D], new Float32Array(D))] as const;
    const biases = Object.fromEntries(
      [0, 1].flatMap((l) => ['q', 'k', 'v'].map((p) => zero(`model.layers.${l}.self_attn.${p}_proj.bias`))),
    );
    const m = await open(await derive({ config, extra: config.model_type === 'qwen2' ? biases : {} }));
    const a = await m.attention(long);
    const T = a.tokens.length;
    expect(T).toBeGreaterThan(8);
    const ref = await reference64(a.inputIds!, [...windows]);
    for (let l = 0; l < LAYERS; l++) {
      const ours = a.attention.data.subarray(l * HEADS * T * T, (l + 1) * HEADS * T * T);
      expect(maxAbsDiff(ours, ref[l]), `layer ${l}`).toBeLessThan(1e-4);
      // Outside the window the probabilities are exact zeros.
      const w = windows[l];
      if (w !== null) expect(ours[(0 * T + T - 1) * T + (T - 1 - w)]).toBe(0);
    }
    expect(a.layerWindows).toEqual(
      windows.every((w) => w === null) ? undefined : windows.map((w) => (w === null ? null : [w - 1, 0])),
    );
  });
});

describe.skipIf(!HAVE_SHARED)('Llama invariants on derived checkpoints', () => {
  test(
    'grouped-query attention = multi-head attention with the kv ' + 'rows copied (head h reads kv head ⌊h/2⌋)',
    async () => {
      const { tensors } = await readWeights(goldenModel(LLAMA));
      const kvRows = (name: string) => tensorToF32(tensors.get(name)!);
      const gqa: Record<string, TensorToWrite> = {},
        copied: Record<string, TensorToWrite> = {};
      for (let l = 0; l < LAYERS; l++) {
        for (const proj of ['k_proj', 'v_proj']) {
          const name = `model.layers.${l}.self_attn.${proj}.weight`;
          const w = kvRows(name);
          // kv head 0 = original head 0, kv head 1 = original head 2.
          const head = (h: number) => rows(w, D, h * HEAD_DIM, (h + 1) * HEAD_DIM);
          gqa[name] = f32([2 * HEAD_DIM, D], Float32Array.from([...head(0), ...head(2)]));
          copied[name] = f32([4 * HEAD_DIM, D], Float32Array.from([...head(0), ...head(0), ...head(2), ...head(2)]));
        }
      }
      const gqaDir = await derive({ extra: gqa, config: { num_key_value_heads: 2 } });
      const a = await (await open(gqaDir)).attention(TEXT);
      const b = await (await open(await derive({ extra: copied }))).attention(TEXT);
      expect(a.kvHeads).toBe(2);
      expect(b.kvHeads).toBeUndefined();
      expect(a.key!.dims).toEqual([LAYERS, HEADS, a.tokens.length, HEAD_DIM]);
      expect(maxAbsDiff(a.attention.data, b.attention.data)).toBeLessThan(1e-6);
      expect(maxAbsDiff(a.query!.data, b.query!.data)).toBeLessThan(1e-5);
      expect(maxAbsDiff(a.key!.data, b.key!.data)).toBeLessThan(1e-5);
      expect(maxAbsDiff(a.hiddenLast!.data, b.hiddenLast!.data)).toBeLessThan(1e-5);
      // Query heads 0 and 1 read the same key.
      const T = a.tokens.length,
        size = T * HEAD_DIM;
      expect(maxAbsDiff(a.key!.data.subarray(0, size), a.key!.data.subarray(size, 2 * size))).toBe(0);
      // Computed a query head at a time (LoadOptions.headChunk, each run slicing the repeated kv heads): the same.
      const byHead = await (await open(gqaDir, { headChunk: 1 })).attention(TEXT);
      for (const key of ['attention', 'query', 'key', 'hiddenLast'] as const)
        expect(maxAbsDiff(byHead[key]!.data, a[key]!.data), key).toBe(0);
    },
  );

  test('Qwen2: q/k/v biases shift q and k at position 0 (RoPE is the identity there) by exactly the bias', async () => {
    const bias = (n: number, seed: number) =>
      Float32Array.from({ length: n }, (_, i) => Math.sin(seed * 7.1 + i * 1.3) * 0.5);
    const extra: Record<string, TensorToWrite> = {};
    for (let l = 0; l < LAYERS; l++) {
      ['q_proj', 'k_proj', 'v_proj'].forEach(
        (p, j) => (extra[`model.layers.${l}.self_attn.${p}.bias`] = f32([D], bias(D, l * 3 + j))),
      );
    }
    const qwen = await (await open(await derive({ extra, config: { model_type: 'qwen2' } }))).attention(TEXT);
    const plain = await (await open(goldenModel(LLAMA))).attention(TEXT);
    const T = qwen.tokens.length;
    for (const [name, ours, ref, b] of [
      ['query', qwen.query!, plain.query!, bias(D, 0)],
      ['key', qwen.key!, plain.key!, bias(D, 1)],
    ] as const) {
      for (let h = 0; h < HEADS; h++) {
        const at = h * T * HEAD_DIM; // layer 0, head h, position 0
        const shift = ours.data.subarray(at, at + HEAD_DIM).map((x, i) => x - ref.data[at + i]);
        expect(maxAbsDiff(shift, b.subarray(h * HEAD_DIM, (h + 1) * HEAD_DIM)), `${name} head ${h}`).toBeLessThan(1e-5);
      }
    }
    expect(maxAbsDiff(qwen.attention.data, plain.attention.data)).toBeGreaterThan(1e-3);
  });

  test('a tied matrix saved only as lm_head.weight (as TinyStories-656K) is the embedding', async () => {
    const dir = await derive({ rename: (n) => (n === 'model.embed_tokens.weight' ? 'lm_head.weight' : n) });
    const golden = await readGoldenCase(goldenCases([LLAMA]).find((f) => f.includes('__cat_sat'))!);
    expectMatchesGolden(await (await open(dir)).attention(golden.text), golden);
  });

  test('an untied head without lm_head.weight is an error only when logits are asked for', async () => {
    const dir = await derive({ config: { tie_word_embeddings: false } });
    expect((await (await open(dir)).attention(TEXT)).tokens.length).toBeGreaterThan(0);
    await expectBad(Model.load(dir, { logits: 'last' }), /lm_head\.weight/);
  });

  test.each([
    // Absent: LlamaConfig's 4096, which the checkpoint's shapes contradict.
    [
      { hidden_size: undefined },
      /tensor "model\.embed_tokens\.weight" has shape \[\d+, 48\]; the config implies \[\d+, 4096\]/,
    ],
    [{ num_key_value_heads: 3 }, /4 attention heads cannot share 3 key\/value heads/],
    [{ num_key_value_heads: 2 }, /self_attn\.k_proj\.weight" has shape \[48, 48\]; the config implies \[24, 48\]/],
    [{ hidden_act: 'gelu' }, /hidden_act "gelu" is not supported for llama \(only silu\)/],
    [
      { rope_scaling: { rope_type: 'yarn', factor: 4 } },
      /rope type "yarn" is not supported \(supported: default, linear, llama3\)/,
    ],
    [{ rope_scaling: { rope_type: 'llama3', factor: 8 } }, /missing field "low_freq_factor"/],
    [{ rope_theta: 'big' }, /field "rope_theta" must be a number/],
  ] as const)('bad config %j', async (patch, pattern) => {
    await expectBad(Model.load(await derive({ config: patch })), pattern);
  });
});

describe('ropeInvFreq', () => {
  const config = (raw: Record<string, unknown>) => new ModelConfig(raw, 'rope_scaling');

  test('default: 1 / θ^(2j/d) in float32', () => {
    const inv = ropeInvFreq(8, 10000, null);
    expect([...inv]).toEqual([1, 0.10000000149011612, 0.009999999776482582, 0.0010000000474974513]);
  });

  test("'linear' divides every frequency by the factor", () => {
    const inv = ropeInvFreq(8, 10000, config({ type: 'linear', factor: 4 }));
    expect(
      maxAbsDiff(
        inv,
        ropeInvFreq(8, 10000, null).map((f) => f / 4),
      ),
    ).toBe(0);
  });

  test("'llama3' keeps wavelengths under original/high, divides those over original/low, blends between", () => {
    // Llama 3.2's settings.
    const scaling = config({
      rope_type: 'llama3',
      factor: 32,
      low_freq_factor: 1,
      high_freq_factor: 4,
      original_max_position_embeddings: 8192,
    });
    const base = ropeInvFreq(64, 500000, null),
      scaled = ropeInvFreq(64, 500000, scaling);
    let blended = 0;
    base.forEach((f, j) => {
      const wavelen = (2 * Math.PI) / f;
      if (wavelen < 8192 / 4) expect(scaled[j]).toBe(f);
      else if (wavelen > 8192) expect(scaled[j]).toBeCloseTo(f / 32, 12);
      else {
        blended++;
        expect(scaled[j]).toBeLessThan(f);
        expect(scaled[j]).toBeGreaterThan(f / 32);
      }
    });
    expect(blended).toBeGreaterThan(0);
  });
});
