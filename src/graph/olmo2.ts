/**
 * OLMo 2 (Team OLMo 2024), as in transformers' modeling_olmo2.py: a Llama-style decoder (RoPE, grouped-query
 * attention, SwiGLU MLP) whose norms sit after each block instead of before it —
 * x + post_attention_layernorm(attn(x)), then x + post_feedforward_layernorm(mlp(x)), no input norm — and
 * whose q and k are RMS-normalised over the whole projection (`q_norm` `[H·d]`, `k_norm` `[K·d]`, before the
 * split into heads and before RoPE).
 *
 * Reported q, k: after the norms and RoPE (kv heads repeated), as they enter softmax(q·kᵀ/√d + mask).
 *
 * Config defaults are Olmo2Config's: vocab_size 50304, hidden_size 4096, intermediate_size 11008,
 * num_hidden_layers 32, num_attention_heads 32, num_key_value_heads = heads, max_position_embeddings 2048,
 * rms_norm_eps 1e-5, rope_theta 10000, attention_bias false, tie_word_embeddings false. rope_scaling:
 * 'default', 'linear', 'llama3' (ropeInvFreq), others refused by name.
 */
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
  ropeSettings,
  selfAttention,
  tokenEmbedding,
  type GatedDecoderDims,
} from './decoder.js';
import { HIDDEN_LAST, type Family } from './family.js';
import { ropeInvFreq, rotary } from './rotary.js';

export interface Olmo2Config extends GatedDecoderDims {
  invFreq: Float32Array;
  /** q, k, v and o projections carry biases (attention_bias). */
  bias: boolean;
}

function readConfig(c: ModelConfig): Olmo2Config {
  const dims = gatedDecoderDims(c, {
    hidden: 4096,
    heads: 32,
    kvHeads: null,
    layers: 32,
    positions: 2048,
    vocab: 50304,
    intermediate: 11008,
    eps: 1e-5,
  });
  checkRotaryHeadDim(c, dims.headDim);
  oneOf(c, 'hidden_act', ['silu'], 'silu');
  const { theta, scaling } = ropeSettings(c, 10000);
  return {
    ...dims,
    invFreq: ropeInvFreq(dims.headDim, theta, scaling),
    bias: c.bool('attention_bias', false),
  };
}

function build(g: GraphBuilder, w: Weights, c: Olmo2Config, options: DecodingBuildOptions): void {
  const p = w.has('model.norm.weight') ? 'model.' : '';
  const D = c.hidden,
    H = c.heads,
    K = c.kvHeads,
    d = c.headDim;
  const { linear, rmsNorm } = namedLayers(g, w, p, { hidden: D, eps: c.eps });

  const { ids, positions, mask } = decoderInputs(g, options);
  const embedding = tokenEmbedding(w, `${p}embed_tokens.weight`, c);
  let x = g.embedding(embedding, ids);
  const rotate = rotary(g, { positions, invFreq: c.invFreq, headDim: d, layout: c.rope });
  const mlp = { hidden: D, intermediate: c.intermediate, bias: false };

  for (let i = 0; i < c.layers; i++) {
    const l = `layers.${i}`;
    // Attention on x itself; q and k RMS-normed over the whole projection, then split and rotated.
    const q = rmsNorm(linear(x, `${l}.self_attn.q_proj`, D, H * d, c.bias), `${l}.self_attn.q_norm`, H * d);
    const k = rmsNorm(linear(x, `${l}.self_attn.k_proj`, D, K * d, c.bias), `${l}.self_attn.k_norm`, K * d);
    const proj = {
      q: g.splitHeads(q, H, d),
      k: g.splitHeads(k, K, d),
      v: g.splitHeads(linear(x, `${l}.self_attn.v_proj`, D, K * d, c.bias), K, d),
    };
    const context = selfAttention(g, c, i, proj, rotate, options, { scale: 1 / Math.sqrt(d), mask });
    x = g.add(x, rmsNorm(linear(context, `${l}.self_attn.o_proj`, H * d, D, c.bias), `${l}.post_attention_layernorm`));
    // SwiGLU MLP on x, normed after: x + norm(down(silu(gate(x)) · up(x))).
    x = g.add(x, rmsNorm(gatedMlp(g, linear, x, l, mlp), `${l}.post_feedforward_layernorm`));
  }

  decoderOutputs(g, w, rmsNorm(x, 'norm', D, HIDDEN_LAST), embedding, c, options);
}

export const olmo2: Family<Olmo2Config> = {
  modelType: 'olmo2',
  causal: true,
  lmHead: true,
  readConfig,
  build,
  skipped: DECODER_SKIPPED,
};
