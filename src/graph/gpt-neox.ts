/**
 * GPT-NeoX (Black et al. 2022) and Pythia, as in transformers' modeling_gpt_neox.py: a pre-norm causal
 * decoder with no position table — positions enter through rotary embeddings on part of each head
 * (rotary_pct, a quarter in Pythia) — and, by default, a parallel residual: x + attn(ln₁(x)) + mlp(ln₂(x)),
 * both branches reading the same x. q, k and v come out of one projection, `query_key_value`, whose output
 * axis is laid out per head, [heads, 3, head_dim] (q₀ k₀ v₀ q₁ k₁ v₁ …), not [3, heads, head_dim] like
 * GPT-2's c_attn. The reported q and k are after the rotary embedding: what enters q·kᵀ.
 *
 * Reads checkpoints with or without the `gpt_neox.` prefix. Buffers older saves persisted
 * (`attention.bias` — a causal mask, not a bias — `attention.masked_bias`, `attention.rotary_emb.inv_freq`)
 * are never read, and the output head `embed_out` is not needed for attention. RoPE scaling variants
 * (rope_scaling) are rejected.
 */
import { ACTIVATIONS, type ActivationName, type GraphBuilder } from './builder.js';
import { namedLayers } from './layers.js';
import { check } from '../core/errors.js';
import { ModelConfig, oneOf } from '../load/config.js';
import type { Weights } from '../load/weights.js';
import {
  TASK_HEADS,
  declareLayerOutputs,
  headDim,
  HIDDEN_LAST,
  INPUTS,
  outputNames,
  type BuildOptions,
  type Family,
  type ModelDims,
} from './family.js';
import { rotary, ropeInvFreq } from './rotary.js';

export interface GptNeoxConfig extends ModelDims {
  vocab: number;
  intermediate: number;
  eps: number;
  act: ActivationName;
  /** Rotated dimensions per head: int(headDim · rotary_pct). */
  rotaryDims: number;
  /** θ base of the rotary embedding. */
  rotaryBase: number;
  /** x + attn(ln₁(x)) + mlp(ln₂(x)) when true; x += attn(ln₁(x)); x += mlp(ln₂(x)) when false. */
  parallelResidual: boolean;
  /** query_key_value and dense carry biases (config attention_bias, default true). */
  attentionBias: boolean;
}

function readConfig(c: ModelConfig): GptNeoxConfig {
  // GPTNeoXConfig's defaults are GPT-NeoX-20B's sizes.
  const hidden = c.size('hidden_size', 6144);
  const heads = c.size('num_attention_heads', 64);
  const d = headDim(c, hidden, heads);
  // Older configs spell the rotary fields rotary_pct / rotary_emb_base; newer ones add partial_rotary_factor /
  // rope_theta, and the newest nest them in rope_parameters.
  const rawRope = c.raw.rope_parameters;
  const rope =
    rawRope !== null && typeof rawRope === 'object' && !Array.isArray(rawRope)
      ? new ModelConfig(rawRope as Record<string, unknown>, `${c.path} rope_parameters`)
      : null;
  check(
    c.raw.rope_scaling === undefined || c.raw.rope_scaling === null,
    `${c.path}: rope_scaling ${JSON.stringify(c.raw.rope_scaling)} is not supported (only plain rotary embeddings)`,
  );
  if (rope) oneOf(rope, 'rope_type', ['default'], 'default');
  const pct = c.float(['rotary_pct', 'partial_rotary_factor'], rope?.float('partial_rotary_factor', 0.25) ?? 0.25);
  const rotaryDims = Math.trunc(d * pct);
  check(
    pct >= 0 && pct <= 1 && rotaryDims % 2 === 0,
    `${c.path}: rotary_pct ${pct} gives ${rotaryDims} rotary dimensions of ` +
      `${d}; they must be an even number, at most the head size`,
  );
  return {
    layers: c.size('num_hidden_layers', 44),
    heads,
    headDim: d,
    hidden,
    maxPositions: c.size('max_position_embeddings', 2048),
    vocab: c.size('vocab_size', 50432),
    intermediate: c.size('intermediate_size', 24576),
    eps: c.float('layer_norm_eps', 1e-5),
    act: oneOf(c, 'hidden_act', ACTIVATIONS, 'gelu'),
    rotaryDims,
    rotaryBase: c.float(['rotary_emb_base', 'rope_theta'], rope?.float('rope_theta', 10000) ?? 10000),
    parallelResidual: c.bool('use_parallel_residual', true),
    attentionBias: c.bool('attention_bias', true),
  };
}

function build(g: GraphBuilder, w: Weights, c: GptNeoxConfig, options: BuildOptions): void {
  const p = w.has('gpt_neox.embed_in.weight') ? 'gpt_neox.' : '';
  const D = c.hidden,
    H = c.heads,
    d = c.headDim;
  const { get, linear, layerNorm } = namedLayers(g, w, p, { hidden: D, eps: c.eps });

  const ids = g.input(INPUTS.inputIds, 'int64', ['T']);
  const positions = g.input(INPUTS.positionIds, 'int64', ['T']);
  const mask = g.input(INPUTS.causalMask, 'float', ['T', 'T']);
  const rotate = rotary(g, {
    positions,
    invFreq: ropeInvFreq(c.rotaryDims, c.rotaryBase, null),
    headDim: d,
    layout: 'half',
  });
  // Token embeddings only: positions are rotary, inside attention.
  let x = g.op('Gather', [g.weight(get('embed_in.weight', [c.vocab, D])), ids]);

  for (let i = 0; i < c.layers; i++) {
    const l = `layers.${i}`;
    const out = outputNames(i);
    // Fused projection [T, 3D], read as [T, H, 3d] → [H, T, 3d] and cut into q | k | v of d each.
    const qkv = linear(
      layerNorm(x, `${l}.input_layernorm`),
      `${l}.attention.query_key_value`,
      D,
      3 * D,
      c.attentionBias,
    );
    const perHead = g.op('Transpose', [g.op('Reshape', [qkv, g.ints([0, H, 3 * d])])], { perm: [1, 0, 2] });
    const [qRaw, kRaw, v] = g.opN('Split', [perHead], 3, { axis: 2 });
    // Rotary embedding on the first rotaryDims dimensions of q and k; the reported q, k are these.
    const q = rotate(qRaw, out.q);
    const k = rotate(kRaw, out.k);
    // Causal attention, scores scaled by 1/√d.
    const context = g.mergeHeads(g.attention(q, k, v, 1 / Math.sqrt(d), out.probs, mask), H, d);
    const attnOut = linear(context, `${l}.attention.dense`, D, D, c.attentionBias);
    const mlp = (h: string) =>
      linear(
        g.activation(linear(h, `${l}.mlp.dense_h_to_4h`, D, c.intermediate), c.act),
        `${l}.mlp.dense_4h_to_h`,
        c.intermediate,
        D,
      );
    if (c.parallelResidual) {
      // Both branches read the layer's input: x + attn(ln₁(x)) + mlp(ln₂(x)) (summed as transformers does).
      x = g.add(g.add(mlp(layerNorm(x, `${l}.post_attention_layernorm`)), attnOut), x);
    } else {
      const a = g.add(attnOut, x);
      x = g.add(mlp(layerNorm(a, `${l}.post_attention_layernorm`)), a);
    }
  }

  g.output(layerNorm(x, 'final_layer_norm', D, HIDDEN_LAST), ['T', D]);
  declareLayerOutputs(g, c, options);
}

export const gptNeox: Family<GptNeoxConfig> = {
  modelType: 'gpt_neox',
  causal: true,
  readConfig,
  build,
  // The output head and the buffers older saves persisted.
  skipped: [TASK_HEADS, /^embed_out\./, /\.attention\.(bias|masked_bias|rotary_emb\.inv_freq)$/],
};
