/**
 * What every runnable model offers, whatever it is built from: a checkpoint turned into an ONNX graph
 * (checkpoint-model.ts), an existing ONNX graph tapped as it is (onnx-tap.ts) or a TF.js graph
 * (tfjs-model.ts). `loadModel()` returns this for every source; callers read `capabilities` (or call and get
 * a one-line AttnvizError) instead of telling the kinds apart.
 */
import type { Attention, AttentionStream, Tensor } from '../core/attention.js';
import { AttnvizError, check } from '../core/errors.js';
import { FAMILIES } from '../graph/families.js';
import type { ModelDims } from '../graph/family.js';
import type { Encoded } from '../load/tokenizer.js';
import type { Selection } from './layer-stream.js';

export type { ModelDims };

export interface AttentionOptions {
  /** Second text of a sentence pair (models with `capabilities.pair`). */
  pair?: string | null;
  /** Cut inputs longer than the model's positions instead of failing. */
  truncate?: boolean;
  /** Encoder-decoder models (`capabilities.target`): the decoder's text, teacher-forced (seq2seq.ts). */
  target?: string | null;
  /** Encoder-decoder models without a target: generate at most this many decoder tokens, greedily. */
  maxNewTokens?: number;
}

export interface GenerateOptions {
  /** Tokens to generate at most (fewer when the model ends the text or runs out of positions). */
  maxNewTokens: number;
  /** Softmax temperature; 0 = greedy, always the most likely token (default 1). */
  temperature?: number;
  /** Nucleus sampling mass in (0, 1] (default 1: the whole distribution). */
  topP?: number;
  /** Random seed; the same seed gives the same text (default: a random one, returned in the result). */
  seed?: number;
  /**
   * Record each generated token's probability and the this many most likely tokens at its step (default 0:
   * no `steps`). Probabilities are the model's, softmax(logits) at temperature 1, whatever the sampling.
   */
  alternatives?: number;
  /**
   * Called with each token as it is chosen, before the next step runs (the server streams them); throwing
   * stops the generation with that error.
   */
  onToken?: (token: { id: number; token: string; index: number }) => void;
}

/** One generated token: what was chosen at its step and what else the model considered. */
export interface GenerationStep {
  id: number;
  token: string;
  probability: number;
  /** The most likely tokens at this step, most likely first. */
  top: { id: number; token: string; probability: number }[];
}

export interface Generation {
  /** Prompt and generated token ids (with BOS; with EOS when it ended the text). */
  ids: number[];
  tokens: string[];
  /** How many of `ids` came from the prompt (1 for BOS alone). */
  promptLength: number;
  /** Prompt and continuation as text, BOS/EOS left out. */
  text: string;
  /** Why generation ended: EOS, maxNewTokens reached, or the model's positions used up. */
  stopped: 'eos' | 'length' | 'positions';
  seed: number;
  /**
   * Attention over the whole final sequence (causal; its `promptLength` set), unless the model was loaded with
   * extract: false.
   */
  attention?: Attention;
  /** With `alternatives`: one entry per generated token, in order (token n is ids[promptLength + n]). */
  steps?: GenerationStep[];
}

/** What a model can do beyond `attention(text)`. */
export interface ModelCapabilities {
  /** `attention()` takes a second text (`pair`): every model but encoder-decoders. */
  pair: boolean;
  /** An encoder-decoder model: `attention()` takes the decoder's `target` text (or `maxNewTokens`). */
  target: boolean;
  /** `generate()` continues a text (decoders with a language-model head). */
  generate: boolean;
  /** `logits()` gives next-token scores (loaded with `logits`). */
  logits: boolean;
  /** `stream()` gives the attention layer by layer as it is computed (extraction staged at layer boundaries). */
  stream: boolean;
}

/** What a graph run as it is can do (an existing ONNX graph, a TF.js graph): one text or a pair, nothing more. */
export const READ_AS_IS: ModelCapabilities = {
  pair: true,
  target: false,
  generate: false,
  logits: false,
  stream: false,
};

export interface AttentionModel {
  /** What the user passed to loadModel. */
  readonly source: string;
  /** config.json's model_type ('bert', 'llama', …), 'use-lite' / 'tfjs-graph' for TF.js graphs. */
  readonly modelType: string;
  /** Each token attends only to itself and earlier tokens. */
  readonly causal: boolean;
  /** Sizes; `headDim` is the head size q and k are reported in. */
  readonly dims: ModelDims;
  /** Bytes of weights on disk (the server's memory estimate). */
  readonly weightBytes: number;
  readonly capabilities: ModelCapabilities;
  /** `text` (and `pair`) as attention() tokenizes it, not cut to the positions (a token counter needs no run). */
  tokenize(text: string, pair?: string | null): Encoded;
  /** Tokenizes `text` (and `pair` or `target`) and returns every layer's and head's attention, q and k. */
  attention(text: string, options?: AttentionOptions): Promise<Attention>;
  /** Continues `prompt` (null or '': from BOS); present when `capabilities.generate`. */
  generate?(prompt: string | null, options: GenerateOptions): Promise<Generation>;
  /**
   * `attention()` one layer at a time, each computed when the iteration asks for it, of the selected layers and
   * heads (model indices; default all); present when `capabilities.stream`.
   */
  stream?(text: string, options?: AttentionOptions & Selection): AttentionStream;
  /** Next-token logits `[1, vocab]` or `[T, vocab]`; present when `capabilities.logits`. */
  logits?(text: string, options?: AttentionOptions): Promise<Tensor>;
  /** The forward pass alone: the last hidden state `[T, hidden]`. */
  forward?(text: string, options?: AttentionOptions): Promise<Tensor>;
  release(): Promise<void>;
}

/** Refuses the options `m` has no use for: a target on a model that is not an encoder-decoder, a pair on one. */
export function checkAttentionOptions(m: AttentionModel, options: AttentionOptions): void {
  const { target, maxNewTokens, pair } = options;
  check(
    m.capabilities.target || ((target ?? null) === null && maxNewTokens === undefined),
    `${m.source}: model_type ${m.modelType} is not an encoder-decoder model: it takes no target text`,
  );
  check(
    m.capabilities.pair || pair === undefined || pair === null || pair === '',
    `${m.source} is an encoder-decoder model: it takes a target text, not a sentence pair`,
  );
}

/** `m.generate`, or the one-line error when `m` cannot generate. */
export async function generateWith(
  m: AttentionModel,
  prompt: string | null,
  options: GenerateOptions,
): Promise<Generation> {
  if (!m.capabilities.generate || !m.generate) throw cannotGenerate(m);
  return m.generate(prompt, options);
}

/** The one-line error for generate() on a model that cannot. */
export function cannotGenerate(m: AttentionModel): AttnvizError {
  return new AttnvizError(
    m.capabilities.target
      ? `${m.source} is an encoder-decoder model: attention(text, { maxNewTokens }) generates its target ` +
          '(extract --max-new-tokens)'
      : `${m.source}: model_type ${m.modelType} cannot generate in attnviz (it generates with the decoders ` +
          `${GENERATING.join(', ')}: their checkpoints and GGUF files)`,
  );
}

/** The model_types `generate` runs: decoders whose graph ends in a language-model head. */
export const GENERATING = FAMILIES.filter((f) => f.lmHead && !f.encoderDecoder).map((f) => f.modelType);
