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
import { lmHead, type DecodingBuildOptions } from './decoding.js';
import { ropeSettings, selfAttention, slidingWindowMask, type DecoderDims } from './decoder.js';
import { declareLayerOutputs, HIDDEN_LAST, INPUTS, TASK_HEADS, type Family } from './family.js';
import { ropeInvFreq, rotary } from './rotary.js';

export interface Qwen3Config extends DecoderDims {
  vocab: number;
  intermediate: number;
  eps: number;
  invFreq: Float32Array;
  /** q, k, v and o projections carry biases (attention_bias). */
  bias: boolean;
  tied: boolean;
  /** Per layer: the sliding window (keys i − window + 1 … i) or null. */
  windows: (number | null)[];
}

/** Which layers slide, from `layer_types` or, as Qwen3Config derives it, use_sliding_window + max_window_layers. */
export function layerTypes(c: ModelConfig, layers: number, derived: (i: number) => boolean): boolean[] {
  const given = c.raw.layer_types;
  if (given === undefined || given === null) return Array.from({ length: layers }, (_, i) => derived(i));
  check(
    Array.isArray(given) && given.length === layers,
    `${c.path}: field "layer_types" must list one type per layer (${layers})`,
  );
  return given.map((t, i) => {
    check(
      t === 'full_attention' || t === 'sliding_attention',
      `${c.path}: layer_types[${i}] is ${JSON.stringify(t)}; supported: full_attention, sliding_attention`,
    );
    return t === 'sliding_attention';
  });
}

function readConfig(c: ModelConfig): Qwen3Config {
  const hidden = c.size('hidden_size', 4096);
  const heads = c.size('num_attention_heads', 32);
  // Qwen3Config: num_key_value_heads defaults to 32; an explicit null means one per attention head.
  const kvHeads = c.raw.num_key_value_heads === null ? heads : c.size('num_key_value_heads', 32);
  check(heads % kvHeads === 0, `${c.path}: ${heads} attention heads cannot share ${kvHeads} key/value heads evenly`);
  const d = c.size('head_dim', 128);
  check(d % 2 === 0, `${c.path}: head_dim ${d} must be even for rotary embeddings`);
  oneOf(c, 'hidden_act', ['silu'], 'silu');
  const layers = c.size('num_hidden_layers', 32);
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
    layers,
    heads,
    headDim: d,
    hidden,
    maxPositions: c.size('max_position_embeddings', 32768),
    kvHeads,
    rope: 'half',
    vocab: c.size('vocab_size', 151936),
    intermediate: c.size('intermediate_size', 22016),
    eps: c.float('rms_norm_eps', 1e-6),
    invFreq: ropeInvFreq(d, theta, scaling),
    bias: c.bool('attention_bias', false),
    tied: c.bool('tie_word_embeddings', false),
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
  const get = (name: string, shape: number[]) => w.get(p + name, shape);
  const rmsNorm = (x: string, name: string, width = D, out?: string) =>
    g.rmsNorm(x, get(`${name}.weight`, [width]), c.eps, out);
  const linear = (x: string, name: string, nOut: number, nIn: number, bias: boolean) =>
    g.linear(x, get(`${name}.weight`, [nOut, nIn]), bias ? get(`${name}.bias`, [nOut]) : undefined);

  const ids = g.input(INPUTS.inputIds, 'int64', ['T']);
  const positions = g.input(INPUTS.positionIds, 'int64', ['T']);
  const mask = g.input(INPUTS.causalMask, 'float', ['T', options.kvCache ? 'S' : 'T']);
  const windowMasks = new Map<number, string>();
  const maskOf = (window: number | null) => {
    if (window === null) return mask;
    if (!windowMasks.has(window)) windowMasks.set(window, slidingWindowMask(g, positions, mask, window));
    return windowMasks.get(window)!;
  };
  const embedding = w.get(c.tied ? [`${p}embed_tokens.weight`, 'lm_head.weight'] : `${p}embed_tokens.weight`, [
    c.vocab,
    D,
  ]);
  let x = g.embedding(embedding, ids);
  const rotate = rotary(g, { positions, invFreq: c.invFreq, headDim: d, layout: c.rope });

  for (let i = 0; i < c.layers; i++) {
    const l = `layers.${i}`;
    const h = rmsNorm(x, `${l}.input_layernorm`);
    // Projections, then per-head RMSNorm of q and k (over d) before RoPE.
    const proj = {
      q: rmsNorm(g.splitHeads(linear(h, `${l}.self_attn.q_proj`, H * d, D, c.bias), H, d), `${l}.self_attn.q_norm`, d),
      k: rmsNorm(g.splitHeads(linear(h, `${l}.self_attn.k_proj`, K * d, D, c.bias), K, d), `${l}.self_attn.k_norm`, d),
      v: g.splitHeads(linear(h, `${l}.self_attn.v_proj`, K * d, D, c.bias), K, d),
    };
    const context = selfAttention(g, c, i, proj, rotate, options, {
      scale: 1 / Math.sqrt(d),
      mask: maskOf(c.windows[i]),
    });
    x = g.add(x, linear(context, `${l}.self_attn.o_proj`, D, H * d, c.bias));
    // SwiGLU MLP on the RMS-normed input: down(silu(gate(h)) · up(h)).
    const h2 = rmsNorm(x, `${l}.post_attention_layernorm`);
    const gated = g.op('Mul', [
      g.silu(linear(h2, `${l}.mlp.gate_proj`, c.intermediate, D, false)),
      linear(h2, `${l}.mlp.up_proj`, c.intermediate, D, false),
    ]);
    x = g.add(x, linear(gated, `${l}.mlp.down_proj`, D, c.intermediate, false));
  }

  const hidden = g.output(rmsNorm(x, 'norm', D, HIDDEN_LAST), ['T', D]);
  if (options.logits) lmHead(g, hidden, c.tied ? embedding : w.get('lm_head.weight', [c.vocab, D]), options.logits);
  declareLayerOutputs(g, c, options);
}

export const qwen3: Family<Qwen3Config> = {
  modelType: 'qwen3',
  causal: true,
  lmHead: true,
  readConfig,
  build,
  skipped: [TASK_HEADS, /^lm_head\.weight$/, /\.rotary_emb\.inv_freq$/],
};
