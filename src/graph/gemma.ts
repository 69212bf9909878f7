/**
 * Gemma 2 (Gemma Team 2024) and Gemma 3's text model (Gemma Team 2025), as in transformers'
 * modeling_gemma2.py and modeling_gemma3.py (Gemma3ForCausalLM, model_type "gemma3_text"). Llama-style
 * decoders (RoPE, grouped-query attention, gated MLP, tied head) with these differences:
 *
 * - the token embeddings are multiplied by √hidden_size (rounded to float32, as the modeling code makes it a
 *   tensor of the embedding's dtype);
 * - RMSNorm multiplies by (1 + w), not w (the weights are stored as offsets from 1; llama.cpp's converter
 *   stores 1 + w itself, so GGUF files run with `normOffset` 0);
 * - "sandwich" norms: x + post_attention_layernorm(attn(input_layernorm(x))), then
 *   x + post_feedforward_layernorm(mlp(pre_feedforward_layernorm(x)));
 * - head_dim is explicit (256 by default) and the scores are scaled by query_pre_attn_scalar^−½, not 1/√d;
 * - Gemma 2 soft-caps the scaled scores, s → c·tanh(s/c) with c = attn_logit_softcapping (50), before the
 *   mask, and the logits likewise with final_logit_softcapping (30);
 * - sliding-window layers (the last `sliding_window` keys) alternate with global ones: every other layer from
 *   layer 0 in Gemma 2, five of every six in Gemma 3 (layer_types when the config lists them);
 * - Gemma 3 RMS-normalises each head's q and k (q_norm, k_norm over head_dim, 1 + w) before RoPE, and rotates
 *   sliding layers with θ = rope_local_base_freq (10000, no scaling) and global ones with rope_theta (1e6) and
 *   rope_scaling ('linear' in the 4B–27B models);
 * - the MLP is down(gelu_tanh(gate(x)) · up(x)) (hidden_activation gelu_pytorch_tanh).
 *
 * What is reported per layer: q and k after the q/k norms (Gemma 3) and RoPE, kv heads repeated; the
 * Attention says scoreScale = query_pre_attn_scalar^−½, attnLogitSoftcapping = c (Gemma 2) and, per layer,
 * layerWindows [sliding_window − 1, 0] or null, so that softmax(c·tanh(q·kᵀ·scale / c) + mask) reproduces it.
 *
 * Config defaults are Gemma2Config's / Gemma3TextConfig's. Names: `model.` prefix or none; lm_head tied.
 */
import { check } from '../core/errors.js';
import { ModelConfig, oneOf } from '../load/config.js';
import type { WeightRef, Weights } from '../load/weights.js';
import type { ActivationName, GraphBuilder } from './builder.js';
import { namedLayers } from './layers.js';
import { lmHead, type DecodingBuildOptions } from './decoding.js';
import {
  checkKvHeads,
  checkRotaryHeadDim,
  decoderInputs,
  gatedMlp,
  isObject,
  layerTypes,
  ropeSettings,
  selfAttention,
  windowMasks,
  type DecoderDims,
} from './decoder.js';
import { declareLayerOutputs, HIDDEN_LAST, TASK_HEADS, type Family } from './family.js';
import { ropeInvFreq, rotary } from './rotary.js';

type Variant = 'gemma2' | 'gemma3_text';

export interface GemmaConfig extends DecoderDims {
  variant: Variant;
  vocab: number;
  intermediate: number;
  eps: number;
  act: ActivationName;
  /** Per layer: the sliding window or null. */
  windows: (number | null)[];
  /** RoPE inv_freq of global and (Gemma 3) sliding layers. */
  invFreq: { global: Float32Array; local: Float32Array };
  /** final_logit_softcapping (logits only). */
  finalSoftcap?: number;
  scoreScale: number;
  /** Added to every RMSNorm weight: 1 (transformers' offsets from 1), 0 (GGUF: the converter added it). */
  normOffset: 0 | 1;
}

/** Gemma's configs say gelu_pytorch_tanh; the other names map onto the builder's activations. */
const GEMMA_ACTIVATIONS = ['gelu_pytorch_tanh', 'gelu_new', 'gelu'] as const;

function optionalPositive(c: ModelConfig, key: string, fallback: number | null): number | undefined {
  const v = c.raw[key] === undefined ? fallback : c.raw[key];
  if (v === null) return undefined;
  const n = c.float(key, fallback ?? undefined);
  check(n > 0, `${c.path}: field "${key}" must be positive, got ${n}`);
  return n;
}

function readConfig(c: ModelConfig, variant: Variant): GemmaConfig {
  const g3 = variant === 'gemma3_text';
  const hidden = c.size('hidden_size', 2304);
  const heads = c.size('num_attention_heads', 8);
  const kvHeads = c.size('num_key_value_heads', 4);
  checkKvHeads(c, heads, kvHeads);
  const d = c.size('head_dim', 256);
  checkRotaryHeadDim(c, d);
  const layers = c.size('num_hidden_layers', 26);
  const window = c.size('sliding_window', 4096);
  // Gemma 2: even layers slide; Gemma 3: all but every sliding_window_pattern-th (6).
  const pattern = g3 ? c.size('sliding_window_pattern', 6) : 2;
  const windows = layerTypes(c, layers, (i) => (i + 1) % pattern !== 0).map((s) => (s ? window : null));

  // RoPE: one θ (Gemma 2); Gemma 3 a global θ with rope_scaling and a local one, or (transformers ≥ 5)
  // rope_parameters keyed by layer type.
  const perType = isObject(c.raw.rope_parameters) && isObject(c.raw.rope_parameters.full_attention);
  let global: Float32Array, local: Float32Array;
  if (perType) {
    const params = c.raw.rope_parameters as Record<string, unknown>;
    const inv = (type: string) => {
      check(isObject(params[type]), `${c.path}: rope_parameters has no "${type}" entry`);
      const p = new ModelConfig(params[type] as Record<string, unknown>, `${c.path} rope_parameters.${type}`);
      return ropeInvFreq(d, p.float('rope_theta', type === 'full_attention' ? 1e6 : 1e4), p);
    };
    global = inv('full_attention');
    local = windows.some((w) => w !== null) ? inv('sliding_attention') : global;
  } else {
    const { theta, scaling } = ropeSettings(c, g3 ? 1e6 : 1e4);
    global = ropeInvFreq(d, theta, scaling);
    local = g3 ? ropeInvFreq(d, c.float('rope_local_base_freq', 1e4), null) : global;
  }
  const attnSoftcap = g3
    ? optionalPositive(c, 'attn_logit_softcapping', null)
    : optionalPositive(c, 'attn_logit_softcapping', 50);
  return {
    layers,
    heads,
    headDim: d,
    hidden,
    maxPositions: c.size('max_position_embeddings', g3 ? 131072 : 8192),
    kvHeads,
    rope: 'half',
    variant,
    vocab: c.size('vocab_size', g3 ? 262208 : 256000),
    intermediate: c.size('intermediate_size', 9216),
    eps: c.float('rms_norm_eps', 1e-6),
    act: oneOf(c, ['hidden_activation', 'hidden_act'], GEMMA_ACTIVATIONS, 'gelu_pytorch_tanh'),
    windows,
    invFreq: { global, local },
    finalSoftcap: optionalPositive(c, 'final_logit_softcapping', g3 ? null : 30),
    scoreScale: c.float('query_pre_attn_scalar', 256) ** -0.5,
    normOffset: 1,
    ...(attnSoftcap !== undefined ? { attnLogitSoftcapping: attnSoftcap } : {}),
    layerWindows: windows.map((w) => (w === null ? null : ([w - 1, 0] as const))),
  };
}

function build(g: GraphBuilder, w: Weights, c: GemmaConfig, options: DecodingBuildOptions): void {
  const p = w.has('model.norm.weight') ? 'model.' : '';
  const D = c.hidden,
    H = c.heads,
    K = c.kvHeads,
    d = c.headDim;
  const { get, linear } = namedLayers(g, w, p, { hidden: D, eps: c.eps });
  // Gemma's RMSNorm: x / √(mean(x²) + eps) · (1 + w), over the last axis.
  const norm = (x: string, name: string, width = D, out?: string) => {
    const meanSquare = g.op('ReduceMean', [g.op('Pow', [x, g.scalar(2)])], { axes: [-1], keepdims: 1 });
    const normed = g.op('Div', [x, g.op('Sqrt', [g.op('Add', [meanSquare, g.scalar(c.eps)])])]);
    const weight = g.weight(get(`${name}.weight`, [width]));
    const gain = c.normOffset === 0 ? weight : g.op('Add', [weight, g.scalar(1)]);
    return g.op('Mul', [normed, gain], {}, out);
  };

  const { ids, positions, mask } = decoderInputs(g, options);
  const maskOf = windowMasks(g, positions, mask);
  const rotateGlobal = rotary(g, { positions, invFreq: c.invFreq.global, headDim: d, layout: c.rope });
  const rotateLocal =
    c.invFreq.local === c.invFreq.global
      ? rotateGlobal
      : rotary(g, { positions, invFreq: c.invFreq.local, headDim: d, layout: c.rope });

  // Embeddings × √D (float32).
  const embedding: WeightRef = w.get([`${p}embed_tokens.weight`, 'lm_head.weight'], [c.vocab, D]);
  let x = g.op('Mul', [g.embedding(embedding, ids), g.scalar(Math.fround(Math.sqrt(D)))]);

  const mlpDims = { hidden: D, intermediate: c.intermediate, bias: false };
  const act = (y: string) => g.activation(y, c.act);
  for (let i = 0; i < c.layers; i++) {
    const l = `layers.${i}`;
    const window = c.windows[i];
    // Attention between sandwich norms; Gemma 3 normalises each head's q and k before RoPE.
    const h = norm(x, `${l}.input_layernorm`);
    let q = g.splitHeads(linear(h, `${l}.self_attn.q_proj`, D, H * d, false), H, d);
    let k = g.splitHeads(linear(h, `${l}.self_attn.k_proj`, D, K * d, false), K, d);
    if (c.variant === 'gemma3_text') {
      q = norm(q, `${l}.self_attn.q_norm`, d);
      k = norm(k, `${l}.self_attn.k_norm`, d);
    }
    const v = g.splitHeads(linear(h, `${l}.self_attn.v_proj`, D, K * d, false), K, d);
    const context = selfAttention(g, c, i, { q, k, v }, window === null ? rotateGlobal : rotateLocal, options, {
      scale: c.scoreScale,
      softcap: c.attnLogitSoftcapping,
      mask: maskOf(window),
    });
    x = g.add(x, norm(linear(context, `${l}.self_attn.o_proj`, H * d, D, false), `${l}.post_attention_layernorm`));
    // Gated MLP between sandwich norms: down(gelu_tanh(gate(h)) · up(h)).
    const mlp = gatedMlp(g, linear, norm(x, `${l}.pre_feedforward_layernorm`), l, mlpDims, act);
    x = g.add(x, norm(mlp, `${l}.post_feedforward_layernorm`));
  }

  const hidden = g.output(norm(x, 'norm', D, HIDDEN_LAST), ['T', D]);
  if (options.logits) lmHead(g, hidden, embedding, options.logits, undefined, c.finalSoftcap);
  declareLayerOutputs(g, c, options);
}

const family = (variant: Variant): Family<GemmaConfig> => ({
  modelType: variant,
  causal: true,
  lmHead: true,
  readConfig: (c) => readConfig(c, variant),
  build,
  // The head tied to the embedding (some saves store it), task heads.
  skipped: [TASK_HEADS, /^lm_head\.weight$/],
});

export const gemma2 = family('gemma2');
export const gemma3Text = family('gemma3_text');
