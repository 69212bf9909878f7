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
   * Grouped-query attention: the number of key/value heads, fewer than the query heads. `key` still has one
   * entry per query head h: the key of the kv head it reads, ⌊h / (heads / kvHeads)⌋ (repeated).
   */
  kvHeads?: number;
  /**
   * Rotary models: the order of the head dimensions in `query`/`key` (after RoPE). 'half': dims j and j + d/2
   * rotate together (Hugging Face layout); 'interleaved': dims 2j and 2j + 1 (Meta, llama2.c, GGUF).
   */
  rotary?: 'half' | 'interleaved';
}

/** Shape helpers: `[layers, heads, T, T]` of an Attention. */
export function attentionShape(a: Pick<Attention, 'attention'>): { layers: number; heads: number; seqLen: number } {
  const [layers, heads, seqLen] = a.attention.dims;
  return { layers, heads, seqLen };
}
