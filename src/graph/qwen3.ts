/**
 * Qwen3 (Qwen team 2025), as in transformers' modeling_qwen3.py: Llama's pre-norm decoder (RMSNorm, RoPE,
 * grouped-query attention, SwiGLU MLP) with one change in attention — each head's query and key are
 * RMS-normalised over the head's d dimensions (`q_norm`, `k_norm`, weight `[d]`) after the projection and
 * before RoPE — and an explicit head_dim (128 by default, not hidden / heads).
 *
 * What is reported per layer, as it enters softmax(q·kᵀ/√d + mask): q after q_norm and RoPE, k after k_norm
 * and RoPE (kv heads repeated for each query head, as for Llama). With `use_sliding_window`, layers from
 * `max_window_layers` on (or those `layer_types` marks "sliding_attention") see only the last
 * `sliding_window` keys: Attention.layerWindows gives [sliding_window − 1, 0] for them.
 *
 * Config defaults are Qwen3Config's (transformers fills in absent fields from it): vocab_size 151936,
 * hidden_size 4096, intermediate_size 22016, num_hidden_layers 32, num_attention_heads 32,
 * num_key_value_heads 32, head_dim 128, max_position_embeddings 32768, rms_norm_eps 1e-6, rope_theta 10000,
 * tie_word_embeddings false, attention_bias false, use_sliding_window false, sliding_window 4096,
 * max_window_layers 28. rope_scaling: 'default', 'linear' and 'llama3' (ropeInvFreq), others refused by name.
 */
import { check } from '../core/errors.js';
import { oneOf, type ModelConfig } from '../load/config.js';
import type { Weights } from '../load/weights.js';
import type { GraphBuilder } from './builder.js';
import { namedLayers } from './layers.js';
import type { DecodingBuildOptions } from './decoding.js';
import {
  checkRotaryHeadDim,
  decoderInputs,
  decoderOutputs,
  DECODER_SKIPPED,
  gatedDecoderDims,
  gatedMlp,
  layerTypes,
  ropeSettings,
  selfAttention,
  tokenEmbedding,
  windowMasks,
  type GatedDecoderDims,
} from './decoder.js';
import { HIDDEN_LAST, type Family } from './family.js';
import { ropeInvFreq, rotary } from './rotary.js';

export interface Qwen3Config extends GatedDecoderDims {
  invFreq: Float32Array;
  /** q, k, v and o projections carry biases (attention_bias). */
  bias: boolean;
  /** Per layer: the sliding window (keys i − window + 1 … i) or null. */
  windows: (number | null)[];
}

function readConfig(c: ModelConfig): Qwen3Config {
  const dims = gatedDecoderDims(c, {
    hidden: 4096,
    heads: 32,
    // Qwen3Config: num_key_value_heads defaults to 32; an explicit null means one per attention head.
    kvHeads: c.raw.num_key_value_heads === null ? null : 32,
    headDim: 128,
    layers: 32,
    positions: 32768,
    vocab: 151936,
    intermediate: 22016,
    eps: 1e-6,
  });
  const { layers, headDim: d } = dims;
  checkRotaryHeadDim(c, d);
  oneOf(c, 'hidden_act', ['silu'], 'silu');
  const { theta, scaling } = ropeSettings(c, 10000);
  const sliding = c.bool('use_sliding_window', false);
  const window = sliding ? c.size('sliding_window', 4096) : null;
  const maxWindowLayers = c.float('max_window_layers', 28);
  const slides = layerTypes(c, layers, (i) => window !== null && i >= maxWindowLayers);
  check(
    window !== null || !slides.some(Boolean),
    `${c.path}: layer_types has sliding layers but use_sliding_window is false`,
  );
  const windows = slides.map((s) => (s ? window : null));
  return {
    ...dims,
    invFreq: ropeInvFreq(d, theta, scaling),
    bias: c.bool('attention_bias', false),
    windows,
    layerWindows: windows.map((w) => (w === null ? null : ([w - 1, 0] as const))),
  };
}

function build(g: GraphBuilder, w: Weights, c: Qwen3Config, options: DecodingBuildOptions): void {
  const p = w.has('model.norm.weight') ? 'model.' : '';
  const D = c.hidden,
    H = c.heads,
    K = c.kvHeads,
    d = c.headDim;
  const { linear, rmsNorm } = namedLayers(g, w, p, { hidden: D, eps: c.eps });

  const { ids, positions, mask } = decoderInputs(g, options);
  const maskOf = windowMasks(g, positions, mask);
  const embedding = tokenEmbedding(w, `${p}embed_tokens.weight`, c);
  let x = g.embedding(embedding, ids);
  const rotate = rotary(g, { positions, invFreq: c.invFreq, headDim: d, layout: c.rope });
  const mlp = { hidden: D, intermediate: c.intermediate, bias: false };

  for (let i = 0; i < c.layers; i++) {
    const l = `layers.${i}`;
    const h = rmsNorm(x, `${l}.input_layernorm`);
    // Projections, then per-head RMSNorm of q and k (over d) before RoPE.
    const proj = {
      q: rmsNorm(g.splitHeads(linear(h, `${l}.self_attn.q_proj`, D, H * d, c.bias), H, d), `${l}.self_attn.q_norm`, d),
      k: rmsNorm(g.splitHeads(linear(h, `${l}.self_attn.k_proj`, D, K * d, c.bias), K, d), `${l}.self_attn.k_norm`, d),
      v: g.splitHeads(linear(h, `${l}.self_attn.v_proj`, D, K * d, c.bias), K, d),
    };
    const context = selfAttention(g, c, i, proj, rotate, options, {
      scale: 1 / Math.sqrt(d),
      mask: maskOf(c.windows[i]),
    });
    x = g.add(x, linear(context, `${l}.self_attn.o_proj`, H * d, D, c.bias));
    // SwiGLU MLP on the RMS-normed input: down(silu(gate(h)) · up(h)).
    x = g.add(x, gatedMlp(g, linear, rmsNorm(x, `${l}.post_attention_layernorm`), l, mlp));
  }

  decoderOutputs(g, w, rmsNorm(x, 'norm', D, HIDDEN_LAST), embedding, c, options);
}

export const qwen3: Family<Qwen3Config> = {
  modelType: 'qwen3',
  causal: true,
  lmHead: true,
  readConfig,
  build,
  skipped: DECODER_SKIPPED,
};
