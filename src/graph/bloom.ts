/**
 * BLOOM (BigScience 2022), as in transformers' modeling_bloom.py: a pre-norm causal decoder with no position
 * embeddings — positions enter as ALiBi (Press et al. 2022), a per-head linear bias on the scores — and a
 * LayerNorm right after the word embeddings (`word_embeddings_layernorm`). q, k, v come out of one projection,
 * `self_attention.query_key_value`, laid out per head ([heads, 3, head_dim], as GPT-NeoX) — or, as llama.cpp's
 * converter reorders it, in three blocks [q of every head | k | v] (`qkvLayout` 'blocks', GGUF files); the MLP
 * is dense_4h_to_h(gelu_tanh(dense_h_to_4h(x))).
 *
 * ALiBi as build_alibi_tensor: with n = the largest power of two ≤ heads, slopes b^1 … b^n for
 * b = 2^(−8/n), then, when heads is not a power of two, the odd powers b′^1, b′^3, … of b′ = 2^(−4/n) for
 * the remaining heads (float32, as torch). transformers adds slope_h · j for key position j (the same attention as
 * slope_h · (j − i): softmax does not see a per-row constant), so scores = q·kᵀ/√d + slope_h · j + mask.
 *
 * What is reported: q and k as they enter q·kᵀ, and that bias `[H, T, T]` (the same in every layer) as
 * Attention.positionBias, so that softmax(q·kᵀ/√d + position_bias + mask) reproduces the attention.
 *
 * Names: `transformer.` prefix (BloomForCausalLM) or none (BloomModel, as bigscience's checkpoints):
 * `word_embeddings`, `word_embeddings_layernorm`, `h.N.{input_layernorm, self_attention.query_key_value,
 * self_attention.dense, post_attention_layernorm, mlp.dense_h_to_4h, mlp.dense_4h_to_h}`, `ln_f`; lm_head is
 * tied. Config defaults are BloomConfig's (vocab_size 250880, hidden_size / n_embed 64, n_layer 2, n_head 8,
 * layer_norm_epsilon 1e-5, apply_residual_connection_post_layernorm false).
 */
import type { ModelConfig } from '../load/config.js';
import type { Weights } from '../load/weights.js';
import type { GraphBuilder } from './builder.js';
import {
  declareLayerOutputs,
  headDim,
  HIDDEN_LAST,
  INPUTS,
  outputNames,
  POSITION_BIAS_OUTPUT,
  TASK_HEADS,
  type BuildOptions,
  type Family,
  type ModelDims,
} from './family.js';

export interface BloomConfig extends ModelDims {
  vocab: number;
  eps: number;
  /** apply_residual_connection_post_layernorm: the residual is the normed input, not the input. */
  residualPostNorm: boolean;
  slopes: Float32Array;
  /** Rows of query_key_value: per head [q, k, v] (transformers), or [all q | all k | all v] (GGUF). */
  qkvLayout: 'per-head' | 'blocks';
}

/** build_alibi_tensor's slopes, in float32. */
export function alibiSlopes(heads: number): Float32Array {
  const f = Math.fround;
  const closest = 2 ** Math.floor(Math.log2(heads));
  const base = f(2 ** -(2 ** -(Math.log2(closest) - 3)));
  const slopes = Array.from({ length: closest }, (_, i) => f(base ** (i + 1)));
  if (closest !== heads) {
    const extra = f(2 ** -(2 ** -(Math.log2(2 * closest) - 3)));
    const remaining = Math.min(closest, heads - closest);
    for (let i = 0; i < remaining; i++) slopes.push(f(extra ** (2 * i + 1)));
  }
  return Float32Array.from(slopes);
}

function readConfig(c: ModelConfig): BloomConfig {
  const hidden = c.size(['n_embed', 'hidden_size'], 64);
  const heads = c.size(['n_head', 'num_attention_heads'], 8);
  return {
    layers: c.size(['n_layer', 'num_hidden_layers'], 2),
    heads,
    headDim: headDim(c, hidden, heads),
    hidden,
    // ALiBi has no position table; BLOOM was trained on 2048 tokens (its tokenizer's model_max_length).
    maxPositions: c.size(['seq_length', 'max_position_embeddings'], 2048),
    vocab: c.size('vocab_size', 250880),
    eps: c.float('layer_norm_epsilon', 1e-5),
    residualPostNorm: c.bool('apply_residual_connection_post_layernorm', false),
    slopes: alibiSlopes(heads),
    qkvLayout: 'per-head',
  };
}

function build(g: GraphBuilder, w: Weights, c: BloomConfig, options: BuildOptions): void {
  const p = w.has('transformer.word_embeddings.weight') ? 'transformer.' : '';
  const D = c.hidden,
    H = c.heads,
    d = c.headDim;
  const get = (name: string, shape: number[]) => w.get(p + name, shape);
  const linear = (x: string, name: string, nIn: number, nOut: number) =>
    g.linear(x, get(`${name}.weight`, [nOut, nIn]), get(`${name}.bias`, [nOut]));
  const layerNorm = (x: string, name: string, out?: string) =>
    g.layerNorm(x, get(`${name}.weight`, [D]), get(`${name}.bias`, [D]), c.eps, out);

  const ids = g.input(INPUTS.inputIds, 'int64', ['T']);
  const positions = g.input(INPUTS.positionIds, 'int64', ['T']);
  const causal = g.input(INPUTS.causalMask, 'float', ['T', 'T']);
  // ALiBi: slope_h · j for key position j, [H, T, T] (rows identical), shared by all layers.
  const keys = g.op('Unsqueeze', [g.op('Cast', [positions], { to: 1 /* FLOAT */ }), g.ints([0, 1])]); // [1, 1, T]
  const alibi = g.op('Mul', [g.floats(c.slopes, [H, 1, 1]), keys]);
  const bias = g.op('Expand', [alibi, g.op('Shape', [causal])], {}, POSITION_BIAS_OUTPUT);
  const mask = g.add(bias, causal);

  let x = layerNorm(g.embedding(get('word_embeddings.weight', [c.vocab, D]), ids), 'word_embeddings_layernorm');
  for (let i = 0; i < c.layers; i++) {
    const l = `h.${i}`;
    const out = outputNames(i);
    const ln1 = layerNorm(x, `${l}.input_layernorm`);
    const qkv = linear(ln1, `${l}.self_attention.query_key_value`, D, 3 * D);
    const split = (shape: number[], perm: number[], axis: number) =>
      g.opN('Split', [g.op('Transpose', [g.op('Reshape', [qkv, g.ints(shape)])], { perm })], 3, { axis });
    // Per head: [T, H, 3d] → [H, T, 3d], cut along d; blocks: [T, 3, H, d] → [3, H, T, d], cut along the 3.
    const [qRaw, kRaw, v] =
      c.qkvLayout === 'per-head'
        ? split([0, H, 3 * d], [1, 0, 2], 2)
        : split([0, 3, H, d], [1, 2, 0, 3], 0).map((x) => g.op('Squeeze', [x, g.ints([0])]));
    const q = g.op('Identity', [qRaw], {}, out.q),
      k = g.op('Identity', [kRaw], {}, out.k);
    const context = g.mergeHeads(g.attention(q, k, v, 1 / Math.sqrt(d), out.probs, mask), H, d);
    const attn = g.add(linear(context, `${l}.self_attention.dense`, D, D), c.residualPostNorm ? ln1 : x);
    const ln2 = layerNorm(attn, `${l}.post_attention_layernorm`);
    const h = g.geluTanh(linear(ln2, `${l}.mlp.dense_h_to_4h`, D, 4 * D));
    x = g.add(linear(h, `${l}.mlp.dense_4h_to_h`, 4 * D, D), c.residualPostNorm ? ln2 : attn);
  }

  g.output(layerNorm(x, 'ln_f', HIDDEN_LAST), ['T', D]);
  if (options.extract) g.output(bias, [H, 'T', 'T']);
  declareLayerOutputs(g, c, options);
}

export const bloom: Family<BloomConfig> = {
  modelType: 'bloom',
  causal: true,
  readConfig,
  build,
  skipped: [TASK_HEADS, /^lm_head\.weight$/],
};
