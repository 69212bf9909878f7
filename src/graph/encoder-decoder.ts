/**
 * Graph conventions of encoder-decoder families (bart.ts, t5.ts), on top of family.ts's: the graph runs the
 * encoder over S source tokens and the decoder over T target tokens (teacher forcing: the decoder start
 * token, then the target shifted right) in one pass, and emits per layer, as they enter q·kᵀ (before any
 * scaling):
 *
 * - `encoder.layers.N.attn.{q,k}` `[H, S, d]`, `.probs` `[H, S, S]`: the encoder's self-attention;
 * - `decoder.layers.N.self.{q,k}` `[H, T, d]`, `.probs` `[H, T, T]`: the decoder's causal self-attention;
 * - `decoder.layers.N.cross.q` `[H, T, d]`, `.k` `[H, S, d]`, `.probs` `[H, T, S]`: cross-attention, decoder
 *   queries over the encoder's output;
 *
 * plus `encoder_hidden_last` `[S, D]` and `hidden_last` `[T, D]` (the decoder's: Hugging Face's
 * `last_hidden_state` of a seq2seq model), and, for families with a relative position bias (T5),
 * `encoder.position_bias` `[H, S, S]` and `decoder.position_bias` `[H, T, T]` (before the causal mask).
 * With `logits` (decoding.ts) the graph also emits the LM head's scores for the last decoder position.
 */
import type { ModelConfig } from '../load/config.js';
import type { GraphBuilder } from './builder.js';
import { INPUTS, type BuildOptions, type ModelDims } from './family.js';

/** Graph inputs; the encoder's are family.ts's `input_ids` and `position_ids` (over S). */
export const SEQ2SEQ_INPUTS = {
  ...INPUTS,
  /** int64 [T]: the decoder start token, then the target's ids. */
  decoderInputIds: 'decoder_input_ids',
  /** int64 [T], 0..T-1 */
  decoderPositionIds: 'decoder_position_ids',
  /** float [T, T], 0 on and below the diagonal, -inf above */
  decoderCausalMask: 'decoder_causal_mask',
} as const;

export type Seq2SeqPart = 'encoder' | 'self' | 'cross';

export const seq2seqOutputNames = (part: Seq2SeqPart, layer: number) => {
  const base = part === 'encoder' ? `encoder.layers.${layer}.attn` : `decoder.layers.${layer}.${part}`;
  return { q: `${base}.q`, k: `${base}.k`, probs: `${base}.probs` };
};
export const ENCODER_HIDDEN_LAST = 'encoder_hidden_last';
export const POSITION_BIAS = { encoder: 'encoder.position_bias', decoder: 'decoder.position_bias' } as const;

/** What the engine needs beyond ModelDims (`layers` are the encoder's; `maxPositions` bounds both sides). */
export interface Seq2SeqDims extends ModelDims {
  decoderLayers: number;
  /** config.json `decoder_start_token_id` (else `pad_token_id`): the decoder's first input token. */
  decoderStart: number;
  /**
   * How a target becomes the decoder's input (teacher forcing). 'start': the start token, then the target's
   * tokens without their final EOS (BART's, T5's shift_tokens_right). 'last': mBART's shift_tokens_right,
   * which wraps the target's last token (the language code, e.g. `… </s> en_XX` → `en_XX … </s>`) to the front.
   */
  shift: 'start' | 'last';
  /** The factor q·kᵀ is multiplied by: 1/√d (BART), 1 (T5). */
  scoreScale: number;
  /** The graph emits POSITION_BIAS outputs (T5). */
  positionBias: boolean;
}

/** Declares the per-layer outputs of both stacks when extracting (the nodes that make them are named so). */
export function declareSeq2SeqOutputs(g: GraphBuilder, dims: Seq2SeqDims, options: BuildOptions): void {
  if (!options.extract) return;
  const { heads: H, headDim: d } = dims;
  const declare = (part: Seq2SeqPart, layer: number, rows: string, cols: string) => {
    const o = seq2seqOutputNames(part, layer);
    g.output(o.q, [H, rows, d]);
    g.output(o.k, [H, cols, d]);
    g.output(o.probs, [H, rows, cols]);
  };
  for (let i = 0; i < dims.layers; i++) declare('encoder', i, 'S', 'S');
  for (let i = 0; i < dims.decoderLayers; i++) {
    declare('self', i, 'T', 'T');
    declare('cross', i, 'T', 'S');
  }
  if (dims.positionBias) {
    g.output(POSITION_BIAS.encoder, [H, 'S', 'S']);
    g.output(POSITION_BIAS.decoder, [H, 'T', 'T']);
  }
}

/**
 * config.json `decoder_start_token_id` (0 is valid), else `fallback`: the config class's default, or the token
 * transformers' generate() falls back to.
 */
export function decoderStartToken(c: ModelConfig, fallback: number): number {
  const v = c.raw.decoder_start_token_id;
  return Number.isSafeInteger(v) && (v as number) >= 0 ? (v as number) : fallback;
}
