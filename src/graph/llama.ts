/**
 * Llama (Touvron et al. 2023), as in transformers' modeling_llama.py and llama2.c's model.py, and the
 * decoders that share its block: Mistral and Qwen2. Pre-norm decoder; RMSNorm; rotary position embeddings
 * (RoPE) on q and k; grouped-query attention (GQA: `kvHeads` key/value heads, each read by heads/kvHeads
 * query heads); SwiGLU MLP down(silu(gate(x)) · up(x)); final RMSNorm; a language-model head tied to the
 * embedding or not (`lm_head.weight`), read only when logits are asked for.
 *
 * What is reported per layer, as it enters softmax(q·kᵀ/√d + mask):
 * - `q` `[H, T, d]`: each query head, after RoPE.
 * - `k` `[H, T, d]`: for query head h the key of the kv head it reads, ⌊h / (H / kvHeads)⌋, after RoPE — the
 *   kv heads repeated, as in the golden `key` (engine: Attention.kvHeads says when keys are shared).
 *
 * Two RoPE conventions rotate pairs of dimensions of each head by position·θ_j, θ_j = rope_theta^(−2j/d):
 * - 'half' (HF checkpoints, `rotate_half`): pairs (x[j], x[j + d/2]). HF stores q_proj/k_proj rows permuted
 *   relative to Meta's weights so that this pairing computes the same attention.
 * - 'interleaved' (Meta's and llama2.c's checkpoints, GGUF): adjacent pairs (x[2j], x[2j + 1]).
 * q and k are reported in the checkpoint's own layout: HF order for HF checkpoints, the interleaved order
 * (the golden `query_llama2c`) for GGUF files. Attention is the same either way; only the order of the d
 * dimensions a neuron view shows differs.
 *
 * cos/sin are computed in the graph from `position_ids`, in float32, from inv_freq = 1 / θ^(arange(0, d, 2)/d)
 * computed here in float32 as torch does (then adjusted for `rope_scaling` 'linear' or 'llama3').
 * Sliding windows (as transformers' masking_utils): in a windowed layer, query i attends only to keys j with
 * 0 ≤ i − j < window. Mistral: every layer unless `sliding_window` is null (absent: 4096). Qwen2: only with
 * `use_sliding_window`, then layers i ≥ `max_window_layers` (default 28). An explicit `layer_types` list
 * ("sliding_attention" / "full_attention") wins over both rules. Inputs run up to max_position_embeddings.
 */
import { check } from '../core/errors.js';
import type { ModelConfig } from '../load/config.js';
import type { Weights } from '../load/weights.js';
import type { GraphBuilder } from './builder.js';
import { namedLayers } from './layers.js';
import { HIDDEN_LAST, type Family } from './family.js';
import type { DecodingBuildOptions } from './decoding.js';
import {
  checkRotaryHeadDim,
  decoderInputs,
  decoderOutputs,
  DECODER_SKIPPED,
  gatedDecoderDims,
  gatedMlp,
  isObject,
  layerTypes,
  ropeSettings,
  selfAttention,
  tokenEmbedding,
  windowMasks,
  type GatedDecoderDefaults,
  type GatedDecoderDims,
} from './decoder.js';
import { ropeInvFreq, rotary } from './rotary.js';

export interface LlamaConfig extends GatedDecoderDims {
  /** RoPE inv_freq θ_j, d/2 values in float32, rope_scaling applied. */
  invFreq: Float32Array;
  /** q, k, v projections carry biases (Qwen2; Llama with attention_bias). */
  qkvBias: boolean;
  /** o_proj carries a bias (Llama with attention_bias). */
  oBias: boolean;
  /** gate/up/down projections carry biases (Llama mlp_bias). */
  mlpBias: boolean;
  /** Per layer, the sliding window (keys j with i − j < window), or null for full causal attention. */
  windows: (number | null)[];
}

type Variant = 'llama' | 'mistral' | 'qwen2';

/**
 * LlamaConfig's, MistralConfig's and Qwen2Config's defaults (Llama-7B's, Mistral-7B's, Qwen's sizes); kvHeads
 * null: num_attention_heads. Sliding windows (Mistral; Qwen2 with use_sliding_window) default to 4096.
 */
const SHARED_DEFAULTS = { hidden: 4096, heads: 32, layers: 32, eps: 1e-6 };
const DEFAULTS: Record<Variant, GatedDecoderDefaults> = {
  llama: { ...SHARED_DEFAULTS, intermediate: 11008, kvHeads: null, positions: 2048, vocab: 32000 },
  mistral: { ...SHARED_DEFAULTS, intermediate: 14336, kvHeads: 8, positions: 131072, vocab: 32000 },
  qwen2: { ...SHARED_DEFAULTS, intermediate: 22016, kvHeads: 32, positions: 32768, vocab: 151936 },
};

function readConfig(c: ModelConfig, variant: Variant): LlamaConfig {
  const dims = gatedDecoderDims(c, DEFAULTS[variant]);
  const d = dims.headDim;
  checkRotaryHeadDim(c, d);
  const act = c.string(['hidden_act', 'hidden_activation'], 'silu');
  check(act === 'silu', `${c.path}: hidden_act "${act}" is not supported for ${variant} (only silu)`);

  const { theta, scaling } = ropeSettings(c, 10000);
  const params = isObject(c.raw.rope_parameters) ? c.raw.rope_parameters : null;
  const partial = params?.partial_rotary_factor ?? c.raw.partial_rotary_factor;
  check(
    partial === undefined || partial === null || partial === 1,
    `${c.path}: partial_rotary_factor ${String(partial)} is not supported`,
  );

  const attentionBias = variant === 'llama' && c.bool('attention_bias', false);
  return {
    ...dims,
    invFreq: ropeInvFreq(d, theta, scaling),
    qkvBias: variant === 'qwen2' || attentionBias,
    oBias: attentionBias,
    mlpBias: variant === 'llama' && c.bool('mlp_bias', false),
    windows: slidingWindows(c, variant, dims.layers),
  };
}

/** Each layer's sliding window, by transformers' rules (see the header). */
function slidingWindows(c: ModelConfig, variant: Variant, layers: number): (number | null)[] {
  const windowed = variant === 'mistral' || (variant === 'qwen2' && c.bool('use_sliding_window', false));
  if (!windowed || c.raw.sliding_window === null) return Array.from({ length: layers }, () => null);
  const window = c.size('sliding_window', 4096);
  const first = () => (variant === 'qwen2' ? c.size('max_window_layers', 28) : 0);
  return layerTypes(c, layers, (i) => i >= first()).map((s) => (s ? window : null));
}

function build(g: GraphBuilder, w: Weights, c: LlamaConfig, options: DecodingBuildOptions): void {
  check(!(options.kvCache && options.extract), 'a KV-cache graph has no attention outputs');
  // LlamaForCausalLM saves the decoder under `model.`, a bare LlamaModel without it; lm_head sits outside.
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
  const maskOf = windowMasks(g, positions, mask);
  const mlp = { hidden: D, intermediate: c.intermediate, bias: c.mlpBias };

  for (let i = 0; i < c.layers; i++) {
    const l = `layers.${i}`;
    // Attention on the RMS-normed input: per-head projections, RoPE on q and k, kv heads shared by groups.
    const h = rmsNorm(x, `${l}.input_layernorm`);
    const proj = {
      q: g.splitHeads(linear(h, `${l}.self_attn.q_proj`, D, H * d, c.qkvBias), H, d),
      k: g.splitHeads(linear(h, `${l}.self_attn.k_proj`, D, K * d, c.qkvBias), K, d),
      v: g.splitHeads(linear(h, `${l}.self_attn.v_proj`, D, K * d, c.qkvBias), K, d),
    };
    const context = selfAttention(g, c, i, proj, rotate, options, {
      scale: 1 / Math.sqrt(d),
      mask: maskOf(c.windows[i]),
    });
    x = g.add(x, linear(context, `${l}.self_attn.o_proj`, H * d, D, c.oBias));
    // SwiGLU MLP on the RMS-normed input: down(silu(gate(h)) · up(h)).
    x = g.add(x, gatedMlp(g, linear, rmsNorm(x, `${l}.post_attention_layernorm`), l, mlp));
  }

  decoderOutputs(g, w, rmsNorm(x, 'norm', D, HIDDEN_LAST), embedding, c, options);
}

const family = (modelType: Variant): Family<LlamaConfig> => ({
  modelType,
  causal: true,
  lmHead: true,
  readConfig: (c) => readConfig(c, modelType),
  build,
  // The LM head (read only for logits), RoPE's inv_freq buffer older saves persisted.
  skipped: DECODER_SKIPPED,
});

export const llama = family('llama');
export const mistral = family('mistral');
export const qwen2 = family('qwen2');
