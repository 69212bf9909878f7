/**
 * The newer decoder families — Qwen3 (qwen3.ts) — on tiny random checkpoints in exact Hugging Face layout
 * (test/tiny-decoders.ts; no golden data exists for them): the float64 forward pass of each modeling file
 * (attention, q, k, hidden_last within 1e-5), the invariants with the documented score extras (rows sum to
 * 1, exact zeros under the causal mask and outside sliding windows, softmax(attentionLogit) = attention),
 * generation with the KV cache against argmax of the full pass, config defaults, and one-line errors.
 */
import { afterAll, describe, expect, test } from 'vitest';
import { decodeAttentionFile, encodeAttentionFile } from '../src/core/attention-file.js';
import { decodeAttention, encodeAttention } from '../src/core/encode.js';
import { encodeSafetensors, type TensorToWrite } from '../src/core/safetensors.js';
import { alibiSlopes } from '../src/graph/bloom.js';
import { Model } from '../src/models/checkpoint-model.js';
import { loadModel } from '../src/models/load-model.js';
import { HAVE_SHARED, maxAbsDiff } from './shared.js';
import {
  decoderReference,
  decoderWeights,
  expectDecoderInvariants,
  lastLogits,
  type DecoderSpec,
  BLOOM_CONFIG,
  FALCON_BASE,
  bloomWeights,
  FALCONS,
  falconWeights,
  GPTJ_CONFIG,
  gptjWeights,
  type FalconSpec,
} from './tiny-decoders.js';
import { activation, addRows, attend, causal, gather, layerNorm, linear, rope, type Rows } from './reference.js';
import {
  expectBad,
  expectMatchesReference,
  removeTinyModels,
  type TinyWeights,
  writeTinyModel,
  type Reference,
} from './tiny-models.js';

const TEXT = 'The cat sat on the mat; the dog watched it.';

const loaded: Model[] = [];
async function open(dir: string, options: Parameters<typeof loadModel>[1] = {}): Promise<Model> {
  const m = await Model.load(dir, options);
  loaded.push(m);
  return m;
}
afterAll(async () => {
  await Promise.all(loaded.splice(0).map((m) => m.release()));
  await removeTinyModels();
});

const write = (config: Record<string, unknown>, w: TinyWeights, rename?: (n: string) => string | null) =>
  writeTinyModel(config, w, 'llama-tiny-mha', { rename, golden: 'json' });

/** Greedy generation on the KV-cache session = argmax of the float64 reference's logits, step by step. */
async function expectGenerationMatchesReference(dir: string, w: TinyWeights, spec: DecoderSpec): Promise<void> {
  const m = await open(dir);
  const g = await m.generate('The cat', { maxNewTokens: 6, temperature: 0 });
  expect(g.ids.length - g.promptLength).toBeGreaterThan(2);
  for (let n = g.promptLength; n < g.ids.length; n++) {
    const logits = lastLogits(w, decoderReference(w, spec, g.ids.slice(0, n)));
    expect(g.ids[n], `token ${n}`).toBe(logits.indexOf(Math.max(...logits)));
  }
}

// ---- Qwen3 -----------------------------------------------------------------------------------------------

const QWEN3: DecoderSpec = {
  layers: 2,
  hidden: 32,
  heads: 4,
  kvHeads: 2,
  headDim: 12,
  intermediate: 48,
  eps: 1e-6,
  norm: 'plain',
  placement: 'pre',
  qkNorm: 'head',
  embedScale: false,
  fused: false,
  act: 'silu',
  scale: 1 / Math.sqrt(12),
  windows: [null, null],
  thetas: [1e6, 1e6],
};

const qwen3Config = (extra: Record<string, unknown> = {}) => ({
  architectures: ['Qwen3ForCausalLM'],
  model_type: 'qwen3',
  vocab_size: 512,
  hidden_size: 32,
  intermediate_size: 48,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  head_dim: 12,
  max_position_embeddings: 256,
  rms_norm_eps: 1e-6,
  rope_theta: 1e6,
  tie_word_embeddings: true,
  bos_token_id: 1,
  eos_token_id: 2,
  ...extra,
});

describe.skipIf(!HAVE_SHARED)('Qwen3: tiny random checkpoint', () => {
  const w = decoderWeights(QWEN3, 31);

  test('q_norm / k_norm per head before RoPE, GQA, head_dim ≠ hidden/heads: the float64 forward pass', async () => {
    const m = await open(await write(qwen3Config(), w));
    const a = await m.attention(TEXT);
    expect(a.model.modelType).toBe('qwen3');
    expect(a.kvHeads).toBe(2);
    expect(a.layerWindows).toBeUndefined();
    expect(a.scoreScale).toBeUndefined();
    expectDecoderInvariants(a);
    expectMatchesReference(a, decoderReference(w, QWEN3, a.inputIds!));
    // Without the norms (weights forced to the identity) the attention differs: the norms are applied.
    const plain = decoderReference(w, { ...QWEN3, qkNorm: 'none' }, a.inputIds!);
    expect(
      Math.abs(a.attention.data[5] - plain.probs[0][0][2][1]) + Math.abs(a.query!.data[0] - plain.q[0][0][0][0]),
    ).toBeGreaterThan(1e-3);
  });

  test('use_sliding_window with max_window_layers 1: layer 1 sees the last 4 keys, reported as [3, 0]', async () => {
    const m = await open(
      await write(qwen3Config({ use_sliding_window: true, sliding_window: 4, max_window_layers: 1 }), w),
    );
    const a = await m.attention(TEXT);
    expect(a.tokens.length).toBeGreaterThan(8);
    expect(a.layerWindows).toEqual([null, [3, 0]]);
    expectDecoderInvariants(a);
    expectMatchesReference(a, decoderReference(w, { ...QWEN3, windows: [null, 4] }, a.inputIds!));
  });

  test('generation with the KV cache (and a sliding layer) follows the float64 reference argmax', async () => {
    await expectGenerationMatchesReference(
      await write(qwen3Config({ use_sliding_window: true, sliding_window: 3, max_window_layers: 1 }), w),
      w,
      { ...QWEN3, windows: [null, 3] },
    );
  });

  test('config defaults: no head_dim means 128 (Qwen3Config), not hidden / heads', async () => {
    await expectBad(
      loadModel(await write(qwen3Config({ head_dim: undefined }), w)),
      /tensor "model\.layers\.0\.self_attn\.q_proj\.weight" has shape \[48, 32\]; the config implies \[512, 32\]/,
    );
  });

  test.each([
    [{ rope_scaling: { rope_type: 'yarn', factor: 4 } }, /rope type "yarn" is not supported/],
    [{ hidden_act: 'gelu' }, /"hidden_act" is "gelu"; supported: silu/],
    [{ layer_types: ['full_attention', 'chunked_attention'] }, /layer_types\[1\] is "chunked_attention"/],
    [{ num_key_value_heads: 3 }, /4 attention heads cannot share 3 key\/value heads/],
    [
      { head_dim: 16 },
      /self_attn\.q_norm\.weight" has shape \[12\]; the config implies \[16\]|q_proj\.weight" has shape/,
    ],
  ] as const)('bad config %j', async (patch, pattern) => {
    await expectBad(loadModel(await write(qwen3Config(patch), w)), pattern);
  });

  test('a q_norm of the wrong shape, a missing k_norm, an undeclared bias: errors naming the tensor', async () => {
    const bad = decoderWeights(QWEN3, 32);
    bad.add('model.layers.1.self_attn.q_norm.weight', [24], 0.1, 1);
    await expectBad(
      loadModel(await write(qwen3Config(), bad)),
      /tensor "model\.layers\.1\.self_attn\.q_norm\.weight" has shape \[24\]/,
    );
    await expectBad(
      loadModel(await write(qwen3Config(), w, (n) => (n === 'model.layers.0.self_attn.k_norm.weight' ? null : n))),
      /missing tensor "model\.layers\.0\.self_attn\.k_norm\.weight"/,
    );
    const biased = decoderWeights({ ...QWEN3, bias: true }, 33);
    await expectBad(
      loadModel(await write(qwen3Config(), biased)),
      /checkpoint tensor "model\.layers\.0\.self_attn\.q_proj\.bias"/,
    );
    const m = await open(await write(qwen3Config({ attention_bias: true }), biased));
    const a = await m.attention(TEXT);
    expectMatchesReference(a, decoderReference(biased, { ...QWEN3, bias: true }, a.inputIds!));
  });
});

// ---- Gemma 2, Gemma 3 ------------------------------------------------------------------------------------

/** 4 layers, windows of 4 keys (shorter than the text), head_dim 8 with query_pre_attn_scalar 16. */
const GEMMA_BASE = {
  layers: 4,
  hidden: 16,
  heads: 4,
  kvHeads: 2,
  headDim: 8,
  intermediate: 40,
  eps: 1e-6,
  norm: 'onePlus',
  placement: 'sandwich',
  embedScale: true,
  fused: false,
  act: 'gelu_tanh',
  scale: 16 ** -0.5,
} as const;

/** Gemma 2: even layers slide; soft-capping 2 (active: the tiny model's scores reach well past it). */
const GEMMA2: DecoderSpec = {
  ...GEMMA_BASE,
  qkNorm: 'none',
  softcap: 2,
  windows: [4, null, 4, null],
  thetas: [1e4, 1e4, 1e4, 1e4],
};

/** Gemma 3 with sliding_window_pattern 3: layers 0, 1 slide (θ 1e4), layer 2 is global (θ 1e6 / linear 8). */
const GEMMA3: DecoderSpec = {
  ...GEMMA_BASE,
  qkNorm: 'head',
  windows: [4, 4, null, 4],
  thetas: [1e4, 1e4, 1e6, 1e4],
  ropeFactors: [1, 1, 8, 1],
};

const gemmaConfig = (modelType: 'gemma2' | 'gemma3_text', extra: Record<string, unknown> = {}) => ({
  architectures: [modelType === 'gemma2' ? 'Gemma2ForCausalLM' : 'Gemma3ForCausalLM'],
  model_type: modelType,
  vocab_size: 512,
  hidden_size: 16,
  intermediate_size: 40,
  num_hidden_layers: 4,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  head_dim: 8,
  query_pre_attn_scalar: 16,
  sliding_window: 4,
  max_position_embeddings: 256,
  hidden_activation: 'gelu_pytorch_tanh',
  bos_token_id: 1,
  eos_token_id: 2,
  ...(modelType === 'gemma2'
    ? { attn_logit_softcapping: 2, final_logit_softcapping: 30, rope_theta: 1e4 }
    : {
        sliding_window_pattern: 3,
        rope_theta: 1e6,
        rope_local_base_freq: 1e4,
        rope_scaling: { rope_type: 'linear', factor: 8 },
      }),
  ...extra,
});

describe.skipIf(!HAVE_SHARED)('Gemma 2: tiny random checkpoint', () => {
  const w = decoderWeights(GEMMA2, 41);

  test(
    'soft-capping active, sliding layers shorter than the text, ' + '√D embeddings, (1 + w) norms: the float64 pass',
    async () => {
      const dir = await write(gemmaConfig('gemma2'), w);
      const a = await (await open(dir)).attention(TEXT);
      expect(a.tokens.length).toBeGreaterThan(10);
      expect(a.scoreScale).toBe(0.25);
      expect(a.attnLogitSoftcapping).toBe(2);
      expect(a.layerWindows).toEqual([[3, 0], null, [3, 0], null]);
      expectDecoderInvariants(a);
      const ref = decoderReference(w, GEMMA2, a.inputIds!);
      expectMatchesReference(a, ref);
      // Staged: the layers without their attention, which one session computes a head at a time with the
      // window mask a stage outputs, the scale and the cap: the same bits as the whole graph on one session.
      const staged = await (await open(dir, { staged: true, headChunk: 1 })).attention(TEXT);
      for (const key of ['attention', 'query', 'key', 'hiddenLast'] as const)
        expect(maxAbsDiff(staged[key]!.data, a[key]!.data), key).toBe(0);
      // The cap is active: some scaled score lies well beyond ±2, where tanh bends it.
      const uncapped = decoderReference(w, { ...GEMMA2, softcap: undefined }, a.inputIds!);
      let most = 0;
      for (let i = 0; i < a.tokens.length; i++)
        for (let j = 0; j <= i; j++) {
          let dot = 0;
          for (let c = 0; c < 8; c++) dot += ref.q[1][0][i][c] * ref.k[1][0][j][c];
          most = Math.max(most, Math.abs(dot * 0.25));
        }
      expect(most).toBeGreaterThan(3);
      expect(Math.abs(uncapped.probs[1][0].at(-1)![0] - ref.probs[1][0].at(-1)![0])).toBeGreaterThan(1e-4);
    },
  );

  test('generation with the KV cache follows the reference argmax (final soft-capping keeps it)', async () => {
    await expectGenerationMatchesReference(await write(gemmaConfig('gemma2'), w), w, GEMMA2);
  });

  test('attn_logit_softcapping null: no capping; absent: Gemma2Config default 50', async () => {
    const none = await (await open(await write(gemmaConfig('gemma2', { attn_logit_softcapping: null }), w))).attention(
      TEXT,
    );
    expect(none.attnLogitSoftcapping).toBeUndefined();
    expectMatchesReference(none, decoderReference(w, { ...GEMMA2, softcap: undefined }, none.inputIds!));
    const dflt = await (
      await open(await write(gemmaConfig('gemma2', { attn_logit_softcapping: undefined }), w))
    ).attention(TEXT);
    expect(dflt.attnLogitSoftcapping).toBe(50);
  });

  test('bad inputs: unknown activation, soft-capping ≤ 0, a norm of the wrong shape', async () => {
    await expectBad(
      loadModel(await write(gemmaConfig('gemma2', { hidden_activation: 'relu' }), w)),
      /"hidden_activation" or "hidden_act" is "relu"; supported: gelu_pytorch_tanh, gelu_new, gelu/,
    );
    await expectBad(
      loadModel(await write(gemmaConfig('gemma2', { attn_logit_softcapping: 0 }), w)),
      /field "attn_logit_softcapping" must be positive/,
    );
    await expectBad(
      loadModel(await write(gemmaConfig('gemma2', { hidden_size: 24 }), w)),
      /tensor "model\.embed_tokens\.weight" has shape \[512, 16\]; the config implies \[512, 24\]/,
    );
  });
});

describe.skipIf(!HAVE_SHARED)('Gemma 3 (text): tiny random checkpoint', () => {
  const w = decoderWeights(GEMMA3, 51);

  test('q/k norms, local θ 1e4 on sliding layers, global θ 1e6 with linear scaling 8: the float64 pass', async () => {
    const m = await open(await write(gemmaConfig('gemma3_text'), w));
    const a = await m.attention(TEXT);
    expect(a.scoreScale).toBe(0.25);
    expect(a.attnLogitSoftcapping).toBeUndefined();
    expect(a.layerWindows).toEqual([[3, 0], [3, 0], null, [3, 0]]);
    expectDecoderInvariants(a);
    expectMatchesReference(a, decoderReference(w, GEMMA3, a.inputIds!));
  });

  test('rope_parameters per layer type (transformers ≥ 5) read the same', async () => {
    const config = gemmaConfig('gemma3_text', {
      rope_theta: undefined,
      rope_local_base_freq: undefined,
      rope_scaling: undefined,
      rope_parameters: {
        full_attention: { rope_type: 'linear', rope_theta: 1e6, factor: 8 },
        sliding_attention: { rope_type: 'default', rope_theta: 1e4 },
      },
    });
    const a = await (await open(await write(config, w))).attention(TEXT);
    expectMatchesReference(a, decoderReference(w, GEMMA3, a.inputIds!));
  });

  test('generation with the KV cache follows the reference argmax', async () => {
    await expectGenerationMatchesReference(await write(gemmaConfig('gemma3_text'), w), w, GEMMA3);
  });

  test('bad inputs: unknown rope scaling, layer_types of the wrong length, a missing q_norm', async () => {
    await expectBad(
      loadModel(await write(gemmaConfig('gemma3_text', { rope_scaling: { rope_type: 'yarn', factor: 8 } }), w)),
      /rope type "yarn" is not supported \(supported: default, linear, llama3\)/,
    );
    await expectBad(
      loadModel(await write(gemmaConfig('gemma3_text', { layer_types: ['full_attention'] }), w)),
      /field "layer_types" must list one type per layer \(4\)/,
    );
    await expectBad(
      loadModel(
        await write(gemmaConfig('gemma3_text'), w, (n) => (n.endsWith('2.self_attn.q_norm.weight') ? null : n)),
      ),
      /missing tensor "model\.layers\.2\.self_attn\.q_norm\.weight"/,
    );
  });
});

// ---- Phi-3 -----------------------------------------------------------------------------------------------

/** Phi-4-mini-like: rotary on ¾ of each 8-wide head (6 dims), GQA, fused projections. */
const PHI3: DecoderSpec = {
  layers: 2,
  hidden: 32,
  heads: 4,
  kvHeads: 2,
  headDim: 8,
  intermediate: 40,
  eps: 1e-5,
  norm: 'plain',
  placement: 'pre',
  qkNorm: 'none',
  embedScale: false,
  fused: true,
  act: 'silu',
  scale: 1 / Math.sqrt(8),
  windows: [null, null],
  thetas: [1e4, 1e4],
  rotaryDims: 6,
};

const phi3Config = (extra: Record<string, unknown> = {}) => ({
  architectures: ['Phi3ForCausalLM'],
  model_type: 'phi3',
  vocab_size: 512,
  hidden_size: 32,
  intermediate_size: 40,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  max_position_embeddings: 256,
  partial_rotary_factor: 0.75,
  rms_norm_eps: 1e-5,
  tie_word_embeddings: true,
  bos_token_id: 1,
  eos_token_id: 2,
  ...extra,
});

describe.skipIf(!HAVE_SHARED)('Phi-3: tiny random checkpoint', () => {
  const w = decoderWeights(PHI3, 61);

  test('fused qkv_proj (q | k | v rows) and gate_up_proj (gate | up), partial rotary: the float64 pass', async () => {
    const a = await (await open(await write(phi3Config(), w))).attention(TEXT);
    expect(a.kvHeads).toBe(2);
    expect(a.layerWindows).toBeUndefined();
    expectDecoderInvariants(a);
    expectMatchesReference(a, decoderReference(w, PHI3, a.inputIds!));
  });

  test('sliding_window 5 (as Phi-3-mini sets 2047): every layer windowed, [4, 0]', async () => {
    const a = await (await open(await write(phi3Config({ sliding_window: 5, partial_rotary_factor: 1 }), w))).attention(
      TEXT,
    );
    expect(a.layerWindows).toEqual([
      [4, 0],
      [4, 0],
    ]);
    expectDecoderInvariants(a);
    expectMatchesReference(a, decoderReference(w, { ...PHI3, rotaryDims: 8, windows: [5, 5] }, a.inputIds!));
  });

  test('generation with the KV cache follows the reference argmax', async () => {
    await expectGenerationMatchesReference(await write(phi3Config(), w), w, PHI3);
  });

  test.each([
    [
      { rope_scaling: { type: 'longrope', short_factor: [1], long_factor: [1] } },
      /rope type "longrope" is not supported for phi3 \(only default RoPE\)/,
    ],
    [{ rope_scaling: { type: 'su' } }, /rope type "su" is not supported for phi3/],
    [{ partial_rotary_factor: 0.7 }, /partial_rotary_factor 0\.7 gives 5 rotary dimensions of 8/],
    [
      { num_key_value_heads: 4 },
      /tensor "model\.layers\.0\.self_attn\.qkv_proj\.weight" has shape \[64, 32\]; the config implies \[96, 32\]/,
    ],
  ] as const)('bad config %j', async (patch, pattern) => {
    await expectBad(loadModel(await write(phi3Config(patch), w)), pattern);
  });
});

// ---- OLMo 2 ----------------------------------------------------------------------------------------------

const OLMO2: DecoderSpec = {
  layers: 2,
  hidden: 32,
  heads: 4,
  kvHeads: 4,
  headDim: 8,
  intermediate: 40,
  eps: 1e-6,
  norm: 'plain',
  placement: 'post',
  qkNorm: 'projection',
  embedScale: false,
  fused: false,
  act: 'silu',
  scale: 1 / Math.sqrt(8),
  windows: [null, null],
  thetas: [5e5, 5e5],
};

const olmo2Config = (extra: Record<string, unknown> = {}) => ({
  architectures: ['Olmo2ForCausalLM'],
  model_type: 'olmo2',
  vocab_size: 512,
  hidden_size: 32,
  intermediate_size: 40,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  max_position_embeddings: 256,
  rms_norm_eps: 1e-6,
  rope_theta: 5e5,
  tie_word_embeddings: true,
  bos_token_id: 1,
  eos_token_id: 2,
  ...extra,
});

describe.skipIf(!HAVE_SHARED)('OLMo 2: tiny random checkpoint', () => {
  const w = decoderWeights(OLMO2, 71);

  test('q/k norms over the whole projection, norms after attention and MLP: the float64 pass', async () => {
    const a = await (await open(await write(olmo2Config(), w))).attention(TEXT);
    expect(a.kvHeads).toBeUndefined();
    expectDecoderInvariants(a);
    expectMatchesReference(a, decoderReference(w, OLMO2, a.inputIds!));
  });

  test('generation with the KV cache follows the reference argmax', async () => {
    await expectGenerationMatchesReference(await write(olmo2Config(), w), w, OLMO2);
  });

  test('bad inputs: an input norm OLMo 2 does not have, a per-head q_norm, unknown rope scaling', async () => {
    const extra = decoderWeights(OLMO2, 72);
    extra.add('model.layers.0.input_layernorm.weight', [32], 0.1, 1);
    await expectBad(
      loadModel(await write(olmo2Config(), extra)),
      /checkpoint tensor "model\.layers\.0\.input_layernorm\.weight"/,
    );
    const perHead = decoderWeights({ ...OLMO2, qkNorm: 'head' }, 73);
    await expectBad(
      loadModel(await write(olmo2Config(), perHead)),
      /tensor "model\.layers\.0\.self_attn\.q_norm\.weight" has shape \[8\]; the config implies \[32\]/,
    );
    await expectBad(
      loadModel(await write(olmo2Config({ rope_scaling: { rope_type: 'dynamic', factor: 2 } }), w)),
      /rope type "dynamic" is not supported/,
    );
  });
});

// ---- the score extras in files and pages -----------------------------------------------------------------

describe.skipIf(!HAVE_SHARED)('score extras in the attention file and the page encoding', () => {
  test(
    'score_scale, attn_logit_softcapping and layer_windows ' + 'round-trip; the invariants hold on what is read',
    async () => {
      const a = await (await open(await write(gemmaConfig('gemma2'), decoderWeights(GEMMA2, 41)))).attention(TEXT);
      const T = a.tokens.length;
      const layerPositionBias = { dims: [4, 4, T, T], data: new Float32Array(16 * T * T) };
      for (const b of [decodeAttentionFile(encodeAttentionFile(a), 'gemma'), decodeAttention(encodeAttention(a))]) {
        expect(b.scoreScale).toBe(0.25);
        expect(b.attnLogitSoftcapping).toBe(2);
        expect(b.layerWindows).toEqual([[3, 0], null, [3, 0], null]);
      }
      expectDecoderInvariants(decodeAttentionFile(encodeAttentionFile(a), 'gemma'));
      const withBias = decodeAttentionFile(encodeAttentionFile({ ...a, layerPositionBias }), 'bias');
      expect(withBias.layerPositionBias!.dims).toEqual([4, 4, T, T]);
      expect(decodeAttention(encodeAttention({ ...a, layerPositionBias })).layerPositionBias!.dims).toEqual([
        4,
        4,
        T,
        T,
      ]);
    },
  );

  test('malformed extras are rejected by name', async () => {
    const a = await (await open(await write(gemmaConfig('gemma2'), decoderWeights(GEMMA2, 41)))).attention(TEXT);
    const patched = (meta: Record<string, unknown>, extra: Record<string, TensorToWrite> = {}) => {
      const bytes = encodeAttentionFile(a);
      const json = JSON.parse(
        new TextDecoder().decode(
          bytes.subarray(8, 8 + Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true))),
        ),
      );
      const attnviz = { ...JSON.parse(json.__metadata__.attnviz), ...meta };
      const tensors: Record<string, TensorToWrite> = {
        attention: { dtype: 'F32', shape: [...a.attention.dims], data: a.attention.data },
        ...extra,
      };
      return encodeSafetensors(tensors, { attnviz: JSON.stringify(attnviz) });
    };
    expect(() => decodeAttentionFile(patched({ layer_windows: [[3, 0]] }), 'f')).toThrow(
      /metadata "layer_windows" must be a list of 4 entries/,
    );
    expect(() => decodeAttentionFile(patched({ layer_windows: [[3, -1], null, null, null] }), 'f')).toThrow(
      /"layer_windows"/,
    );
    expect(() => decodeAttentionFile(patched({ attn_logit_softcapping: -2 }), 'f')).toThrow(
      /"attn_logit_softcapping" must be positive/,
    );
    const T = a.tokens.length;
    expect(() =>
      decodeAttentionFile(
        patched({}, { layer_position_bias: { dtype: 'F32', shape: [3, 4, T, T], data: new Float32Array(12 * T * T) } }),
        'f',
      ),
    ).toThrow(/tensor "layer_position_bias" has shape \[3, 4/);
  });
});

// ---- BLOOM -----------------------------------------------------------------------------------------------

/** modeling_bloom.py in float64: per-head fused qkv, scores q·kᵀ/√d + slope_h · j, causal; tanh GELU. */
function bloomReference(w: TinyWeights, ids: readonly number[], slopes: readonly number[]): Reference {
  const D = 24,
    H = 6,
    d = 4;
  const ref: Reference = { q: [], k: [], probs: [], hidden: [] };
  const lin = (y: Rows, name: string, nOut: number) =>
    linear(y, w.get(`transformer.${name}.weight`), w.get(`transformer.${name}.bias`), nOut);
  const ln = (y: Rows, name: string) =>
    layerNorm(y, w.get(`transformer.${name}.weight`), w.get(`transformer.${name}.bias`), 1e-5);
  let x = ln(gather(w.get('transformer.word_embeddings.weight'), D, ids), 'word_embeddings_layernorm');
  for (let i = 0; i < 2; i++) {
    const l = `h.${i}`;
    const qkv = lin(ln(x, `${l}.input_layernorm`), `${l}.self_attention.query_key_value`, 3 * D);
    const part = (which: number) =>
      Array.from({ length: H }, (_, h) => qkv.map((r) => r.slice((3 * h + which) * d, (3 * h + which + 1) * d)));
    const [q, k, v] = [part(0), part(1), part(2)];
    const { probs, context } = attend(q, k, v, 1 / Math.sqrt(d), (z, h, a, b) =>
      b > a ? -Infinity : z + slopes[h] * b,
    );
    ref.q.push(q);
    ref.k.push(k);
    ref.probs.push(probs);
    const attn = addRows(lin(context, `${l}.self_attention.dense`, D), x);
    const h4 = activation(lin(ln(attn, `${l}.post_attention_layernorm`), `${l}.mlp.dense_h_to_4h`, 4 * D), 'gelu_new');
    x = addRows(lin(h4, `${l}.mlp.dense_4h_to_h`, D), attn);
  }
  ref.hidden = ln(x, 'ln_f');
  return ref;
}

describe.skipIf(!HAVE_SHARED)('BLOOM: tiny random checkpoint', () => {
  test('ALiBi slopes: powers of 2^(−8/n), then odd powers of 2^(−4/n) when heads is not a power of two', () => {
    expect([...alibiSlopes(8)]).toEqual([0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0078125, 0.00390625]);
    expect([...alibiSlopes(6)]).toEqual([0.25, 0.0625, 0.015625, 0.00390625, 0.5, 0.125]);
    // 12 heads: 8 from 2^(−1), then b′ = 2^(−1/2) in float32 (a torch float32 tensor) to the powers 1, 3, 5, 7.
    const b = Math.fround(Math.SQRT1_2);
    expect([...alibiSlopes(12)].slice(8)).toEqual([1, 3, 5, 7].map((n) => Math.fround(b ** n)));
  });

  test('6 heads (not a power of two): the float64 pass, ALiBi reported as position_bias', async () => {
    const w = bloomWeights(111);
    const a = await (await open(await write(BLOOM_CONFIG, w))).attention(TEXT);
    const T = a.tokens.length;
    const slopes = [0.25, 0.0625, 0.015625, 0.00390625, 0.5, 0.125];
    expectMatchesReference(a, bloomReference(w, a.inputIds!, slopes));
    expect(a.positionBias!.dims).toEqual([6, T, T]);
    expect(a.positionBias!.data[(4 * T + 2) * T + 7]).toBe(0.5 * 7);
    expectDecoderInvariants(a);
  });

  test(
    'without the transformer. prefix (bigscience saves ' + 'BloomModel): the same numbers; bad shapes named',
    async () => {
      const w = bloomWeights(112);
      const [a, b] = [
        await (await open(await write(BLOOM_CONFIG, w))).attention(TEXT),
        await (await open(await write(BLOOM_CONFIG, w, (n) => n.replace(/^transformer\./, '')))).attention(TEXT),
      ];
      expect(maxAbsDiff(a.attention.data, b.attention.data)).toBe(0);
      await expectBad(
        loadModel(await write({ ...BLOOM_CONFIG, n_layer: 3 }, w)),
        /missing tensor "transformer\.h\.2\./,
      );
      await expectBad(
        loadModel(await write({ ...BLOOM_CONFIG, hidden_size: undefined, n_embed: 32, n_head: 8 }, w)),
        /tensor "transformer\.word_embeddings\.weight" has shape \[512, 24\]; the config implies \[512, 32\]/,
      );
    },
  );
});

// ---- GPT-J -----------------------------------------------------------------------------------------------

/** modeling_gptj.py in float64: rotate_every_two on the first rotary_dim dims, parallel residual. */
function gptjReference(w: TinyWeights, ids: readonly number[]): Reference {
  const D = 32,
    H = 4,
    d = 8,
    r = 4;
  const ref: Reference = { q: [], k: [], probs: [], hidden: [] };
  const get = (name: string) => w.get(`transformer.${name}`);
  const ln = (y: Rows, name: string) => layerNorm(y, get(`${name}.weight`), get(`${name}.bias`), 1e-5);
  const rotate = (heads: Rows[]) =>
    heads.map((head) =>
      head.map((row, t) => {
        const y = Float64Array.from(row);
        for (let j = 0; j < r / 2; j++) {
          const angle = t / 10000 ** ((2 * j) / r);
          y[2 * j] = row[2 * j] * Math.cos(angle) - row[2 * j + 1] * Math.sin(angle);
          y[2 * j + 1] = row[2 * j + 1] * Math.cos(angle) + row[2 * j] * Math.sin(angle);
        }
        return y;
      }),
    );
  let x = gather(get('wte.weight'), D, ids);
  for (let i = 0; i < 2; i++) {
    const l = `h.${i}`;
    const h = ln(x, `${l}.ln_1`);
    const heads = (name: string) =>
      Array.from({ length: H }, (_, hh) =>
        linear(h, get(`${l}.attn.${name}.weight`), null, D).map((row) => row.slice(hh * d, (hh + 1) * d)),
      );
    const q = rotate(heads('q_proj')),
      k = rotate(heads('k_proj')),
      v = heads('v_proj');
    const { probs, context } = attend(q, k, v, 1 / Math.sqrt(d), causal);
    ref.q.push(q);
    ref.k.push(k);
    ref.probs.push(probs);
    const attn = linear(context, get(`${l}.attn.out_proj.weight`), null, D);
    const mlp = linear(
      activation(linear(h, get(`${l}.mlp.fc_in.weight`), get(`${l}.mlp.fc_in.bias`), 48), 'gelu_new'),
      get(`${l}.mlp.fc_out.weight`),
      get(`${l}.mlp.fc_out.bias`),
      D,
    );
    x = x.map((row, t) => row.map((val, j) => val + attn[t][j] + mlp[t][j]));
  }
  ref.hidden = ln(x, 'ln_f');
  return ref;
}

describe.skipIf(!HAVE_SHARED)('GPT-J: tiny random checkpoint', () => {
  test(
    'rotate_every_two on rotary_dim 4 of 8, parallel residual: ' + 'the float64 pass; rotary reported interleaved',
    async () => {
      const w = gptjWeights(121);
      const a = await (await open(await write(GPTJ_CONFIG, w))).attention(TEXT);
      expect(a.rotary).toBe('interleaved');
      expectMatchesReference(a, gptjReference(w, a.inputIds!));
      expectDecoderInvariants(a);
    },
  );

  test('bad inputs: odd rotary_dim, a bias GPT-J does not have, an unknown activation', async () => {
    const w = gptjWeights(122);
    await expectBad(loadModel(await write({ ...GPTJ_CONFIG, rotary_dim: 5 }, w)), /rotary_dim 5 must be even/);
    w.add('transformer.h.0.attn.q_proj.bias', [32], 0.05);
    await expectBad(
      loadModel(await write(GPTJ_CONFIG, w)),
      /checkpoint tensor "transformer\.h\.0\.attn\.q_proj\.bias"/,
    );
    await expectBad(
      loadModel(await write({ ...GPTJ_CONFIG, activation_function: 'swish' }, gptjWeights(122))),
      /"activation_function" is "swish"/,
    );
  });
});

// ---- Falcon ----------------------------------------------------------------------------------------------

/** modeling_falcon.py in float64: _split_heads per layout, rotate_half RoPE, parallel or sequential blocks. */
function falconReference(w: TinyWeights, s: FalconSpec, ids: readonly number[]): Reference {
  const D = 32,
    H = 4,
    d = 8,
    K = s.kv;
  const ref: Reference = { q: [], k: [], probs: [], hidden: [] };
  const get = (name: string) => w.get(`transformer.${name}`);
  const lin = (y: Rows, name: string, nOut: number) =>
    linear(y, get(`${name}.weight`), s.bias ? get(`${name}.bias`) : null, nOut);
  const ln = (y: Rows, name: string) => layerNorm(y, get(`${name}.weight`), get(`${name}.bias`), 1e-5);
  const vec = (row: Float64Array, block: number) => row.slice(block * d, (block + 1) * d);
  let x = gather(get('word_embeddings.weight'), D, ids);
  for (let i = 0; i < 2; i++) {
    const l = `h.${i}`;
    const attnIn = ln(x, s.norms === 'two' ? `${l}.ln_attn` : `${l}.input_layernorm`);
    const qkv = lin(attnIn, `${l}.self_attention.query_key_value`, (H + 2 * K) * d);
    // Block index (of d columns) of query head h, and of the key / value that head reads.
    const n = H / K;
    const at = {
      'per-head': { q: (h: number) => 3 * h, k: (h: number) => 3 * h + 1, v: (h: number) => 3 * h + 2 },
      'multi-query': { q: (h: number) => h, k: () => H, v: () => H + 1 },
      grouped: {
        q: (h: number) => Math.floor(h / n) * (n + 2) + (h % n),
        k: (h: number) => Math.floor(h / n) * (n + 2) + n,
        v: (h: number) => Math.floor(h / n) * (n + 2) + n + 1,
      },
    }[s.layout];
    const heads = (which: 'q' | 'k' | 'v') => Array.from({ length: H }, (_, h) => qkv.map((r) => vec(r, at[which](h))));
    const q = rope(heads('q'), d, 10000),
      k = rope(heads('k'), d, 10000),
      v = heads('v');
    const { probs, context } = attend(q, k, v, 1 / Math.sqrt(d), causal);
    ref.q.push(q);
    ref.k.push(k);
    ref.probs.push(probs);
    const attn = lin(context, `${l}.self_attention.dense`, D);
    const mlp = (h: Rows) =>
      lin(activation(lin(h, `${l}.mlp.dense_h_to_4h`, 4 * D), 'gelu'), `${l}.mlp.dense_4h_to_h`, D);
    if (s.norms === 'sequential') {
      const a = addRows(attn, x);
      x = addRows(mlp(ln(a, `${l}.post_attention_layernorm`)), a);
    } else x = addRows(mlp(s.norms === 'two' ? ln(x, `${l}.ln_mlp`) : attnIn), attn, x);
  }
  ref.hidden = ln(x, 'ln_f');
  return ref;
}

describe.skipIf(!HAVE_SHARED).each(FALCONS)('$name: tiny random checkpoint', (s) => {
  test('the fused qkv layout and the block structure: the float64 pass', async () => {
    const w = falconWeights(s, 131);
    const a = await (await open(await write(s.config, w))).attention(TEXT);
    expect(a.kvHeads).toBe(s.kv === 4 ? undefined : s.kv);
    expectMatchesReference(a, falconReference(w, s, a.inputIds!));
    expectDecoderInvariants(a);
  });
});

describe.skipIf(!HAVE_SHARED)('Falcon: generation and bad inputs', () => {
  test('greedy generation with the KV cache (grouped kv heads) follows the reference argmax', async () => {
    const s = FALCONS[1];
    const w = falconWeights(s, 132);
    const m = await open(await write(s.config, w));
    const g = await m.generate('The cat', { maxNewTokens: 5, temperature: 0 });
    const E = w.get('transformer.word_embeddings.weight');
    for (let n = g.promptLength; n < g.ids.length; n++) {
      const h = falconReference(w, s, g.ids.slice(0, n)).hidden.at(-1)!;
      const logits = Array.from({ length: 512 }, (_, t) => h.reduce((acc, val, j) => acc + val * E[t * 32 + j], 0));
      expect(g.ids[n], `token ${n}`).toBe(logits.indexOf(Math.max(...logits)));
    }
  });

  test('ALiBi Falcon refused by name; kv groups that do not divide the heads', async () => {
    const w = falconWeights(FALCONS[0], 133);
    await expectBad(loadModel(await write({ ...FALCON_BASE, alibi: true }, w)), /alibi is true; Falcon with ALiBi/);
    await expectBad(
      loadModel(await write({ ...FALCON_BASE, new_decoder_architecture: true, num_kv_heads: 3 }, w)),
      /4 attention heads cannot share 3 key\/value heads/,
    );
  });
});
