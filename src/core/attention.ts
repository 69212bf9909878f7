/**
 * The Attention data model: what the engine returns, what attention files hold, what the views draw.
 * Only `attention` and `tokens` are always present; a file written from PyTorch with nothing but
 * `output_attentions` has no q/k, and views that need them say so.
 */

/** A dense float32 tensor, row-major. */
export interface Tensor {
  readonly dims: readonly number[];
  readonly data: Float32Array;
}

export interface ModelInfo {
  /** What the user gave: a folder, a hub id, or a description of where the data came from. */
  source: string;
  /** config.json's model_type, e.g. "bert", "gpt2". */
  modelType: string;
}

export interface Attention {
  /** Token strings exactly as the tokenizer produced them (Ġ, ##, ▁ included). */
  tokens: string[];
  text: string;
  /** The second text of a sentence pair, null for a single text. */
  pair: string | null;
  /** Index of the first token of `pair`, null for a single text. */
  sentenceBStart: number | null;
  /**
   * Generated text: how many of `tokens` came from the prompt (BOS included); the rest were generated. Views
   * mark the boundary. Absent for a text that was not generated.
   */
  promptLength?: number;
  model: ModelInfo;
  /** True when each token attends only to itself and earlier tokens. */
  causal: boolean;
  /** Softmax probabilities `[layers, heads, T, T]`: row = query position, column = key position. */
  attention: Tensor;
  /** Queries `[layers, heads, T, headDim]` as they enter q·kᵀ, before the 1/√d scale. */
  query?: Tensor;
  /** Keys `[layers, heads, T, headDim]`, likewise. */
  key?: Tensor;
  /** Last hidden state `[T, hidden]`. */
  hiddenLast?: Tensor;
  /** Token ids `[T]`, special tokens included. */
  inputIds?: number[];
  /**
   * When only some layers were extracted: the model's index of each entry of the first axis of `attention`,
   * `query` and `key` (absent: all of them, in order).
   */
  layers?: number[];
  /** Likewise the model's index of each entry of the heads axis, when only some heads were extracted. */
  heads?: number[];
  /**
   * Per token: whether the tokenizer added or marks it as special ([CLS], </s>, BOS, …), as transformers'
   * special_tokens_mask. Absent in data from elsewhere; views then guess from the token text.
   */
  special?: boolean[];
  /**
   * Grouped-query attention: the number of key/value heads, fewer than the query heads. `key` still has one
   * entry per query head h: the key of the kv head it reads, ⌊h / (heads / kvHeads)⌋ (repeated).
   */
  kvHeads?: number;
  /**
   * Rotary models: the order of the head dimensions in `query`/`key` (after RoPE). 'half': dims j and j + d/2
   * rotate together (Hugging Face layout); 'interleaved': dims 2j and 2j + 1 (Meta, llama2.c, GGUF).
   */
  rotary?: 'half' | 'interleaved';
  /**
   * The tokens of the key side (columns) when they differ from the query side's `tokens` (rows): then
   * `attention` is `[layers, heads, T, Tk]` and `key` `[layers, heads, Tk, headDim]`. Only cross attention
   * has this (see attentionPart); absent, keys and queries are the same tokens.
   */
  keyTokens?: string[];
  /** Per key token, when `keyTokens` is set: special, like `special` (cross attention: the encoder's mask). */
  keySpecial?: boolean[];
  /** The factor q·kᵀ is multiplied by before softmax; absent means 1/√headDim. T5 does not scale: 1. */
  scoreScale?: number;
  /**
   * A bias `[heads, T, Tk]` added to the scaled scores before softmax, the same in every layer (T5's relative
   * position bias): attention = softmax(q·kᵀ·scale + positionBias + mask).
   */
  positionBias?: Tensor;
  /**
   * A bias `[layers, heads, T, T]` added to the scaled scores before softmax that differs per layer:
   * attention = softmax(q·kᵀ·scale + layerPositionBias[l] + mask). (No family in attnviz emits one yet.)
   */
  layerPositionBias?: Tensor;
  /**
   * Attention logit soft-capping c (Gemma 2): the scaled score s becomes c·tanh(s / c) before the mask and any
   * window are applied: attention = softmax(c·tanh(q·kᵀ·scale / c) + mask).
   */
  attnLogitSoftcapping?: number;
  /**
   * Sliding-window attention, per layer: `[left, right]`, query i sees only keys i − left … i + right (and, for
   * causal models, none after i), or null for a layer that sees every key. Keys outside get −inf before
   * softmax: zeros in `attention`. Gemma 2/3 sliding layers: [window − 1, 0]; ModernBERT local layers:
   * [window/2, window/2].
   */
  layerWindows?: (readonly [number, number] | null)[];
  /**
   * Encoder-decoder models (BART, T5, …): the decoder's side. The encoder's self-attention is the fields
   * above (`tokens` = the source's tokens, `attention`, `query`, `key`, `hiddenLast`, `positionBias`), so
   * readers that know nothing of decoders still show the encoder.
   */
  encoderDecoder?: EncoderDecoderAttention;
}

/**
 * The decoder half of an encoder-decoder result: L′ decoder layers (which may differ from the encoder's L),
 * T decoder tokens, S encoder tokens (the Attention's `tokens`).
 */
export interface EncoderDecoderAttention {
  /** The decoder's input tokens: the decoder start token, then the target (teacher forcing) or the generated tokens. */
  decoderTokens: string[];
  /** The target text (given, or decoded from the generated tokens). */
  target: string;
  /** Decoder input ids `[T]`. */
  decoderInputIds?: number[];
  /** Per decoder token: special (the start token, EOS, …), like `special`. */
  decoderSpecial?: boolean[];
  /** Decoder self-attention `[L′, heads, T, T]`, causal: zeros above the diagonal. */
  decoder: Tensor;
  /**
   * Cross-attention `[L′, heads, T, S]`: decoder tokens (queries, rows) attending to encoder tokens (keys, columns).
   */
  cross: Tensor;
  /** Decoder self-attention queries and keys `[L′, heads, T, headDim]`, as they enter q·kᵀ. */
  decoderQuery?: Tensor;
  decoderKey?: Tensor;
  /**
   * Cross-attention queries `[L′, heads, T, headDim]` (from the decoder) and keys `[L′, heads, S, headDim]` (from the
   * encoder's output).
   */
  crossQuery?: Tensor;
  crossKey?: Tensor;
  /** The decoder's last hidden state `[T, hidden]` (Hugging Face's `last_hidden_state` of a seq2seq model). */
  decoderHiddenLast?: Tensor;
  /**
   * The decoder self-attention's position bias `[heads, T, T]` (T5), shared by all decoder layers; the causal mask
   * comes on top.
   */
  decoderPositionBias?: Tensor;
}

/**
 * One layer's share of an Attention, as a stream of layers yields it: the layer's selected heads, or a run of
 * them. A model that computes long inputs a few heads at a time (LoadOptions.headChunk) yields a layer in
 * consecutive parts, in head order, so that no more than a part is held; its queries and keys come with the
 * layer's first part.
 */
export interface LayerAttention {
  /** The model's index of this layer. */
  layer: number;
  /** The model's indices of the heads in `attention` (selected heads, in order). */
  heads: readonly number[];
  /** Softmax probabilities `[heads, T, T]` of those heads. */
  attention: Tensor;
  /** Queries and keys `[selected heads, T, headDim]` of the layer, when asked for, with its first part. */
  query?: Tensor;
  key?: Tensor;
}

/** An Attention without its per-layer tensors: what is known before the first layer has been computed. */
export type AttentionHeader = Omit<
  Attention,
  'attention' | 'query' | 'key' | 'hiddenLast' | 'positionBias' | 'encoderDecoder' | 'layers' | 'heads'
> & {
  /** The model's layers and heads the stream yields, in order. */
  layers: number[];
  heads: number[];
  /** Whether each layer comes with `query` and `key`. */
  qk: boolean;
  headDim: number;
  /** The width of `hiddenLast` (the model's hidden size). */
  hidden: number;
};

/**
 * An Attention one layer at a time: iterating yields each selected layer (or its parts) in order, computed
 * only when it is asked for, in buffers that the next step may overwrite (copy what you keep). Appending the
 * yields' tensors one after another gives the `[layers, heads, …]` tensors of the Attention. `hiddenLast` is
 * there once the iteration has ended.
 */
export interface AttentionStream extends AsyncIterable<LayerAttention> {
  readonly header: AttentionHeader;
  readonly hiddenLast: Tensor | undefined;
}

/** The three attentions of an encoder-decoder result. */
export type AttentionPart = 'encoder' | 'decoder' | 'cross';
export const ATTENTION_PARTS: readonly AttentionPart[] = ['encoder', 'decoder', 'cross'];

/**
 * One attention of an encoder-decoder result as a plain Attention that every view can draw: 'encoder' the
 * source's self-attention, 'decoder' the target's causal self-attention, 'cross' decoder tokens (rows, query
 * side) over encoder tokens (columns, `keyTokens`). The tensors are shared, not copied.
 */
export function attentionPart(a: Attention, part: AttentionPart): Attention {
  const { encoderDecoder: ed, ...encoder } = a;
  if (!ed || part === 'encoder') return encoder;
  const base = {
    tokens: ed.decoderTokens,
    text: ed.target,
    pair: null,
    sentenceBStart: null,
    model: a.model,
    ...(a.scoreScale !== undefined ? { scoreScale: a.scoreScale } : {}),
  };
  if (part === 'decoder') {
    return {
      ...base,
      causal: true,
      attention: ed.decoder,
      ...(ed.decoderQuery && ed.decoderKey ? { query: ed.decoderQuery, key: ed.decoderKey } : {}),
      ...(ed.decoderHiddenLast ? { hiddenLast: ed.decoderHiddenLast } : {}),
      ...(ed.decoderInputIds ? { inputIds: ed.decoderInputIds } : {}),
      ...(ed.decoderSpecial ? { special: ed.decoderSpecial } : {}),
      ...(ed.decoderPositionBias ? { positionBias: ed.decoderPositionBias } : {}),
    };
  }
  return {
    ...base,
    causal: false,
    attention: ed.cross,
    keyTokens: a.tokens,
    ...(a.special ? { keySpecial: a.special } : {}),
    ...(ed.crossQuery && ed.crossKey ? { query: ed.crossQuery, key: ed.crossKey } : {}),
    ...(ed.decoderInputIds ? { inputIds: ed.decoderInputIds } : {}),
    ...(ed.decoderSpecial ? { special: ed.decoderSpecial } : {}),
  };
}

/**
 * The score of query i and key j in one layer and head, before softmax, from their product `dot` = q·k: the
 * documented extras applied in order — × scoreScale (default 1/√headDim), soft-capping, + the position bias
 * (shared or per layer), and −Infinity for a key the query cannot see (causal mask, sliding window). softmax
 * over j of these reproduces `attention` for every family attnviz runs; the neuron view shows each term.
 */
export function attentionLogit(a: Attention, layer: number, head: number, i: number, j: number, dot: number): number {
  const window = a.layerWindows?.[layer];
  if ((a.causal && j > i) || (window && (j < i - window[0] || j > i + window[1]))) return -Infinity;
  const d = a.query ? a.query.dims[3] : 1;
  let s = dot * (a.scoreScale ?? 1 / Math.sqrt(d));
  const c = a.attnLogitSoftcapping;
  if (c !== undefined) s = c * Math.tanh(s / c);
  const [, H, T, K] = a.attention.dims;
  if (a.positionBias) s += a.positionBias.data[(head * T + i) * K + j];
  if (a.layerPositionBias) s += a.layerPositionBias.data[((layer * H + head) * T + i) * K + j];
  return s;
}

/** Shape helpers: `[layers, heads, T, T]` of an Attention. */
export function attentionShape(a: Pick<Attention, 'attention'>): { layers: number; heads: number; seqLen: number } {
  const [layers, heads, seqLen] = a.attention.dims;
  return { layers, heads, seqLen };
}

/**
 * How far a row of probabilities may sum from 1, and a probability dip below 0: float32 softmax rounding is
 * ~1e-7 per value, fp16 graphs ~5e-4 per row; a broken model or file is off by far more (NaN, −1.5e32, 0).
 */
export const ROW_TOLERANCE = 1e-2;

/**
 * Why `t` ([layers, heads, rows, columns]) is not a stack of probability rows — the first value that is not
 * finite, below 0, or the first row that does not sum to 1 — naming layer, head and row; null when it is.
 * One pass over the data, no allocation.
 */
export function probabilityProblem(t: Tensor, name: string): string | null {
  const [L, H, R, C] = t.dims;
  const d = t.data;
  for (let l = 0, i = 0; l < L; l++)
    for (let h = 0; h < H; h++)
      for (let r = 0; r < R; r++) {
        let sum = 0;
        for (let c = 0; c < C; c++, i++) {
          const v = d[i];
          if (!(v >= -ROW_TOLERANCE) || v === Infinity) {
            const shown = Number.isFinite(v) ? v.toPrecision(4) : v;
            return `${name} layer ${l} head ${h}: row ${r} holds ${shown} (column ${c}), not a probability`;
          }
          sum += v;
        }
        if (Math.abs(sum - 1) > ROW_TOLERANCE)
          return `${name} layer ${l} head ${h}: row ${r} sums to ${sum.toPrecision(4)}, not 1`;
      }
  return null;
}

/** The first non-finite value of a [layers, heads, …] tensor, naming layer and head; null when all are finite. */
export function nonFiniteProblem(t: Tensor, name: string): string | null {
  const d = t.data;
  for (let i = 0; i < d.length; i++) {
    if (Number.isFinite(d[i])) continue;
    const perLayer = d.length / (t.dims[0] || 1);
    const perHead = perLayer / (t.dims[1] || 1);
    return `${name} layer ${Math.floor(i / perLayer)} head ${Math.floor((i % perLayer) / perHead)} holds ${d[i]}`;
  }
  return null;
}

/**
 * The first reason `a` is not valid data (probabilities that are not, q or k not finite, in every part of an
 * encoder-decoder result), or null. Results and attention files are checked with it so a NaN never reaches a
 * view silently.
 */
export function attentionProblem(a: Attention): string | null {
  const ed = a.encoderDecoder;
  const prefix = ed ? 'encoder ' : '';
  return (
    probabilityProblem(a.attention, `${prefix}attention`) ??
    (a.query ? nonFiniteProblem(a.query, `${prefix}query`) : null) ??
    (a.key ? nonFiniteProblem(a.key, `${prefix}key`) : null) ??
    (ed ? probabilityProblem(ed.decoder, 'decoder attention') : null) ??
    (ed ? probabilityProblem(ed.cross, 'cross attention') : null) ??
    (ed?.decoderQuery ? nonFiniteProblem(ed.decoderQuery, 'decoder query') : null) ??
    (ed?.decoderKey ? nonFiniteProblem(ed.decoderKey, 'decoder key') : null) ??
    (ed?.crossQuery ? nonFiniteProblem(ed.crossQuery, 'cross query') : null) ??
    (ed?.crossKey ? nonFiniteProblem(ed.crossKey, 'cross key') : null)
  );
}
