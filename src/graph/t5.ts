/**
 * T5 (Raffel et al. 2020) and mT5 (Xue et al. 2021), as in transformers' modeling_t5.py (mT5 is T5 v1.1's
 * code under another name). Graph inputs and outputs are encoder-decoder.ts's.
 *
 * What sets T5 apart from BART:
 * - No position embeddings. Each stack's first block holds a relative attention bias
 *   (`{encoder,decoder}.block.0.layer.0.SelfAttention.relative_attention_bias.weight`, `[num_buckets, heads]`)
 *   that every block of that stack reuses: the score of query i and key j gets bias[bucket(j − i), h]. The
 *   encoder's buckets are bidirectional, the decoder self-attention's unidirectional (only j ≤ i matter);
 *   cross-attention has none. relativePositionBucket (below) is the bucket function; the graph looks
 *   buckets up in a table of it, so it is evaluated here, once, exactly as torch does.
 * - No 1/√d scaling: softmax(q·kᵀ + bias + mask). The reported q, k are the projections as they are, and
 *   the biases are graph outputs (`encoder.position_bias`, `decoder.position_bias`, `[H, n, n]`, without the
 *   causal mask), so softmax(q·kᵀ + bias + mask) reproduces every reported attention.
 * - T5LayerNorm: x / √(mean(x²) + eps) · w (RMS: no mean subtracted, no bias), pre-norm, with a final norm
 *   per stack; no biases anywhere.
 * - Heads of `d_kv` dimensions, which need not be d_model / heads (inner width heads · d_kv).
 * - Feed-forward per `feed_forward_proj`: "relu" (T5 v1.0: wo(relu(wi(x)))) or "gated-gelu" (v1.1, mT5:
 *   wo(gelu_new(wi_0(x)) · wi_1(x))); any "{act}" or "gated-{act}" with act relu, gelu, gelu_new, silu.
 *
 * Checkpoint names carry no prefix (`shared.weight`, `encoder.block.N.layer.{0,1}.…`,
 * `decoder.block.N.layer.{0,1,2}.…`,
 * `{encoder,decoder}.final_layer_norm.weight`). The word embedding is `shared` (or one of its tied names);
 * the LM head, read only for generation's logits, is `lm_head.weight`, or with tie_word_embeddings (T5 v1.0)
 * the embedding applied to h · d_model^−½.
 */
import { check } from '../core/errors.js';
import type { ModelConfig } from '../load/config.js';
import type { WeightRef, Weights } from '../load/weights.js';
import type { ActivationName, GraphBuilder } from './builder.js';
import { namedLayers } from './layers.js';
import { lmHead, type DecodingBuildOptions } from './decoding.js';
import {
  declareSeq2SeqOutputs,
  decoderStartToken,
  ENCODER_HIDDEN_LAST,
  POSITION_BIAS,
  SEQ2SEQ_INPUTS,
  seq2seqOutputNames,
  type Seq2SeqDims,
} from './encoder-decoder.js';
import { HIDDEN_LAST, type Family } from './family.js';

const T5_ACTIVATIONS = ['relu', 'gelu', 'gelu_new', 'gelu_pytorch_tanh', 'silu', 'swish'] as const;
type T5Activation = (typeof T5_ACTIVATIONS)[number];

export interface T5Config extends Seq2SeqDims {
  vocab: number;
  /** Feed-forward width d_ff. */
  ff: number;
  act: T5Activation;
  /** "gated-…": wo(act(wi_0(x)) · wi_1(x)). */
  gated: boolean;
  eps: number;
  numBuckets: number;
  maxDistance: number;
  tied: boolean;
}

/** T5Config's and MT5Config's defaults (t5-small's and mt5-small's sizes). */
const DEFAULTS = {
  t5: { vocab: 32128, hidden: 512, headDim: 64, ff: 2048, layers: 6, heads: 8, proj: 'relu', tied: true },
  // MT5Config: the LM head is its own matrix (tie_word_embeddings false in transformers 4).
  mt5: { vocab: 250112, hidden: 512, headDim: 64, ff: 1024, layers: 8, heads: 6, proj: 'gated-gelu', tied: false },
};

function readConfig(c: ModelConfig, modelType: 't5' | 'mt5'): T5Config {
  const defaults = DEFAULTS[modelType];
  const heads = c.size(['num_heads', 'num_attention_heads'], defaults.heads);
  const layers = c.size(['num_layers', 'num_hidden_layers'], defaults.layers);
  // "{act}" or "gated-{act}"; "gated-gelu" means the tanh GELU (transformers' T5Config says so).
  const proj = c.string('feed_forward_proj', defaults.proj);
  const parts = proj.split('-');
  const gated = parts[0] === 'gated';
  check(
    parts.length === 1 || (parts.length === 2 && gated),
    `${c.path}: feed_forward_proj "${proj}" is not "{activation}" or "gated-{activation}"`,
  );
  const act = proj === 'gated-gelu' ? 'gelu_new' : parts[parts.length - 1];
  check(
    (T5_ACTIVATIONS as readonly string[]).includes(act),
    `${c.path}: feed_forward_proj "${proj}": activation "${act}" is not ` +
      `supported (supported: ${T5_ACTIVATIONS.join(', ')})`,
  );
  return {
    layers,
    decoderLayers: c.size('num_decoder_layers', layers),
    heads,
    headDim: c.size('d_kv', defaults.headDim),
    hidden: c.size(['d_model', 'hidden_size'], defaults.hidden),
    // Relative positions have no table to run out of; n_positions (512) is what T5 was trained to.
    maxPositions: c.size('n_positions', 512),
    // MT5Config's default is 0; T5Config has none (configs carry it): the pad token, 0 by default.
    decoderStart: decoderStartToken(c, Number.isSafeInteger(c.raw.pad_token_id) ? (c.raw.pad_token_id as number) : 0),
    shift: 'start',
    scoreScale: 1,
    positionBias: true,
    vocab: c.size('vocab_size', defaults.vocab),
    ff: c.size('d_ff', defaults.ff),
    act: act as T5Activation,
    gated,
    eps: c.float('layer_norm_epsilon', 1e-6),
    numBuckets: c.size('relative_attention_num_buckets', 32),
    maxDistance: c.size('relative_attention_max_distance', 128),
    tied: c.bool('tie_word_embeddings', defaults.tied),
  };
}

/**
 * T5's _relative_position_bucket for one relative position j − i (key minus query), in float32 as torch
 * computes it. Bidirectional (encoder): half the buckets for j > i, half for j ≤ i; then per half, distances
 * below max_exact = buckets/2 get a bucket each, and longer ones share buckets logarithmically up to
 * maxDistance: max_exact + ⌊log(n / max_exact) / log(maxDistance / max_exact) · (buckets − max_exact)⌋,
 * capped at buckets − 1. Unidirectional (decoder): only j ≤ i counts (n = max(i − j, 0)), all buckets for it.
 */
export function relativePositionBucket(
  relative: number,
  bidirectional: boolean,
  numBuckets: number,
  maxDistance: number,
): number {
  const f = Math.fround;
  let base = 0,
    buckets = numBuckets,
    n: number;
  if (bidirectional) {
    buckets = Math.floor(buckets / 2);
    if (relative > 0) base = buckets;
    n = Math.abs(relative);
  } else n = Math.max(-relative, 0);
  const maxExact = Math.floor(buckets / 2);
  if (n < maxExact) return base + n;
  // relative.float() / max_exact, torch.log, / math.log(…) and * (…) each round to float32; .to(long) truncates.
  const scaled = f(f(f(Math.log(f(n / maxExact))) / f(Math.log(maxDistance / maxExact))) * (buckets - maxExact));
  return base + Math.min(maxExact + Math.trunc(scaled), buckets - 1);
}

/**
 * The bias `[H, n, n]` for positions `[n]`: bias[h, i, j] = table[bucket(pos_j − pos_i), h], with `table` the
 * relative attention bias `[numBuckets, H]` (T5; MPNet's, whose bucket function is T5's bidirectional one).
 * Beyond ±maxDistance every bucket is the last one, so relative positions are clipped to that range and looked
 * up in a precomputed table of relativePositionBucket (2·maxDistance + 1 entries).
 */
export function relativePositionBias(
  g: GraphBuilder,
  table: WeightRef,
  positions: string,
  bidirectional: boolean,
  numBuckets: number,
  maxDistance: number,
  out?: string,
): string {
  const M = maxDistance;
  const buckets = Array.from({ length: 2 * M + 1 }, (_, r) =>
    relativePositionBucket(r - M, bidirectional, numBuckets, M),
  );
  const relative = g.op('Sub', [
    g.op('Unsqueeze', [positions, g.ints([0])]),
    g.op('Unsqueeze', [positions, g.ints([1])]),
  ]);
  const index = g.op('Add', [g.op('Min', [g.op('Max', [relative, g.ints([-M])]), g.ints([M])]), g.ints([M])]);
  const bias = g.op('Gather', [g.weight(table), g.op('Gather', [g.ints(buckets), index])]);
  return g.op('Transpose', [bias], { perm: [2, 0, 1] }, out);
}

/** A T5 stack's bias, from its first block's table (bidirectional for the encoder). */
function positionBias(
  g: GraphBuilder,
  w: Weights,
  c: T5Config,
  positions: string,
  stack: 'encoder' | 'decoder',
  out: string,
): string {
  const table = w.get(`${stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight`, [c.numBuckets, c.heads]);
  return relativePositionBias(g, table, positions, stack === 'encoder', c.numBuckets, c.maxDistance, out);
}

function build(g: GraphBuilder, w: Weights, c: T5Config, options: DecodingBuildOptions): void {
  check(!options.kvCache, 't5: encoder-decoder graphs have no KV cache');
  const D = c.hidden,
    H = c.heads,
    d = c.headDim,
    inner = H * d;
  const { linear, rmsNorm } = namedLayers(g, w, '', { hidden: D, eps: c.eps });
  const act = (x: string) =>
    c.act === 'silu' || c.act === 'swish' ? g.silu(x) : g.activation(x, c.act as ActivationName);
  const embedding = w.get(
    ['shared.weight', 'encoder.embed_tokens.weight', 'decoder.embed_tokens.weight'],
    [c.vocab, D],
  );

  /** Attention of queries from `xq` over `xkv`, unscaled, with the additive `bias` (position bias + mask) if any. */
  const attention = (
    xq: string,
    xkv: string,
    name: string,
    out: { q: string; k: string; probs: string },
    bias?: string,
  ): string => {
    const q = g.splitHeads(linear(xq, `${name}.q`, D, inner, false), H, d, out.q);
    const k = g.splitHeads(linear(xkv, `${name}.k`, D, inner, false), H, d, out.k);
    const v = g.splitHeads(linear(xkv, `${name}.v`, D, inner, false), H, d);
    return linear(
      g.mergeHeads(g.attention(q, k, v, c.scoreScale, out.probs, bias), H, d),
      `${name}.o`,
      inner,
      D,
      false,
    );
  };
  const feedForward = (x: string, name: string): string => {
    const h = c.gated
      ? g.op('Mul', [act(linear(x, `${name}.wi_0`, D, c.ff, false)), linear(x, `${name}.wi_1`, D, c.ff, false)])
      : act(linear(x, `${name}.wi`, D, c.ff, false));
    return linear(h, `${name}.wo`, c.ff, D, false);
  };

  // Encoder: pre-norm blocks of self-attention (bidirectional bias) and feed-forward, then a final RMS norm.
  const ids = g.input(SEQ2SEQ_INPUTS.inputIds, 'int64', ['S']);
  const positions = g.input(SEQ2SEQ_INPUTS.positionIds, 'int64', ['S']);
  const encoderBias = positionBias(g, w, c, positions, 'encoder', POSITION_BIAS.encoder);
  let x = g.op('Gather', [g.weight(embedding), ids]);
  for (let i = 0; i < c.layers; i++) {
    const l = `encoder.block.${i}.layer`;
    const h = rmsNorm(x, `${l}.0.layer_norm`);
    x = g.add(x, attention(h, h, `${l}.0.SelfAttention`, seq2seqOutputNames('encoder', i), encoderBias));
    x = g.add(x, feedForward(rmsNorm(x, `${l}.1.layer_norm`), `${l}.1.DenseReluDense`));
  }
  const memory = g.output(rmsNorm(x, 'encoder.final_layer_norm', D, ENCODER_HIDDEN_LAST), ['S', D]);

  // Decoder: causal self-attention (unidirectional bias + mask), cross-attention over the encoder's output
  // (no bias), feed-forward; then a final RMS norm.
  const decoderIds = g.input(SEQ2SEQ_INPUTS.decoderInputIds, 'int64', ['T']);
  const decoderPositions = g.input(SEQ2SEQ_INPUTS.decoderPositionIds, 'int64', ['T']);
  const mask = g.input(SEQ2SEQ_INPUTS.decoderCausalMask, 'float', ['T', 'T']);
  const selfBias = g.add(positionBias(g, w, c, decoderPositions, 'decoder', POSITION_BIAS.decoder), mask);
  let y = g.op('Gather', [g.weight(embedding), decoderIds]);
  for (let i = 0; i < c.decoderLayers; i++) {
    const l = `decoder.block.${i}.layer`;
    const h = rmsNorm(y, `${l}.0.layer_norm`);
    y = g.add(y, attention(h, h, `${l}.0.SelfAttention`, seq2seqOutputNames('self', i), selfBias));
    y = g.add(
      y,
      attention(rmsNorm(y, `${l}.1.layer_norm`), memory, `${l}.1.EncDecAttention`, seq2seqOutputNames('cross', i)),
    );
    y = g.add(y, feedForward(rmsNorm(y, `${l}.2.layer_norm`), `${l}.2.DenseReluDense`));
  }
  const hidden = g.output(rmsNorm(y, 'decoder.final_layer_norm', D, HIDDEN_LAST), ['T', D]);

  if (options.logits) {
    // Tied (T5 v1.0): the embedding applied to h · d_model^−½, as T5ForConditionalGeneration rescales.
    if (c.tied) lmHead(g, g.op('Mul', [hidden, g.scalar(D ** -0.5)]), embedding, options.logits);
    else lmHead(g, hidden, w.get('lm_head.weight', [c.vocab, D]), options.logits);
  }
  declareSeq2SeqOutputs(g, c, options);
}

const family = (modelType: 't5' | 'mt5'): Family<T5Config> => ({
  modelType,
  causal: false,
  encoderDecoder: true,
  lmHead: true,
  readConfig: (c) => readConfig(c, modelType),
  build,
  // The LM head (read only for logits), tied copies of `shared`, and the cross-attention bias the original
  // checkpoints carry but T5 never uses (transformers ignores it on load).
  skipped: [
    /^lm_head\.weight$/,
    /^(encoder|decoder)\.embed_tokens\.weight$/,
    /^decoder\.block\.0\.layer\.1\.EncDecAttention\.relative_attention_bias\.weight$/,
  ],
});

export const t5 = family('t5');
export const mt5 = family('mt5');
