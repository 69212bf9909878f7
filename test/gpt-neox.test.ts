/**
 * GPT-NeoX / Pythia on tiny random checkpoints (no golden data yet; gpt2-tiny's byte-level BPE tokenizer is
 * copied in, as Pythia's is GPT-2-like). Checked: the invariants (causal zeros, rows sum to 1, softmax(q·kᵀ/√d
 * + mask) reproduces the attention, so the reported q/k — after the rotary embedding — are what entered the
 * dot product); a float64 forward pass written here from modeling_gpt_neox.py, for parallel and sequential
 * residuals, partial/full/no rotary, with and without attention biases; a hand-computed query for a head
 * whose projection is the identity (the per-head [q k v] interleave of query_key_value and the rotation);
 * and one-line errors on bad inputs.
 */
import { afterAll, describe, expect, test } from 'vitest';
import { Model } from '../src/models/checkpoint-model.js';
import { maxAbs, maxAbsDiff } from './shared.js';
import { activation, addRows, attend, causal, gather, layerNorm, linear, rope, type Rows } from './reference.js';
import {
  expectBad,
  expectInvariants,
  expectMatchesReference,
  graphOf,
  removeTinyModels,
  Rng,
  TinyWeights,
  writeTinyModel,
  type Reference,
} from './tiny-models.js';

const TEXT = 'The cat sat on the mat; the dog, unimpressed, watched it.';
const V = 50257,
  D = 32,
  H = 4,
  d = 8,
  I = 64,
  P = 128,
  EPS = 1e-5;

const loaded: Model[] = [];
async function open(dir: string): Promise<Model> {
  const m = await Model.load(dir);
  loaded.push(m);
  return m;
}
afterAll(async () => {
  await Promise.all(loaded.splice(0).map((m) => m.release()));
  await removeTinyModels();
});

/** What a tiny checkpoint varies. */
interface Spec {
  layers: number;
  rotaryPct: number;
  base: number;
  parallel: boolean;
  bias: boolean;
}
const PYTHIA_LIKE: Spec = { layers: 2, rotaryPct: 0.5, base: 10000, parallel: true, bias: true };

function configOf(s: Spec): Record<string, unknown> {
  return {
    architectures: ['GPTNeoXForCausalLM'],
    model_type: 'gpt_neox',
    vocab_size: V,
    hidden_size: D,
    num_hidden_layers: s.layers,
    num_attention_heads: H,
    intermediate_size: I,
    hidden_act: 'gelu',
    max_position_embeddings: P,
    rotary_pct: s.rotaryPct,
    rotary_emb_base: s.base,
    use_parallel_residual: s.parallel,
    attention_bias: s.bias,
    layer_norm_eps: EPS,
    tie_word_embeddings: false,
    bos_token_id: 0,
    eos_token_id: 0,
    rope_scaling: null,
  };
}

/** Row r of query_key_value is head ⌊r / 3d⌋, part (q, k, v) ⌊(r mod 3d) / d⌋, dimension r mod d. */
const qkvRow = (head: number, part: 0 | 1 | 2, j: number) => head * 3 * d + part * d + j;

function weightsOf(s: Spec, seed: number): TinyWeights {
  const w = new TinyWeights(new Rng(seed));
  w.add('gpt_neox.embed_in.weight', [V, D], 1);
  for (let i = 0; i < s.layers; i++) {
    const l = `gpt_neox.layers.${i}`;
    w.layerNorm(`${l}.input_layernorm`, D);
    w.layerNorm(`${l}.post_attention_layernorm`, D);
    // Peaked attention: q and k rows N(0, 2/D), v rows N(0, 0.09).
    const qkv = w.add(`${l}.attention.query_key_value.weight`, [3 * D, D], 1);
    for (let r = 0; r < 3 * D; r++)
      for (let c = 0; c < D; c++) qkv[r * D + c] *= r % (3 * d) < 2 * d ? Math.sqrt(2 / D) : 0.3;
    if (s.bias) w.add(`${l}.attention.query_key_value.bias`, [3 * D], 0.05);
    w.linear(`${l}.attention.dense`, D, D, 0.3, s.bias);
    w.linear(`${l}.mlp.dense_h_to_4h`, D, I, 2 / Math.sqrt(D));
    w.linear(`${l}.mlp.dense_4h_to_h`, I, D, 0.5);
  }
  w.layerNorm('gpt_neox.final_layer_norm', D);
  return w;
}

/** modeling_gpt_neox.py in float64. */
function reference(w: TinyWeights, s: Spec, ids: readonly number[]): Reference {
  const ref: Reference = { q: [], k: [], probs: [], hidden: [] };
  const r = Math.trunc(d * s.rotaryPct);
  const ln = (x: Rows, name: string) => layerNorm(x, w.get(`${name}.weight`), w.get(`${name}.bias`), EPS);
  const lin = (x: Rows, name: string, nOut: number, bias = true) =>
    linear(x, w.get(`${name}.weight`), bias ? w.get(`${name}.bias`) : null, nOut);
  let x = gather(w.get('gpt_neox.embed_in.weight'), D, ids);
  for (let i = 0; i < s.layers; i++) {
    const l = `gpt_neox.layers.${i}`;
    const qkv = lin(ln(x, `${l}.input_layernorm`), `${l}.attention.query_key_value`, 3 * D, s.bias);
    const part = (p: 0 | 1 | 2) =>
      Array.from({ length: H }, (_, h) => qkv.map((row) => row.slice(qkvRow(h, p, 0), qkvRow(h, p, 0) + d)));
    const q = rope(part(0), r, s.base),
      k = rope(part(1), r, s.base);
    const { probs, context } = attend(q, k, part(2), 1 / Math.sqrt(d), causal);
    ref.q.push(q);
    ref.k.push(k);
    ref.probs.push(probs);
    const attnOut = lin(context, `${l}.attention.dense`, D, s.bias);
    const mlp = (y: Rows) => lin(activation(lin(y, `${l}.mlp.dense_h_to_4h`, I), 'gelu'), `${l}.mlp.dense_4h_to_h`, D);
    if (s.parallel) {
      x = addRows(x, attnOut, mlp(ln(x, `${l}.post_attention_layernorm`)));
    } else {
      const a = addRows(x, attnOut);
      x = addRows(a, mlp(ln(a, `${l}.post_attention_layernorm`)));
    }
  }
  ref.hidden = ln(x, 'gpt_neox.final_layer_norm');
  return ref;
}

const dimsOf = (s: Spec) => ({ layers: s.layers, heads: H, headDim: d, hidden: D });

describe('GPT-NeoX: tiny random checkpoints', () => {
  const variants: [string, Spec][] = [
    ['Pythia-like: parallel residual, rotary on half of each head', PYTHIA_LIKE],
    [
      'sequential residual, rotary on a quarter, no attention biases, θ base 5e5',
      { layers: 3, rotaryPct: 0.25, base: 5e5, parallel: false, bias: false },
    ],
    ['full rotary', { ...PYTHIA_LIKE, rotaryPct: 1 }],
    ['no rotary (rotary_pct 0)', { ...PYTHIA_LIKE, rotaryPct: 0 }],
  ];

  test.each(variants)('%s: invariants, and the float64 forward pass of modeling_gpt_neox.py', async (_, spec) => {
    const w = weightsOf(spec, 11);
    const m = await open(await writeTinyModel(configOf(spec), w, 'gpt2-tiny'));
    expect(m.dims).toMatchObject({ ...dimsOf(spec), maxPositions: P });
    const a = await m.attention(TEXT);
    expect(a.model.modelType).toBe('gpt_neox');
    expect(a.causal).toBe(true);
    expect(a.tokens[0]).toBe('The');
    expectInvariants(a, dimsOf(spec));
    expectMatchesReference(a, reference(w, spec, a.inputIds!));
  });

  test('causal: a prefix of the text gives the same attention rows', async () => {
    const m = await open(await writeTinyModel(configOf(PYTHIA_LIKE), weightsOf(PYTHIA_LIKE, 12), 'gpt2-tiny'));
    const [long, short] = [await m.attention(`${TEXT} And then it rained.`), await m.attention(TEXT)];
    const T = short.tokens.length,
      TL = long.tokens.length;
    let worst = 0;
    for (let lh = 0; lh < PYTHIA_LIKE.layers * H; lh++)
      for (let i = 0; i < T; i++)
        for (let j = 0; j < T; j++)
          worst = Math.max(
            worst,
            Math.abs(long.attention.data[(lh * TL + i) * TL + j] - short.attention.data[(lh * T + i) * T + j]),
          );
    expect(worst).toBeLessThan(1e-6);
  });

  test(
    'query_key_value is interleaved per head: an identity q ' + 'projection for head 1 gives LN(x), rotated by hand',
    async () => {
      const spec = PYTHIA_LIKE;
      const w = weightsOf(spec, 13);
      // Layer 0: plain LayerNorm, and head 1's q rows = the identity on input dims 0..d-1 with no bias.
      w.set('gpt_neox.layers.0.input_layernorm.weight', [D], new Float32Array(D).fill(1));
      w.set('gpt_neox.layers.0.input_layernorm.bias', [D], new Float32Array(D));
      const qkv = w.get('gpt_neox.layers.0.attention.query_key_value.weight'),
        bias = w.get('gpt_neox.layers.0.attention.query_key_value.bias');
      for (let j = 0; j < d; j++) {
        qkv.fill(0, qkvRow(1, 0, j) * D, (qkvRow(1, 0, j) + 1) * D);
        qkv[qkvRow(1, 0, j) * D + j] = 1;
        bias[qkvRow(1, 0, j)] = 0;
      }
      const m = await open(await writeTinyModel(configOf(spec), w, 'gpt2-tiny'));
      const a = await m.attention(TEXT);
      const T = a.tokens.length,
        r = d * spec.rotaryPct,
        half = r / 2;
      const embed = w.get('gpt_neox.embed_in.weight');
      let worst = 0;
      for (let t = 0; t < T; t++) {
        // u = LayerNorm(embedding) without affine, its first d dimensions.
        const x = Array.from(embed.subarray(a.inputIds![t] * D, (a.inputIds![t] + 1) * D));
        const mean = x.reduce((s, v) => s + v, 0) / D;
        const sd = Math.sqrt(x.reduce((s, v) => s + (v - mean) ** 2, 0) / D + EPS);
        const u = x.map((v) => (v - mean) / sd);
        for (let j = 0; j < d; j++) {
          let expected = u[j]; // dimensions r..d-1 pass through unrotated
          if (j < r) {
            const theta = t / spec.base ** ((2 * (j % half)) / r);
            // rotate_half: (u_j, u_{j+r/2}) turns by t·θ_j.
            expected =
              j < half
                ? u[j] * Math.cos(theta) - u[j + half] * Math.sin(theta)
                : u[j] * Math.cos(theta) + u[j - half] * Math.sin(theta);
          }
          worst = Math.max(worst, Math.abs(a.query!.data[(1 * T + t) * d + j] - expected)); // layer 0, head 1
        }
      }
      expect(worst).toBeLessThan(1e-5);
    },
  );

  test(
    'without the gpt_neox. prefix, with embed_out and the buffers ' +
      'older saves persisted: the same numbers, buffers unread',
    async () => {
      const w = weightsOf(PYTHIA_LIKE, 14);
      const m = await open(await writeTinyModel(configOf(PYTHIA_LIKE), w, 'gpt2-tiny'));
      const extra = {
        // (really [V, D]; unread)
        'embed_out.weight': { dtype: 'F32' as const, shape: [8, D], data: new Float32Array(8 * D) },
        ...Object.fromEntries(
          Array.from({ length: PYTHIA_LIKE.layers }, (_, i) => [
            [
              `layers.${i}.attention.bias`,
              { dtype: 'BOOL' as const, shape: [1, 1, P, P], data: new Uint8Array(P * P).fill(1) },
            ],
            [`layers.${i}.attention.masked_bias`, { dtype: 'F32' as const, shape: [], data: Float32Array.of(-1e9) }],
            [
              `layers.${i}.attention.rotary_emb.inv_freq`,
              { dtype: 'F32' as const, shape: [2], data: Float32Array.of(1, 0.01) },
            ],
          ]).flat(),
        ),
      };
      const dir = await writeTinyModel(configOf(PYTHIA_LIKE), w, 'gpt2-tiny', {
        rename: (n) => n.replace(/^gpt_neox\./, ''),
        extra,
      });
      const bare = await open(dir);
      const [a, b] = [await m.attention(TEXT), await bare.attention(TEXT)];
      expect(maxAbsDiff(a.attention.data, b.attention.data)).toBe(0);
      expect(maxAbsDiff(a.key!.data, b.key!.data)).toBe(0);
      const initializers = (await graphOf(dir)).graph!.initializer!.map((t) => t.name!);
      expect(initializers.filter((n) => /attention\.(bias|masked_bias|rotary_emb)|embed_out/.test(n))).toEqual([]);
    },
  );

  test('newer config spellings: partial_rotary_factor / rope_theta, or nested rope_parameters', async () => {
    const w = weightsOf(PYTHIA_LIKE, 15);
    const base = configOf(PYTHIA_LIKE);
    const plain = await open(await writeTinyModel(base, w, 'gpt2-tiny'));
    const expected = await plain.attention(TEXT);
    const renamed = {
      ...base,
      rotary_pct: undefined,
      rotary_emb_base: undefined,
      partial_rotary_factor: 0.5,
      rope_theta: 10000,
    };
    const nested = {
      ...base,
      rotary_pct: undefined,
      rotary_emb_base: undefined,
      rope_parameters: { rope_type: 'default', rope_theta: 10000, partial_rotary_factor: 0.5 },
    };
    for (const config of [renamed, nested]) {
      const a = await (await open(await writeTinyModel(config, w, 'gpt2-tiny'))).attention(TEXT);
      expect(maxAbsDiff(a.attention.data, expected.attention.data)).toBe(0);
    }
    // And a different θ base changes the rotated q (the base is read, not defaulted).
    const other = await (await open(await writeTinyModel({ ...base, rotary_emb_base: 100 }, w, 'gpt2-tiny'))).attention(
      TEXT,
    );
    expect(maxAbsDiff(other.query!.data, expected.query!.data)).toBeGreaterThan(0.01 * maxAbs(expected.query!.data));
  });

  test('bad inputs: config fields missing or unsupported, tensors missing or of the wrong shape', async () => {
    const w = weightsOf(PYTHIA_LIKE, 16);
    const base = configOf(PYTHIA_LIKE);
    const write = (config: Record<string, unknown>, rename?: (n: string) => string | null) =>
      writeTinyModel(config, w, 'gpt2-tiny', { rename });
    await expectBad(
      // Absent: GPTNeoXConfig's 64 heads.
      Model.load(await write({ ...base, num_attention_heads: undefined })),
      /config\.json: hidden size 32 is not divisible by 64 heads/,
    );
    await expectBad(
      Model.load(await write({ ...base, hidden_act: 'swish' })),
      /"hidden_act" is "swish"; supported: gelu/,
    );
    await expectBad(
      Model.load(await write({ ...base, rotary_pct: 0.375 })),
      /rotary_pct 0\.375 gives 3 rotary dimensions of 8; they must be an even number/,
    );
    await expectBad(
      Model.load(await write({ ...base, rope_scaling: { type: 'linear', factor: 2 } })),
      /rope_scaling .* is not supported/,
    );
    await expectBad(
      Model.load(await write(base, (n) => (n === 'gpt_neox.layers.1.attention.query_key_value.weight' ? null : n))),
      /checkpoint is missing tensor "gpt_neox\.layers\.1\.attention\.query_key_value\.weight"/,
    );
    await expectBad(
      Model.load(await write(base, (n) => (n === 'gpt_neox.layers.0.attention.dense.bias' ? null : n))),
      /checkpoint is missing tensor "gpt_neox\.layers\.0\.attention\.dense\.bias"/,
    );
    await expectBad(
      Model.load(await write({ ...base, intermediate_size: 80 })),
      /tensor "gpt_neox\.layers\.0\.mlp\.dense_h_to_4h\.weight" has shape \[64, 32\]; the config implies \[80, 32\]/,
    );
    await expectBad(
      Model.load(await write({ ...base, vocab_size: 50000 })),
      /tensor "gpt_neox\.embed_in\.weight" has shape \[50257, 32\]; the config implies \[50000, 32\]/,
    );
  });
});
