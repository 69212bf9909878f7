/**
 * BART (Lewis et al. 2020) and the two encoder-decoders that share its code in transformers: mBART (Liu et al.
 * 2020) and Marian (the OPUS-MT translation models), as in modeling_bart.py, modeling_mbart.py and
 * modeling_marian.py. Graph inputs and outputs are encoder-decoder.ts's.
 *
 * One block for all three; they differ in four places:
 *
 * - residual blocks: BART post-norm LN(x+f(x)); mBART pre-norm x+f(LN(x)), then a final LN per stack
 *   (`encoder.layer_norm`, `decoder.layer_norm`); Marian post-norm.
 * - positions: BART learned, row = position + 2 (fairseq's offset); mBART learned, + 2; Marian sinusoidal,
 *   row = position: `embed_positions.weight` when stored, else computed as transformers does.
 * - `layernorm_embedding`: BART yes, mBART yes, Marian no.
 * - word embeddings: × √D when `scale_embedding` (all three; Marian's and mBART's configs set it).
 *
 * Attention (every kind): per-head q, k, v projections with biases, softmax(q·kᵀ/√d + mask)·v, out_proj.
 * transformers multiplies q by 1/√d before q·kᵀ; q is reported unscaled (attnviz's convention) and the
 * scores are scaled instead. The decoder's self-attention is causal; its cross-attention reads the encoder's
 * output (after mBART's final layer norm). LayerNorm eps is torch's default 1e-5 (the modeling code fixes it).
 *
 * Checkpoint names: `model.` prefix (…ForConditionalGeneration) or none (the bare …Model);
 * `{encoder,decoder}.layers.N.{self_attn,encoder_attn}.{q,k,v,out}_proj`, `.self_attn_layer_norm`,
 * `.encoder_attn_layer_norm`, `.fc1`, `.fc2`, `.final_layer_norm`. The word embedding is one matrix tied
 * under several names (`shared`, `encoder.embed_tokens`, `decoder.embed_tokens`, `lm_head`): whichever the
 * file holds is read, once. Marian with `share_encoder_decoder_embeddings: false` has its own decoder
 * embedding (`decoder.embed_tokens`, `decoder_vocab_size` rows). The LM head (tied, or `lm_head.weight`) and
 * `final_logits_bias` are read only for generation's logits.
 */
import { check } from '../core/errors.js';
import { oneOf, type ModelConfig } from '../load/config.js';
import type { Weights } from '../load/weights.js';
import { ACTIVATIONS, type GraphBuilder } from './builder.js';
import { namedLayers } from './layers.js';
import { lmHead, type DecodingBuildOptions } from './decoding.js';
import {
  declareSeq2SeqOutputs,
  decoderStartToken,
  ENCODER_HIDDEN_LAST,
  SEQ2SEQ_INPUTS,
  seq2seqOutputNames,
  type Seq2SeqDims,
} from './encoder-decoder.js';
import { TASK_HEADS, headDim, HIDDEN_LAST, type Family } from './family.js';

type Variant = 'bart' | 'mbart' | 'marian';

/** Marian's OPUS-MT configs say "swish" (= SiLU). */
const BART_ACTIVATIONS = [...ACTIVATIONS, 'swish', 'silu'] as const;
type BartActivation = (typeof BART_ACTIVATIONS)[number];

/** torch.nn.LayerNorm's default, which the modeling files keep. */
const EPS = 1e-5;
/** fairseq's learned positions start at row 2 (rows 0–1 were for padding); transformers kept the offset. */
const POSITION_OFFSET = 2;

export interface BartConfig extends Seq2SeqDims {
  variant: Variant;
  /** Rows of the (shared) word embedding. */
  vocab: number;
  /** Rows of the decoder's embedding and of the LM head (= vocab unless Marian's are separate). */
  decoderVocab: number;
  /**
   * Encoder and decoder read one embedding matrix (false only for Marian's share_encoder_decoder_embeddings: false).
   */
  sharedEmbeddings: boolean;
  encoderFfn: number;
  decoderFfn: number;
  act: BartActivation;
  /** √D with scale_embedding, else 1. */
  embedScale: number;
  /** The LM head is the decoder's embedding (tie_word_embeddings). */
  tied: boolean;
}

/**
 * BartConfig's, MBartConfig's and MarianConfig's defaults: 12 + 12 layers of width 1024, 16 heads, FFN 4096,
 * 1024 positions; the vocabularies and the decoder's first token differ (mBART has none: generate() then starts
 * from bos_token_id, 0).
 */
const DEFAULTS: Record<Variant, { vocab: number; decoderStart: number }> = {
  bart: { vocab: 50265, decoderStart: 2 },
  mbart: { vocab: 50265, decoderStart: 0 },
  marian: { vocab: 58101, decoderStart: 58100 },
};

function readConfig(c: ModelConfig, variant: Variant): BartConfig {
  const hidden = c.size(['d_model', 'hidden_size'], 1024);
  const heads = c.size(['encoder_attention_heads', 'num_attention_heads'], 16);
  const decoderHeads = c.size('decoder_attention_heads', 16);
  check(
    decoderHeads === heads,
    `${c.path}: encoder_attention_heads ${heads} and decoder_attention_heads ` +
      `${decoderHeads} differ; attnviz needs one head count for both stacks`,
  );
  const d = headDim(c, hidden, heads);
  const vocab = c.size('vocab_size', DEFAULTS[variant].vocab);
  const shared = variant !== 'marian' || c.bool('share_encoder_decoder_embeddings', true);
  return {
    layers: c.size(['encoder_layers', 'num_hidden_layers'], 12),
    decoderLayers: c.size('decoder_layers', 12),
    heads,
    headDim: d,
    hidden,
    maxPositions: c.size('max_position_embeddings', 1024),
    decoderStart: decoderStartToken(
      c,
      variant === 'mbart' && Number.isSafeInteger(c.raw.bos_token_id)
        ? (c.raw.bos_token_id as number)
        : DEFAULTS[variant].decoderStart,
    ),
    shift: variant === 'mbart' ? 'last' : 'start',
    scoreScale: 1 / Math.sqrt(d),
    positionBias: false,
    variant,
    vocab,
    decoderVocab: shared ? vocab : c.size('decoder_vocab_size', vocab),
    sharedEmbeddings: shared,
    encoderFfn: c.size('encoder_ffn_dim', 4096),
    decoderFfn: c.size('decoder_ffn_dim', 4096),
    act: oneOf(c, 'activation_function', BART_ACTIVATIONS, 'gelu'),
    embedScale: c.bool('scale_embedding', false) ? Math.sqrt(hidden) : 1,
    tied: c.bool('tie_word_embeddings', true),
  };
}

/**
 * Marian's sinusoidal table `[n, dim]` as MarianSinusoidalPositionalEmbedding._init_weight computes it (in
 * float64, then float32), not interleaved: column j < ⌈dim/2⌉ is sin(pos / 10000^(2j/dim)), column
 * ⌈dim/2⌉ + j is cos(pos / 10000^(2j/dim)).
 */
export function marianSinusoids(n: number, dim: number): Float32Array {
  const sentinel = Math.ceil(dim / 2);
  const out = new Float32Array(n * dim);
  for (let pos = 0; pos < n; pos++) {
    for (let j = 0; j < sentinel; j++) out[pos * dim + j] = Math.sin(pos / 10000 ** ((2 * j) / dim));
    for (let j = 0; sentinel + j < dim; j++) out[pos * dim + sentinel + j] = Math.cos(pos / 10000 ** ((2 * j) / dim));
  }
  return out;
}

function build(g: GraphBuilder, w: Weights, c: BartConfig, options: DecodingBuildOptions): void {
  check(!options.kvCache, `${c.variant}: encoder-decoder graphs have no KV cache`);
  const p = w.has('model.encoder.layers.0.self_attn.q_proj.weight') ? 'model.' : '';
  const D = c.hidden,
    H = c.heads,
    d = c.headDim;
  const { get, linear, layerNorm } = namedLayers(g, w, p, { hidden: D, eps: EPS });
  const act = (x: string) => (c.act === 'swish' || c.act === 'silu' ? g.silu(x) : g.activation(x, c.act));
  const preNorm = c.variant === 'mbart';

  // One word embedding, saved under whichever of its tied names survived deduplication.
  const encoderTable = w.get(
    [`${p}shared.weight`, `${p}encoder.embed_tokens.weight`, `${p}decoder.embed_tokens.weight`],
    [c.vocab, D],
  );
  const decoderTable = c.sharedEmbeddings ? encoderTable : get('decoder.embed_tokens.weight', [c.decoderVocab, D]);

  // Positions: learned rows position + 2, or Marian's sinusoids (stored, or the same table computed once here).
  let sinusoids: string | undefined;
  const positionTable = (stack: string): string => {
    if (c.variant !== 'marian')
      return g.weight(get(`${stack}.embed_positions.weight`, [c.maxPositions + POSITION_OFFSET, D]));
    if (w.has(`${p}${stack}.embed_positions.weight`))
      return g.weight(get(`${stack}.embed_positions.weight`, [c.maxPositions, D]));
    return (sinusoids ??= g.floats(marianSinusoids(c.maxPositions, D), [c.maxPositions, D]));
  };
  const embed = (stack: 'encoder' | 'decoder', table: string, ids: string, positions: string): string => {
    let x = g.op('Gather', [table, ids]);
    if (c.embedScale !== 1) x = g.op('Mul', [x, g.scalar(c.embedScale)]);
    const rows = c.variant === 'marian' ? positions : g.add(positions, g.ints([POSITION_OFFSET]));
    x = g.add(x, g.op('Gather', [positionTable(stack), rows]));
    return c.variant === 'marian' ? x : layerNorm(x, `${stack}.layernorm_embedding`);
  };

  /** Multi-head attention of queries from `xq` over keys and values from `xkv`; q, k, probs named `out`. */
  const attention = (
    xq: string,
    xkv: string,
    name: string,
    out: { q: string; k: string; probs: string },
    mask?: string,
  ): string => {
    const q = g.splitHeads(linear(xq, `${name}.q_proj`, D, D), H, d, out.q);
    const k = g.splitHeads(linear(xkv, `${name}.k_proj`, D, D), H, d, out.k);
    const v = g.splitHeads(linear(xkv, `${name}.v_proj`, D, D), H, d);
    return linear(g.mergeHeads(g.attention(q, k, v, c.scoreScale, out.probs, mask), H, d), `${name}.out_proj`, D, D);
  };
  /** A sublayer f with its residual: post-norm LN(x + f(x)) (BART, Marian) or pre-norm x + f(LN(x)) (mBART). */
  const sublayer = (x: string, norm: string, f: (h: string) => string) =>
    preNorm ? g.add(x, f(layerNorm(x, norm))) : layerNorm(g.add(x, f(x)), norm);
  const ffn = (x: string, l: string, width: number) =>
    linear(act(linear(x, `${l}.fc1`, D, width)), `${l}.fc2`, width, D);
  /** The stack's output: mBART's final layer norm, or the last layer's output as it is. */
  const finish = (x: string, norm: string, out: string) =>
    preNorm ? layerNorm(x, norm, D, out) : g.op('Identity', [x], {}, out);

  // Encoder: bidirectional self-attention over the S source tokens.
  const ids = g.input(SEQ2SEQ_INPUTS.inputIds, 'int64', ['S']);
  const positions = g.input(SEQ2SEQ_INPUTS.positionIds, 'int64', ['S']);
  let x = embed('encoder', g.weight(encoderTable), ids, positions);
  for (let i = 0; i < c.layers; i++) {
    const l = `encoder.layers.${i}`;
    x = sublayer(x, `${l}.self_attn_layer_norm`, (h) =>
      attention(h, h, `${l}.self_attn`, seq2seqOutputNames('encoder', i)),
    );
    x = sublayer(x, `${l}.final_layer_norm`, (h) => ffn(h, l, c.encoderFfn));
  }
  const memory = g.output(finish(x, 'encoder.layer_norm', ENCODER_HIDDEN_LAST), ['S', D]);

  // Decoder: causal self-attention over the T target tokens, then cross-attention over the encoder's output.
  const decoderIds = g.input(SEQ2SEQ_INPUTS.decoderInputIds, 'int64', ['T']);
  const decoderPositions = g.input(SEQ2SEQ_INPUTS.decoderPositionIds, 'int64', ['T']);
  const mask = g.input(SEQ2SEQ_INPUTS.decoderCausalMask, 'float', ['T', 'T']);
  let y = embed('decoder', g.weight(decoderTable), decoderIds, decoderPositions);
  for (let i = 0; i < c.decoderLayers; i++) {
    const l = `decoder.layers.${i}`;
    y = sublayer(y, `${l}.self_attn_layer_norm`, (h) =>
      attention(h, h, `${l}.self_attn`, seq2seqOutputNames('self', i), mask),
    );
    y = sublayer(y, `${l}.encoder_attn_layer_norm`, (h) =>
      attention(h, memory, `${l}.encoder_attn`, seq2seqOutputNames('cross', i)),
    );
    y = sublayer(y, `${l}.final_layer_norm`, (h) => ffn(h, l, c.decoderFfn));
  }
  const hidden = g.output(finish(y, 'decoder.layer_norm', HIDDEN_LAST), ['T', D]);

  if (options.logits) {
    // logits = h·Wᵀ + final_logits_bias (a [1, vocab] buffer of …ForConditionalGeneration; zeros when absent).
    const head = c.tied ? decoderTable : w.get('lm_head.weight', [c.decoderVocab, D]);
    const bias = w.has('final_logits_bias') ? w.get('final_logits_bias', [1, c.decoderVocab]) : undefined;
    lmHead(g, hidden, head, options.logits, bias);
  }
  declareSeq2SeqOutputs(g, c, options);
}

const family = (variant: Variant): Family<BartConfig> => ({
  modelType: variant,
  causal: false,
  encoderDecoder: true,
  lmHead: true,
  readConfig: (c) => readConfig(c, variant),
  build,
  // The LM head and its bias (read only for logits), tied copies of the word embedding, task heads.
  skipped: [
    TASK_HEADS,
    /^lm_head\.weight$/,
    /^final_logits_bias$/,
    /^(model\.)?(shared|encoder\.embed_tokens|decoder\.embed_tokens)\.weight$/,
    /^classification_head\./,
  ],
});

export const bart = family('bart');
export const mbart = family('mbart');
export const marian = family('marian');
