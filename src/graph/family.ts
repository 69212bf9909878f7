/**
 * What every model family provides: how to read its config and how to build its forward pass as an ONNX
 * graph. The graph takes some of the standard inputs below and emits, per layer i, the TransformerLens-style
 * outputs `layers.i.attn.q`, `layers.i.attn.k` ([H, T, d], as they enter q·kᵀ, before scaling) and
 * `layers.i.attn.probs` ([H, T, T]), plus `hidden_last` ([T, D], the model's last hidden state).
 */
import { check } from '../core/errors.js';
import type { ModelConfig } from '../load/config.js';
import type { Weights } from '../load/weights.js';
import type { GraphBuilder } from './builder.js';

/** Graph inputs a family may declare; the engine feeds those the graph has. */
export const INPUTS = {
  /** int64 [T] */
  inputIds: 'input_ids',
  /** int64 [T], segment A = 0, B = 1 */
  tokenTypeIds: 'token_type_ids',
  /** int64 [T], 0..T-1 */
  positionIds: 'position_ids',
  /** float [T, T], 0 where a query may attend, -inf above the diagonal */
  causalMask: 'causal_mask',
} as const;

export const outputNames = (layer: number) => ({
  q: `layers.${layer}.attn.q`,
  k: `layers.${layer}.attn.k`,
  probs: `layers.${layer}.attn.probs`,
});
export const HIDDEN_LAST = 'hidden_last';

/** Sizes every family shares, read from its config. */
export interface ModelDims {
  layers: number;
  heads: number;
  headDim: number;
  hidden: number;
  /** Longest input the position embeddings allow. */
  maxPositions: number;
}

export interface BuildOptions {
  /** false builds the plain forward pass (only `hidden_last` is an output), the benchmark's baseline. */
  extract: boolean;
}

export interface Family<C extends ModelDims = ModelDims> {
  modelType: string;
  /** Decoder-only models attend only to earlier positions. */
  causal: boolean;
  /** Encoder-decoder models (BART, T5): graph inputs and outputs as in encoder-decoder.ts, not the ones above. */
  encoderDecoder?: boolean;
  /** The graph can end in a language-model head (`logits`, decoding.ts): generation. */
  lmHead?: boolean;
  readConfig(config: ModelConfig): C;
  build(g: GraphBuilder, weights: Weights, config: C, options: BuildOptions): void;
}

/** Declares the per-layer q, k, probs outputs when extracting (the nodes that make them are named so). */
export function declareLayerOutputs(g: GraphBuilder, dims: ModelDims, options: BuildOptions): void {
  if (!options.extract) return;
  for (let i = 0; i < dims.layers; i++) {
    const o = outputNames(i);
    g.output(o.q, [dims.heads, 'T', dims.headDim]);
    g.output(o.k, [dims.heads, 'T', dims.headDim]);
    g.output(o.probs, [dims.heads, 'T', 'T']);
  }
}

/** Heads must divide the hidden size evenly; a config that says otherwise is rejected by name. */
export function headDim(config: ModelConfig, hidden: number, heads: number): number {
  check(heads > 0 && hidden % heads === 0, `${config.path}: hidden size ${hidden} is not divisible by ${heads} heads`);
  return hidden / heads;
}
