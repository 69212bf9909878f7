/**
 * Phi-3 and Phi-4-mini (Abdin et al. 2024), as in transformers' modeling_phi3.py: Llama's pre-norm decoder
 * with fused projections — `self_attn.qkv_proj` `[(H + 2K)·d, D]` holds q's rows, then k's, then v's;
 * `mlp.gate_up_proj` `[2·I, D]` holds the gate's rows, then up's: down(up · silu(gate)) — rotary embedding on
 * the first `partial_rotary_factor · d` dimensions of each head (all of them in Phi-3, ¾ in Phi-4-mini), and,
 * when the config sets `sliding_window`, every layer limited to the last `sliding_window` keys
 * (Attention.layerWindows [sliding_window − 1, 0] for each layer).
 *
 * Reported q, k: after RoPE (kv heads repeated), as they enter softmax(q·kᵀ/√d + mask).
 *
 * Only default RoPE is supported: the 128k-context checkpoints' rope_scaling ("longrope", formerly "su",
 * and "yarn") rescales frequencies by position range and is refused by name.
 *
 * Config defaults are Phi3Config's: vocab_size 32064, hidden_size 3072, intermediate_size 8192,
 * num_hidden_layers 32, num_attention_heads 32, num_key_value_heads = heads, max_position_embeddings 4096,
 * rms_norm_eps 1e-5, rope_theta 10000, partial_rotary_factor 1, tie_word_embeddings false, sliding_window none.
 */
import { AttnvizError, check } from '../core/errors.js';
import { oneOf, type ModelConfig } from '../load/config.js';
import type { Weights } from '../load/weights.js';
import type { GraphBuilder } from './builder.js';
import { namedLayers } from './layers.js';
import type { DecodingBuildOptions } from './decoding.js';
import {
  decoderInputs,
  decoderOutputs,
  DECODER_SKIPPED,
  gatedDecoderDims,
  ropeSettings,
  selfAttention,
  slidingWindowMask,
  tokenEmbedding,
  type GatedDecoderDims,
} from './decoder.js';
import { HIDDEN_LAST, type Family } from './family.js';
import { ropeInvFreq, rotary } from './rotary.js';

export interface Phi3Config extends GatedDecoderDims {
  theta: number;
  /** Rotated dimensions per head: int(d · partial_rotary_factor). */
  rotaryDims: number;
  /** The sliding window of every layer, or null. */
  window: number | null;
}

function readConfig(c: ModelConfig): Phi3Config {
  const dims = gatedDecoderDims(c, {
    hidden: 3072,
    heads: 32,
    kvHeads: null,
    layers: 32,
    positions: 4096,
    vocab: 32064,
    intermediate: 8192,
    eps: 1e-5,
  });
  const d = dims.headDim;
  oneOf(c, 'hidden_act', ['silu'], 'silu');
  const { theta, scaling } = ropeSettings(c, 10000);
  const type = scaling ? scaling.string(['rope_type', 'type'], 'default') : 'default';
  if (type !== 'default')
    throw new AttnvizError(`${scaling!.path}: rope type "${type}" is not supported for phi3 (only default RoPE)`);
  const partial = c.float('partial_rotary_factor', scaling?.float('partial_rotary_factor', 1) ?? 1);
  const rotaryDims = Math.trunc(d * partial);
  check(
    partial > 0 && partial <= 1 && rotaryDims % 2 === 0,
    `${c.path}: partial_rotary_factor ${partial} gives ${rotaryDims} rotary dimensions of ${d}; they must be even`,
  );
  const window = c.raw.sliding_window === undefined || c.raw.sliding_window === null ? null : c.size('sliding_window');
  return {
    ...dims,
    theta,
    rotaryDims,
    window,
    layerWindows: Array.from({ length: dims.layers }, () => (window === null ? null : ([window - 1, 0] as const))),
  };
}

function build(g: GraphBuilder, w: Weights, c: Phi3Config, options: DecodingBuildOptions): void {
  const p = w.has('model.norm.weight') ? 'model.' : '';
  const D = c.hidden,
    H = c.heads,
    K = c.kvHeads,
    d = c.headDim,
    I = c.intermediate;
  const { linear, rmsNorm } = namedLayers(g, w, p, { hidden: D, eps: c.eps });
  /** Columns [from, to) of a `[T, n]` value. */
  const columns = (x: string, from: number, to: number) =>
    g.op('Slice', [x, g.ints([from]), g.ints([to]), g.ints([1])]);

  const { ids, positions, mask: causal } = decoderInputs(g, options);
  const mask = c.window === null ? causal : slidingWindowMask(g, positions, causal, c.window);
  const rotate = rotary(g, {
    positions,
    invFreq: ropeInvFreq(c.rotaryDims, c.theta, null),
    headDim: d,
    layout: 'half',
  });
  const embedding = tokenEmbedding(w, `${p}embed_tokens.weight`, c);
  let x = g.embedding(embedding, ids);

  for (let i = 0; i < c.layers; i++) {
    const l = `layers.${i}`;
    // Fused q | k | v projection of the RMS-normed input, cut by columns.
    const qkv = linear(rmsNorm(x, `${l}.input_layernorm`), `${l}.self_attn.qkv_proj`, D, (H + 2 * K) * d, false);
    const proj = {
      q: g.splitHeads(columns(qkv, 0, H * d), H, d),
      k: g.splitHeads(columns(qkv, H * d, (H + K) * d), K, d),
      v: g.splitHeads(columns(qkv, (H + K) * d, (H + 2 * K) * d), K, d),
    };
    const context = selfAttention(g, c, i, proj, rotate, options, { scale: 1 / Math.sqrt(d), mask });
    x = g.add(x, linear(context, `${l}.self_attn.o_proj`, H * d, D, false));
    // Fused gate | up projection: down(up · silu(gate)).
    const gateUp = linear(rmsNorm(x, `${l}.post_attention_layernorm`), `${l}.mlp.gate_up_proj`, D, 2 * I, false);
    const gated = g.op('Mul', [columns(gateUp, I, 2 * I), g.silu(columns(gateUp, 0, I))]);
    x = g.add(x, linear(gated, `${l}.mlp.down_proj`, I, D, false));
  }

  decoderOutputs(g, w, rmsNorm(x, 'norm', D, HIDDEN_LAST), embedding, c, options);
}

export const phi3: Family<Phi3Config> = {
  modelType: 'phi3',
  causal: true,
  lmHead: true,
  readConfig,
  build,
  skipped: DECODER_SKIPPED,
};
