/**
 * What every model family provides: how to read its config and how to build its forward pass as an ONNX
 * graph. The graph takes some of the standard inputs below and emits, per layer i, the TransformerLens-style
 * outputs `layers.i.attn.q`, `layers.i.attn.k` ([H, T, d], as they enter q·kᵀ, before scaling) and
 * `layers.i.attn.probs` ([H, T, T]), plus `hidden_last` ([T, D], the model's last hidden state).
 */
import { AttnvizError, check } from '../core/errors.js';
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
/**
 * Layer `layer`'s probabilities of heads `start` … `start + n − 1`, `[n, T, T]`, when its attention is computed
 * outside its graph a run of heads at a time (BuildOptions.split, models/split-session.ts).
 */
export const probsChunkName = (layer: number, start: number) => `layers.${layer}.attn.probs.${start}`;
/**
 * A layer graph built with BuildOptions.split: its values v `[H, T, d]` (kv heads repeated as k's are), an
 * output beside q and k, and the attention's context `[H, T, d]` (softmax(scores)·v per head), an input.
 */
export const splitNames = (layer: number) => ({
  v: `layers.${layer}.attn.v`,
  context: `layers.${layer}.attn.context`,
});

/**
 * The runs of heads `[start, n]` of a layer with `heads` heads, `chunk` heads at a time (the last run
 * shorter when `chunk` does not divide `heads`).
 */
export function headChunks(heads: number, chunk: number): [start: number, n: number][] {
  check(Number.isInteger(chunk) && chunk > 0, `a head chunk of ${chunk} heads is not a positive whole number`);
  return Array.from({ length: Math.ceil(heads / chunk) }, (_, i) => [i * chunk, Math.min(chunk, heads - i * chunk)]);
}
export const HIDDEN_LAST = 'hidden_last';
/** `[H, T, T]`: layer N's own bias on the scaled scores (DeBERTa's position terms), when extracting. */
export const layerBiasName = (layer: number) => `layers.${layer}.attn.position_bias`;
/** `[H, T, T]`: a bias on the scores shared by every layer (MPNet's relative position bias), when extracting. */
export const POSITION_BIAS_OUTPUT = 'position_bias';

/** Sizes every family shares, read from its config. */
export interface ModelDims {
  layers: number;
  heads: number;
  headDim: number;
  hidden: number;
  /** Longest input the position embeddings allow. */
  maxPositions: number;
  /** The factor q·kᵀ is multiplied by, when it is not 1/√headDim (reported as Attention.scoreScale). */
  scoreScale?: number;
  /** Attention logit soft-capping c: scores c·tanh(s/c) before the mask (Attention.attnLogitSoftcapping). */
  attnLogitSoftcapping?: number;
  /** Per layer, a sliding window's [left, right] reach or null (Attention.layerWindows). */
  layerWindows?: (readonly [number, number] | null)[];
}

export interface BuildOptions {
  /** false builds the plain forward pass (only `hidden_last` is an output), the benchmark's baseline. */
  extract: boolean;
  /**
   * When extracting, leave each layer's attention out of the graph (families built on decoder.ts's
   * selfAttention, and ModernBERT; the others ignore it): the graph outputs the layer's q, k and v (splitNames)
   * and reads its context as an input, and each layer's score extras are recorded here, in layer order, for the
   * weightless graph that computes the attention a few heads at a time (decoder.ts attentionGraph). A layer's [H, T, T]
   * scores are then never all in memory, and one session computes every layer's attention.
   */
  split?: SplitLayer[];
}

/** What the attention of one layer of a split graph needs besides q, k and v (BuildOptions.split). */
export interface SplitLayer {
  /** The factor q·kᵀ is multiplied by. */
  scale: number;
  /** Attention logit soft-capping c: c·tanh(s/c) before the mask. */
  softcap?: number;
  /**
   * The graph value of the layer's additive mask `[T, S]`: the causal-mask input, or a graph output; none for
   * attention over every key (an encoder's global layers).
   */
  mask?: string;
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
  /** Builds the forward pass; every checkpoint tensor it reads goes through `weights.get`. */
  build(g: GraphBuilder, weights: Weights, config: C, options: BuildOptions): void;
  /**
   * The checkpoint tensors the family knowingly leaves unread: heads, poolers, buffers older saves persisted,
   * tied copies. What `build` reads (weights.get) and these must cover the whole checkpoint; any other tensor
   * is an error naming it (checkAllRead), so a variant the graph does not understand cannot load quietly.
   */
  skipped: readonly RegExp[];
}

/** Buffers older saves persisted beside the embeddings: the position and token-type id ranges (int64). */
export const ID_BUFFERS = /(^|\.)embeddings\.(position_ids|token_type_ids)$/;
/** Task heads of the …ForSequenceClassification / …ForTokenClassification / …ForQuestionAnswering classes. */
export const TASK_HEADS = /^(classifier|pre_classifier|qa_outputs|score)\./;

/**
 * The checkpoint tensors `build` did not read and `family` does not list as skipped: an error naming them,
 * or with `allowUnused` the list (the caller warns). Call after building a graph.
 */
export function checkAllRead(family: Family<ModelDims>, weights: Weights, allowUnused: boolean): string[] {
  const unknown = weights.unread().filter((name) => !family.skipped.some((re) => re.test(name)));
  if (unknown.length === 0 || allowUnused) return unknown;
  const more =
    unknown.length > 1
      ? ` (and ${unknown.length - 1} more: ${unknown.slice(1, 4).join(', ')}${unknown.length > 4 ? ', …' : ''})`
      : '';
  throw new AttnvizError(
    `checkpoint tensor "${unknown[0]}"${more} is neither read by the ${family.modelType} graph ` +
      'nor a tensor it knowingly skips; a variant attnviz does not understand would give wrong ' +
      'attention (--allow-unused / { allowUnused: true } loads it anyway)',
  );
}

/**
 * Declares the per-layer outputs when extracting (the nodes that make them are named so): q, k and the
 * probabilities, or, for a graph whose family left the attention out (options.split: one entry per layer),
 * q, k, v and each sliding-window mask the attention reads (once: layers with the same window share it).
 */
export function declareLayerOutputs(g: GraphBuilder, dims: ModelDims, options: BuildOptions): void {
  if (!options.extract) return;
  const split = options.split?.length === dims.layers ? options.split : undefined;
  const masks = new Set<string>([INPUTS.causalMask]);
  for (let i = 0; i < dims.layers; i++) {
    const o = outputNames(i);
    g.output(o.q, [dims.heads, 'T', dims.headDim]);
    g.output(o.k, [dims.heads, 'T', dims.headDim]);
    if (!split) {
      g.output(o.probs, [dims.heads, 'T', 'T']);
      continue;
    }
    g.output(splitNames(i).v, [dims.heads, 'T', dims.headDim]);
    const { mask } = split[i];
    if (mask === undefined || masks.has(mask)) continue;
    g.output(mask, ['T', 'T']);
    masks.add(mask);
  }
}

/** Heads must divide the hidden size evenly; a config that says otherwise is rejected by name. */
export function headDim(config: ModelConfig, hidden: number, heads: number): number {
  check(heads > 0 && hidden % heads === 0, `${config.path}: hidden size ${hidden} is not divisible by ${heads} heads`);
  return hidden / heads;
}
