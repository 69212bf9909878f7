/**
 * The attention file: attnviz's exchange format (docs/attention-file.md), a safetensors file with F32
 * tensors `attention` [L,H,T,T], optional `query`/`key` [L,H,T,d], `hidden_last` [T,D], `input_ids` [T]
 * (I32 or I64), and a `__metadata__` key `attnviz` holding JSON metadata (tokens, texts, model, causal, version).
 * Encoder-decoder results keep the encoder's self-attention in those tensors (so any reader shows it) and add
 * the decoder's: `decoder_attention`, `cross_attention` and their q/k, with `decoder_tokens` in the metadata.
 * Browser-safe (the app decodes files dropped on the page); files.ts reads and writes them on disk (Node).
 */
import { AttnvizError, check } from './errors.js';
import {
  type Attention,
  type AttentionHeader,
  attentionProblem,
  type EncoderDecoderAttention,
  type Tensor,
} from './attention.js';
import { fromHalf, toHalf } from './half.js';
import { decodeHeader, encodeSafetensors, type TensorEntry, type TensorToWrite } from './safetensors.js';

export const FORMAT_VERSION = 1;

/** The float types an attention file's float tensors may have; readers accept all three. */
export const FLOAT_DTYPES = ['F32', 'F16', 'BF16'] as const;
export type FloatDType = (typeof FLOAT_DTYPES)[number];

export interface AttentionFileOptions {
  /** The type the float tensors are written in (default F32; F16 and BF16 halve the file). */
  dtype?: FloatDType;
}

/** The JSON stored under `__metadata__.attnviz`. Fields use snake_case, as PyTorch writers will. */
export interface AttentionFileMetadata {
  version: number;
  tokens: string[];
  text: string;
  pair: string | null;
  sentence_b_start: number | null;
  model: { source: string; model_type: string };
  causal: boolean;
  /** Generated text: how many of `tokens` came from the prompt (BOS included); the rest were generated. */
  prompt_length?: number;
  /** Grouped-query attention: key/value heads; `key` holds per query head h the key of kv head ⌊h·kv_heads/heads⌋. */
  kv_heads?: number;
  /** Rotary models: 'half' (HF order of q/k dims) or 'interleaved' (Meta / llama2.c / GGUF order). */
  rotary?: 'half' | 'interleaved';
  /** Key-side tokens when they differ from `tokens` (a cross-attention on its own): `attention` is [L,H,T,Tk]. */
  key_tokens?: string[];
  /** The factor q·kᵀ is multiplied by before softmax when it is not 1/√d (T5: 1). */
  score_scale?: number;
  /** Attention logit soft-capping c (Gemma 2): scores become c·tanh(s/c) before the mask. */
  attn_logit_softcapping?: number;
  /** Per layer, the [left, right] reach of a sliding window, or null for full attention. */
  layer_windows?: ([number, number] | null)[];
  /** Encoder-decoder: the encoder's tokens (= `tokens`, which may be left out when this is given). */
  encoder_tokens?: string[];
  /** Encoder-decoder: the decoder's input tokens (start token, then the target). */
  decoder_tokens?: string[];
  /** Encoder-decoder: the target text. */
  target?: string;
  /** When only some layers were extracted: the model's index of each entry of the layers axis. */
  layers?: number[];
  /** When only some heads were extracted: the model's index of each entry of the heads axis. */
  heads?: number[];
  /** Per token of `tokens`: 1 for a special token, as transformers' special_tokens_mask (true/false also read). */
  special_tokens_mask?: number[];
  /** Encoder-decoder: the same for `decoder_tokens`. */
  decoder_special_tokens_mask?: number[];
  /** With `key_tokens`: the same for them. */
  key_special_tokens_mask?: number[];
}

/** Encoder-decoder tensors: attnviz name → Attention.encoderDecoder field (the encoder's are the plain names). */
const DECODER_TENSORS = {
  decoder_attention: 'decoder',
  cross_attention: 'cross',
  decoder_query: 'decoderQuery',
  decoder_key: 'decoderKey',
  cross_query: 'crossQuery',
  cross_key: 'crossKey',
  decoder_hidden_last: 'decoderHiddenLast',
  decoder_position_bias: 'decoderPositionBias',
} as const;

/** The metadata JSON of an Attention (or of a stream's header). */
export function metadataOf(
  a: Omit<AttentionHeader, 'layers' | 'heads' | 'qk' | 'headDim' | 'hidden'> &
    Pick<Attention, 'layers' | 'heads' | 'encoderDecoder'>,
): string {
  const meta: AttentionFileMetadata = {
    version: FORMAT_VERSION,
    tokens: a.tokens,
    text: a.text,
    pair: a.pair,
    sentence_b_start: a.sentenceBStart,
    model: { source: a.model.source, model_type: a.model.modelType },
    causal: a.causal,
    ...(a.promptLength !== undefined ? { prompt_length: a.promptLength } : {}),
    ...(a.kvHeads !== undefined ? { kv_heads: a.kvHeads } : {}),
    ...(a.rotary !== undefined ? { rotary: a.rotary } : {}),
    ...(a.keyTokens !== undefined ? { key_tokens: a.keyTokens } : {}),
    ...(a.scoreScale !== undefined ? { score_scale: a.scoreScale } : {}),
    ...(a.attnLogitSoftcapping !== undefined ? { attn_logit_softcapping: a.attnLogitSoftcapping } : {}),
    ...(a.layerWindows !== undefined ? { layer_windows: a.layerWindows.map((w) => (w ? [w[0], w[1]] : null)) } : {}),
    ...(a.layers !== undefined ? { layers: a.layers } : {}),
    ...(a.heads !== undefined ? { heads: a.heads } : {}),
    ...(a.encoderDecoder
      ? { encoder_tokens: a.tokens, decoder_tokens: a.encoderDecoder.decoderTokens, target: a.encoderDecoder.target }
      : {}),
    ...(a.special ? { special_tokens_mask: a.special.map(Number) } : {}),
    ...(a.encoderDecoder?.decoderSpecial
      ? { decoder_special_tokens_mask: a.encoderDecoder.decoderSpecial.map(Number) }
      : {}),
    ...(a.keySpecial ? { key_special_tokens_mask: a.keySpecial.map(Number) } : {}),
  };
  return JSON.stringify(meta);
}

/** Token ids as an I64 tensor. */
export const idsTensor = (xs: number[]): TensorToWrite => ({
  dtype: 'I64',
  shape: [xs.length],
  data: BigInt64Array.from(xs, BigInt),
});

export function encodeAttentionFile(a: Attention, options: AttentionFileOptions = {}): Buffer {
  const float = (t: Tensor): TensorToWrite => floatTensor(t, options.dtype ?? 'F32');
  const tensors: Record<string, TensorToWrite> = { attention: float(a.attention) };
  if (a.query) tensors.query = float(a.query);
  if (a.key) tensors.key = float(a.key);
  if (a.hiddenLast) tensors.hidden_last = float(a.hiddenLast);
  if (a.inputIds) tensors.input_ids = idsTensor(a.inputIds);
  if (a.positionBias) tensors.position_bias = float(a.positionBias);
  if (a.layerPositionBias) tensors.layer_position_bias = float(a.layerPositionBias);
  const ed = a.encoderDecoder;
  if (ed) {
    for (const [name, field] of Object.entries(DECODER_TENSORS)) if (ed[field]) tensors[name] = float(ed[field]);
    if (ed.decoderInputIds) tensors.decoder_input_ids = idsTensor(ed.decoderInputIds);
  }
  return encodeSafetensors(tensors, { attnviz: metadataOf(a) });
}

export interface ReadOptions {
  /**
   * Attention that is not probabilities (NaN, Inf, negative values, rows not summing to 1) is an error unless
   * this is given: then the file is read and `onInvalid` hears the one-line problem, to show as a warning.
   */
  onInvalid?: (problem: string) => void;
}

/** Decodes an attention file image; `what` names it in errors. */
export function decodeAttentionFile(bytes: Uint8Array, what: string, options: ReadOptions = {}): Attention {
  const a = decodeAttentionTensors(bytes, what);
  const problem = attentionProblem(a);
  if (problem && !options.onInvalid) throw new AttnvizError(`${what}: ${problem} (not attention probabilities)`);
  if (problem) options.onInvalid?.(`${what}: ${problem}`);
  return a;
}

function decodeAttentionTensors(bytes: Uint8Array, what: string): Attention {
  const header = decodeHeader(bytes, what);
  const meta = readMetadata(header.metadata, what);
  const strings = (v: unknown): v is string[] => Array.isArray(v) && v.every((t) => typeof t === 'string');
  // An encoder-decoder writer following BertViz's names may give encoder_tokens instead of tokens.
  if (meta.tokens === undefined && meta.encoder_tokens !== undefined) meta.tokens = meta.encoder_tokens;
  check(strings(meta.tokens), `${what}: metadata "tokens" must be a list of strings`);
  const tokens = meta.tokens;
  const T = tokens.length;
  check(
    meta.key_tokens === undefined || strings(meta.key_tokens),
    `${what}: metadata "key_tokens" must be a list of strings`,
  );
  const keyTokens = meta.key_tokens;
  const K = keyTokens?.length ?? T;

  /** The first of `names` present, F32 of `rank` dims that `fits`; `fit` says what it must fit, for the error. */
  const tensor = (
    names: string | string[],
    rank: number,
    fits: (dims: number[]) => boolean,
    fit = `${T} tokens`,
  ): Tensor | undefined => {
    const name = [names].flat().find((n) => header.tensors.has(n));
    const e = name === undefined ? undefined : header.tensors.get(name);
    if (!e) return undefined;
    check(
      (FLOAT_DTYPES as readonly string[]).includes(e.dtype),
      `${what}: tensor "${name}" must be F32, F16 or BF16, is ${e.dtype}`,
    );
    check(
      e.shape.length === rank && fits(e.shape),
      `${what}: tensor "${name}" has shape [${e.shape.join(', ')}], which does not fit ${fit}`,
    );
    return { dims: e.shape, data: readFloats(bytes, e) };
  };
  // BertViz-style writers may name the encoder's self-attention encoder_attention (and its q/k encoder_query,
  // encoder_key).
  const attention = tensor(['attention', 'encoder_attention'], 4, ([, , q, k]) => q === T && k === K);
  check(attention, `${what}: no "attention" tensor`);
  const [L, H] = attention.dims;
  check(L > 0 && H > 0 && T > 0, `${what}: ${L} layers, ${H} heads and ${T} tokens: none may be 0`);
  const query = tensor(['query', 'encoder_query'], 4, (d) => d[0] === L && d[1] === H && d[2] === T);
  const key = tensor(['key', 'encoder_key'], 4, (d) => d[0] === L && d[1] === H && d[2] === K);
  check(
    !query === !key && (!query || query.dims[3] === key!.dims[3]),
    `${what}: "query" and "key" must both be present with the same head size`,
  );
  const hiddenLast = tensor('hidden_last', 2, ([t]) => t === T);
  const positionBias = tensor('position_bias', 3, ([h, q, k]) => h === H && q === T && k === K);
  const layerPositionBias = tensor(
    'layer_position_bias',
    4,
    ([l, h, q, k]) => l === L && h === H && q === T && k === K,
  );
  for (const field of ['score_scale', 'attn_logit_softcapping'] as const) {
    const v = meta[field];
    check(
      v === undefined || (typeof v === 'number' && Number.isFinite(v)),
      `${what}: metadata "${field}" must be a number`,
    );
  }
  check(
    meta.attn_logit_softcapping === undefined || meta.attn_logit_softcapping > 0,
    `${what}: metadata "attn_logit_softcapping" must be positive`,
  );
  const windows = meta.layer_windows;
  const reach = (x: unknown) => Number.isSafeInteger(x) && (x as number) >= 0;
  check(
    windows === undefined ||
      (Array.isArray(windows) &&
        windows.length === L &&
        windows.every((w) => w === null || (Array.isArray(w) && w.length === 2 && reach(w[0]) && reach(w[1])))),
    `${what}: metadata "layer_windows" must be a list of ${L} entries, each null or [left, right] (integers ≥ 0)`,
  );

  const ints = (name: string, n = T): number[] | undefined => {
    const e = header.tensors.get(name);
    if (!e) return undefined;
    check(
      (e.dtype === 'I64' || e.dtype === 'I32') && e.shape.length === 1 && e.shape[0] === n,
      `${what}: tensor "${name}" must be I64 or I32 [${n}], is ${e.dtype} [${e.shape.join(', ')}]`,
    );
    const view = new DataView(bytes.buffer, bytes.byteOffset + e.offset, e.byteLength);
    return Array.from({ length: n }, (_, i) =>
      e.dtype === 'I64' ? Number(view.getBigInt64(i * 8, true)) : view.getInt32(i * 4, true),
    );
  };
  const inputIds = ints('input_ids');
  /** An optional special-token mask of `n` entries, 0/1 or booleans. */
  const mask = (
    name: 'special_tokens_mask' | 'decoder_special_tokens_mask' | 'key_special_tokens_mask',
    n: number,
  ): boolean[] | undefined => {
    const v: unknown = meta[name];
    if (v === undefined) return undefined;
    check(
      Array.isArray(v) && v.length === n && v.every((x) => x === 0 || x === 1 || typeof x === 'boolean'),
      `${what}: metadata "${name}" must be ${n} values, 0/1 or true/false`,
    );
    return v.map((x) => x === 1 || x === true);
  };
  const special = mask('special_tokens_mask', T);
  const keySpecial = keyTokens ? mask('key_special_tokens_mask', keyTokens.length) : undefined;

  // Encoder-decoder: T′ decoder tokens over L′ decoder layers; cross-attention rows are decoder tokens, columns
  // encoder tokens.
  let encoderDecoder: EncoderDecoderAttention | undefined;
  if (meta.decoder_tokens !== undefined || header.tensors.has('decoder_attention')) {
    check(
      strings(meta.decoder_tokens),
      `${what}: metadata "decoder_tokens" must be a list of strings (the file has decoder attention)`,
    );
    const decoderTokens = meta.decoder_tokens,
      Td = decoderTokens.length,
      fit = `${Td} decoder tokens and ${T} encoder tokens`;
    const decoder = tensor('decoder_attention', 4, ([, h, q, k]) => h === H && q === Td && k === Td, fit);
    check(
      decoder,
      `${what}: no "decoder_attention" tensor (metadata "decoder_tokens" says this is an encoder-decoder file)`,
    );
    const Ld = decoder.dims[0];
    const cross = tensor('cross_attention', 4, ([l, h, q, k]) => l === Ld && h === H && q === Td && k === T, fit);
    check(cross, `${what}: no "cross_attention" tensor`);
    check(Ld > 0 && Td > 0, `${what}: ${Ld} decoder layers and ${Td} decoder tokens: neither may be 0`);
    const perLayer = (name: string, rows: number) =>
      tensor(name, 4, ([l, h, r]) => l === Ld && h === H && r === rows, fit);
    const qk = (q?: Tensor, k?: Tensor, names = '') => {
      check(
        !q === !k && (!q || q.dims[3] === k!.dims[3]),
        `${what}: ${names} must both be present with the same head size`,
      );
      return q && k ? [q, k] : null;
    };
    const self = qk(perLayer('decoder_query', Td), perLayer('decoder_key', Td), '"decoder_query" and "decoder_key"');
    const crossQk = qk(perLayer('cross_query', Td), perLayer('cross_key', T), '"cross_query" and "cross_key"');
    const decoderHiddenLast = tensor('decoder_hidden_last', 2, ([t]) => t === Td, fit);
    const decoderPositionBias = tensor('decoder_position_bias', 3, ([h, q, k]) => h === H && q === Td && k === Td, fit);
    const decoderInputIds = ints('decoder_input_ids', Td);
    const decoderSpecial = mask('decoder_special_tokens_mask', Td);
    encoderDecoder = {
      decoderTokens,
      target: typeof meta.target === 'string' ? meta.target : '',
      ...(decoderInputIds ? { decoderInputIds } : {}),
      ...(decoderSpecial ? { decoderSpecial } : {}),
      decoder,
      cross,
      ...(self ? { decoderQuery: self[0], decoderKey: self[1] } : {}),
      ...(crossQk ? { crossQuery: crossQk[0], crossKey: crossQk[1] } : {}),
      ...(decoderHiddenLast ? { decoderHiddenLast } : {}),
      ...(decoderPositionBias ? { decoderPositionBias } : {}),
    };
  }
  // Without sentence_b_start, a BERT-style writer's token_type_ids still tell where sentence B begins.
  const firstB = ints('token_type_ids')?.indexOf(1) ?? -1;
  const sentenceBStart = meta.sentence_b_start ?? (firstB > 0 ? firstB : null);
  check(
    sentenceBStart === null || (Number.isInteger(sentenceBStart) && sentenceBStart >= 0 && sentenceBStart <= T),
    `${what}: metadata "sentence_b_start" must be null or a token index`,
  );
  const promptLength = meta.prompt_length;
  check(
    promptLength === undefined || (Number.isInteger(promptLength) && promptLength >= 0 && promptLength <= T),
    `${what}: metadata "prompt_length" must be a token count of at most ${T}`,
  );
  return {
    tokens,
    text: typeof meta.text === 'string' ? meta.text : '',
    pair: typeof meta.pair === 'string' ? meta.pair : null,
    sentenceBStart,
    ...(promptLength !== undefined ? { promptLength } : {}),
    model: { source: meta.model?.source ?? '', modelType: meta.model?.model_type ?? '' },
    causal: meta.causal === true,
    attention,
    ...(query && key ? { query, key } : {}),
    ...(hiddenLast ? { hiddenLast } : {}),
    ...(inputIds ? { inputIds } : {}),
    ...(special ? { special } : {}),
    ...(Number.isInteger(meta.kv_heads) && meta.kv_heads! > 0 && H % meta.kv_heads! === 0
      ? { kvHeads: meta.kv_heads }
      : {}),
    ...(meta.rotary === 'half' || meta.rotary === 'interleaved' ? { rotary: meta.rotary } : {}),
    ...(keyTokens ? { keyTokens } : {}),
    ...(keySpecial ? { keySpecial } : {}),
    ...(meta.score_scale !== undefined ? { scoreScale: meta.score_scale } : {}),
    ...(meta.attn_logit_softcapping !== undefined ? { attnLogitSoftcapping: meta.attn_logit_softcapping } : {}),
    ...(windows !== undefined ? { layerWindows: windows } : {}),
    ...(positionBias ? { positionBias } : {}),
    ...(layerPositionBias ? { layerPositionBias } : {}),
    ...(encoderDecoder ? { encoderDecoder } : {}),
    ...indexList(meta.layers, L, 'layers', what),
    ...indexList(meta.heads, H, 'heads', what),
  };
}

/** A `layers` / `heads` metadata list: one model index per entry of that axis. */
function indexList(list: unknown, n: number, key: 'layers' | 'heads', what: string): { [k in typeof key]?: number[] } {
  if (list === undefined) return {};
  check(
    Array.isArray(list) && list.length === n && list.every((i) => Number.isSafeInteger(i) && i >= 0),
    `${what}: metadata "${key}" must list ${n} indices, one per entry of the ${key} axis`,
  );
  return { [key]: list as number[] };
}

/**
 * The `attnviz` JSON entry; failing that, metadata stored one JSON string per field (`tokens`, `text`,
 * `text_pair`), the layout of ../shared/golden/cases and of simple PyTorch writers.
 */
function readMetadata(metadata: Record<string, string>, what: string): Partial<AttentionFileMetadata> {
  const parse = (key: string): unknown => {
    try {
      return JSON.parse(metadata[key]);
    } catch (e) {
      throw new AttnvizError(`${what}: __metadata__.${key} is not valid JSON (${(e as Error).message})`);
    }
  };
  if (metadata.attnviz !== undefined) {
    const meta = parse('attnviz');
    check(
      meta !== null && typeof meta === 'object' && !Array.isArray(meta),
      `${what}: __metadata__.attnviz must be a JSON object`,
    );
    return meta as Partial<AttentionFileMetadata>;
  }
  check(
    metadata.tokens !== undefined,
    `${what}: no "attnviz" entry in __metadata__ (not an attention file; see docs/attention-file.md)`,
  );
  const field = (key: string) => (metadata[key] === undefined ? undefined : parse(key));
  return {
    tokens: field('tokens') as string[],
    text: field('text') as string,
    pair: (field('text_pair') ?? null) as string | null,
  };
}

function floatTensor(t: Tensor, dtype: FloatDType): TensorToWrite {
  return { dtype, shape: t.dims, data: dtype === 'F32' ? t.data : toHalf(t.data, dtype) };
}

/** Copies a float tensor out of the file image as float32 (its offset need not be aligned). */
function readFloats(bytes: Uint8Array, e: TensorEntry): Float32Array {
  // A copy (Buffer's slice would be a view into its pool), so the result is aligned and owns its memory.
  const raw = Uint8Array.prototype.slice.call(bytes, e.offset, e.offset + e.byteLength).buffer;
  if (e.dtype === 'F32') return new Float32Array(raw);
  return fromHalf(new Uint16Array(raw), e.dtype as Exclude<FloatDType, 'F32'>);
}
