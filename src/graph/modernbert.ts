/**
 * ModernBERT (Warner et al. 2024), as in transformers' modeling_modernbert.py: a pre-norm encoder with
 * rotary position embeddings and no biases (by default), whose layers alternate between global attention
 * (every `global_attn_every_n_layers`-th layer, from layer 0, RoPE θ = global_rope_theta) and local
 * sliding-window attention (the others: query i sees keys j with |i − j| ≤ local_attention / 2, RoPE θ =
 * local_rope_theta). The fused `attn.Wqkv` `[3D, D]` holds q's rows, then k's, then v's; the MLP is GeGLU:
 * `mlp.Wi` `[2I, D]` gives [input | gate], Wo(gelu(input) · gate). Layer 0 has no attention norm (the
 * embedding norm precedes it); LayerNorms have no bias unless norm_bias.
 *
 * What is reported: q and k after RoPE, as they enter softmax(q·kᵀ/√d + mask); Attention.layerWindows is
 * [local_attention / 2, local_attention / 2] on local layers and null on global ones. Built with
 * BuildOptions.split (long inputs, one layer at a time), the layers leave their attention to decoder.ts's
 * attentionGraph, as the Llama-style decoders do: a layer's [H, T, T] is then computed a run of heads at a time.
 *
 * Names: `model.` prefix (ModernBertForMaskedLM and the task heads) or none (ModernBertModel):
 * `embeddings.tok_embeddings`, `embeddings.norm`, `layers.N.{attn_norm, attn.Wqkv, attn.Wo, mlp_norm, mlp.Wi,
 * mlp.Wo}`, `final_norm`; the MLM head (`head.*`, `decoder.*`) and classifiers are skipped.
 *
 * Config defaults are ModernBertConfig's: vocab_size 50368, hidden_size 768, intermediate_size 1152,
 * num_hidden_layers 22, num_attention_heads 12, hidden_activation gelu, max_position_embeddings 8192,
 * norm_eps 1e-5, norm_bias false, attention_bias false, mlp_bias false, global_attn_every_n_layers 3,
 * local_attention 128, global_rope_theta 160000, local_rope_theta 10000.
 */
import { check } from '../core/errors.js';
import { oneOf, type ModelConfig } from '../load/config.js';
import type { Weights } from '../load/weights.js';
import { ACTIVATIONS, type ActivationName, type GraphBuilder } from './builder.js';
import { namedLayers } from './layers.js';
import {
  declareLayerOutputs,
  headDim,
  HIDDEN_LAST,
  INPUTS,
  outputNames,
  splitNames,
  TASK_HEADS,
  type BuildOptions,
  type Family,
  type ModelDims,
} from './family.js';
import { DataType } from './onnx.js';
import { ropeInvFreq, rotary } from './rotary.js';

export interface ModernBertConfig extends ModelDims {
  vocab: number;
  intermediate: number;
  eps: number;
  act: ActivationName;
  normBias: boolean;
  attentionBias: boolean;
  mlpBias: boolean;
  /** Per layer: half the local window (|i − j| ≤ it), or null for global attention. */
  halfWindows: (number | null)[];
  globalTheta: number;
  localTheta: number;
}

function readConfig(c: ModelConfig): ModernBertConfig {
  const hidden = c.size('hidden_size', 768);
  const heads = c.size('num_attention_heads', 12);
  const layers = c.size('num_hidden_layers', 22);
  const every = c.size('global_attn_every_n_layers', 3);
  const local = c.size('local_attention', 128);
  const halfWindows = Array.from({ length: layers }, (_, i) => (i % every === 0 ? null : Math.floor(local / 2)));
  const globalTheta = c.float('global_rope_theta', 160000);
  const localTheta = c.raw.local_rope_theta === null ? globalTheta : c.float('local_rope_theta', 10000);
  const d = headDim(c, hidden, heads);
  check(d % 2 === 0, `${c.path}: head size ${d} must be even for rotary embeddings`);
  return {
    layers,
    heads,
    headDim: d,
    hidden,
    maxPositions: c.size('max_position_embeddings', 8192),
    vocab: c.size('vocab_size', 50368),
    intermediate: c.size('intermediate_size', 1152),
    eps: c.float('norm_eps', 1e-5),
    act: oneOf(c, 'hidden_activation', ACTIVATIONS, 'gelu'),
    normBias: c.bool('norm_bias', false),
    attentionBias: c.bool('attention_bias', false),
    mlpBias: c.bool('mlp_bias', false),
    halfWindows,
    globalTheta,
    localTheta,
    layerWindows: halfWindows.map((h) => (h === null ? null : ([h, h] as const))),
  };
}

function build(g: GraphBuilder, w: Weights, c: ModernBertConfig, options: BuildOptions): void {
  const p = w.has('model.final_norm.weight') ? 'model.' : '';
  const D = c.hidden,
    H = c.heads,
    d = c.headDim,
    I = c.intermediate;
  const { get, linear } = namedLayers(g, w, p, { hidden: D, eps: c.eps });
  // LayerNorm with the bias only when norm_bias (ONNX LayerNormalization's bias input is optional).
  const norm = (x: string, name: string, out?: string) =>
    g.op(
      'LayerNormalization',
      [x, g.weight(get(`${name}.weight`, [D])), ...(c.normBias ? [g.weight(get(`${name}.bias`, [D]))] : [])],
      { axis: -1, epsilon: { float: c.eps } },
      out,
    );
  /** Columns [from, to) of a `[T, n]` value. */
  const columns = (x: string, from: number, to: number) =>
    g.op('Slice', [x, g.ints([from]), g.ints([to]), g.ints([1])]);

  const ids = g.input(INPUTS.inputIds, 'int64', ['T']);
  const positions = g.input(INPUTS.positionIds, 'int64', ['T']);
  // Local layers' mask: 0 where |i − j| ≤ half the window, −inf elsewhere. The distances in float32 (exact up
  // to 2²⁴): their [T, T] is half the bytes of int64's (8192 tokens: 268 MB, not 537).
  const at = g.op('Cast', [positions], { to: DataType.FLOAT });
  const distance = g.op('Abs', [
    g.op('Sub', [g.op('Unsqueeze', [at, g.ints([1])]), g.op('Unsqueeze', [at, g.ints([0])])]),
  ]);
  const masks = new Map<number, string>();
  const maskOf = (half: number) => {
    if (!masks.has(half))
      masks.set(half, g.op('Where', [g.op('Greater', [distance, g.scalar(half)]), g.scalar(-Infinity), g.scalar(0)]));
    return masks.get(half)!;
  };
  // One rotation per θ (global, local), made once.
  const rotations = new Map<number, (x: string, out?: string) => string>();
  const rotateWith = (theta: number) => {
    if (!rotations.has(theta))
      rotations.set(theta, rotary(g, { positions, invFreq: ropeInvFreq(d, theta, null), headDim: d, layout: 'half' }));
    return rotations.get(theta)!;
  };

  let x = norm(
    g.op('Gather', [g.weight(get('embeddings.tok_embeddings.weight', [c.vocab, D])), ids]),
    'embeddings.norm',
  );
  for (let i = 0; i < c.layers; i++) {
    const l = `layers.${i}`;
    const out = outputNames(i);
    const half = c.halfWindows[i];
    const rotate = rotateWith(half === null ? c.globalTheta : c.localTheta);
    // Attention on the normed input (layer 0: the embeddings as they are): Wqkv → q | k | v, RoPE.
    const qkv = linear(i === 0 ? x : norm(x, `${l}.attn_norm`), `${l}.attn.Wqkv`, D, 3 * D, c.attentionBias);
    const q = rotate(g.splitHeads(columns(qkv, 0, D), H, d), out.q);
    const k = rotate(g.splitHeads(columns(qkv, D, 2 * D), H, d), out.k);
    const split = options.extract ? options.split : undefined;
    const v = g.splitHeads(columns(qkv, 2 * D, 3 * D), H, d, split && splitNames(i).v);
    const extras = { scale: 1 / Math.sqrt(d), mask: half === null ? undefined : maskOf(half) };
    // Split (long inputs, BuildOptions.split): the attention runs outside this graph, a few heads at a time, and
    // its context comes back as an input.
    split?.push(extras);
    const context = split
      ? g.input(splitNames(i).context, 'float', [H, 'T', d])
      : g.attention(q, k, v, extras.scale, out.probs, extras.mask);
    x = g.add(x, linear(g.mergeHeads(context, H, d), `${l}.attn.Wo`, D, D, c.attentionBias));
    // GeGLU MLP: Wo(act(input) · gate), [input | gate] = Wi(norm(x)).
    const wi = linear(norm(x, `${l}.mlp_norm`), `${l}.mlp.Wi`, D, 2 * I, c.mlpBias);
    const gated = g.op('Mul', [g.activation(columns(wi, 0, I), c.act), columns(wi, I, 2 * I)]);
    x = g.add(x, linear(gated, `${l}.mlp.Wo`, I, D, c.mlpBias));
  }

  g.output(norm(x, 'final_norm', HIDDEN_LAST), ['T', D]);
  declareLayerOutputs(g, c, options);
}

export const modernbert: Family<ModernBertConfig> = {
  modelType: 'modernbert',
  causal: false,
  readConfig,
  build,
  // The masked-LM head (prediction head and decoder, tied to the embedding) and classifiers.
  skipped: [TASK_HEADS, /^head\./, /^decoder\./],
};
